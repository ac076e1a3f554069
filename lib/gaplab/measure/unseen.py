"""The val loss split in two: tokens whose id occurs in the training split, and tokens whose id never does.

A model cannot learn a token it never saw as a training target: with a compact vocabulary built from the
training split, every such token is one unknown id; with a shared vocabulary, its embedding row is only
ever pushed down.  Either way those tokens cost many nats, and as the model grows confident on what it
memorised they cost more and more.  How much of a val loss, and of its rise, comes from them is a fact
about the split, not about generalisation; :func:`seen_unseen_summary` separates it (the trainer records
``val_loss_seen`` and ``val_loss_unseen`` at every eval, see :func:`gaplab.train.loop.evaluate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..units import finite_or_none


def seen_unseen_summary(history: pd.DataFrame, metrics: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """Shares and losses of seen and unseen val tokens at the best eval and at the end; None without the columns.

    Keys: ``unseen_token_share``, ``unseen_byte_share`` (of the whole val split), ``best_iter``,
    ``seen_at_best``, ``unseen_at_best``, ``seen_final``, ``unseen_final`` (nats per token),
    ``unseen_part_of_final`` (the unseen tokens' share of the final val loss) and a one-line ``summary``.
    """
    if "val_loss_seen" not in history.columns or history.empty:
        return None
    h = history.sort_values("iter")
    best_iter = metrics.get("best_iter")
    at_best = h[h["iter"] == best_iter] if best_iter is not None else h.iloc[[int(np.nanargmin(h["val_loss"]))]]
    at_best = at_best.iloc[-1] if len(at_best) else h.iloc[int(np.nanargmin(h["val_loss"]))]
    last = h.iloc[-1]
    share = finite_or_none(metrics.get("val_unseen_token_share"))
    out = {
        "unseen_token_share": share,
        "unseen_byte_share": finite_or_none(metrics.get("val_unseen_byte_share")),
        "best_iter": int(at_best["iter"]),
        "seen_at_best": finite_or_none(at_best["val_loss_seen"]),
        "unseen_at_best": finite_or_none(at_best["val_loss_unseen"]),
        "seen_final": finite_or_none(last["val_loss_seen"]),
        "unseen_final": finite_or_none(last["val_loss_unseen"]),
    }
    final = finite_or_none(last["val_loss"])
    if share and out["unseen_final"] is not None and final:
        out["unseen_part_of_final"] = share * out["unseen_final"] / final
    else:
        out["unseen_part_of_final"] = 0.0 if not share else None
    if not share:
        out["summary"] = "Every val token's id occurs in the training split."
    elif out["seen_final"] is None or out["unseen_final"] is None:
        out["summary"] = f"{share:.1%} of val tokens never occur in the training split."
    else:
        out["summary"] = (
            f"{share:.1%} of val tokens never occur in the training split; they cost {out['unseen_final']:.2f} "
            f"nats each at the end ({out['unseen_at_best']:.2f} at the best eval, iter {out['best_iter']}), "
            f"{out['unseen_part_of_final']:.0%} of the final val loss. On the tokens train did contain, val loss "
            f"went from {out['seen_at_best']:.2f} at the best eval to {out['seen_final']:.2f}."
        )
    return out
