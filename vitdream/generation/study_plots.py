"""Figures of guidance and sampler studies (matplotlib): one panel per quantity, cells on the x axis."""

from __future__ import annotations

from typing import Any


def _panels(study: Any) -> list[tuple[str, list[str]]]:
    columns = {c for row in study.rows for c in row}
    panels = [("prompt fidelity", [c for c in study.fidelity if c in columns])]
    panels.append(("diversity", sorted(c for c in columns if c.startswith("diversity"))))
    if study.kind == "sampler":
        panels.append(("change to final image", ["change_to_final"]))
    panels.append(("seconds per image", ["seconds_per_image"]))
    return [(title, cols) for title, cols in panels if cols]


def plot_study(study: Any, fig: Any = None) -> Any:
    """Draw ``study`` into ``fig`` (cleared; a new figure when None) and return it."""
    import matplotlib.pyplot as plt

    panels = _panels(study)
    if fig is None:
        fig = plt.figure(figsize=(3.2 * max(1, len(panels)), 2.8))
    fig.clear()
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for axis, (title, columns) in zip(axes, panels):
        if study.kind == "guidance":
            x = study.column("guidance_scale")
            for column in columns:
                axis.plot(x, study.column(column), marker="o", label=column)
            axis.set_xlabel("guidance scale")
        else:
            for sampler in dict.fromkeys(study.column("sampler")):
                rows = sorted((r for r in study.rows if r["sampler"] == sampler), key=lambda r: r["steps"])
                for column in columns:
                    label = sampler if len(columns) == 1 else f"{sampler} {column}"
                    axis.plot([r["steps"] for r in rows], [r.get(column, float("nan")) for r in rows], marker="o",
                              label=label)
            axis.set_xscale("log")
            ticks = sorted(set(study.column("steps")))
            axis.set_xticks(ticks, [str(t) for t in ticks])
            axis.minorticks_off()
            axis.set_xlabel("steps")
        axis.set_title(title, fontsize=9)
        if len(axis.get_lines()) > 1:
            axis.legend(fontsize=7)
    if study.cancelled:
        fig.suptitle("(cancelled: finished cells only)", fontsize=8)
    fig.tight_layout()
    return fig
