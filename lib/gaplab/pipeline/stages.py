"""What each stage notebook does, as plain functions.

The notebooks in ``notebooks/`` stay thin: a ``parameters`` cell, teaching
markdown, and one call into this module per step.  Stages talk only through
files in the phase folder (``run_dir``), so any stage can be re-run alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..files import atomic_write_json, atomic_write_text, atomic_write_yaml, read_json, update_json
from ..schema import PHASE_KEYS
from .config import phase_from_dict

STAGES = ("01_inspect_data", "02_train", "03_loss_gap", "04_samples")


COMPARE = "05_compare"


class StageInputMissing(RuntimeError):
    """A stage needs a file that an earlier stage writes."""


def phase_params(params: dict[str, Any]):
    """Validate papermill's injected variables back into :class:`gaplab.schema.PhaseParams`."""
    return phase_from_dict(params)


def run_dir_of(params: dict[str, Any]) -> Path:
    run_dir = Path(params.get("run_dir") or ".").expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def final_run_dir(params: dict[str, Any]) -> tuple[Path, bool]:
    """Where this phase's files end up, and whether they are still in a staging folder.

    ``gaplab run`` runs a phase in ``outputs/<study>/.staging/<phase>-*`` (the injected ``run_dir``) and
    moves the folder to ``outputs/<study>/<phase>`` when every stage has finished
    (:func:`gaplab.pipeline.runs.place_phase`, which also rewrites ``params.yaml`` with that path); a
    notebook run by hand writes into ``run_dir`` itself.
    """
    run_dir = Path(params.get("run_dir") or ".").expanduser().resolve()
    if run_dir.parent.name == ".staging":
        return run_dir.parent.parent / str(params.get("phase") or run_dir.name), True
    return run_dir, False


def collect(namespace: dict[str, Any]) -> dict[str, Any]:
    """The phase parameters from a notebook's globals (``study, phase, run_dir`` and the sections)."""
    keys = ("study", "phase", "run_dir") + PHASE_KEYS
    return {k: namespace[k] for k in keys if k in namespace}


def _write_params(params: dict[str, Any], run_dir: Path) -> None:
    path = run_dir / "params.yaml"
    if not path.exists():  # the runner writes it; by hand, record what ran
        atomic_write_yaml(path, {**params, "run_dir": str(run_dir)})


def _threads(p) -> None:
    n = p.train.threads or (int(os.environ["GAPLAB_THREADS"]) if os.environ.get("GAPLAB_THREADS") else None)
    if n:
        import torch

        torch.set_num_threads(n)


def require(run_dir: Path, name: str, stage: str) -> Path:
    path = run_dir / name
    if not path.exists():
        raise StageInputMissing(f"{path} is missing: run {stage} for this run_dir first")
    return path


# --------------------------------------------------------------------------- 01
def inspect_phase(params: dict[str, Any], write: bool = True, enforce: bool = True) -> dict[str, Any]:
    """Build the data report; write ``data_report.json`` and figures; stop on ``data.fail_on`` if ``enforce``."""
    from ..data.split import prepare_data
    from ..datareport.build import build_report

    p = phase_params(params)
    prep = prepare_data(
        p, params.get("phase", "?"), str(params.get("run_dir", "")), tokenizer_dir=run_dir_of(params) if write else None
    )  # a bpe is trained and saved here
    report = build_report(prep, p)
    if write:
        run_dir = run_dir_of(params)
        _write_params(params, run_dir)
        atomic_write_json(run_dir / "data_report.json", report)
        try:
            from ..report.plots import data_figures
        except ImportError:
            data_figures = None
        if data_figures is not None:
            data_figures(report, run_dir / "figures")
    if enforce:
        enforce_data_checks(report)
    return report


def enforce_data_checks(report: dict[str, Any]) -> None:
    """Raise :class:`gaplab.datareport.checks.DataCheckFailed` if a check named in ``data.fail_on`` failed."""
    from ..datareport.checks import raise_on_failures

    raise_on_failures(report)


# --------------------------------------------------------------------------- 02
def train(
    params: dict[str, Any],
    progress: Optional[bool] = None,
    on_eval=None,
    should_stop=None,
    resume: bool = False,
):
    """Train the phase into ``run_dir`` (history.csv, metrics.json, ckpt/, figures/training_curves.png), and each
    further replicate into ``run_dir/replicates/seed-<seed>/``; return replicate 0's metrics.

    ``on_eval(row)`` is called at every eval (a live figure: :func:`gaplab.ui.show.live_curves`);
    ``should_stop()`` ends training early; ``progress`` (a progress bar) defaults to on, except under papermill.
    """
    from ..data.split import prepare_data
    from ..train.replicates import train_replicates

    p = phase_params(params)
    _threads(p)
    run_dir = run_dir_of(params)
    _write_params(params, run_dir)
    report = read_json(run_dir / "data_report.json")
    if report:  # 01_inspect_data ran here: training must not start on data that failed its fail_on checks
        enforce_data_checks(report)
    prep = prepare_data(p, params.get("phase", "?"), str(run_dir), tokenizer_dir=run_dir, reuse_tokenizer=resume)
    runs = train_replicates(
        p,
        prep,
        run_dir,
        progress=not in_papermill() if progress is None else progress,
        resume=resume,
        on_eval=on_eval,
        should_stop=should_stop,
        plan=replicate_plan_for(p, int(prep.vocab_size)),
    )
    training_figure(run_dir, p.train.max_iters)
    return runs[0]


def training_figure(run_dir: Path, max_iters: Optional[int] = None) -> Optional[Path]:
    """Replicate 0's curves as ``figures/training_curves.png`` (and ``.svg``); none before the first eval."""
    from ..report.plots import training_curves
    from ..train.history import load_history

    history = load_history(run_dir) if (run_dir / "history.csv").exists() else None
    if history is None or history.empty:
        return None
    training_curves(history, run_dir / "figures", max_iters=max_iters)
    return run_dir / "figures" / "training_curves.png"


#: memory of a replicate's own process beyond its training estimate: Python, PyTorch, the data (measured
#: ~300 MB for the seed study's phases)
REPLICATE_PROCESS_BYTES = 400 * 2**20


def replicate_plan_for(p, vocab_size: int):
    """How the phase's replicates train here (:func:`gaplab.train.replicates.replicate_plan`): the cores this
    phase may use (``$GAPLAB_THREADS``, set by ``gaplab run`` from ``--threads``/``--workers``, else the
    machine's), capped so that the replicates' processes fit in the memory available now."""
    import psutil

    from ..model.device import resolve_device
    from ..train.replicates import replicate_plan
    from .resources import peak_memory

    cores = int(os.environ.get("GAPLAB_THREADS") or 0) or os.cpu_count() or 1
    each = peak_memory(p.model, p.train, vocab_size)["total"] + REPLICATE_PROCESS_BYTES
    return replicate_plan(
        p.replicates,
        resolve_device(p.train.device).type,
        cores,
        p.train.threads,
        bytes_each=each,
        bytes_free=psutil.virtual_memory().available,
    )


def in_papermill() -> bool:
    """True when the notebook is being executed by papermill (no live widgets there)."""
    return bool(os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("GAPLAB_BATCH"))


# --------------------------------------------------------------------------- 03
def loss_gap(params: dict[str, Any]) -> dict[str, Any]:
    """Analyse the curves: onset, verdict, perplexity; figures; ``metrics.json['analysis']``.

    With replicates, every replicate's own analysis goes into its ``metrics.json``; the phase's verdict is
    that of the mean curve (``replicates/mean/history.csv``, whose noise is the spread over the seeds), and
    ``metrics.json['replicates']`` holds each number's values, mean and std over the seeds.
    """
    from ..measure.curves import analyze_run
    from ..measure.replicates import aggregate_histories, aggregate_metrics, replicate_folders
    from ..measure.unseen import seen_unseen_summary
    from ..report.plots import loss_curves
    from ..train.history import history_csv_frame, load_history

    run_dir = run_dir_of(params)
    require(run_dir, "history.csv", "02_train")
    folders = replicate_folders(run_dir)
    runs = []
    for folder in folders:
        update_json(folder / "metrics.json", {"analysis": analyze_run(folder)})
        runs.append(read_json(folder / "metrics.json", {}) or {})
    history = load_history(run_dir)
    curve = history
    if len(folders) > 1:
        curve = aggregate_histories([load_history(f) for f in folders])
        mean_dir = run_dir / "replicates" / "mean"
        atomic_write_text(mean_dir / "history.csv", history_csv_frame(curve))
        atomic_write_json(mean_dir / "metrics.json", {k: runs[0].get(k) for k in ("vocab_size", "stop_reason")})
        analysis = dict(analyze_run(mean_dir), replicates=len(folders))
    else:
        analysis = runs[0]["analysis"]
    unseen = seen_unseen_summary(history, runs[0])
    update_json(
        run_dir / "metrics.json",
        {"analysis": analysis, "val_seen_unseen": unseen, "replicates": aggregate_metrics(runs)},
    )
    loss_curves(curve, analysis, run_dir / "figures", phase=params.get("phase"))
    return analysis


# --------------------------------------------------------------------------- 04
def samples(params: dict[str, Any]):
    """Generate from the chosen checkpoints, measure the samples, write ``samples.jsonl``."""
    from ..data.split import prepare_data
    from ..measure.generate import collect_prompts, generate
    from ..measure.ngram_index import MemorizationIndex
    from ..measure.samples import evaluate_samples, validate_samples, write_samples
    from ..measure.text_quality import is_python_corpus, load_keyword_set
    from ..train.checkpoint import load_model

    p = phase_params(params)
    run_dir = run_dir_of(params)
    s = p.sample
    if not s.enabled:
        update_json(run_dir / "metrics.json", {"samples": {"enabled": False}})
        return [], {}
    prep = prepare_data(p, params.get("phase", "?"), str(run_dir), tokenizer_dir=run_dir, reuse_tokenizer=True)
    index = MemorizationIndex(prep.train, prep.val, n=s.ngram)
    python = s.python == "yes" or (s.python == "auto" and is_python_corpus(p.data))
    keyword_set = load_keyword_set(s.keyword_sets) if s.keyword_sets else None
    prompts = collect_prompts(s.prompts, keyword_set)  # the keyword set's prompts are generated too
    rows: list[dict] = []
    aggregates: dict[str, Any] = {}
    for ck in s.checkpoints:
        path = require(run_dir, f"ckpt/{ck}.pt", "02_train")
        model, _ = load_model(path)
        gen = generate(
            model,
            prep.tokenizer,
            prompts,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            num_samples=s.num_samples,
            seed=s.seed,
        )
        for g in gen:
            g["checkpoint"] = ck
        ck_rows, agg = evaluate_samples(
            gen,
            index=index,
            tokenizer=prep.tokenizer,
            python=python,
            format_patterns=s.format_patterns,
            keyword_set=keyword_set,
        )
        if s.validators:  # the data's validators on what the model wrote, one document per sample
            ck_rows, checked = validate_samples(ck_rows, s.validators, separator=p.data.separator)
            agg.update(checked)
        rows.extend(ck_rows)
        aggregates[ck] = agg
    write_samples(run_dir, rows)
    main = aggregates.get("best") or next(iter(aggregates.values()))
    update_json(run_dir / "metrics.json", {"samples": {"aggregate": main, "by_checkpoint": aggregates}})
    return rows, aggregates


# --------------------------------------------------------------------------- 05
def compare(study: str, study_dir: str, phases: Optional[list[str]] = None) -> dict[str, Any]:
    """The study's journey table, comparison figures, ``summary.csv`` and ``report.html``."""
    from ..report.html_report import build_report as build_html_report
    from ..report.notes import compare_notes
    from ..report.study_plots import compare_figures
    from ..report.summary import write_summary

    sdir = Path(study_dir).expanduser().resolve()
    status = read_json(sdir / "study_status.json", {}) or {}
    if phases is None:
        phases = status.get("phases_order") or sorted(
            p.name for p in sdir.iterdir() if p.is_dir() and (p / "params.yaml").exists()
        )
    table = write_summary(sdir, phases)
    figs = compare_figures(sdir, table, phases, study=study)
    failed = {
        name: st.get("error", "") for name, st in (status.get("phases") or {}).items() if st.get("state") == "failed"
    }
    notes = compare_notes(sdir, table, study=study)
    html = build_html_report(
        sdir,
        table,
        figs,
        title=f"gaplab study: {study}",
        description=status.get("description", ""),
        failed=failed,
        notes=notes,
    )
    return {"table": table, "figures": figs, "failed": failed, "notes": notes, "report": html}
