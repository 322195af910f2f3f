"""Theme-neutral drawing: the widgets' plots carry their own opaque light background and dark text.

A kernel cannot know the front end's theme (light or dark JupyterLab, Notebook 7, VS Code), and a
user's matplotlib style may make figures transparent or light-on-dark. Plots drawn inside
:func:`plot_style` look the same everywhere and stay legible on any page background; HTML text uses
JupyterLab's theme variables (``var(--jp-...)``) with a fallback.
"""

from __future__ import annotations

from typing import Any

PLOT_RC: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "text.color": "black",
    "axes.labelcolor": "black",
    "axes.edgecolor": "black",
    "xtick.color": "black",
    "ytick.color": "black",
    "legend.facecolor": "white",
    "legend.labelcolor": "black",
}


def plot_style() -> Any:
    """A context in which new matplotlib figures use :data:`PLOT_RC`, whatever the user's style."""
    import matplotlib

    return matplotlib.rc_context(PLOT_RC)


# button_style -> (background, text): ipywidgets' own success/info/danger colours put white text at
# 2.8-4.1:1 in JupyterLab's light or dark theme; these reach WCAG AA (4.5:1) in both.
BUTTON_COLORS: dict[str, tuple[str, str]] = {
    "success": ("#2e7d32", "white"),  # 5.1:1
    "info": ("#0277bd", "white"),  # 4.8:1
    "danger": ("#c62828", "white"),  # 5.6:1
    "warning": ("#8d4f00", "white"),  # 6.4:1
}


def legible_button(button: Any) -> Any:
    """Give ``button`` colours with AA contrast in light and dark themes, by its ``button_style``."""
    colors = BUTTON_COLORS.get(button.button_style)
    if colors is not None:
        button.style.button_color, button.style.text_color = colors
    return button
