"""The ``gaplab`` command: check, run, train, inspect, tokenizer fetch.

Bad input (a study file, a data file, a checkpoint, a missing tokenizer:
any :class:`gaplab.errors.UsageError`) is answered with a message that names
the file, the key and the value, and exit code 2, before anything is written.  A failed phase in ``gaplab run`` gives exit code 1.
``check`` never calls a Python callable the study names; ``run`` and ``train`` hold the study folder's lock.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .errors import UsageError
from .pipeline.check import CHECK_TABLE_ROWS
from .pipeline.config import load_study

SKIP_MEMORY_HELP = "accept phases whose estimated peak memory exceeds this machine's (for the brave)"
WAIT_HELP = "if another gaplab command holds this study's folder, wait for it instead of stopping"


def cmd_check(args) -> int:
    from .pipeline.check import check_report

    study = load_study(args.study)
    print(check_report(study, _phase_list(args.phases), memory_check=not args.skip_memory_check,
                       limit=None if args.all else CHECK_TABLE_ROWS))
    return 0


def cmd_train(args) -> int:
    from .pipeline.retrain import train_one

    metrics, run_dir = train_one(args.study, args.phase, outputs=args.outputs, resume=args.resume, wait=args.wait,
                                 memory_check=not args.skip_memory_check, progress=not args.quiet)
    print(f"{args.phase}: best val {metrics['best_val_loss']:.4f} at iter {metrics['best_iter']}, "
          f"final gap {metrics['final_gap']:.3f}, stop: {metrics['stop_reason']} -> {run_dir}")
    return 0


def cmd_run(args) -> int:
    from .pipeline.runner import run_study

    return run_study(args.study, phases=_phase_list(args.phases), force=args.force, keep_going=args.keep_going,
                     workers=args.workers, timeout=args.timeout, dry_run=args.dry_run, outputs=args.outputs,
                     executor=args.executor, scheduler=args.scheduler, threads=args.threads, wait=args.wait,
                     memory_check=not args.skip_memory_check)


def cmd_inspect(args) -> int:
    from .pipeline.stages import inspect_phase

    study = load_study(args.study)
    ph = study.phase(args.phase)
    report = inspect_phase(ph.resolved(study.name, ""), write=False, enforce=False)
    for check in report.get("checks", []):
        print(f"{check['status']:>4}  {check['name']}: {check['message']}")
    failed = report.get("failed") or []
    if failed:
        print(f"data.fail_on: {', '.join(failed)} failed; `gaplab run` would stop this phase before training")
    return 1 if failed else 0


def cmd_tokenizer(args) -> int:
    from .data.tokenizer import fetch_gpt2_ranks

    path = fetch_gpt2_ranks(force=args.force)
    print(f"GPT-2 ranks (r50k_base, sha256 verified) at {path}")
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
    r.add_argument("--keep-going", dest="keep_going", action="store_true", default=True,
                   help="continue with other phases when one fails (default)")
    r.add_argument("--no-keep-going", dest="keep_going", action="store_false", help="stop at the first failure")
    r.add_argument("--workers", type=_positive_int, default=1, help="phases run at once, one OS process each")
    r.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads per phase (default: CPUs / workers; a phase's train.threads wins)")
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
    t.add_argument("--resume", action="store_true",
                   help="continue from ckpt/last.pt of an interrupted gaplab train, else of the phase folder")
    t.add_argument("--outputs", default=None)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--wait", action="store_true", help=WAIT_HELP)
    t.add_argument("--skip-memory-check", action="store_true", help=SKIP_MEMORY_HELP)
    t.set_defaults(fn=cmd_train)

    i = sub.add_parser("inspect", help="print a phase's data checks")
    i.add_argument("study")
    i.add_argument("--phase", required=True)
    i.set_defaults(fn=cmd_inspect)

    k = sub.add_parser("tokenizer", help="tokenizer set-up")
    ksub = k.add_subparsers(dest="action", required=True)
    f = ksub.add_parser("fetch", help="provision the GPT-2 ranks offline from the openai-whisper sdist")
    f.add_argument("--force", action="store_true")
    f.set_defaults(fn=cmd_tokenizer)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
