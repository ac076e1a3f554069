"""From a phase's data settings to train and validation token arrays.

:func:`prepare_data` reads the corpus, tokenizes every document, keeps the
first ``data.max_tokens`` tokens in document order (the seed's
``dataset_size``; reading and tokenizing stop there, and a long last document
is tokenized only as far as needed, unless the vocabulary must see the whole
corpus: ``compact_from: corpus`` or the ``char`` tokenizer), splits them and, with ``tokenizer.compact``, remaps ids to
those present in the training split (``compact_from: train``) or in the
whole corpus (``compact_from: corpus``).  It also reports the split's
composition: tokens and documents per source label in train and in val (seed
001 lost 19 of its 20 key rows to validation because they sat at the end of
the file and the split took the tail).

Strategies (``data.split``):

- ``tail``: the last ``val_fraction`` of the token stream is validation (as
  nanoGPT and the seed do).  One document may straddle the cut.
- ``documents``: a seeded shuffle of whole documents; documents go to
  validation until it holds ``val_fraction`` of the tokens (one document always stays in train).
- ``chunks``: the stream is cut into ``chunk_size`` pieces and a seeded
  ``val_fraction`` of them goes to validation.

With ``data.split_on: text`` the same strategies cut the corpus *text* before tokenizing, counting
characters instead of tokens (``chunk_size`` is then in characters): the text of the documents and
separators in order, its last ``val_fraction`` of characters (``tail``), whole documents until val holds
``val_fraction`` of the characters (``documents``) or seeded character chunks (``chunks``).  Each piece
of text is then tokenized on its own, so every tokenizer is scored on the same val text (equal
``val_text_fingerprint``: bits per byte compare), and a ``bpe`` tokenizer is trained on the training
pieces only, before any val text is tokenized (:func:`gaplab.data.tokenizer.phase_bpe`).

With ``data.val_path`` the split is the user's own and nothing is re-split: the documents of ``data.path``
(a file or folder) are train and those of ``data.val_path`` are val, each document wholly on its side
(``doc_split``), every document and separator tokenized alone (a ``bpe`` is trained on the train side).
``split``, ``val_fraction`` and ``max_tokens`` do not apply; ``max_train_tokens`` does.

``data.max_train_tokens`` then keeps only part of the training side: its
``chunk_size`` pieces in a seeded order (``data.seed + 1``) until that many
tokens, put back in stream order.  Validation is untouched, so phases that
differ only in ``max_train_tokens`` are scored on the same val set, and a
smaller training set is a subset of every larger one, spread over the whole
corpus rather than its first documents.  (``max_tokens`` instead cuts the
corpus before the split: each size gets its own, narrower val set.)

What the evaluation needs to report losses that compare (:class:`Prepared`):
the UTF-8 bytes of every token (bits per byte divides a text's total loss by
them, a unit no tokenizer changes), which validation tokens never occur in the
training split (with a compact vocabulary from train they all become one
unknown id that is never a training target), and two fingerprints of the
validation set: ``val_fingerprint`` (its text AND the vocabulary it is scored
over: equal fingerprints, comparable nats per token) and
``val_text_fingerprint`` (its text alone: comparable bits per byte).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataError, Problem, StudyError
from ..schema import PhaseParams
from .corpus import Corpus, Document, fingerprint, load_corpus
from .tokenizer import BPEVocabTooLarge, CompactTokenizer, Tokenizer, get_tokenizer, phase_bpe


@dataclass
class Prepared:
    corpus: Corpus  # every document read, before max_tokens
    documents: list[Document]  # documents kept after max_tokens (the last may be cut)
    doc_tokens: list[np.ndarray]  # base-tokenizer ids per kept document (without separator)
    base_tokenizer: Tokenizer
    tokenizer: Tokenizer  # the model's id space (compact applied if on)
    train_base: np.ndarray  # train stream, base ids
    val_base: np.ndarray
    train: np.ndarray  # train stream, model ids
    val: np.ndarray
    doc_split: list[str]  # per kept document: "train", "val", "both" ("unused": left out by max_train_tokens)
    composition: dict[str, Any]
    vocab_size: int
    vocab_size_original: int
    train_bytes: np.ndarray = field(default=None)  # UTF-8 bytes of each train token (int64, aligned with train)
    val_bytes: np.ndarray = field(default=None)
    val_seen: np.ndarray = field(default=None)  # per val token: its base id occurs in the training split
    val_fingerprint: str = ""  # the val text and the vocabulary it is scored over
    val_text_fingerprint: str = ""  # the val text alone
    train_owners: Optional[np.ndarray] = None  # per train token: its document's index in ``documents``
    val_owners: Optional[np.ndarray] = None
    #: the split is the user's own (``data.val_path``): documents[i] is wholly ``doc_split[i]``, train
    #: documents first; their sources are file names (one label for both sides when each is one file)
    user_split: bool = False

    @property
    def val_unseen_token_share(self) -> float:
        """Share of val tokens whose id never occurs in the training split."""
        return float(1.0 - self.val_seen.mean()) if len(self.val_seen) else 0.0

    @property
    def val_unseen_byte_share(self) -> float:
        """Share of val bytes in tokens whose id never occurs in the training split."""
        total = int(self.val_bytes.sum())
        return float(self.val_bytes[~self.val_seen].sum() / total) if total else 0.0

    @property
    def total_tokens(self) -> int:
        return len(self.train) + len(self.val)


def _stream(doc_tokens: list[np.ndarray], sep: np.ndarray, max_tokens: Optional[int]):
    """Concatenate documents with separators; return (stream, doc index per token, kept count)."""
    parts, owners, total = [], [], 0
    for i, toks in enumerate(doc_tokens):
        piece = np.concatenate([toks, sep]) if len(sep) else toks
        if max_tokens is not None and total + len(piece) > max_tokens:
            piece = piece[: max_tokens - total]
        parts.append(piece)
        owners.append(np.full(len(piece), i, dtype=np.int32))
        total += len(piece)
        if max_tokens is not None and total >= max_tokens:
            break
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), 0
    return np.concatenate(parts).astype(np.int64), np.concatenate(owners), len(parts)


def val_token_count(n: int, val_fraction: float) -> int:
    """Tokens that go to validation out of ``n``: ``round(n * val_fraction)``, at least one."""
    return max(1, int(round(n * val_fraction)))


def _val_mask(data, owners: np.ndarray, n_docs: int, n: int) -> np.ndarray:
    """Boolean mask over the stream: True where the token belongs to validation."""
    mask = np.zeros(n, dtype=bool)
    n_val = val_token_count(n, data.val_fraction)
    rng = np.random.default_rng(data.seed)
    if data.split == "tail":
        mask[n - n_val :] = True
    elif data.split == "documents":
        sizes = np.bincount(owners, minlength=n_docs)
        chosen, got = [], 0
        for d in rng.permutation(n_docs):
            if got >= n_val or len(chosen) == n_docs - 1:  # the last document stays in train
                break
            chosen.append(d)
            got += sizes[d]
        mask = np.isin(owners, chosen)
    else:  # chunks
        size = data.chunk_size
        n_chunks = -(-n // size)
        k = min(n_chunks - 1, max(1, int(round(n_chunks * data.val_fraction)))) if n_chunks > 1 else 0
        for c in rng.choice(n_chunks, size=k, replace=False):
            mask[c * size : (c + 1) * size] = True
    return mask


def _train_subset(data, val_mask: np.ndarray) -> np.ndarray:
    """Mask of the training tokens kept by ``data.max_train_tokens`` (see the module docstring)."""
    train_pos = np.flatnonzero(~val_mask)
    keep = np.zeros(len(val_mask), dtype=bool)
    if len(train_pos) <= data.max_train_tokens:
        keep[train_pos] = True
        return keep
    size = data.chunk_size
    pieces = [train_pos[i : i + size] for i in range(0, len(train_pos), size)]
    got = 0
    for i in np.random.default_rng(data.seed + 1).permutation(len(pieces)):
        take = pieces[i][: data.max_train_tokens - got]
        keep[take] = True
        got += len(take)
        if got >= data.max_train_tokens:
            break
    return keep


def composition(documents: list[Document], train_owners: np.ndarray, val_owners: np.ndarray) -> dict[str, Any]:
    """Tokens and documents per source label in each split (from each token's document), plus each source's
    val share."""
    labels = sorted({d.source for d in documents})
    index = {s: i for i, s in enumerate(labels)}
    doc_label = np.array([index[d.source] for d in documents], dtype=np.int64)
    out: dict[str, Any] = {}
    for split, side_owners in (("train", train_owners), ("val", val_owners)):
        per_doc = np.bincount(side_owners, minlength=len(documents))  # tokens of each document on this side
        tok = np.bincount(doc_label, weights=per_doc, minlength=len(labels)).astype(np.int64)
        dcount = np.bincount(doc_label, weights=per_doc > 0, minlength=len(labels)).astype(np.int64)
        out[split] = {s: {"tokens": int(tok[i]), "documents": int(dcount[i])} for i, s in enumerate(labels)}
    out["val_share_by_source"] = {
        s: (out["val"][s]["tokens"] / max(1, out["val"][s]["tokens"] + out["train"][s]["tokens"])) for s in labels
    }
    return out


def _encode_capped(tok: Tokenizer, text: str, need: int) -> np.ndarray:
    """The first ``need`` tokens of ``text`` (or all of them), tokenizing a prefix when the text is long.

    A 40 MB document cut to 3,000 tokens is not tokenized whole: prefixes of growing length are, until
    two of them agree on the first ``need`` tokens (only the tokens at a prefix's cut can differ from
    the whole text's).
    """
    size = 4 * need + 4096
    if len(text) <= 2 * size:
        return np.asarray(tok.encode(text), dtype=np.int64)[:need]
    prev = None
    while size < len(text):
        ids = np.asarray(tok.encode(text[:size]), dtype=np.int64)
        if prev is not None and len(prev) >= need and np.array_equal(prev[:need], ids[:need]):
            return ids[:need]
        prev, size = ids, 2 * size
    return np.asarray(tok.encode(text), dtype=np.int64)[:need]


def _tokenize(data, tok_cfg) -> tuple[Corpus, Tokenizer, list[np.ndarray]]:
    """Read and tokenize the corpus; with ``data.max_tokens`` (and a vocabulary not taken from the whole
    corpus) reading and tokenizing stop at the document that reaches it."""
    if data.max_tokens is None or tok_cfg.compact_from == "corpus" or tok_cfg.name == "char":
        # the char tokenizer's vocabulary, and compact_from: corpus, are every character / id of the corpus
        corpus = load_corpus(data)
        texts = [d.text for d in corpus.documents]
        base = get_tokenizer(tok_cfg.name, texts + [data.separator])
        return corpus, base, base.encode_arrays(texts)
    base = get_tokenizer(tok_cfg.name, [data.separator])
    per_sep = len(base.encode(data.separator))
    doc_tokens: list[np.ndarray] = []
    total = 0

    def enough(doc: Document) -> bool:
        nonlocal total
        ids = _encode_capped(base, doc.text, data.max_tokens - total)
        doc_tokens.append(ids)
        total += len(ids) + per_sep
        return total >= data.max_tokens

    corpus = load_corpus(data, stop=enough)
    if len(doc_tokens) != len(corpus.documents):  # the generated source does not stream
        doc_tokens = []
        total = 0
        for d in corpus.documents:
            if enough(d):
                break
    return corpus, base, doc_tokens


def _text_pieces(texts: list[str], separator: str, data) -> list[tuple[str, int, bool, bool]]:
    """The corpus text cut by the split (``data.split_on: text``): ``(text, document, is_val, is_separator)``.

    The text is every document followed by the separator, as the token stream is; the split strategies
    of :func:`_val_mask` run over its characters.  Pieces break at every document and separator boundary
    and wherever the split changes side, so each piece is tokenized alone, as documents are.
    """
    parts = [q for i, t in enumerate(texts) for q in ((t, i, False), (separator, i, True))]
    sizes = np.array([len(t) for t, _, _ in parts], dtype=np.int64)
    ends = np.cumsum(sizes)
    n = int(ends[-1]) if len(ends) else 0
    owners = np.repeat(np.array([i for _, i, _ in parts], dtype=np.int32), sizes)
    mask = _val_mask(data, owners, len(texts), n) if n else np.zeros(0, dtype=bool)
    changes = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    out = []
    for (text, doc, is_sep), end, size in zip(parts, ends, sizes):
        start = int(end - size)
        cuts = changes[(changes > start) & (changes < end)] - start
        bounds = [0, *cuts.tolist(), int(size)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b > a:
                out.append((text[a:b], doc, bool(mask[start + a]), is_sep))
    return out


def _tokenize_text_split(
    params: PhaseParams, texts: list[str], phase: str, file: str, tokenizer_dir, reuse_tokenizer: bool
):
    """``data.split_on: text``: cut the text, train a bpe on the training pieces, tokenize every piece.

    Returns ``(base tokenizer, token stream, owner document per token, val mask, tokens per document)``.
    """
    pieces = _text_pieces(texts, params.data.separator, params.data)
    return _tokenize_pieces(params, pieces, texts, phase, file, tokenizer_dir, reuse_tokenizer)


def _tokenize_pieces(params: PhaseParams, pieces, texts: list[str], phase: str, file: str, tokenizer_dir, reuse):
    """Tokenize text pieces ``(text, document, is_val, is_separator)`` each alone (a bpe is trained on the
    training pieces first); returns what :func:`_tokenize_text_split` does."""
    data, tok_cfg = params.data, params.tokenizer
    if tok_cfg.name == "bpe":
        train_texts = [t for t, _, is_val, _ in pieces if not is_val]
        try:
            base = phase_bpe(train_texts, tok_cfg.vocab_size, tokenizer_dir, reuse_only=reuse)
        except BPEVocabTooLarge as exc:
            raise StudyError(
                [Problem(file, phase, "tokenizer.vocab_size", tok_cfg.vocab_size, str(exc).split(": ", 1)[1])]
            ) from None
    else:
        base = get_tokenizer(tok_cfg.name, texts + [data.separator])
    ids = _encode_unique(base, [t for t, _, _, _ in pieces])
    sizes = [len(t) for t in ids]
    stream = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    owners = np.repeat(np.array([d for _, d, _, _ in pieces], dtype=np.int32), sizes)
    mask = np.repeat(np.array([v for _, _, v, _ in pieces], dtype=bool), sizes)
    doc_tokens: list[list[np.ndarray]] = [[] for _ in texts]
    for (_, doc, _, is_sep), toks in zip(pieces, ids):
        if not is_sep:
            doc_tokens[doc].append(toks)
    empty = np.zeros(0, np.int64)
    doc_tokens_flat = [t[0] if len(t) == 1 else np.concatenate(t) if t else empty for t in doc_tokens]
    return base, stream, owners, mask, doc_tokens_flat


def _encode_unique(tok: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Each text's ids, every distinct text tokenized once (the separator between every two documents, and
    the copies in near-identical data, are the same text); equal texts share one read-only array."""
    index: dict[str, int] = {}
    codes = [index.setdefault(t, len(index)) for t in texts]
    unique = tok.encode_arrays(list(index))
    for arr in unique:
        arr.flags.writeable = False
    return [unique[c] for c in codes]


@dataclass
class _Cut:
    """The corpus tokenized and cut into train and val (before max_train_tokens and compact ids)."""

    corpus: Corpus
    documents: list[Document]
    doc_tokens: list[np.ndarray]  # every document's tokens (for compact_from: corpus)
    kept_tokens: list[np.ndarray]  # the kept documents' tokens (the last may be cut by max_tokens)
    base: Tokenizer
    sep: np.ndarray
    stream: np.ndarray
    owners: np.ndarray
    mask: np.ndarray


def load_user_split(data) -> tuple[Corpus, int]:
    """``data.val_path``: the train side's documents, then the val side's; and how many are train.

    Both sides must hold one format and kind of record.  When each side is one file (and no
    ``data.label_field``), every document's source is the two files' names, so the split's composition
    compares like with like; folder sides keep each file's path inside its folder.
    """
    train = load_corpus(data)
    val = load_corpus(data.model_copy(update={"path": data.val_path}))
    if train.shape != val.shape:
        raise DataError(
            f"{data.val_path} (the val side, data.val_path) holds {val.shape or 'other records'} but {data.path} "
            f"(the train side, data.path) holds {train.shape or 'other records'}; allowed: train and val files of one "
            f"format and one kind of record"
        )
    documents = train.documents + val.documents
    train_path, val_path = Path(data.path), Path(data.val_path)
    if train_path.is_file() and val_path.is_file() and not data.label_field:
        for d in documents:
            d.source = f"{train_path.name} + {val_path.name}"
    corpus = Corpus(documents, train.skipped + val.skipped, shape=train.shape)
    corpus.fingerprint = fingerprint(documents)
    return corpus, len(train.documents)


def _cut_user_split(params: PhaseParams, phase: str, file: str, tokenizer_dir, reuse: bool) -> _Cut:
    """``data.val_path``: each document wholly on its own side, as the user split them; nothing re-split."""
    corpus, n_train = load_user_split(params.data)
    texts = [d.text for d in corpus.documents]
    sep = params.data.separator
    pieces = [q for i, t in enumerate(texts) for q in ((t, i, i >= n_train, False), (sep, i, i >= n_train, True))]
    base, stream, owners, mask, doc_tokens = _tokenize_pieces(params, pieces, texts, phase, file, tokenizer_dir, reuse)
    sep_ids = np.asarray(base.encode(sep), dtype=np.int64)
    return _Cut(corpus, corpus.documents, doc_tokens, doc_tokens, base, sep_ids, stream, owners, mask)


def _cut(params: PhaseParams, phase: str, file: str, tokenizer_dir, reuse: bool) -> _Cut:
    """Read, tokenize and split the corpus as ``data`` says (see the module docstring)."""
    data, tok_cfg = params.data, params.tokenizer
    if data.val_path:
        return _cut_user_split(params, phase, file, tokenizer_dir, reuse)
    if data.split_on == "text":
        corpus = load_corpus(data)
        texts = [d.text for d in corpus.documents]
        base, stream, owners, mask, kept_tokens = _tokenize_text_split(params, texts, phase, file, tokenizer_dir, reuse)
        sep = np.asarray(base.encode(data.separator), dtype=np.int64)
        return _Cut(corpus, corpus.documents, kept_tokens, kept_tokens, base, sep, stream, owners, mask)
    corpus, base, doc_tokens = _tokenize(data, tok_cfg)
    sep = np.asarray(base.encode(data.separator), dtype=np.int64)
    stream, owners, kept = _stream(doc_tokens, sep, data.max_tokens)
    kept_tokens = doc_tokens[:kept]
    if kept and data.max_tokens is not None:  # the last document may have been cut by max_tokens
        kept_tokens[-1] = kept_tokens[-1][: int((owners == kept - 1).sum())]
    mask = _val_mask(data, owners, kept, len(stream))
    return _Cut(corpus, corpus.documents[:kept], doc_tokens, kept_tokens, base, sep, stream, owners, mask)


def _size_problems(params: PhaseParams, cut: _Cut, train_base, val_base, phase: str, file: str) -> list[Problem]:
    data, need = params.data, params.model.block_size + 1
    where = (
        f"data.path {data.path}, data.val_path {data.val_path}"
        if data.val_path
        else f"data.max_tokens={data.max_tokens}, data.val_fraction={data.val_fraction}"
    )
    return [
        Problem(
            file,
            phase,
            "model.block_size",
            params.model.block_size,
            f"the {split} split has {len(arr)} tokens but needs at least block_size + 1 = "
            f"{need} (corpus {len(cut.stream)} tokens, {where}); allowed: a smaller block_size or more data",
        )
        for split, arr in (("train", train_base), ("val", val_base))
        if len(arr) < need
    ]


def _doc_split(train_owners: np.ndarray, val_owners: np.ndarray, kept: int) -> list[str]:
    """Per kept document: "train", "val", "both", or "unused" (left out by max_train_tokens)."""
    in_val = np.zeros(kept, dtype=bool)
    in_train = np.zeros(kept, dtype=bool)
    in_val[val_owners] = True  # linear in tokens (np.unique would sort them)
    in_train[train_owners] = True
    names = ("unused", "train", "val", "both")
    return [names[k] for k in (in_train + 2 * in_val.astype(np.int8)).tolist()]


def _sides(mask: np.ndarray, *arrays: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each array's train part (``~mask``) and val part (``mask``); slices, not copies, when the mask is all
    train then all val (the user's own split: train documents first)."""
    n_train = len(mask) - int(np.count_nonzero(mask))
    if not mask[:n_train].any():  # then the rest is all val
        return [(a[:n_train], a[n_train:]) for a in arrays]
    train = ~mask
    return [(a[train], a[mask]) for a in arrays]


def _model_ids(tok_cfg, cut: _Cut, train_base: np.ndarray, val_base: np.ndarray):
    """The model's tokenizer and the two splits in its ids (compact when ``tokenizer.compact``)."""
    if not tok_cfg.compact:
        return cut.base, train_base, val_base
    if tok_cfg.compact_from == "corpus":  # every id of the whole corpus, before max_tokens cut it
        kept_ids = np.unique(np.concatenate([cut.sep, *cut.doc_tokens]))
    else:
        kept_ids = np.unique(train_base)
    model_tok = CompactTokenizer(cut.base, kept_ids)
    return model_tok, model_tok.to_compact(train_base), model_tok.to_compact(val_base)


def prepare_data(
    params: PhaseParams, phase: str = "?", file: str = "(study)", *, tokenizer_dir=None, reuse_tokenizer: bool = False
) -> Prepared:
    """Corpus → tokens → max_tokens cut → split → (compact) ids, with a composition report.

    With ``data.split_on: text`` the split comes first, then the tokens; with ``data.val_path`` the split is
    the user's own (see the module docstring).  A ``bpe`` tokenizer is read from (or trained and saved
    into) ``tokenizer_dir/tokenizer.json``; ``reuse_tokenizer`` refuses to train one there (see
    :func:`gaplab.data.tokenizer.phase_bpe`).
    """
    data = params.data
    cut = _cut(params, phase, file, tokenizer_dir, reuse_tokenizer)
    stream, owners, mask = cut.stream, cut.owners, cut.mask
    if data.max_train_tokens is not None:
        used = mask | _train_subset(data, mask)
        stream, owners, mask = stream[used], owners[used], mask[used]
    (train_base, val_base), (train_owners, val_owners) = _sides(mask, stream, owners)
    problems = _size_problems(params, cut, train_base, val_base, phase, file)
    if problems:
        raise StudyError(problems)
    model_tok, train, val = _model_ids(params.tokenizer, cut, train_base, val_base)
    nbytes = cut.base.byte_lengths()
    val_text = cut.base.decode(val_base.tolist()).encode("utf-8", "surrogatepass")
    return Prepared(
        corpus=cut.corpus,
        documents=cut.documents,
        doc_tokens=cut.kept_tokens,
        base_tokenizer=cut.base,
        tokenizer=model_tok,
        train_base=train_base,
        val_base=val_base,
        train=train,
        val=val,
        doc_split=_doc_split(train_owners, val_owners, len(cut.documents)),
        composition=composition(cut.documents, train_owners, val_owners),
        vocab_size=model_tok.vocab_size,
        vocab_size_original=cut.base.vocab_size,
        train_owners=train_owners,
        val_owners=val_owners,
        train_bytes=nbytes[train_base],
        val_bytes=nbytes[val_base],
        val_seen=_seen_in(val_base, train_base, cut.base.vocab_size),
        val_fingerprint=_fingerprint(model_tok.identity().encode(), val_base.astype("<i8").tobytes()),
        val_text_fingerprint=_fingerprint(val_text),
        user_split=bool(data.val_path),
    )


def _seen_in(ids: np.ndarray, reference: np.ndarray, vocab_size: int) -> np.ndarray:
    """Per id of ``ids``: whether it occurs in ``reference`` (a table over the vocabulary: linear, no sort)."""
    size = max(vocab_size, int(ids.max(initial=-1)) + 1, int(reference.max(initial=-1)) + 1)
    table = np.zeros(size, dtype=bool)
    table[reference] = True
    return table[ids]


def _fingerprint(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]
