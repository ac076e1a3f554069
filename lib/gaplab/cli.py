"""The ``gaplab`` command: check, run, train, inspect, analyze, tokenizer fetch.

Bad input (a study file, a data file, a checkpoint, a missing tokenizer:
any :class:`gaplab.errors.UsageError`) is answered with a message that names
the file, the key and the value, and exit code 2, before anything is written.  A failed phase in ``gaplab run`` gives exit code 1.
``check`` never calls a Python callable the study names; ``run`` and ``train`` hold the study folder's lock.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Optional

from .errors import UsageError
from .pipeline.check import CHECK_TABLE_ROWS
from .pipeline.config import load_study

SKIP_MEMORY_HELP = "accept phases whose estimated peak memory exceeds this machine's (for the brave)"
WAIT_HELP = "if another gaplab command holds this study's folder, wait for it instead of stopping"


def cmd_check(args) -> int:
    from .pipeline.check import check_report

    study = load_study(args.study)
    print(
        check_report(
            study,
            _phase_list(args.phases),
            memory_check=not args.skip_memory_check,
            limit=None if args.all else CHECK_TABLE_ROWS,
        )
    )
    return 0


def cmd_train(args) -> int:
    from .pipeline.retrain import train_one

    metrics, run_dir = train_one(
        args.study,
        args.phase,
        outputs=args.outputs,
        resume=args.resume,
        wait=args.wait,
        memory_check=not args.skip_memory_check,
        progress=not args.quiet,
    )
    print(
        f"{args.phase}: best val {metrics.best_val_loss:.4f} at iter {metrics.best_iter}, "
        f"final gap {metrics.final_gap:.3f}, stop: {metrics.stop_reason} -> {run_dir}"
    )
    return 0


def cmd_run(args) -> int:
    from .pipeline.runner import run_study

    return run_study(
        args.study,
        phases=_phase_list(args.phases),
        force=args.force,
        keep_going=args.keep_going,
        workers=args.workers,
        timeout=args.timeout,
        dry_run=args.dry_run,
        outputs=args.outputs,
        executor=args.executor,
        scheduler=args.scheduler,
        threads=args.threads,
        wait=args.wait,
        memory_check=not args.skip_memory_check,
    )


def _is_study(path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def cmd_inspect(args) -> int:
    if not _is_study(args.study):
        return _inspect_own_data(args)
    if args.val or args.fields or args.template or args.label_field or args.validators:
        raise UsageError(
            f"gaplab inspect {args.study}: a study file takes --phase (and --json) only; allowed: "
            "`gaplab inspect STUDY.yaml --phase P` or `gaplab inspect TRAIN [VAL] [--fields ...]`"
        )
    if not args.phase:
        raise UsageError(f"gaplab inspect {args.study}: a study file needs --phase; allowed: one of its phase names")
    from .pipeline.stages import inspect_phase

    study = load_study(args.study)
    ph = study.phase(args.phase)
    report = inspect_phase(ph.resolved(study.name, ""), write=False, enforce=False)
    if args.json:  # the whole report, exactly as data_report.json holds it
        from .files import to_json

        sys.stdout.write(to_json(report))
        return 1 if report.get("failed") else 0
    size = report.get("size", {})
    if size.get("skipped"):
        eg = "; ".join(f"{e['name']}: {e['reason']}" for e in size.get("skipped_examples", [])[:3])
        print(f"data: {size['skipped']} skipped ({eg})")
    for check in report.get("checks", []):
        print(f"{check['status']:>4}  {check['name']}: {check['message']}")
    failed = report.get("failed") or []
    if failed:
        print(f"data.fail_on: {', '.join(failed)} failed; `gaplab run` would stop this phase before training")
    return 1 if failed else 0


def _inspect_own_data(args) -> int:
    """``gaplab inspect TRAIN [VAL]``: a person's own files (gaplab.pipeline.own_data); nothing is written."""
    from .pipeline.own_data import OwnData, inspect_own_data, summary_lines

    if args.phase:
        raise UsageError(
            f"--phase {args.phase}: {args.study} is not a study file (.yaml); allowed: --phase with a study"
        )
    split = lambda value: [v.strip() for v in value.split(",") if v.strip()] if value else []  # noqa: E731
    request = OwnData(
        train=args.study,
        val=args.val,
        fields=split(args.fields),
        template=args.template,
        label_field=args.label_field,
        validators=split(args.validators),
        bad_records="skip" if args.skip_bad_records else "error",
    )
    report = inspect_own_data(request)
    if args.json:
        from .files import to_json

        sys.stdout.write(to_json(report))
    else:
        print("\n".join(summary_lines(report)))
    return 1 if report["failed"] else 0


def cmd_tokenizer(args) -> int:
    from .data.tokenizer import fetch_gpt2_ranks

    path = fetch_gpt2_ranks(force=args.force)
    print(f"GPT-2 ranks (r50k_base, sha256 verified) at {path}")
    return 0


def cmd_analyze(args) -> int:
    import json

    from .logs.analyze import analysis_block, analysis_table, analyze_runs, replicate_spread

    skipped: list[str] = []
    analyses = analyze_runs(args.logs, args.format, args.val, args.vocab_size, skipped=skipped)
    for sentence in skipped:  # a run inside a folder of runs that could not be read: said, the others analysed
        print(f"skipped: {sentence}", file=sys.stderr)
    if args.plot:
        from .report.log_plots import save_log_plot

        save_log_plot(analyses, args.plot)
    if args.json:
        objects = [a.to_dict() for a in analyses]
        print(json.dumps(objects[0] if len(objects) == 1 else objects, allow_nan=False))
        return 0
    if len(analyses) == 1:
        print(analysis_block(analyses[0]))
    else:
        print(analysis_table(analyses))
        spread = replicate_spread(analyses)
        if spread is not None:
            print(spread.sentence())
        for a in analyses:
            print(f"\n{a.path} [{a.val_key}]: {a.curve.reason}\nwhat to do: {a.advice()}")
    if args.plot:
        print(f"figure: {args.plot}")
    return 0


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a whole number of at least 1")
    return n


def _phase_list(text: Optional[str]) -> Optional[list[str]]:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _add_inspect(sub) -> None:
    """``gaplab inspect STUDY.yaml --phase P`` or ``gaplab inspect TRAIN [VAL] [options]``."""
    i = sub.add_parser(
        "inspect",
        help="print a phase's data checks, or the checks of your own train (and val) files",
        description="gaplab inspect STUDY.yaml --phase P | gaplab inspect TRAIN [VAL]: TRAIN and VAL are files or "
        "folders of records (jsonl, JSON array, csv/tsv, parquet, text), read by content; your split is kept exactly. "
        "Exit 0: no check failed; 1: a check failed; 2: bad input.",
    )
    i.add_argument("study", metavar="STUDY_OR_TRAIN", help="a study YAML file, or your training file or folder")
    i.add_argument("val", nargs="?", default=None, metavar="VAL", help="your validation file or folder")
    i.add_argument("--phase", default=None, help="the phase of a study file")
    i.add_argument("--fields", default=None, help="F1,F2,...: the record fields to read, when the guess is wrong")
    i.add_argument("--template", default=None, help="a record's text, e.g. 'Q: {question}\\nA: {answer}'")
    i.add_argument("--label-field", default=None, help="the record field that names its source (split composition)")
    i.add_argument("--validators", default=None, help="module:function,...: per-record validators")
    i.add_argument("--skip-bad-records", action="store_true", help="skip and count broken records (data.bad_records)")
    i.add_argument("--json", action="store_true", help="print the whole data report (data_report.json's content)")
    i.set_defaults(fn=cmd_inspect)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gaplab", description="Train small GPTs from scratch and watch the gap open.")
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (_add_check, _add_run, _add_train, _add_inspect, _add_analyze, _add_tokenizer):
        add(sub)
    return ap


def _add_check(sub) -> None:
    c = sub.add_parser("check", help="validate a study and print sizes, tokens/param and epochs per phase")
    c.add_argument("study")
    c.add_argument("--phases", help="comma-separated phase names")
    c.add_argument("--all", action="store_true", help=f"show every phase (default: the first {CHECK_TABLE_ROWS})")
    c.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    c.set_defaults(fn=cmd_check)


def _add_run(sub) -> None:
    from .pipeline.executors import executor_names

    r = sub.add_parser("run", help="run a study's stage notebooks with papermill")
    r.add_argument("study")
    r.add_argument("--phases", help="comma-separated phase names (default: all)")
    r.add_argument("--force", action="store_true", help="rerun phases even when cached")
    r.add_argument(
        "--keep-going",
        dest="keep_going",
        action="store_true",
        default=True,
        help="continue with other phases when one fails (default)",
    )
    r.add_argument("--no-keep-going", dest="keep_going", action="store_false", help="stop at the first failure")
    r.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="phases run at once, one OS process each (default: one per core while the phases to run "
        "fit in memory together, training on the CPU; 1 with a GPU or --executor dask)",
    )
    r.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads per phase (default: CPUs / workers; a phase's train.threads wins)",
    )
    r.add_argument("--timeout", type=float, default=None, help="seconds allowed per notebook cell")
    r.add_argument("--dry-run", action="store_true", help="print what would run and what is cached")
    r.add_argument("--outputs", default=None, help="outputs folder (default: ./outputs or $GAPLAB_OUTPUTS)")
    r.add_argument("--executor", choices=executor_names(), default="local")
    r.add_argument("--scheduler", default=None, help="dask scheduler address, e.g. tcp://host:8786")
    r.add_argument("--wait", action="store_true", help=WAIT_HELP)
    r.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    r.set_defaults(fn=cmd_run)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train one phase through the library (no notebooks)")
    t.add_argument("study")
    t.add_argument("--phase", required=True)
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue from ckpt/last.pt of an interrupted gaplab train, else of the phase folder",
    )
    t.add_argument("--outputs", default=None)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--wait", action="store_true", help=WAIT_HELP)
    t.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    t.set_defaults(fn=cmd_train)


def _add_tokenizer(sub) -> None:
    k = sub.add_parser("tokenizer", help="tokenizer set-up")
    ksub = k.add_subparsers(dest="action", required=True)
    f = ksub.add_parser("fetch", help="provision the GPT-2 ranks offline from the openai-whisper sdist")
    f.add_argument("--force", action="store_true")
    f.set_defaults(fn=cmd_tokenizer)


def _add_analyze(sub) -> None:
    a = sub.add_parser(
        "analyze",
        help="the verdict (onset, noise, reason, what to do) for training logs from gaplab, Hugging Face, "
        "Lightning, Keras, TensorBoard, W&B, mlx-lm, nanoGPT, LlamaFactory or a CSV",
    )
    a.add_argument("logs", nargs="+", help="log files or run folders; a folder of runs gives each run")
    a.add_argument("--format", default=None, help="force a log reader by name (default: chosen by content)")
    a.add_argument("--val", default=None, help="the eval set to analyse (default: every one the log has)")
    a.add_argument("--json", action="store_true", help="print one JSON object per run (a list for several)")
    a.add_argument("--plot", default=None, metavar="FILE", help="draw the curves to FILE.png or FILE.svg")
    a.add_argument(
        "--vocab-size",
        type=_positive_int,
        default=None,
        help="vocabulary size: a best val near ln(V), a uniform guess, reads as underfitting",
    )
    a.set_defaults(fn=cmd_analyze)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a job scheduler's time limit): stop exactly as on Ctrl-C."""


_TERMINATED = []


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: later ones must not cut the clean stop short
    _TERMINATED.append(signum)
    raise Terminated


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; bad input exits 2, Ctrl-C 130 and SIGTERM 143, both after the same clean stop
    (workers and their kernels shut down, nothing half-written left where a result belongs)."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    else:  # pragma: no cover - signals can only be handled in the main thread
        previous = None
    try:
        code = args.fn(args)
        return 143 if _TERMINATED else code
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("terminated" if _TERMINATED else "interrupted", file=sys.stderr)
        return 143 if _TERMINATED else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _TERMINATED.clear()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
