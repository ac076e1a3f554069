"""What a study's numbers say, in sentences: the notes of ``05_compare`` and ``report.html``,
including seed 003's three findings checked against the study's phases."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from ..measure import scaling
from ..measure.references import (CHINCHILLA_TOKENS_PER_PARAM, SOURCES, chinchilla_tokens, kaplan_overfit_min_tokens,
                                  load_seed_reference)
from ..measure.units import finite_or_none, int_or_none
from ..pipeline.summary import done_rows
from .plots import PathLike, _fmt_int, _num
from .study_plots import is_seed_study


#: how much val loss must rise above its best (nats) to count as "rising after its best" in :func:`seed_findings`
RISE_TOL = 0.05


def _rose_after_best(row: Mapping[str, Any]) -> Optional[bool]:
    bv, fv, bi, mi = finite_or_none(row.get("best_val")), finite_or_none(row.get("final_val")), int_or_none(row.get("best_iter")), int_or_none(row.get("max_iters"))
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


def compare_notes(study_dir: PathLike, table: pd.DataFrame, study: Optional[str] = None) -> list[str]:
    """Plain-language notes for the report: best phase, onsets, data needs (Chinchilla, Kaplan), fit, seed caveats."""
    notes: list[str] = []
    done = done_rows(table)
    if done.empty:
        return ["No phase finished, so there is nothing to compare yet."]
    best = done.iloc[int(np.nanargmin(_num(done["best_val"])))]
    notes.append(f"Lowest val loss: {best['phase']} with {best['best_val']:.3f} nats "
                 f"(perplexity {math.exp(min(best['best_val'], 700)):.1f}) at iter {best['best_iter']}.")
    vocabs = set(_num(done["vocab_size"])[np.isfinite(_num(done["vocab_size"]))]) if "vocab_size" in done else set()
    if len(vocabs) > 1:
        notes.append(f"Caution: these phases predict over different vocabularies ({', '.join(_fmt_int(v) for v in sorted(vocabs))} "
                     "ids), so their losses are not directly comparable: a smaller vocabulary makes each guess "
                     "easier, and with tokenizer.compact every val token unseen in train counts as one unknown id. "
                     "Compare gaps and curve shapes across phases; compare loss values only between equal vocabularies.")
    for _, r in done.iterrows():
        fv, bv = r.get("final_val"), r.get("best_val")
        if pd.notna(r.get("onset_iter")):
            lost = f"; it ended {fv - bv:.3f} nats above its best" if pd.notna(fv) and pd.notna(bv) else ""
            notes.append(f"{r['phase']}: val loss stopped improving after iter {int(r['onset_iter'])} while train loss "
                         f"kept falling (overfitting onset){lost}.")
    for _, r in done.iterrows():
        n, total, d = r.get("params_non_embedding"), r.get("params_total"), r.get("train_tokens")
        if pd.notna(n) and pd.notna(d) and pd.notna(total) and n > 0:
            need_k = kaplan_overfit_min_tokens(float(n))
            need_c = chinchilla_tokens(float(total))
            notes.append(f"{r['phase']}: {_fmt_int(float(d))} training tokens for {_fmt_int(float(total))} parameters "
                         f"({float(d) / float(total):.3g} per parameter, embeddings included; "
                         f"{_fmt_int(float(n))} non-embedding). Chinchilla's ~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens "
                         f"per parameter ({SOURCES['chinchilla'].authors}, all parameters) would be "
                         f"{_fmt_int(need_c)} tokens; {SOURCES['kaplan'].authors} (eq. 4.4, non-embedding N) "
                         f"suggest at least 5e3·N^0.74 = {_fmt_int(need_k)} tokens to keep overfitting small.")
    fj = scaling.fit_journey(table)
    if fj is not None:
        f = fj["fit"]
        msg = (f"Kaplan et al. 2020 eq. 1.5 fitted to {f['n_fit']} phases: α_N = {f['alpha_N']:.3f}, "
               f"α_D = {f['alpha_D']:.3f}, RMSE {f['rmse']:.3f} nats")
        if f["holdout_rmse"] is not None:
            held = [p for p, h in zip(fj["phases"], fj["holdout"]) if h]
            msg += (f"; predicting the held-out largest-data phases ({', '.join(held)}) it is off by "
                    f"{f['holdout_rmse']:.3f} nats RMSE (max {f['holdout_max_abs_error']:.3f})")
        notes.append(msg + ". The law describes well-trained, early-stopped runs, so underfitting phases bend it; "
                     "and tiny models on tiny corpora give constants that do not transfer to Kaplan's scale.")
    if is_seed_study(table, study):
        ref = load_seed_reference()
        notes.append("Seed 003's figures are its own, reported on its ChromaDB code corpus; this study reproduces its "
                     "settings on a different corpus, so compare the shape of the journey, not the digits.")
        notes.extend(seed_findings_sentences(seed_findings(table)))
        for _, r in ref[ref["note"] != ""].iterrows():
            notes.append(f"Seed 003, {r['phase']}: {r['note']}.")
    return notes
