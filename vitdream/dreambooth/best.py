"""Which validation step of a DreamBooth run to keep: the documented rule behind ``run.best_step``.

**The rule.** Among the validation steps after step 0, keep those where

1. ``prompt_fidelity`` is at least the base model's (step 0) minus ``max_prompt_fidelity_drop`` (the
   subject has not started to override what the prompts ask for);
2. ``PRES`` (drift: class-prompt images that look like the subject) is at most the base model's plus
   ``max_drift`` (the class keeps its own look);
3. no validation sample is a copy of an instance image (``copies == 0``, see the copy alarm).

The best step is the one of those with the highest ``subject_fidelity`` (the earliest on a tie); None when
no step qualifies. A bound whose metric is missing (NaN: no prompt evaluator, no class prompt) is not
applied. Without a step-0 row (a run resumed from elsewhere) the first validation step is the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not math.isnan(v) for v in values)


@dataclass(frozen=True)
class BestStepRule:
    """The rule of the module docstring, with its two user-settable bounds."""

    max_prompt_fidelity_drop: float = 0.1
    max_drift: float = 0.1

    def qualifies(self, row: Mapping[str, Any], baseline: Mapping[str, Any]) -> bool:
        pf, base_pf = row.get("prompt_fidelity"), baseline.get("prompt_fidelity")
        if _finite(pf, base_pf) and pf < base_pf - self.max_prompt_fidelity_drop - 1e-12:
            return False
        pres, base_pres = row.get("PRES"), baseline.get("PRES")
        if _finite(pres, base_pres) and pres > base_pres + self.max_drift + 1e-12:
            return False
        return not row.get("copies")

    def pick(self, history: Sequence[Mapping[str, Any]]) -> int | None:
        """The best step of ``history`` (rows with ``step`` and the metrics, any order), or None."""
        rows = sorted(history, key=lambda r: r["step"])
        if not rows:
            return None
        baseline = rows[0]
        best: Mapping[str, Any] | None = None
        for row in rows:
            if row["step"] == 0 or not self.qualifies(row, baseline) or not _finite(row.get("subject_fidelity")):
                continue
            if best is None or row["subject_fidelity"] > best["subject_fidelity"]:
                best = row
        return None if best is None else int(best["step"])

    def explain(self, history: Sequence[Mapping[str, Any]]) -> str:
        """One line per validation step: its metrics and whether (and why not) it qualifies."""
        rows = sorted(history, key=lambda r: r["step"])
        if not rows:
            return "no validation step yet"
        lines, baseline, best = [], rows[0], self.pick(rows)
        for row in rows:
            why = ("baseline (the base model)" if row["step"] == 0 else "best" if row["step"] == best
                   else "qualifies" if self.qualifies(row, baseline) else self._reason(row, baseline))
            lines.append(f"step {row['step']}: subject_fidelity {row.get('subject_fidelity', float('nan')):.3f} -- {why}")
        return "\n".join(lines)

    def _reason(self, row: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
        if row.get("copies"):
            return f"{int(row['copies'])} sample(s) copy an instance image"
        pf, base_pf = row.get("prompt_fidelity"), baseline.get("prompt_fidelity")
        if _finite(pf, base_pf) and pf < base_pf - self.max_prompt_fidelity_drop:
            return f"prompt fidelity {pf:.3f} < {base_pf:.3f} - {self.max_prompt_fidelity_drop}"
        return f"drift: PRES {row.get('PRES'):.3f} > {baseline.get('PRES'):.3f} + {self.max_drift}"
