"""The phase schema: what a study may set, section by section, with every default (pydantic).

A phase is five sections, ``data``, ``tokenizer``, ``model``, ``train`` and ``sample``; each is a strict
pydantic model (unknown keys are errors).  This module is the contract every room reads:
:class:`ModelConfig` is the one model configuration (the study file, the GPT and the playground use it),
and :func:`planned_iters` the one place that turns ``epochs`` into iterations.  Loading a study file,
merging defaults and reporting problems is :mod:`gaplab.pipeline.config`.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

SECTIONS = ("data", "tokenizer", "model", "train", "sample")
#: every top-level key of a phase: the sections and ``replicates``
PHASE_KEYS = SECTIONS + ("replicates",)
#: the most training seeds one phase may run
MAX_REPLICATES = 16


#: Model sizes a study (and the grid) may name in ``model: <name>``.
NAMED_SIZES: dict[str, dict[str, int]] = {
    "micro": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64},
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128},
    "medium": {"n_layer": 6, "n_head": 6, "n_embd": 192, "block_size": 128},
}


TIKTOKEN_NAMES = ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base")
#: a byte-level BPE's base alphabet: the smallest ``tokenizer.vocab_size`` a ``bpe`` tokenizer may have
BYTE_ALPHABET = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Threshold(_Strict):
    """A check's thresholds: a measured share at or above ``warn`` warns, at or above ``fail`` fails."""

    warn: Optional[float] = Field(None, ge=0)
    fail: Optional[float] = Field(None, ge=0)


class DataConfig(_Strict):
    #: ``records``: a file or folder of fine-tuning records, format and kind read from the content
    #: (gaplab.data.records); ``jsonl`` / ``csv`` join ``fields`` of the named format
    source: Literal["stdlib", "files", "text", "jsonl", "csv", "records", "generated"] = "stdlib"
    packages: list[str] = Field(default_factory=list, description="stdlib: packages/modules to read (empty = all)")
    path: Optional[str] = None
    #: the user's own validation file or folder, read like ``path``: its documents are the val split and
    #: ``path``'s the train split, exactly (``split``, ``val_fraction`` and ``max_tokens`` do not apply)
    val_path: Optional[str] = None
    glob: str = "**/*"
    fields: list[str] = Field(default_factory=list)
    template: Optional[str] = None
    label_field: Optional[str] = None
    generator: Optional[str] = None
    generator_args: dict[str, Any] = Field(default_factory=dict)
    max_tokens: Optional[int] = Field(None, gt=0)
    #: keep only this many training tokens, after the split: validation stays the same for every value, so
    #: phases that differ in data size are scored on one val set (see gaplab.data.split)
    max_train_tokens: Optional[int] = Field(None, gt=0)
    separator: str = "\n\n"
    split: Literal["tail", "documents", "chunks"] = "tail"
    #: what the split counts: the token stream (``tokens``), or the corpus text before tokenizing (``text``, in
    #: characters): every tokenizer then gets the same val text, and a bpe tokenizer can be trained on train
    split_on: Literal["tokens", "text"] = "tokens"
    val_fraction: float = Field(0.1, gt=0, le=0.5)
    chunk_size: int = Field(256, gt=0)
    seed: int = 1337
    validators: list[str] = Field(default_factory=list)
    #: keyed by check name; the names (gaplab.datareport.check_list.CHECKS) are checked by gaplab.pipeline.config
    checks: dict[str, Threshold] = Field(default_factory=dict)
    fail_on: list[str] = Field(default_factory=list)
    ngram: int = Field(8, gt=0)
    #: near-twins (gaplab.datareport.near_duplicates): estimated Jaccard similarity of runs of this many
    #: normalized words at or above the threshold
    near_duplicate_threshold: float = Field(0.3, gt=0, le=1)
    near_duplicate_shingle: int = Field(5, gt=0)
    #: a jsonl/csv record that is broken (not JSON, a missing field, a csv row with too many or too few
    #: values): an error naming file:line, or skipped and counted
    bad_records: Literal["error", "skip"] = "error"


class TokenizerConfig(_Strict):
    #: ``gpt2`` (and the other tiktoken names), ``char``, or ``bpe``: a byte-level BPE trained on the training
    #: split (see gaplab.data.tokenizer.train_bpe), which needs ``data.split_on: text`` and ``vocab_size``
    name: str = "gpt2"
    vocab_size: Optional[int] = Field(None, gt=0)
    compact: bool = False
    #: where a compact vocabulary's ids come from: the phase's training split (smallest head), or the whole
    #: corpus before data.max_tokens cuts it (one vocabulary for every phase on that corpus, so phases that
    #: differ only in data size predict over the same ids and their losses compare)
    compact_from: Literal["train", "corpus"] = "train"


class ModelConfig(_Strict):
    """The GPT's sizes (see :mod:`gaplab.model.gpt`); the vocabulary size comes from the tokenizer."""

    n_layer: int = Field(2, gt=0)
    n_head: int = Field(2, gt=0)
    n_embd: int = Field(32, gt=0)
    block_size: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    bias: bool = True


class TrainConfig(_Strict):
    max_iters: Optional[int] = Field(None, gt=0)
    epochs: Optional[float] = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    min_lr: Optional[float] = Field(None, ge=0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_iters: int = Field(0, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, gt=0, lt=1)
    beta2: float = Field(0.95, gt=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    eval_interval: int = Field(50, gt=0)
    eval_iters: int = Field(10, gt=0)
    patience: Optional[int] = Field(None, gt=0)
    min_delta: float = Field(0.0, ge=0)
    seed: int = 1337
    device: str = "auto"
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    fused_loss: bool = True
    save_every: list[int] = Field(default_factory=list)
    threads: Optional[int] = Field(None, gt=0)


class SampleConfig(_Strict):
    enabled: bool = True
    prompts: Union[list[str], str] = Field(default_factory=lambda: ["\n"])
    max_new_tokens: int = Field(64, gt=0)
    temperature: float = Field(0.8, gt=0)
    top_k: Optional[int] = Field(50, gt=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    num_samples: int = Field(2, gt=0)
    seed: int = 1337
    checkpoints: list[str] = Field(default_factory=lambda: ["best"])
    keyword_sets: Optional[str] = None
    format_patterns: list[str] = Field(default_factory=list)
    ngram: int = Field(8, gt=0)
    python: Literal["auto", "yes", "no"] = "auto"
    #: ``module:function`` validators (as in ``data.validators``) run on each generated sample (prompt +
    #: continuation); the share of samples they check that pass goes into ``metrics.json["samples"]``
    validators: list[str] = Field(default_factory=list)


class PhaseParams(_Strict):
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    #: train the phase with this many training seeds (train.seed, train.seed + 1, ...): the same data and
    #: split, other initial weights and batch order; see gaplab.train.replicates
    replicates: int = Field(1, ge=1, le=MAX_REPLICATES)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


SECTION_MODELS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
}


def tokens_per_iter(train: TrainConfig, block_size: int) -> int:
    """Training tokens one iteration consumes: ``batch_size x grad_accum`` windows of ``block_size`` tokens."""
    return train.batch_size * train.grad_accum * block_size


def planned_iters(train: TrainConfig, block_size: int, train_tokens: int) -> int:
    """Iterations the run will make: ``max_iters`` or enough for ``epochs`` over the train split."""
    if train.max_iters is not None:
        return train.max_iters
    return max(1, math.ceil(train.epochs * train_tokens / tokens_per_iter(train, block_size)))
