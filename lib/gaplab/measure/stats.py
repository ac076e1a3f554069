"""Is a difference between two phases bigger than their spread?  Welch's t-test, in words.

Two phases trained with several seeds each (``replicates``) give two small samples of a number (best val
loss, final gap).  Welch's t-test (Welch 1947, via ``scipy.stats.ttest_ind(equal_var=False)``) asks whether
their means differ by more than the seed-to-seed spread explains, without assuming equal spreads.  With
one seed per phase there is no spread to compare with: the answer says so instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

#: a difference counts as "beyond the spread" below this two-sided p-value
ALPHA = 0.05


def welch(a: Sequence[float], b: Sequence[float]) -> Optional[dict[str, Any]]:
    """``diff`` (mean a - mean b), ``se`` of the difference, ``t``, ``df``, ``p`` and ``significant``
    (p < :data:`ALPHA`); None unless both samples have at least two finite values."""
    from scipy import stats

    a = [float(x) for x in a if x is not None and math.isfinite(float(x))]
    b = [float(x) for x in b if x is not None and math.isfinite(float(x))]
    if len(a) < 2 or len(b) < 2:
        return None
    va = sum((x - sum(a) / len(a)) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - sum(b) / len(b)) ** 2 for x in b) / (len(b) - 1)
    se = math.sqrt(va / len(a) + vb / len(b))
    diff = sum(a) / len(a) - sum(b) / len(b)
    if se == 0:
        return {
            "diff": diff,
            "se": 0.0,
            "t": math.inf if diff else 0.0,
            "df": len(a) + len(b) - 2,
            "p": 0.0 if diff else 1.0,
            "significant": diff != 0,
        }
    res = stats.ttest_ind(a, b, equal_var=False)
    df = (va / len(a) + vb / len(b)) ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return {
        "diff": diff,
        "se": se,
        "t": float(res.statistic),
        "df": float(df),
        "p": float(res.pvalue),
        "significant": bool(res.pvalue < ALPHA),
    }


def difference_sentence(
    name_a: str, a: Sequence[float], name_b: str, b: Sequence[float], what: str, unit: str = "nats"
) -> str:
    """``"a's best val is lower than b's by 0.12 ± 0.04 nats (Welch t = 3.1, p = 0.02, 3 and 3 seeds): beyond
    their spread."`` — or the same with "within their spread", or a sentence that there is no spread."""
    w = welch(a, b)
    if w is None:
        return (
            f"{name_a} vs {name_b}, {what}: one seed on at least one side, so the difference cannot be told "
            f"from seed noise (add replicates: N to measure the spread)."
        )
    word = "lower" if w["diff"] < 0 else "higher"
    verdict = "beyond their seed-to-seed spread" if w["significant"] else "within their seed-to-seed spread"
    return (
        f"{name_a}'s {what} is {word} than {name_b}'s by {abs(w['diff']):.3f} ± {w['se']:.3f} {unit} "
        f"(Welch t = {w['t']:.2f}, p = {w['p']:.2g}, {len([x for x in a if x is not None])} and "
        f"{len([x for x in b if x is not None])} seeds): {verdict}."
    )
