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

from .errors import DataError, UsageError
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
        f"{args.phase}: best val {metrics['best_val_loss']:.4f} at iter {metrics['best_iter']}, "
        f"final gap {metrics['final_gap']:.3f}, stop: {metrics['stop_reason']} -> {run_dir}"
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


_LOG_COLUMNS = ("iter", "train_loss", "val_loss")
_LOG_OPTIONAL = ("val_loss_se", "train_loss_se", "tokens_seen")


def read_training_log(path: str):
    """A training log CSV (header ``iter,train_loss,val_loss``, optional ``*_se``, ``tokens_seen``; other
    columns ignored) as a DataFrame; a bad file is a :class:`DataError` naming the file, line and column."""
    import csv
    import math

    import pandas as pd

    need = f"columns {', '.join(_LOG_COLUMNS)} (optional: {', '.join(_LOG_OPTIONAL)})"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; give a CSV training log with {need}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: cannot be read as a UTF-8 CSV file ({exc}); give a CSV training log with {need}"
        ) from None
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in _LOG_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}, line 1 (the header): missing column {', '.join(map(repr, missing))}; found "
            f"{', '.join(map(repr, header)) or 'nothing'}; a training log needs {need}"
        )
    cols = [c for c in _LOG_COLUMNS + _LOG_OPTIONAL if c in header]
    data: dict[str, list[float]] = {c: [] for c in cols}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        for c in cols:
            cell = row[header.index(c)].strip() if header.index(c) < len(row) else ""
            try:
                value = float(cell) if cell else math.nan
            except ValueError:
                value = None
            if value is None or (c == "iter" and not math.isfinite(value)):
                allowed = "a finite number" if c == "iter" else "a number (nan or an empty cell for a missing value)"
                raise DataError(f"{path}, line {line}, column {c!r}: {cell!r} is not allowed; give {allowed}")
            data[c].append(value)
    if not any(math.isfinite(t) and math.isfinite(v) for t, v in zip(data["train_loss"], data["val_loss"])):
        raise DataError(
            f"{path}: no row has both a finite train_loss and a finite val_loss; a training log needs {need}"
        )
    return pd.DataFrame(data)


def cmd_analyze(args) -> int:
    import json

    from .measure.curves import judge

    j = judge(read_training_log(args.history), args.vocab_size)
    if args.json:
        print(json.dumps(dict(j, file=args.history), allow_nan=False))
        return 0
    onset = (
        f"iter {j['onset_iter']} (val {j['onset_val']:.3f} nats there, level {j['onset_level']:.3f})"
        if j["onset_iter"] is not None
        else "none"
    )
    print(
        f"{args.history}: {j['n_evals']} evals\nverdict: {j['verdict']}\nonset: {onset}\n"
        f"best val: {j['best_val']:.3f} nats at iter {j['best_iter']}\n"
        f"noise: val ±{j['val_noise']:.3f} nats per eval ({j['val_noise_source']}), "
        f"train ±{j['train_noise']:.3f} ({j['train_noise_source']})\nreason: {j['reason']}"
    )
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


def _add_inspect_parser(sub) -> None:
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

    c = sub.add_parser("check", help="validate a study and print sizes, tokens/param and epochs per phase")
    c.add_argument("study")
    c.add_argument("--phases", help="comma-separated phase names")
    c.add_argument("--all", action="store_true", help=f"show every phase (default: the first {CHECK_TABLE_ROWS})")
    c.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    c.set_defaults(fn=cmd_check)

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
    r.add_argument("--executor", choices=["local", "dask"], default="local")
    r.add_argument("--scheduler", default=None, help="dask scheduler address, e.g. tcp://host:8786")
    r.add_argument("--wait", action="store_true", help=WAIT_HELP)
    r.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    r.set_defaults(fn=cmd_run)

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

    _add_inspect_parser(sub)

    a = sub.add_parser("analyze", help="the verdict (onset, noise, reason) for a training log CSV")
    a.add_argument("history", help="CSV with columns iter, train_loss, val_loss (optional *_se, tokens_seen)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument(
        "--vocab-size",
        type=_positive_int,
        default=None,
        help="vocabulary size: a best val near ln(V), a uniform guess, reads as underfitting",
    )
    a.set_defaults(fn=cmd_analyze)

    k = sub.add_parser("tokenizer", help="tokenizer set-up")
    ksub = k.add_subparsers(dest="action", required=True)
    f = ksub.add_parser("fetch", help="provision the GPT-2 ranks offline from the openai-whisper sdist")
    f.add_argument("--force", action="store_true")
    f.set_defaults(fn=cmd_tokenizer)
    return ap


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
