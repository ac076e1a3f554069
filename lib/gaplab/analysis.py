"""Reading the loss curves: overfitting onset, verdicts, perplexity, and the study's journey table.

All losses are mean cross-entropy in nats per token (natural log), as the trainer
writes them; perplexity is ``exp(loss)``.  ``gap = val_loss - train_loss``.

The functions here only read files (``history.csv``, ``metrics.json``,
``params.yaml``, ``status.json``, ``study_status.json``); the stages decide what
to write.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import pandas as pd
import yaml

from .runs import read_json

PathLike = Union[str, Path]

HISTORY_COLUMNS = ("iter", "train_loss", "val_loss", "gap", "lr", "tokens_seen", "epochs", "elapsed_s")
_REQUIRED = ("iter", "train_loss", "val_loss")
VERDICTS = ("underfitting", "healthy", "overfitting", "memorizing")

#: Columns of :func:`journey_table`, in order (sample metrics follow as ``sample_<name>``).
JOURNEY_COLUMNS = (
    "phase", "state", "params_total", "params_non_embedding", "train_tokens", "tokens_per_param", "epochs",
    "best_val", "best_iter", "final_train", "final_val", "final_gap", "onset_iter", "wall_time_s",
    "tokens_per_s", "verdict", "stop_reason",
    # extras: what the phase was (for grids and the report) and why it failed
    "error", "val_tokens", "vocab_size", "n_layer", "n_head", "n_embd", "block_size", "data_max_tokens",
    "model_size", "max_iters", "learning_rate",
)
_INT_COLUMNS = ("params_total", "params_non_embedding", "train_tokens", "best_iter", "onset_iter", "val_tokens",
                "vocab_size", "n_layer", "n_head", "n_embd", "block_size", "data_max_tokens", "max_iters")

# seed 003's own gap scale ("The Gap Interpretation", seed 003, 2025): lower bound inclusive.
_SEED_GAP_SCALE = (
    (0.5, "perfect generalization (may be too generic)"),
    (1.0, "excellent balance"),
    (2.0, "mild overfitting"),
    (3.0, "moderate overfitting"),
    (math.inf, "severe overfitting"),
)
SEED_HEURISTIC = "seed 003's heuristic"


# --------------------------------------------------------------------------- loading
def load_history(run_dir: PathLike) -> pd.DataFrame:
    """Read ``run_dir/history.csv`` (one row per eval), sorted by ``iter``; ``gap`` filled in if absent."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run 02_train for this run_dir first")
    df = pd.read_csv(path)
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {', '.join(HISTORY_COLUMNS)}")
    for col in df.columns:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if "gap" not in df.columns:
        df["gap"] = df["val_loss"] - df["train_loss"]
    return df.sort_values("iter", kind="stable").reset_index(drop=True)


def finite_history(history: pd.DataFrame) -> pd.DataFrame:
    """The eval rows with finite train and val loss, sorted by iter (checks the columns)."""
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in _REQUIRED if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing columns {missing}; expected {', '.join(HISTORY_COLUMNS)}")
    h = history.copy()
    for col in _REQUIRED:
        h[col] = pd.to_numeric(h[col], errors="coerce")
    h = h[np.isfinite(h["train_loss"]) & np.isfinite(h["val_loss"])]
    if h.empty:
        raise ValueError("history has no rows with finite train_loss and val_loss")
    return h.sort_values("iter", kind="stable").reset_index(drop=True)


def _f(x: Any) -> Optional[float]:
    """A plain float for JSON (None for missing / non-finite)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _i(x: Any) -> Optional[int]:
    v = _f(x)
    return int(round(v)) if v is not None else None


def perplexity(loss: Optional[float]) -> Optional[float]:
    """``exp(loss)`` for a loss in nats; None for missing, non-finite or overflowing values."""
    v = _f(loss)
    if v is None or v > 700:
        return None
    return math.exp(v)


# --------------------------------------------------------------------------- onset
def detect_onset(history: pd.DataFrame, tol: float = 0.02, k: int = 2) -> dict[str, Any]:
    """Find where the validation loss turns up for good while the training loss keeps falling.

    Walk the evals keeping the *running best* validation loss.  An eval is a
    **rise** when its val loss exceeds the running best by more than ``tol``
    *relative to that loss* (``val > best * (1 + tol)``; the default 0.02 is
    2 %, e.g. 0.08 nats at a loss of 4).  A relative band is used because
    the eval noise (a mean over ``eval_iters`` batches) grows with the loss
    itself, so one setting works for tiny and large vocabularies alike.  An
    eval within the band resets the streak; a lower val loss becomes the new
    running best.

    Overfitting onset is confirmed at the ``k``-th rise in a row, provided the
    train loss at each of those ``k`` evals is below its value at the running
    best (train keeps falling while val rises).  ``onset_iter`` is the running
    best's iter: the last eval before the sustained rise, i.e. the first eval
    *after which* val loss rises beyond noise.  ``onset_confirmed_iter`` is
    the eval that confirmed it.

    Returns ``onset_iter`` (None if none), ``onset_confirmed_iter``,
    ``onset_val``, ``best_iter``/``best_val`` (the lowest val loss anywhere),
    ``train_at_best``, ``final_val``, ``val_lost_after_best`` (``final_val -
    best_val``), ``worst_val_after_best``/``worst_iter_after_best`` (highest
    val loss after the best; None when the best is the last eval), ``tol``, ``k``.
    Seed 003's phase 4 (best 4.04 at step 2000, 4.20 at step 3000) gives
    ``val_lost_after_best`` = 0.16.
    """
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol = {tol!r}: allowed: a number >= 0 (a fraction of the loss, e.g. 0.02)")
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k = {k!r}: allowed: an integer >= 1 (consecutive evals)")
    h = finite_history(history)
    it = h["iter"].to_numpy()
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    n = len(h)

    b = int(np.argmin(va))  # first occurrence of the lowest val loss
    after = va[b + 1:]
    w = b + 1 + int(np.argmax(after)) if after.size else None

    onset = confirmed = None
    run_best, streak = 0, 0
    for i in range(1, n):
        if va[i] > va[run_best] * (1 + tol):
            streak += 1
            window = tr[i - k + 1: i + 1] if streak >= k else None
            if window is not None and bool(np.all(window < tr[run_best])):
                onset, confirmed = run_best, i
                break
        else:
            streak = 0
            if va[i] < va[run_best]:
                run_best = i

    return {
        "onset_iter": _i(it[onset]) if onset is not None else None,
        "onset_confirmed_iter": _i(it[confirmed]) if confirmed is not None else None,
        "onset_val": _f(va[onset]) if onset is not None else None,
        "best_iter": _i(it[b]),
        "best_val": _f(va[b]),
        "train_at_best": _f(tr[b]),
        "final_val": _f(va[-1]),
        "val_lost_after_best": _f(va[-1] - va[b]),
        "worst_val_after_best": _f(va[w]) if w is not None else None,
        "worst_iter_after_best": _i(it[w]) if w is not None else None,
        "tol": float(tol),
        "k": int(k),
    }


# --------------------------------------------------------------------------- verdict
def verdict(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    onset: Optional[dict[str, Any]] = None,
    tol: float = 0.02,
    k: int = 2,
    gap_large: float = 0.5,
    gap_growth: float = 0.1,
    memorize_train: float = 0.5,
    memorize_gap: float = 1.0,
    uniform_fraction: float = 0.85,
) -> tuple[str, str]:
    """Label a run ``underfitting``, ``healthy``, ``overfitting`` or ``memorizing``, with a one-sentence reason.

    Losses in nats.  The rules are checked in this order; the first that holds wins:

    1. **memorizing** — the final train loss is at most ``memorize_train``
       (0.5 nats: perplexity <= 1.65, the model nearly reproduces its training
       text), val loss is at least ``memorize_gap`` (1 nat) above it, and val
       is rising (an onset was detected, or the final val is more than ``tol``
       above the best val).
    2. **overfitting** — an onset was detected (:func:`detect_onset`), or the
       final gap is at least ``gap_large`` (0.5 nats: val perplexity 1.65x the
       train perplexity) and grew by at least ``gap_growth`` (0.1 nats) over
       the second half of the evals.
    3. **underfitting** — the best val loss is still at least
       ``uniform_fraction`` (85 %) of ``ln(vocab_size)``, the loss of a uniform
       guess over the vocabulary (when ``vocab_size`` is given); or both losses
       were still falling (each fell by more than ``tol`` relative over the last
       third of the evals) with a final gap below ``gap_large``.
    4. **healthy** — otherwise: val loss has levelled off without a sustained
       rise and the gap is small or stable.

    These thresholds are teaching defaults, not laws; every number used is in the reason.
    """
    h = finite_history(history)
    n = len(h)
    if n < 2:
        raise ValueError(f"history has {n} eval row(s); need at least 2 to judge a trend")
    o = onset if onset is not None else detect_onset(h, tol=tol, k=k)
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    it = h["iter"].to_numpy()
    gap = va - tr
    ft, fv, fg = tr[-1], va[-1], gap[-1]
    bv, bi = o["best_val"], o["best_iter"]
    mid = (n - 1) // 2
    growth = fg - gap[mid]
    r = max(0, n - 1 - max(1, n // 3))
    val_falling = (va[r] - fv) > tol * abs(va[r])
    train_falling = (tr[r] - ft) > tol * abs(tr[r])
    val_rising = o["onset_iter"] is not None or fv > bv * (1 + tol)
    uniform = math.log(vocab_size) if vocab_size and vocab_size > 1 else None

    if ft <= memorize_train and fg >= memorize_gap and val_rising:
        return "memorizing", (
            f"Train loss fell to {ft:.3f} nats (perplexity {math.exp(ft):.2f}) while val loss is {fv:.3f}, "
            f"{fg:.2f} nats above it and up from its best {bv:.3f} at iter {bi}: the model is reproducing its "
            f"training text rather than learning what transfers to new text."
        )
    if o["onset_iter"] is not None:
        worst = o["worst_val_after_best"] if o["worst_val_after_best"] is not None else fv
        return "overfitting", (
            f"Val loss bottomed at {o['onset_val']:.3f} (iter {o['onset_iter']}) and then rose more than "
            f"{tol:.0%} above it for {k} evals in a row (confirmed at iter {o['onset_confirmed_iter']}, "
            f"worst {worst:.3f}) while train loss kept falling, to {ft:.3f} at the end; final gap {fg:.3f} nats."
        )
    if fg >= gap_large and growth >= gap_growth:
        return "overfitting", (
            f"The gap grew from {gap[mid]:.3f} to {fg:.3f} nats over the second half of training "
            f"(iter {int(it[mid])} to {int(it[-1])}; final train {ft:.3f}, val {fv:.3f}): train loss is "
            f"improving faster than val loss."
        )
    if uniform is not None and bv >= uniform_fraction * uniform:
        return "underfitting", (
            f"Best val loss {bv:.3f} is still at least {uniform_fraction:.0%} of {uniform:.3f} = ln({vocab_size}), "
            f"the loss of a uniform guess over the vocabulary: the model has learned little so far."
        )
    if val_falling and train_falling and fg < gap_large:
        return "underfitting", (
            f"Both losses were still falling at the end (val {va[r]:.3f} to {fv:.3f}, train {tr[r]:.3f} to "
            f"{ft:.3f} over the last {_evals(n - 1 - r)}) with a small gap of {fg:.3f} nats: more training, "
            f"or a larger model, would likely still help."
        )
    return "healthy", (
        f"Val loss levelled off at {fv:.3f} (best {bv:.3f} at iter {bi}) without a sustained rise of more than "
        f"{tol:.0%}, and the gap is {fg:.3f} nats ({growth:+.3f} over the second half of training)."
    )


def _evals(count: int) -> str:
    return "eval" if count == 1 else f"{count} evals"


def seed_gap_label(gap: Optional[float]) -> str:
    """Seed 003's own gap scale, always labelled as its heuristic (not a rule).

    Seed 003 ("The Gap Interpretation"): < 0.5 perfect generalization (may be
    too generic), 0.5-1 excellent balance, 1-2 mild overfitting, 2-3 moderate
    overfitting, > 3 severe overfitting.  Each band includes its lower bound.
    """
    v = _f(gap)
    if v is None:
        return f"{SEED_HEURISTIC}: n/a (no gap)"
    for upper, label in _SEED_GAP_SCALE:
        if v < upper:
            return f"{SEED_HEURISTIC}: {label}"
    return f"{SEED_HEURISTIC}: {_SEED_GAP_SCALE[-1][1]}"  # pragma: no cover - inf is never < inf


# --------------------------------------------------------------------------- per phase
def is_early_stop(stop_reason: Optional[str]) -> bool:
    return isinstance(stop_reason, str) and stop_reason.replace("-", "_").lower().startswith("early_stop")


def analyze_run(run_dir: PathLike, tol: float = 0.02, k: int = 2) -> dict[str, Any]:
    """The dict stored under ``metrics.json['analysis']`` for one phase (writes nothing).

    Reads ``history.csv`` and, if present, ``metrics.json`` (for ``vocab_size``
    and ``stop_reason``).  Keys: everything :func:`detect_onset` returns,
    ``verdict`` and ``reason``, ``final_train``, ``final_gap``, ``gap_at_best``,
    ``best_train`` (lowest train loss), perplexities ``exp(loss)``
    (``best_val_perplexity``, ``final_val_perplexity``, ``best_train_perplexity``,
    ``final_train_perplexity``), ``uniform_loss`` (= ln(vocab_size)),
    ``seed_gap_label`` (seed 003's heuristic on the final gap),
    ``early_stop_iter`` (the last eval when training stopped early, else None),
    ``stop_reason``, ``n_evals``.
    """
    run_dir = Path(run_dir)
    history = load_history(run_dir)
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    h = finite_history(history)
    vocab = _i(metrics.get("vocab_size"))
    o = detect_onset(h, tol=tol, k=k)
    if len(h) >= 2:
        label, reason = verdict(h, vocab, onset=o, tol=tol, k=k)
    else:
        label, reason = "underfitting", f"Only one eval (iter {int(h['iter'].iloc[0])}): no trend to judge yet."
    final_train = float(h["train_loss"].iloc[-1])
    final_gap = float(h["val_loss"].iloc[-1] - final_train)
    best_train = float(h["train_loss"].min())
    stop_reason = metrics.get("stop_reason")
    out = dict(o)
    out.update({
        "verdict": label,
        "reason": reason,
        "final_train": _f(final_train),
        "final_gap": _f(final_gap),
        "gap_at_best": _f(o["best_val"] - o["train_at_best"]),
        "best_train": _f(best_train),
        "best_val_perplexity": perplexity(o["best_val"]),
        "final_val_perplexity": perplexity(o["final_val"]),
        "best_train_perplexity": perplexity(best_train),
        "final_train_perplexity": perplexity(final_train),
        "uniform_loss": _f(math.log(vocab)) if vocab and vocab > 1 else None,
        "seed_gap_label": seed_gap_label(final_gap),
        "early_stop_iter": _i(h["iter"].iloc[-1]) if is_early_stop(stop_reason) else None,
        "stop_reason": stop_reason,
        "n_evals": int(len(h)),
        "dropped_non_finite_evals": int(len(history) - len(h)),
    })
    return out


# --------------------------------------------------------------------------- the study
def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def _phase_state(sdir: Path, name: str, study_status: dict) -> tuple[str, Optional[Path], str]:
    """(state, folder to read numbers from, error) for one phase of a study folder.

    The study's own record of the latest run wins when it says the phase
    failed (the runner moves a failed phase to ``_failed/<phase>``, leaving any
    older good result in place); otherwise the phase folder's ``status.json``.
    """
    entry = (study_status.get("phases") or {}).get(name) or {}
    pdir, fdir = sdir / name, sdir / "_failed" / name
    if entry.get("state") in ("failed", "interrupted"):
        folder = fdir if fdir.exists() else None
        err = entry.get("error") or (read_json(fdir / "status.json", {}) or {}).get("error", "")
        return entry["state"], folder, err or ""
    st = read_json(pdir / "status.json", None)
    if isinstance(st, dict):
        return str(st.get("state", "unknown")), pdir, st.get("error") or ""
    if pdir.is_dir():  # run by hand, stage by stage (no runner status)
        done = (pdir / "metrics.json").exists() and (pdir / "history.csv").exists()
        return ("done" if done else "incomplete"), pdir, ""
    st = read_json(fdir / "status.json", None)
    if isinstance(st, dict):
        return str(st.get("state", "failed")), fdir, st.get("error") or ""
    return (str(entry["state"]) if entry.get("state") else "missing"), None, entry.get("error") or ""


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool, np.integer, np.floating))


def model_size_label(n_layer: Any, n_embd: Any) -> Optional[str]:
    """A short model label for tables and axes, e.g. ``4L-128d`` (layers, embedding width)."""
    if n_layer is None or n_embd is None:
        return None
    return f"{int(n_layer)}L-{int(n_embd)}d"


def _phase_row(name: str, state: str, folder: Optional[Path], error: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in JOURNEY_COLUMNS}
    row.update(phase=name, state=state, error=error or None)
    if folder is None:
        return row
    m = read_json(folder / "metrics.json", {}) or {}
    params = _read_yaml(folder / "params.yaml")
    p = m.get("params") or {}
    row.update(
        params_total=p.get("total"), params_non_embedding=p.get("non_embedding"),
        train_tokens=m.get("train_tokens"), tokens_per_param=m.get("tokens_per_param"), epochs=m.get("epochs"),
        best_val=m.get("best_val_loss"), best_iter=m.get("best_iter"), final_train=m.get("final_train_loss"),
        final_val=m.get("final_val_loss"), final_gap=m.get("final_gap"), wall_time_s=m.get("wall_time_s"),
        tokens_per_s=m.get("tokens_per_s"), stop_reason=m.get("stop_reason"), val_tokens=m.get("val_tokens"),
        vocab_size=m.get("vocab_size"),
    )
    model = params.get("model") or {}
    data = params.get("data") or {}
    train = params.get("train") or {}
    row.update(n_layer=model.get("n_layer"), n_head=model.get("n_head"), n_embd=model.get("n_embd"),
               block_size=model.get("block_size"), data_max_tokens=data.get("max_train_tokens") or data.get("max_tokens"),
               model_size=model_size_label(model.get("n_layer"), model.get("n_embd")),
               max_iters=m.get("max_iters", train.get("max_iters")), learning_rate=train.get("learning_rate"))
    analysis = m.get("analysis")
    if not isinstance(analysis, dict) and (folder / "history.csv").exists():
        try:
            analysis = analyze_run(folder)
        except ValueError:
            analysis = None
    if isinstance(analysis, dict):
        row["onset_iter"] = analysis.get("onset_iter")
        row["verdict"] = analysis.get("verdict")
    samples = m.get("samples")
    if isinstance(samples, dict) and isinstance(samples.get("aggregate"), dict):
        for key, value in samples["aggregate"].items():
            if _scalar(value):
                row[f"sample_{key}"] = value
    return row


def journey_table(study_dir: PathLike, phase_names: list[str]) -> pd.DataFrame:
    """One row per phase (failed and missing ones too, with their ``state``): the study's journey.

    Columns: :data:`JOURNEY_COLUMNS` (``phase, state, params_total,
    params_non_embedding, train_tokens, tokens_per_param, epochs, best_val,
    best_iter, final_train, final_val, final_gap, onset_iter, wall_time_s,
    tokens_per_s, verdict, stop_reason`` and extras describing the phase), then
    ``sample_<metric>`` for each scalar in ``metrics.json['samples']['aggregate']``.
    A failed phase's numbers come from ``_failed/<phase>`` when it got that far.
    """
    sdir = Path(study_dir)
    if not isinstance(phase_names, (list, tuple)):
        raise TypeError(f"phase_names must be a list of phase names, got {type(phase_names).__name__}")
    study_status = read_json(sdir / "study_status.json", {}) or {}
    rows = [_phase_row(str(name), *_phase_state(sdir, str(name), study_status)) for name in phase_names]
    sample_cols = sorted({c for r in rows for c in r if c.startswith("sample_")})
    table = pd.DataFrame(rows, columns=list(JOURNEY_COLUMNS) + sample_cols)
    for col in _INT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    for col in ("tokens_per_param", "epochs", "best_val", "final_train", "final_val", "final_gap", "wall_time_s",
                "tokens_per_s", "learning_rate"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table


def done_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The phases that finished (``state`` done or cached) and have a best val loss."""
    ok = table["state"].isin(["done", "cached"]) & pd.to_numeric(table["best_val"], errors="coerce").notna()
    return table[ok]


# --------------------------------------------------------------------------- seed 003
def load_seed_reference() -> pd.DataFrame:
    """Seed 003's reported per-phase figures (``reference/seed003.csv``; sources in ``reference/README.md``).

    Columns as reported: ``phase, params, train_tokens, val_tokens, best_val,
    best_iter, final_train, final_val, gap, time_s, note``; plus
    ``gap_signed = final_val - final_train`` (gaplab's sign convention; the
    seed reports phase 2's gap as 0.17 where val - train = -0.17).
    """
    path = Path(__file__).with_name("reference") / "seed003.csv"
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df["note"] = df["note"].fillna("")
    df["gap_signed"] = (df["final_val"] - df["final_train"]).round(2)
    return df


#: how much val loss must rise above its best (nats) to count as "rising after its best" in :func:`seed_findings`
RISE_TOL = 0.05


def _rose_after_best(row: Mapping[str, Any]) -> Optional[bool]:
    bv, fv, bi, mi = _f(row.get("best_val")), _f(row.get("final_val")), _i(row.get("best_iter")), _i(row.get("max_iters"))
    if bv is None or fv is None:
        return None
    return fv - bv > RISE_TOL and (bi is None or mi is None or bi < mi)


def seed_findings(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Seed 003's three qualitative findings, checked against this study's finished phases.

    One dict per finding: ``finding``, ``seed`` and ``ours`` (both in words
    with their numbers), ``reproduced`` (True / False; None when the phases
    needed did not finish).  The findings: phase 0's val loss rises after an
    early best; phase 2 has the smallest final gap; phase 4's val loss degrades
    after its best.  "Rises" means the final val is more than :data:`RISE_TOL`
    nats above the best, with the best before the last iteration.
    """
    ref = load_seed_reference().set_index("phase")
    done = done_rows(table).set_index("phase")
    out: list[dict[str, Any]] = []

    def rise(phase: str, finding: str) -> None:
        s = ref.loc[phase]
        seed = (f"best {s['best_val']:.2f} at iter {int(s['best_iter'])}, final {s['final_val']:.2f} "
                f"(+{s['final_val'] - s['best_val']:.2f})")
        if phase not in done.index:
            out.append(dict(finding=finding, seed=seed, ours=f"{phase} did not finish", reproduced=None))
            return
        r = done.loc[phase]
        ours = (f"best {r['best_val']:.2f} at iter {int(r['best_iter'])}, final {r['final_val']:.2f} "
                f"({r['final_val'] - r['best_val']:+.2f})")
        out.append(dict(finding=finding, seed=seed, ours=ours, reproduced=bool(_rose_after_best(r))))

    rise("phase0", "phase 0's val loss rises after an early best")
    gaps = ref["gap"]
    seed_gaps = ", ".join(f"{p} {g:.2f}" for p, g in gaps.items())
    finding = "phase 2 has the smallest train/val gap"
    ours_gaps = done["final_gap"].dropna() if "final_gap" in done else pd.Series(dtype=float)
    ours_gaps = ours_gaps[[p for p in ours_gaps.index if p in ref.index]]
    if "phase2" not in ours_gaps.index or len(ours_gaps) < 2:
        out.append(dict(finding=finding, seed=f"final gaps {seed_gaps} (as reported, |val - train|)",
                        ours="phase2 and at least one other seed phase must finish", reproduced=None))
    else:
        smallest = str(ours_gaps.idxmin())
        out.append(dict(finding=finding, seed=f"final gaps {seed_gaps} (as reported, |val - train|)",
                        ours="final gaps (val - train) " + ", ".join(f"{p} {g:+.2f}" for p, g in ours_gaps.items())
                             + f": smallest at {smallest}",
                        reproduced=smallest == "phase2"))
    rise("phase4", "phase 4's val loss degrades after its best")
    return out


def seed_findings_sentences(findings: list[dict[str, Any]]) -> list[str]:
    """Plain sentences: reproduced, NOT reproduced (with both numbers), or not checked."""
    lines = []
    for f in findings:
        if f["reproduced"] is None:
            lines.append(f"Seed finding \u201c{f['finding']}\u201d: not checked ({f['ours']}).")
        elif f["reproduced"]:
            lines.append(f"Seed finding \u201c{f['finding']}\u201d: reproduced. Seed: {f['seed']}; ours: {f['ours']}.")
        else:
            lines.append(f"Seed finding \u201c{f['finding']}\u201d: NOT reproduced by this run. Seed: {f['seed']}; "
                         f"ours: {f['ours']}.")
    return lines
