"""``gaplab inspect TRAIN [VAL]``: the data checks on a person's own fine-tuning files, with no study file.

TRAIN and VAL are files or folders of files, read by content (:mod:`gaplab.data.records`); the split is
theirs, kept exactly (``data.val_path``: :func:`gaplab.data.split.prepare_data`).  With TRAIN alone the
checks that need a split (``needs_split`` in :data:`gaplab.datareport.check_list.CHECKS`) are not run: the
records are split only because the report's machinery measures on two sides, and those checks would
measure that made-up split, not the person's data.

Defaults, said in the output: the GPT-2 tokenizer (its ranks as ``gaplab tokenizer fetch`` provisions them,
offline), the ``small`` model for the model-against-data figures, and a block size that suits the records
(:func:`block_size_for`).  Every check counts: the exit status is 1 when any check fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataError
from ..schema import NAMED_SIZES, PhaseParams

#: the model the model-against-data figures assume (a person's own model is not known here)
DEFAULT_MODEL = "small"
#: block sizes the records may get: a power of two in this range
BLOCK_RANGE = (64, 1024)
#: the share of records whose tokens fit the default block
BLOCK_COVERS = 0.95


@dataclass
class OwnData:
    """What ``gaplab inspect TRAIN [VAL]`` was asked: the files and how to read their records."""

    train: str
    val: Optional[str] = None
    fields: list[str] = field(default_factory=list)
    template: Optional[str] = None
    label_field: Optional[str] = None
    validators: list[str] = field(default_factory=list)
    bad_records: str = "error"


def own_params(request: OwnData, block_size: int = 8) -> PhaseParams:
    """The phase parameters for a person's own files (``source: records``; ``val_path`` when VAL is given)."""
    for key, path in (("TRAIN", request.train), ("VAL", request.val)):
        if path is not None and not Path(path).exists():
            raise DataError(f"{key}: no such file or folder: {path}; allowed: a file or a folder of record files")
    data: dict[str, Any] = {
        "source": "records",
        "path": request.train,
        "fields": list(request.fields),
        "template": request.template,
        "label_field": request.label_field,
        "validators": list(request.validators),
        "bad_records": request.bad_records,
        "split": "documents",
    }
    if request.val:
        data["val_path"] = request.val
    model = {**NAMED_SIZES[DEFAULT_MODEL], "block_size": block_size}
    return PhaseParams.model_validate(
        {"data": data, "tokenizer": {"name": "gpt2"}, "model": model, "train": {"epochs": 1}}
    )


def block_size_for(doc_tokens: list[np.ndarray], smallest_side: int) -> int:
    """The smallest power of two in :data:`BLOCK_RANGE` that holds :data:`BLOCK_COVERS` of the records,
    and never more than the smaller split can fill."""
    lengths = np.array([len(t) for t in doc_tokens] or [1])
    wanted = int(np.quantile(lengths, BLOCK_COVERS)) + 1
    block = BLOCK_RANGE[0]
    while block < wanted and block < BLOCK_RANGE[1]:
        block *= 2
    return max(1, min(block, smallest_side - 1))


def _split_checks() -> set[str]:
    from ..datareport.check_list import CHECKS

    return {c.name for c in CHECKS if getattr(c, "needs_split", False)}


def inspect_own_data(request: OwnData) -> dict[str, Any]:
    """The data report (``data_report.json``'s shape) for a person's own files, with an ``own_data`` section
    that says what was read, what was guessed and assumed, and which checks were not run."""
    from ..data.split import prepare_data
    from ..datareport.build import build_report
    from ..datareport.check_list import CHECK_NAMES

    prep = prepare_data(own_params(request), "own data", request.train)
    block = block_size_for(prep.doc_tokens, min(len(prep.train_base), len(prep.val_base)))
    params = own_params(request, block)
    not_run = sorted(_split_checks()) if not request.val else []
    run = [n for n in CHECK_NAMES if n not in not_run]
    params.data.fail_on = run  # every check counts: the command fails when any check fails
    if not request.val:  # one file is one side: the split made to prepare it is not the user's, checks see none
        prep = replace(prep, doc_split=["train"] * len(prep.doc_split))
    report = build_report(prep, params)
    report["checks"] = [c for c in report["checks"] if c["name"] not in not_run]
    report["failed"] = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    report["fail_on"] = run
    report["own_data"] = _own_section(request, prep, block, not_run)
    return report


def _own_section(request: OwnData, prep: Any, block: int, not_run: list[str]) -> dict[str, Any]:
    lengths = [len(t) for t in prep.doc_tokens]
    n_train = sum(1 for s in prep.doc_split if s != "val") if request.val else len(prep.documents)
    return {
        "train": request.train,
        "val": request.val,
        "records": {"train": n_train, "val": len(prep.documents) - n_train if request.val else 0},
        "guessed": prep.corpus.shape,
        "split": "yours, kept exactly" if request.val else "none (one file): checks that need a split not run",
        "tokenizer": "gpt2 (GPT-2 ranks, offline as `gaplab tokenizer fetch` provisions them)",
        "block_size": block,
        "block_size_why": (
            f"the smallest power of two from {BLOCK_RANGE[0]} to {BLOCK_RANGE[1]} that holds "
            f"{BLOCK_COVERS:.0%} of the records (longest {max(lengths, default=0)} tokens)"
        ),
        "model": f"{DEFAULT_MODEL} ({NAMED_SIZES[DEFAULT_MODEL]['n_layer']} layers, "
        f"{NAMED_SIZES[DEFAULT_MODEL]['n_embd']} wide) for the model-against-data figures",
        "not_run": not_run,
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report for a person: what was read and assumed, then one line per check."""
    own, size = report["own_data"], report["size"]
    lines = [f"train: {own['train']} ({own['records']['train']:,} records: {own['guessed']})"]
    if own["val"]:
        lines.append(f"val:   {own['val']} ({own['records']['val']:,} records); split: {own['split']}")
    else:
        lines.append(f"val:   none (one file): checks that need a split not run: {', '.join(own['not_run'])}")
    tokens = (
        f"{size['train_tokens']:,} train, {size['val_tokens']:,} val"
        if own["val"]
        else f"{size['train_tokens'] + size['val_tokens']:,}"
    )
    lines.append(f"tokens: {tokens}; tokenizer {own['tokenizer']}")
    lines.append(f"block size {own['block_size']}: {own['block_size_why']}; model {own['model']}")
    if size.get("skipped"):
        eg = "; ".join(f"{e['name']}: {e['reason']}" for e in size.get("skipped_examples", [])[:3])
        lines.append(f"skipped {size['skipped']} bad records (data.bad_records: skip): {eg}")
    lines += [f"{c['status']:>4}  {c['name']}: {c['message']}" for c in report["checks"]]
    failed = report.get("failed") or []
    lines.append(f"failed: {', '.join(failed)}" if failed else "no check failed")
    return lines
