"""The training keys of ``metrics.json``: one record, :class:`TrainMetrics`, defined here where it is written.

The trainer (:func:`gaplab.train.loop.train_phase`) builds it at the end of a run and merges it into
``metrics.json``; the later stages add their own keys beside it (``analysis``, ``samples``, ``replicates``),
which this record leaves alone.  A reader gets the training keys back with :meth:`TrainMetrics.read`, so a
renamed field fails where it is read (an ``AttributeError``, or one sentence naming the file for a file
written by another version), not as a ``KeyError`` rooms away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import CorruptFileError
from ..files import read_json, update_json
from ..units import finite_or_none, perplexity
from .inputs import TrainData

if TYPE_CHECKING:  # the record itself reads and writes without torch: readers need not import it
    import torch

METRICS_FILE = "metrics.json"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _about_data(data: TrainData) -> dict[str, Any]:
    """The :class:`TrainMetrics` fields that describe the data trained on."""
    return dict(
        corpus_fingerprint=data.corpus_fingerprint,
        val_fingerprint=data.val_fingerprint,
        val_text_fingerprint=data.val_text_fingerprint,
        val_unseen_token_share=data.val_unseen_token_share,
        val_unseen_byte_share=data.val_unseen_byte_share,
        train_bytes=int(data.train_bytes.sum()) if data.train_bytes is not None else None,
        val_bytes=int(data.val_bytes.sum())
        if data.val_bytes is not None
        else None,  # tokens/byte: val_tokens/val_bytes
        tokenizer=data.tokenizer,
        vocab_size=data.vocab_size,
        vocab_size_original=data.vocab_size_original,
    )


@dataclass
class TrainMetrics:
    """One training run's numbers (losses in nats per token, ``*_bpb`` in bits per UTF-8 byte)."""

    best_val_loss: Optional[float]  # the lowest scheduled val loss (ckpt/best.pt); None if none was finite
    best_iter: int  # its iteration (-1: none)
    final_train_loss: float  # the last eval's
    final_val_loss: float
    final_gap: float  # final_val_loss - final_train_loss
    best_val_bpb: Optional[float]
    final_val_bpb: Optional[float]
    final_train_bpb: Optional[float]
    best_val_perplexity: Optional[float]  # exp(loss); None when not finite
    final_val_perplexity: Optional[float]
    final_train_perplexity: Optional[float]
    params: dict[str, int]  # {total, embedding, non_embedding} (gaplab.model.gpt.count_params)
    train_tokens: int  # tokens in the train / val split
    val_tokens: int
    tokens_per_param_total: float  # train tokens per parameter, embeddings included (Chinchilla's convention)
    tokens_per_param_non_emb: float  # per non-embedding parameter (Kaplan's N)
    epochs: float  # tokens trained / train tokens
    iters: int  # iterations trained
    max_iters: int  # iterations planned
    tokens_per_iter: int
    wall_time_s: float
    train_time_s: float  # time in optimizer steps only
    tokens_per_s: Optional[float]  # tokens trained / train_time_s
    device: str
    dtype: str
    head_dtype: str  # precision of the head's matmuls in the training loss
    threads: int
    stop_reason: str  # max_iters, early_stop (patience N), stopped by user, non-finite loss at iter N
    corpus_fingerprint: str
    val_fingerprint: Optional[str]  # the val text and its vocabulary: nats per token compare only when equal
    val_text_fingerprint: Optional[str]  # the val text alone: bits per byte compare when equal
    val_unseen_token_share: Optional[float]
    val_unseen_byte_share: Optional[float]
    train_bytes: Optional[int]  # UTF-8 bytes of the train / val split
    val_bytes: Optional[int]
    tokenizer: Optional[str]
    vocab_size: int
    vocab_size_original: int
    versions: dict[str, str]  # {gaplab, torch, python}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The JSON keys, in the order they are written."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def fields_named(cls, *names: str) -> tuple[str, ...]:
        """``names``, each checked to be a field: a reader that lists keys fails at import when one is renamed."""
        unknown = [n for n in names if n not in cls.keys()]
        if unknown:
            raise AttributeError(f"TrainMetrics has no field {', '.join(unknown)}")
        return names

    @classmethod
    def from_run(
        cls,
        *,
        data: TrainData,
        last_row: dict[str, Any],
        best_row: dict[str, Any],
        best_val: float,
        best_iter: int,
        counts: dict[str, int],
        iters: int,
        max_iters: int,
        tokens_per_iter: int,
        wall_time_s: float,
        train_seconds: float,
        device: torch.device,
        dtype: torch.dtype,
        head_dtype: Optional[torch.dtype],
        stop_reason: str,
    ) -> TrainMetrics:
        """The record of a run that ended: its last and best history rows, and how far and how fast it went."""
        import torch

        from .checkpoint import versions

        n_train, tokens_trained = len(data.train), iters * tokens_per_iter
        return cls(
            best_val_loss=best_val if math.isfinite(best_val) else None,
            best_iter=best_iter,
            final_train_loss=last_row["train_loss"],
            final_val_loss=last_row["val_loss"],
            final_gap=last_row["gap"],
            best_val_bpb=finite_or_none(best_row.get("val_bpb")),
            final_val_bpb=finite_or_none(last_row["val_bpb"]),
            final_train_bpb=finite_or_none(last_row["train_bpb"]),
            best_val_perplexity=perplexity(best_val),
            final_val_perplexity=perplexity(last_row["val_loss"]),
            final_train_perplexity=perplexity(last_row["train_loss"]),
            params=counts,
            train_tokens=n_train,
            val_tokens=len(data.val),
            tokens_per_param_total=n_train / max(1, counts["total"]),
            tokens_per_param_non_emb=n_train / max(1, counts["non_embedding"]),
            epochs=tokens_trained / n_train,
            iters=iters,
            max_iters=max_iters,
            tokens_per_iter=tokens_per_iter,
            wall_time_s=round(wall_time_s, 3),
            train_time_s=round(train_seconds, 3),
            tokens_per_s=tokens_trained / train_seconds if train_seconds > 0 else None,
            device=str(device),
            dtype=_dtype_name(dtype),
            head_dtype=_dtype_name(head_dtype or dtype),
            threads=torch.get_num_threads(),
            stop_reason=stop_reason,
            **_about_data(data),
            versions=versions(),
        )

    # ----------------------------------------------------------------------- as JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in field order."""
        return {name: getattr(self, name) for name in self.keys()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = METRICS_FILE) -> TrainMetrics:
        """The training keys of a ``metrics.json`` object (the keys later stages added are ignored)."""
        if not isinstance(raw, dict):
            raise CorruptFileError(f"{where}: holds {type(raw).__name__}; a JSON object was expected")
        missing = [k for k in cls.keys() if k not in raw]
        if missing:
            raise CorruptFileError(
                f"{where}: lacks the training keys {', '.join(missing)} (written by another gaplab version, "
                "or not by the trainer); train the phase again"
            )
        return cls(**{k: raw[k] for k in cls.keys()})

    @classmethod
    def read(cls, run_dir: Union[str, Path]) -> TrainMetrics:
        """The training keys of ``run_dir/metrics.json``; one sentence naming the file if it does not read."""
        path = Path(run_dir) / METRICS_FILE
        raw = read_json(path)
        if raw is None:
            raise CorruptFileError(f"{path}: no such file; train the phase first (gaplab run, or gaplab train)")
        return cls.from_dict(raw, str(path))

    def write(self, run_dir: Union[str, Path]) -> None:
        """Merge the training keys into ``run_dir/metrics.json`` (atomically; other keys are kept)."""
        update_json(Path(run_dir) / METRICS_FILE, self.to_dict())

    # ----------------------------------------------------------------------- for readers written against the dict
    def __getitem__(self, key: str) -> Any:
        """``metrics["best_val_loss"]``: read access by JSON key, for callers written against the old dict."""
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self.keys() else default
