"""What a study's numbers say, in sentences: the notes of ``05_compare`` and ``report.html``,
including seed 003's three findings checked against the study's phases."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..files import read_json
from ..measure import scaling
from ..measure.references import (
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_OVERFIT_COEF,
    KAPLAN_OVERFIT_EXP,
    SOURCES,
    chinchilla_tokens,
    kaplan_overfit_min_tokens,
    load_seed_reference,
)
from ..measure.stats import difference_sentence
from ..units import finite_or_none, int_or_none
from .figure_kit import PathLike, _fmt_int, _num
from .study_plots import is_seed_study
from .summary import JourneyRow, done_rows, journey_rows

#: how much val loss must rise above its best (nats) to count as "rising after its best" in :func:`seed_findings`
RISE_TOL = 0.05


def _rose_after_best(row: Mapping[str, Any]) -> Optional[bool]:
    bv, fv, bi, mi = (
        finite_or_none(row.get("best_val")),
        finite_or_none(row.get("final_val")),
        int_or_none(row.get("best_iter")),
        int_or_none(row.get("max_iters")),
    )
    if bv is None or fv is None:
        return None
    return fv - bv > RISE_TOL and (bi is None or mi is None or bi < mi)


def _smallest_gap_finding(ref: pd.DataFrame, done: pd.DataFrame) -> dict[str, Any]:
    """Seed 003's "phase 2 has the smallest train/val gap", checked against our seed phases' final gaps."""
    gaps = ref["gap"]
    seed_gaps = ", ".join(f"{p} {g:.2f}" for p, g in gaps.items())
    finding = "phase 2 has the smallest train/val gap"
    ours_gaps = done["final_gap"].dropna() if "final_gap" in done else pd.Series(dtype=float)
    ours_gaps = ours_gaps[[p for p in ours_gaps.index if p in ref.index]]
    if "phase2" not in ours_gaps.index or len(ours_gaps) < 2:
        return dict(
            finding=finding,
            seed=f"final gaps {seed_gaps} (as reported, |val - train|)",
            ours="phase2 and at least one other seed phase must finish",
            reproduced=None,
        )
    smallest = str(ours_gaps.idxmin())
    spread = spread_note(done.loc[list(ours_gaps.index)].reset_index(), "final_gap", "final gap")
    return dict(
        finding=finding,
        seed=f"final gaps {seed_gaps} (as reported, |val - train|)",
        ours="final gaps (val - train) "
        + ", ".join(f"{p} {g:+.2f}" for p, g in ours_gaps.items())
        + f": smallest at {smallest}"
        + (f". {spread.rstrip('.')}" if spread else ""),
        reproduced=smallest == "phase2",
    )


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
        seed = (
            f"best {s['best_val']:.2f} at iter {int(s['best_iter'])}, final {s['final_val']:.2f} "
            f"(+{s['final_val'] - s['best_val']:.2f})"
        )
        if phase not in done.index:
            out.append(dict(finding=finding, seed=seed, ours=f"{phase} did not finish", reproduced=None))
            return
        r = done.loc[phase]
        ours = (
            f"best {r['best_val']:.2f} at iter {int(r['best_iter'])}, final {r['final_val']:.2f} "
            f"({r['final_val'] - r['best_val']:+.2f})"
        )
        out.append(dict(finding=finding, seed=seed, ours=ours, reproduced=bool(_rose_after_best(r))))

    rise("phase0", "phase 0's val loss rises after an early best")
    out.append(_smallest_gap_finding(ref, done))
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
            lines.append(
                f"Seed finding \u201c{f['finding']}\u201d: NOT reproduced by this run. Seed: {f['seed']}; "
                f"ours: {f['ours']}."
            )
    return lines


def _bpb(v: Any) -> str:
    return f"{float(v):.3f} bits/byte" if pd.notna(v) else "no bits per byte recorded"


def _lowest(rows: pd.DataFrame, col: str) -> Optional[pd.Series]:
    vals = _num(rows[col]) if col in rows else np.full(len(rows), np.nan)
    return rows.iloc[int(np.nanargmin(vals))] if np.isfinite(vals).any() else None


#: gaplab's own measurement of seed-to-seed variation on the seed study: another training seed moved the val
#: curves of phases 3 and 4 by 0.12 and 0.29 nats (benchmarks/results/train_cpu_precision.md)
SEED_SPREAD_NATS = (0.12, 0.29)


def _values(row: pd.Series, col: str) -> list[float]:
    """A phase's per-seed values of ``col`` (``<col>_values``, ';'-separated), or its single value."""
    raw = row.get(f"{col}_values")
    if isinstance(raw, str) and raw:
        return [float(x) for x in raw.split(";")]
    v = finite_or_none(row.get(col))
    return [] if v is None else [v]


def spread_note(rows: pd.DataFrame, col: str, what: str) -> Optional[str]:
    """Whether the best of ``rows`` (lowest ``col``) beats the runner-up by more than their seed-to-seed spread."""
    vals = _num(rows[col]) if col in rows else np.array([])
    if np.isfinite(vals).sum() < 2:
        return None
    order = np.argsort(np.where(np.isfinite(vals), vals, np.inf))
    best, second = rows.iloc[int(order[0])], rows.iloc[int(order[1])]
    a, b = _values(best, col), _values(second, col)
    if len(a) > 1 and len(b) > 1:
        return difference_sentence(str(best["phase"]), a, str(second["phase"]), b, what)
    gap = float(vals[order[1]] - vals[order[0]])
    if gap < SEED_SPREAD_NATS[1]:
        return (
            f"{best['phase']} beats {second['phase']} on {what} by {gap:.3f} nats with one training seed each; "
            f"another seed moved gaplab's seed-study curves by {SEED_SPREAD_NATS[0]}–{SEED_SPREAD_NATS[1]} "
            f"nats, so this may be seed noise (replicates: N measures the spread)."
        )
    return None


def _unscored_ranking(done: pd.DataFrame) -> list[str]:
    """Phases that record no validation-set fingerprint (an older gaplab): ranked only over one vocabulary."""
    vocabs = (
        sorted(set(_num(done["vocab_size"])[np.isfinite(_num(done["vocab_size"]))])) if "vocab_size" in done else []
    )
    if len(vocabs) > 1:
        return [
            f"These phases predict over different vocabularies ({', '.join(_fmt_int(v) for v in vocabs)} ids) "
            "and record no validation-set fingerprint, so their losses are not ranked: a smaller vocabulary "
            "makes each guess easier. Re-run them with this gaplab to get bits per byte."
        ]
    best = _lowest(done, "best_val")
    return [
        f"Lowest val loss: {best['phase']} with {best['best_val']:.3f} nats per token "
        f"(perplexity {math.exp(min(best['best_val'], 700)):.1f}) at iter {best['best_iter']}; these phases "
        "record no validation-set fingerprint, so check that they were scored on the same val set."
    ]


def _bpb_ranking(done: pd.DataFrame) -> list[str]:
    """Phases on different validation sets, ranked in bits per byte (with what that still mixes)."""
    best = _lowest(done, "best_val_bpb")
    if best is None:
        return ["No bits per byte are recorded, so nothing is ranked across validation sets."]
    same_text = "val_text_fingerprint" in done and done["val_text_fingerprint"].nunique(dropna=True) == 1
    caveat = (
        "the same validation text over different vocabularies, so bits per byte compare directly"
        if same_text
        else "different validation texts: bits per byte remove the tokenizer, but a difference still mixes "
        "the model with how hard the held-out text is"
    )
    ranked = done.assign(_b=_num(done["best_val_bpb"])).sort_values("_b")
    order = ", ".join(f"{r['phase']} {r['_b']:.3f}" for _, r in ranked.iterrows() if np.isfinite(r["_b"]))
    return [f"Across validation sets, in bits per byte ({caveat}): {order}; lowest {best['phase']}."]


def ranking_notes(done: pd.DataFrame) -> list[str]:
    """Which phase is best, said only where the losses compare.

    A loss in nats per token compares only between phases scored on the same validation text over the same
    vocabulary (equal ``val_fingerprint``).  Across vocabularies on the same text, bits per byte compare
    (equal ``val_text_fingerprint``).  Across different validation texts even bits per byte mix model
    quality with the difficulty of the text held out, and the note says so.
    """
    if "val_fingerprint" not in done or done["val_fingerprint"].isna().all():
        return _unscored_ranking(done)
    groups = {fp: rows for fp, rows in done.groupby("val_fingerprint", sort=False, dropna=False)}
    if len(groups) == 1:
        best = _lowest(done, "best_val")
        seeds = int(best.get("replicates") or 1) if pd.notna(best.get("replicates")) else 1
        mean = f"mean of {seeds} seeds, " if seeds > 1 else ""
        out = [
            f"All {len(done)} phases are scored on one validation set ({done['val_tokens'].iloc[0]:,} tokens, "
            f"fingerprint {str(done['val_fingerprint'].iloc[0])[:8]}), so their losses compare. Lowest val loss: "
            f"{best['phase']} with {best['best_val']:.3f} nats per token ({mean}{_bpb(best.get('best_val_bpb'))}, "
            f"perplexity {math.exp(min(best['best_val'], 700)):.1f}) at iter {best['best_iter']}."
        ]
        spread = spread_note(done, "best_val", "best val loss")
        return out + ([spread] if spread else [])
    notes = [
        f"These {len(done)} phases are scored on {len(groups)} different validation sets (text or vocabulary "
        "differ), so their losses in nats per token are not compared across sets."
    ]
    for rows in groups.values():
        if len(rows) > 1:
            best = _lowest(rows, "best_val")
            notes.append(
                f"Within one validation set ({', '.join(rows['phase'])}): lowest val loss {best['phase']} "
                f"with {best['best_val']:.3f} nats per token at iter {best['best_iter']}."
            )
            spread = spread_note(rows, "best_val", "best val loss")
            if spread:
                notes.append(spread)
    return notes + _bpb_ranking(done)


#: a val split whose source mix differs from train's by this share of tokens (or more) is called shifted
SHIFT_SHARE = 0.25
#: a val split with this share (or more) of tokens never seen in training is called shifted
UNSEEN_SHARE = 0.10


def shift_note(
    phase: str, report: Mapping[str, Any], unseen: Optional[float], train_tokens: Optional[float] = None
) -> Optional[str]:
    """A sentence when a phase's val loss measures more than overfitting, else None.

    Two cases.  The val split's source mix differs from train's (``report`` is the phase's data_report.json,
    its ``split.sources`` tokens per source): a distribution shift, which the split itself made.  Or, on a
    split of one distribution, many val tokens never occur in a small training split (``unseen``, their
    share): those are tokens the model could not learn, part of its val loss and of its rise.
    """
    sources = ((report or {}).get("split") or {}).get("sources") or []
    train_total = sum(int(s.get("train_tokens", 0)) for s in sources)
    val_total = sum(int(s.get("val_tokens", 0)) for s in sources)
    if train_total and val_total and len(sources) > 1:
        mix = [(s["source"], s["train_tokens"] / train_total, s["val_tokens"] / val_total) for s in sources]
        if max(abs(v - tr) for _, tr, v in mix) >= SHIFT_SHARE:

            def share(i):
                return ", ".join(f"{m[i]:.0%} {m[0]}" for m in sorted(mix, key=lambda m: -m[i]) if m[i] >= 0.005)

            parts = [f"val is {share(2)}, train {share(1)}"]
            if unseen is not None and unseen >= UNSEEN_SHARE:
                parts.append(f"{unseen:.0%} of val tokens never occur in training")
            return (
                f"{phase}: {'; '.join(parts)}. Its val loss measures that distribution shift as much as "
                "overfitting; draw train and val from one distribution (data.split: chunks or documents) to "
                "measure overfitting alone."
            )
    if unseen is not None and unseen >= UNSEEN_SHARE:
        size = f" {int(train_tokens):,}" if train_tokens else ""
        return (
            f"{phase}: {unseen:.0%} of its val tokens never occur in its{size} training tokens. A model cannot "
            "learn a token it never saw, so part of its val loss, and of any rise, is those tokens "
            "(03_loss_gap shows the val loss on seen and unseen tokens apart)."
        )
    return None


def corpus_note(sdir: Path, done: pd.DataFrame) -> Optional[str]:
    """Our corpus's statistics beside seed 003's (files, GPT-2 tokens, distinct tokens, functions), for a
    standard-library study; None for other sources."""
    import yaml

    from ..data.corpus import stdlib_files
    from ..data.slices import python_corpus_stats, stats_beside_seed
    from ..data.tokenizer import TokenizerError, get_tokenizer

    params_path = sdir / str(done["phase"].iloc[0]) / "params.yaml"
    try:
        data = (yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}).get("data") or {}
    except (OSError, yaml.YAMLError):
        return None
    if data.get("source") != "stdlib" or not data.get("packages"):
        return None
    try:
        tok = get_tokenizer("gpt2")
    except TokenizerError:
        return None
    texts = [p.read_text(encoding="utf-8", errors="replace") for _, p in stdlib_files(list(data["packages"]))]
    return stats_beside_seed(python_corpus_stats(texts, tok), "+".join(data["packages"]))


def kaplan_bound_text(times: str = "·") -> str:
    """Kaplan et al.'s eq. 4.4 bound as the notes write it (``5e3·N^0.74``), from :mod:`gaplab.measure.references`."""
    mantissa, exponent = f"{KAPLAN_OVERFIT_COEF:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}{times}N^{KAPLAN_OVERFIT_EXP:g}"


def _shift_notes(study_dir: PathLike, rows: list[JourneyRow]) -> list[str]:
    notes = []
    for r in rows:
        report = read_json(Path(study_dir) / r.phase / "data_report.json", {}) or {}
        note = shift_note(r.phase, report, finite_or_none(r.val_unseen_token_share), finite_or_none(r.train_tokens))
        if note:
            notes.append(note)
    return notes


def _onset_notes(rows: list[JourneyRow]) -> list[str]:
    notes = []
    for r in rows:
        if r.onset_iter is not None:
            lost = (
                f"; it ended {r.final_val - r.best_val:.3f} nats above its best"
                if r.final_val is not None and r.best_val is not None
                else ""
            )
            notes.append(
                f"{r.phase}: val loss stopped improving after iter {r.onset_iter} while train loss "
                f"kept falling (overfitting onset){lost}."
            )
    return notes


def _data_need_notes(rows: list[JourneyRow]) -> list[str]:
    notes = []
    for r in rows:
        n, total, d = r.params_non_embedding, r.params_total, r.train_tokens
        if n is not None and d is not None and total is not None and n > 0:
            need_k = kaplan_overfit_min_tokens(float(n))
            need_c = chinchilla_tokens(float(total))
            notes.append(
                f"{r.phase}: {_fmt_int(float(d))} training tokens for {_fmt_int(float(total))} parameters "
                f"({float(d) / float(total):.3g} per parameter, embeddings included; "
                f"{_fmt_int(float(n))} non-embedding). Chinchilla's ~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens "
                f"per parameter ({SOURCES['chinchilla'].authors}, all parameters) would be "
                f"{_fmt_int(need_c)} tokens; {SOURCES['kaplan'].authors} (eq. 4.4, non-embedding N) "
                f"suggest at least {kaplan_bound_text()} = {_fmt_int(need_k)} tokens to keep overfitting small."
            )
    return notes


def compare_notes(study_dir: PathLike, table: pd.DataFrame, study: Optional[str] = None) -> list[str]:
    """Plain-language notes for the report: best phase, onsets, data needs (Chinchilla, Kaplan), fit, seed caveats."""
    done = done_rows(table)
    if done.empty:
        return ["No phase finished, so there is nothing to compare yet."]
    rows = journey_rows(done)
    notes = ranking_notes(done) + _shift_notes(study_dir, rows) + _onset_notes(rows) + _data_need_notes(rows)
    notes.extend(_fit_notes(table))
    if is_seed_study(table, study):
        notes.extend(_seed_notes(Path(study_dir), table, done))
    return notes


def _fit_notes(table: pd.DataFrame) -> list[str]:
    """Kaplan et al.'s L(N, D) fitted to the study's phases (:func:`gaplab.measure.scaling.fit_journey`)."""
    fj = scaling.fit_journey(table)
    if fj is None:
        return []
    f = fj["fit"]
    msg = (
        f"Kaplan et al. 2020 eq. 1.5 fitted to {f['n_fit']} phases: α_N = {f['alpha_N']:.3f}, "
        f"α_D = {f['alpha_D']:.3f}, RMSE {f['rmse']:.3f} nats"
    )
    if f["holdout_rmse"] is not None:
        held = [p for p, h in zip(fj["phases"], fj["holdout"]) if h]
        msg += (
            f"; predicting the held-out largest-data phases ({', '.join(held)}) it is off by "
            f"{f['holdout_rmse']:.3f} nats RMSE (max {f['holdout_max_abs_error']:.3f})"
        )
    return [
        msg + ". The law describes well-trained, early-stopped runs, so underfitting phases bend it; "
        "and tiny models on tiny corpora give constants that do not transfer to Kaplan's scale."
    ]


def _seed_notes(study_dir: Path, table: pd.DataFrame, done: pd.DataFrame) -> list[str]:
    """A seed-003 study: the caveat, its corpus beside ours, its findings checked, its own notes."""
    notes = [
        "Seed 003's figures are its own, reported on its ChromaDB code corpus; this study reproduces its "
        "settings on a different corpus, so compare the shape of the journey, not the digits."
    ]
    corpus = corpus_note(study_dir, done)
    if corpus:
        notes.append(corpus)
    notes.extend(seed_findings_sentences(seed_findings(table)))
    ref = load_seed_reference()
    for _, r in ref[ref["note"] != ""].iterrows():
        notes.append(f"Seed 003, {r['phase']}: {r['note']}.")
    return notes
