"""Every number gaplab takes from the literature, once, with its source.

Figures, notes, the data report, the playground and ``report.html`` all import these constants and
their citations from here; nothing else in gaplab writes down a literature number.  Each constant says
which parameter count it was measured with, because the papers differ:

- **Hoffmann et al. 2022** (Chinchilla) count *all* parameters, embeddings included, when they find
  about 20 training tokens per parameter compute-optimal.
- **Kaplan et al. 2020** count *non-embedding* parameters (N) in their scaling laws and their
  overfitting bound.
- **Muennighoff et al. 2023** measure repeated data in epochs.

These describe models of millions to billions of parameters trained on billions of tokens; for
gaplab's tiny models they are reference lines that show which regime a run is in, not predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Source:
    key: str
    authors: str  # "Hoffmann et al. 2022"
    title: str
    url: Optional[str]
    what: str  # what gaplab takes from it


SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            "kaplan",
            "Kaplan et al. 2020",
            "Scaling Laws for Neural Language Models",
            "https://arxiv.org/abs/2001.08361",
            "L(N, D) = [(Nc/N)^(αN/αD) + Dc/D]^αD (eq. 1.5, fit in Table 2) with N non-embedding parameters; "
            "overfitting stays small while D ≳ 5·10³·N^0.74 tokens (eq. 4.4); their runs' loss varies by about "
            "0.02 nats between random seeds.",
        ),
        Source(
            "chinchilla",
            "Hoffmann et al. 2022",
            "Training Compute-Optimal Large Language Models (Chinchilla)",
            "https://arxiv.org/abs/2203.15556",
            "compute-optimal training uses about 20 tokens per parameter, counting all parameters "
            "(embeddings included).",
        ),
        Source(
            "muennighoff",
            "Muennighoff et al. 2023",
            "Scaling Data-Constrained Language Models",
            "https://arxiv.org/abs/2305.16264",
            "up to about 4 epochs, repeated data is almost as good as fresh data; past about 16 epochs further "
            "repetition adds little (fitted decay constant R*_D ≈ 15).",
        ),
        Source(
            "press_wolf",
            "Press & Wolf 2017",
            "Using the Output Embedding to Improve Language Models",
            "https://arxiv.org/abs/1608.05859",
            "weight tying: the output head shares the token-embedding matrix, so each token id costs n_embd "
            "parameters once.",
        ),
        Source(
            "seed003",
            "Seed 003 (2025)",
            "ChromaDB SLM Training - Complete Experiment Documentation (the user's seed document)",
            None,
            "the five-phase overfitting study gaplab's seed_study reproduces; its reported numbers are in "
            "lib/gaplab/reference/seed003.csv, and its gap scale (< 0.5 … > 3) is shown as its heuristic, "
            "not a rule.",
        ),
    )
}


def cite(key: str) -> str:
    """``Authors year, "Title"`` for a source in :data:`SOURCES`."""
    s = SOURCES[key]
    return f"{s.authors}, \u201c{s.title}\u201d"


# --------------------------------------------------------------------------- Hoffmann et al. 2022
#: compute-optimal training tokens per parameter, TOTAL parameters (embeddings included)
CHINCHILLA_TOKENS_PER_PARAM = 20.0
CHINCHILLA_CONVENTION = "tokens per parameter, all parameters counted (embeddings included), as Hoffmann et al. 2022"

# --------------------------------------------------------------------------- Kaplan et al. 2020
#: eq. 1.5 fitted on WebText2 (Table 2): N non-embedding parameters, D tokens, loss in nats
KAPLAN_2020_FIT = {"Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
KAPLAN_FORMULA = "L(N, D) = [(Nc/N)^(alpha_N/alpha_D) + Dc/D]^alpha_D  (Kaplan et al. 2020, eq. 1.5)"
#: eq. 4.4: the overfitting penalty stays small while D >= KAPLAN_OVERFIT_COEF * N ** KAPLAN_OVERFIT_EXP
KAPLAN_OVERFIT_COEF = 5e3
KAPLAN_OVERFIT_EXP = 0.74
KAPLAN_OVERFIT_TEXT = "D ≳ 5×10³·N^0.74 tokens, N = non-embedding parameters (Kaplan et al. 2020, eq. 4.4)"
#: run-to-run (random seed) variation of the loss of their models, nats
KAPLAN_SEED_VARIATION = 0.02

# --------------------------------------------------------------------------- Muennighoff et al. 2023
#: up to about this many epochs repeated tokens are worth almost as much as new ones
REPEAT_SAFE_EPOCHS = 4.0
#: past about this many epochs further repetition adds little (their fitted decay constant R*_D is ~15)
REPEAT_EXHAUSTED_EPOCHS = 16.0


def positive_array(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: allowed: positive numbers")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        raise ValueError(f"{name} = {np.atleast_1d(arr)[np.atleast_1d(bad)][:5].tolist()}: allowed: finite numbers > 0")
    return arr


def _scalar_or_array(out: np.ndarray) -> Any:
    return float(out) if np.ndim(out) == 0 else out


def kaplan_overfit_min_tokens(N: Any) -> Any:
    """Kaplan et al. 2020 eq. 4.4: tokens needed to keep overfitting small for ``N`` non-embedding parameters."""
    return _scalar_or_array(KAPLAN_OVERFIT_COEF * positive_array("N", N) ** KAPLAN_OVERFIT_EXP)


def chinchilla_tokens(total_params: Any) -> Any:
    """Hoffmann et al. 2022: compute-optimal training tokens for ``total_params`` parameters (embeddings included)."""
    return _scalar_or_array(CHINCHILLA_TOKENS_PER_PARAM * positive_array("total_params", total_params))


#: one-line notes for reference lines on figures (the source is in the note itself)
CHINCHILLA_NOTE = f"~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens/param (all params): Chinchilla compute-optimal\n({SOURCES['chinchilla'].authors})"
MUENNIGHOFF_NOTE = f"≤ {REPEAT_SAFE_EPOCHS:g} epochs of repetition ≈ fresh data\n({SOURCES['muennighoff'].authors})"
KAPLAN_NOTE = f"{SOURCES['kaplan'].authors}, eq. 1.5"


# --------------------------------------------------------------------------- seed 003 (the user's own study)
def load_seed_reference() -> pd.DataFrame:
    """Seed 003's reported per-phase figures (``reference/seed003.csv``; sources in ``reference/README.md``).

    Columns as reported: ``phase, params, train_tokens, val_tokens, best_val,
    best_iter, final_train, final_val, gap, time_s, note``; plus
    ``gap_signed = final_val - final_train`` (gaplab's sign convention; the
    seed reports phase 2's gap as 0.17 where val - train = -0.17).
    """
    path = Path(__file__).resolve().parents[1] / "reference" / "seed003.csv"
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df["note"] = df["note"].fillna("")
    df["gap_signed"] = (df["final_val"] - df["final_train"]).round(2)
    return df
