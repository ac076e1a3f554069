"""What the trainer reads from the prepared data: :class:`TrainData`, one record instead of attribute probing.

:func:`gaplab.data.split.prepare_data` gives a :class:`gaplab.data.split.Prepared` (the corpus, its documents,
both tokenizers, ...).  Training needs only the token streams and a few numbers about them; this record holds
exactly those, so it is small and plain enough to send to a replicate's own process (pickled), and a missing
field is an error where it is built, not a ``getattr`` default deep in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

if TYPE_CHECKING:
    from ..data.split import Prepared


@dataclass(frozen=True)
class TrainData:
    """The token streams one phase trains and evaluates on, and what ``metrics.json`` says about them."""

    #: the train and val token streams, in the model's id space (1-D integer arrays)
    train: np.ndarray
    val: np.ndarray
    #: rows of the model's embedding (the compact vocabulary, or the tokenizer's)
    vocab_size: int
    #: the tokenizer's own vocabulary size
    vocab_size_original: int
    #: sha256 of the corpus as read (:attr:`gaplab.data.corpus.Corpus.fingerprint`)
    corpus_fingerprint: str
    #: UTF-8 bytes of each train / val token (aligned with the streams), for bits per byte
    train_bytes: Optional[np.ndarray] = None
    val_bytes: Optional[np.ndarray] = None
    #: per val token: its id occurs in the train split (for the seen / unseen val loss)
    val_seen: Optional[np.ndarray] = None
    #: the val text and the vocabulary it is scored over; the val text alone
    val_fingerprint: Optional[str] = None
    val_text_fingerprint: Optional[str] = None
    #: share of val tokens, and of val bytes, whose id never occurs in the train split
    val_unseen_token_share: Optional[float] = None
    val_unseen_byte_share: Optional[float] = None
    #: the tokenizer's name (``gpt2+compact``, ``bpe``, ...)
    tokenizer: Optional[str] = None

    def __post_init__(self) -> None:  # numpy ints are fine to pass; the model and metrics.json want Python ints
        object.__setattr__(self, "vocab_size", int(self.vocab_size))
        object.__setattr__(self, "vocab_size_original", int(self.vocab_size_original))

    @classmethod
    def from_prepared(cls, prep: Prepared) -> TrainData:
        """The fields of a :class:`gaplab.data.split.Prepared` that training uses."""
        measured = prep.val_seen is not None and prep.val_bytes is not None
        return cls(
            train=prep.train,
            val=prep.val,
            vocab_size=prep.vocab_size,
            vocab_size_original=prep.vocab_size_original,
            corpus_fingerprint=prep.corpus.fingerprint,
            train_bytes=prep.train_bytes,
            val_bytes=prep.val_bytes,
            val_seen=prep.val_seen,
            val_fingerprint=prep.val_fingerprint or None,
            val_text_fingerprint=prep.val_text_fingerprint or None,
            val_unseen_token_share=prep.val_unseen_token_share if measured else None,
            val_unseen_byte_share=prep.val_unseen_byte_share if measured else None,
            tokenizer=prep.tokenizer.name,
        )

    @classmethod
    def of(cls, data: Union[TrainData, Prepared]) -> TrainData:
        """``data`` itself, or the :class:`TrainData` of a :class:`gaplab.data.split.Prepared`."""
        return data if isinstance(data, TrainData) else cls.from_prepared(data)

    @property
    def token_bytes(self) -> Optional[dict[str, np.ndarray]]:
        """``{"train": ..., "val": ...}`` bytes per token for bits per byte; None unless both are known."""
        if self.train_bytes is None or self.val_bytes is None:
            return None
        return {"train": self.train_bytes, "val": self.val_bytes}
