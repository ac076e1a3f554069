"""Tokenizers: tiktoken's GPT-2 ranks (offline), characters, a trained byte-level BPE, and a compact vocabulary.

``bpe`` is a byte-level BPE trained with Hugging Face ``tokenizers`` on the phase's training split
(:func:`train_bpe`; :func:`gaplab.data.split.prepare_data` calls it and keeps it in the phase folder as
``tokenizer.json``).

tiktoken downloads the GPT-2 ranks from the internet on first use.  Here they
come from the ``openai-whisper`` source distribution on PyPI, which ships the
same ranks as ``whisper/assets/gpt2.tiktoken``: :func:`fetch_gpt2_ranks`
downloads that sdist with pip, extracts the one file, checks tiktoken's own
sha256 for ``r50k_base`` and stores it in a tiktoken cache folder under the
name tiktoken looks for (the sha1 of the ranks' URL).  ``r50k_base`` is GPT-2's
vocabulary: same ranks, same split pattern, ``<|endoftext|>`` = 50256.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import TokenizerError
from ..files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from ..schema import BYTE_ALPHABET

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"


R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


WHISPER_SDIST = "openai-whisper==20250625"


WHISPER_MEMBER = "whisper/assets/gpt2.tiktoken"


GPT2_NAMES = ("gpt2", "r50k_base")


ENDOFTEXT = "<|endoftext|>"


def cache_dir() -> Path:
    """``$TIKTOKEN_CACHE_DIR`` if set, else ``~/.cache/gaplab/tiktoken``."""
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "gaplab" / "tiktoken"


def ranks_path(directory: Optional[Path] = None) -> Path:
    return (directory or cache_dir()) / hashlib.sha1(R50K_URL.encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_ranks_from_sdist(sdist: Path, directory: Optional[Path] = None) -> Path:
    """Extract the GPT-2 ranks from a whisper sdist, verify the hash and store them in the cache."""
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(WHISPER_MEMBER)), None)
        if member is None:
            raise TokenizerError(f"{sdist}: has no {WHISPER_MEMBER}")
        data = tar.extractfile(member).read()
    digest = _sha256(data)
    if digest != R50K_SHA256:
        raise TokenizerError(
            f"{sdist}: {WHISPER_MEMBER} has sha256 {digest}, expected {R50K_SHA256} "
            "(tiktoken's hash for r50k_base); refusing to install it"
        )
    return atomic_write_bytes(ranks_path(directory), data)


def pip_download_sdist(requirement: str, dest: Path, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    """``pip download`` one source distribution (no dependencies, no wheels) into ``dest``: the one way gaplab
    and its tests fetch real files, from the package registry and nothing else.  The finished process is
    returned (``args``, ``returncode``, ``stderr``) for the caller to judge."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def fetch_gpt2_ranks(directory: Optional[Path] = None, force: bool = False) -> Path:
    """Provision the GPT-2 ranks offline-style (PyPI only); a no-op when they are already there."""
    target = ranks_path(directory)
    if target.exists() and not force and _sha256(target.read_bytes()) == R50K_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        proc = pip_download_sdist(WHISPER_SDIST, Path(tmp))
        sdists = list(Path(tmp).glob("openai*whisper*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise TokenizerError(
                "could not download the openai-whisper sdist from the package registry "
                f"({' '.join(proc.args[2:])}):\n{proc.stderr.strip()[-800:]}"
            )
        return install_ranks_from_sdist(sdists[0], directory)


class Tokenizer:
    """What the rest of gaplab needs of a tokenizer."""

    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's ids as an int64 array (what data preparation keeps): the same ids as :meth:`encode_batch`."""
        return [np.asarray(ids, dtype=np.int64) for ids in self.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes of each id's text (an int64 array over the vocabulary): what bits per byte divides by.

        A text's bytes are the sum over its tokens, for byte-level BPE and characters alike.
        """
        raise NotImplementedError

    def identity(self) -> str:
        """What makes two tokenizers' ids mean the same thing: name and vocabulary (for the val fingerprint)."""
        return f"{self.name}:{self.vocab_size}"


#: texts per task of :meth:`TiktokenTokenizer.encode_arrays`
_ENCODE_CHUNK = 1000


class TiktokenTokenizer(Tokenizer):
    def __init__(self, encoding, name: str):
        self.enc = encoding
        self.name = name
        self.vocab_size = encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts), num_threads=max(1, os.cpu_count() or 1))

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`encode_batch`'s ids as int64 arrays, straight from tiktoken's buffers (no list of Python ints
        per text), a chunk of texts per task on one thread per core (tiktoken encodes with the GIL released).
        ``encode_ordinary_batch`` makes one task per text: on 100 K records of a few hundred tokens its
        thread-pool bookkeeping and the lists cost more than a third of the encoding (18.5 -> 11 s CPU)."""
        texts = list(texts)
        threads = max(1, os.cpu_count() or 1)
        size = max(1, min(_ENCODE_CHUNK, -(-len(texts) // threads)))
        if threads == 1 or len(texts) <= size:
            return self._encode_chunk(texts)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(self._encode_chunk, [texts[i : i + size] for i in range(0, len(texts), size)])
            return [ids for part in parts for ids in part]

    def _encode_chunk(self, texts: list[str]) -> list[np.ndarray]:
        return [self._encode_array(t) for t in texts]

    def _encode_array(self, text: str) -> np.ndarray:
        try:
            ids = self.enc.encode_to_numpy(text, disallowed_special=())  # every special token as plain text
        except UnicodeEncodeError:  # lone surrogates: replaced, as tiktoken's encode_ordinary does
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            ids = self.enc.encode_to_numpy(text, disallowed_special=())
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode([int(i) for i in ids])

    def byte_lengths(self) -> np.ndarray:
        if getattr(self, "_byte_lengths", None) is None:
            self._byte_lengths = np.array(
                [len(self.enc.decode_single_token_bytes(i)) for i in range(self.vocab_size)], dtype=np.int64
            )
        return self._byte_lengths


_GPT2 = None


def gpt2_encoding():
    """tiktoken's GPT-2 encoding built from the provisioned, hash-checked ranks (no network)."""
    global _GPT2
    if _GPT2 is None:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
        from tiktoken_ext.openai_public import r50k_pat_str

        path = ranks_path()
        if not path.exists():
            raise TokenizerError(
                f"the GPT-2 ranks are not provisioned (looked for {path}). "
                "Run `gaplab tokenizer fetch` (or `make setup`), which takes them from the "
                "openai-whisper sdist on PyPI and checks tiktoken's sha256; "
                "or use tokenizer.name: char"
            )
        ranks = load_tiktoken_bpe(str(path), expected_hash=R50K_SHA256)
        _GPT2 = tiktoken.Encoding(
            name="gpt2",
            pat_str=r50k_pat_str,
            mergeable_ranks=ranks,
            special_tokens={ENDOFTEXT: 50256},
            explicit_n_vocab=50257,
        )
    return _GPT2


class CharTokenizer(Tokenizer):
    """One id per character seen in the corpus, plus one unknown id (decoded as U+FFFD)."""

    def __init__(self, chars: Iterable[str]):
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.unk = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self.name = "char"

    def encode(self, text: str) -> list[int]:
        get, unk = self.stoi.get, self.unk
        return [get(c, unk) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[i] if 0 <= i < len(chars) else "\ufffd" for i in ids)

    def byte_lengths(self) -> np.ndarray:
        return np.array([len(c.encode("utf-8", "surrogatepass")) for c in self.chars] + [3], dtype=np.int64)

    def identity(self) -> str:
        return "char:" + hashlib.sha256("".join(self.chars).encode("utf-8", "surrogatepass")).hexdigest()[:16]


class CompactTokenizer(Tokenizer):
    """A base tokenizer whose ids are remapped to a kept set: those of the training split, or of the whole corpus.

    Ids outside the kept set map to one unknown id (the last one),
    which decodes to U+FFFD.  The model's embedding and head shrink from the
    base vocabulary to ``len(kept) + 1`` rows.
    """

    def __init__(self, base: Tokenizer, kept_ids: np.ndarray):
        self.base = base
        self.kept = np.asarray(np.unique(kept_ids), dtype=np.int64)
        self.unk = len(self.kept)
        self.vocab_size = len(self.kept) + 1
        self.name = f"{base.name}+compact"
        self._lut = np.full(base.vocab_size, self.unk, dtype=np.int64)
        self._lut[self.kept] = np.arange(len(self.kept))

    def identity(self) -> str:
        kept = hashlib.sha256(self.kept.astype("<i8").tobytes()).hexdigest()[:16]
        return f"{self.base.identity()}+compact:{kept}"

    def byte_lengths(self) -> np.ndarray:
        """Bytes per compact id; the unknown id has no single text (measure bytes on base ids instead)."""
        return np.append(self.base.byte_lengths()[self.kept], 0)

    def to_compact(self, ids) -> np.ndarray:
        return self._lut[np.asarray(ids, dtype=np.int64)]

    def encode(self, text: str) -> list[int]:
        return self.to_compact(self.base.encode(text)).tolist()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.to_compact(ids).tolist() for ids in self.base.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        out, run = [], []
        for i in ids:
            i = int(i)
            if 0 <= i < len(self.kept):
                run.append(int(self.kept[i]))
            else:
                if run:
                    out.append(self.base.decode(run))
                    run = []
                out.append("\ufffd")
        if run:
            out.append(self.base.decode(run))
        return "".join(out)


# --------------------------------------------------------------------------- byte-level BPE
#: the trained BPE in a phase folder (Hugging Face's format: ``tokenizers.Tokenizer.from_file`` reads it)
BPE_FILE = "tokenizer.json"
#: what it was trained on, beside it: the stamp that :func:`phase_bpe` compares, sizes, library version
BPE_TRAINING_FILE = "tokenizer_training.json"
#: the training recipe, part of the stamp: a change here retrains every phase's BPE
BPE_RECIPE = (
    "byte-level BPE: ByteLevel pre-tokenizer (GPT-2's split pattern, no prefix space), all 256 bytes "
    "as the initial alphabet, no special tokens, min_frequency 0"
)


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted: each character of a byte-level token is one byte.

    Bytes that print (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves; the other 68 are
    shifted to U+0100 and up, in byte order.  ``tokenizers``' ByteLevel uses this table.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    table, shift = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + shift)] = b
            shift += 1
    return table


class BPEVocabTooLarge(TokenizerError):
    """The training text runs out of pairs to merge before ``vocab_size`` tokens."""

    def __init__(self, message: str, supported: int):
        super().__init__(message)
        self.supported = supported


class BPETokenizer(Tokenizer):
    """A byte-level BPE (a ``tokenizers.Tokenizer``): any text encodes, decoding gives the text back exactly."""

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        self.name = "bpe"
        self.vocab_size = int(hf_tokenizer.get_vocab_size())
        self._byte_lengths = None

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(text))

    def to_json(self) -> str:
        return self.hf.to_str()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes of id ``i`` (may be part of a UTF-8 character, as tiktoken's single-token bytes)."""
        table = _byte_decoder()
        return bytes(table[c] for c in self.hf.id_to_token(int(i)))

    def byte_lengths(self) -> np.ndarray:
        if self._byte_lengths is None:
            self._byte_lengths = np.array([len(self.token_bytes(i)) for i in range(self.vocab_size)], dtype=np.int64)
        return self._byte_lengths

    def identity(self) -> str:
        return "bpe:" + hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def train_bpe(texts: Sequence[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts`` (each one a separate piece of text).

    Deterministic: the same texts and size give the same merges and ids (``tokenizers`` breaks ties between
    equally frequent pairs by their ids, and the byte alphabet comes sorted), so a phase's BPE is a function
    of its data settings.  Raises :class:`BPEVocabTooLarge` when the texts run out of pairs first.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < BYTE_ALPHABET:
        raise TokenizerError(
            f"tokenizer.vocab_size = {vocab_size}: below the byte alphabet; allowed: an integer "
            f">= {BYTE_ALPHABET} (a byte-level BPE starts from all {BYTE_ALPHABET} byte values)"
        )
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(list(texts), trainer=trainer, length=len(texts))
    tok = BPETokenizer(hf)
    if tok.vocab_size < vocab_size:
        chars = sum(len(t) for t in texts)
        raise BPEVocabTooLarge(
            f"tokenizer.vocab_size = {vocab_size}: the training text ({chars:,} characters) supports at most "
            f"{tok.vocab_size:,} BPE tokens (by then every word in it is a single token); allowed: "
            f"{BYTE_ALPHABET} to {tok.vocab_size}",
            tok.vocab_size,
        )
    return tok


def bpe_stamp(texts: Sequence[str], vocab_size: int) -> str:
    """What a BPE was trained on: the recipe, the size and the training texts (a sha256)."""
    h = hashlib.sha256(f"{BPE_RECIPE}\0{vocab_size}\0".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def phase_bpe(texts: Sequence[str], vocab_size: int, run_dir=None, reuse_only: bool = False) -> BPETokenizer:
    """The phase's BPE: ``run_dir/tokenizer.json`` when it was trained on these texts, else trained (and saved).

    Every stage reads the same file, so evaluation, sampling and the data report use the tokenizer the
    model was trained with.  ``reuse_only`` (04_samples, a resumed 02_train) refuses to train a new one:
    a missing or different ``tokenizer.json`` there means the checkpoints were made with another tokenizer.
    """
    stamp = bpe_stamp(texts, vocab_size)
    if run_dir is not None:
        path, info_path = Path(run_dir) / BPE_FILE, Path(run_dir) / BPE_TRAINING_FILE
        info = read_json(info_path, None) if info_path.exists() else None
        if path.exists() and isinstance(info, dict) and info.get("stamp") == stamp:
            text = path.read_text(encoding="utf-8")
            if hashlib.sha256(text.encode()).hexdigest() == info.get("tokenizer_sha256"):
                return BPETokenizer.from_json(text)
        if reuse_only:
            what = (
                "is missing"
                if not path.exists()
                else "was trained on other text or with another vocab_size than this phase's settings give"
            )
            raise TokenizerError(
                f"{path} {what}, and the checkpoints in {run_dir} need the tokenizer they were "
                "trained with; allowed: run 01_inspect_data and 02_train for this run_dir first "
                "(they train and save it), or restore the phase's settings"
            )
    tok = train_bpe(texts, vocab_size)
    if run_dir is not None:
        import tokenizers

        text = tok.to_json()
        atomic_write_text(path, text)
        atomic_write_json(
            info_path,
            {
                "stamp": stamp,
                "tokenizer_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "recipe": BPE_RECIPE,
                "vocab_size": tok.vocab_size,
                "merges": tok.vocab_size - BYTE_ALPHABET,
                "train_texts": len(texts),
                "train_characters": sum(len(t) for t in texts),
                "tokenizers_version": tokenizers.__version__,
            },
        )
    return tok


def get_tokenizer(name: str, corpus_texts: Optional[Iterable[str]] = None) -> Tokenizer:
    """The base tokenizer a study names: ``gpt2`` (offline ranks), ``char``, or another tiktoken encoding."""
    if name == "bpe":
        raise TokenizerError(
            "tokenizer.name bpe is trained on a phase's training split: build it with "
            "gaplab.data.split.prepare_data (or gaplab.data.tokenizer.train_bpe), not get_tokenizer"
        )
    if name in GPT2_NAMES:
        return TiktokenTokenizer(gpt2_encoding(), name)
    if name == "char":
        if corpus_texts is None:
            raise TokenizerError("the char tokenizer needs the corpus to build its vocabulary")
        chars: set[str] = set()
        for t in corpus_texts:
            chars.update(t)
        return CharTokenizer(chars)
    try:
        import tiktoken

        return TiktokenTokenizer(tiktoken.get_encoding(name), name)
    except Exception as exc:  # network errors, unknown names
        raise TokenizerError(
            f"tokenizer.name {name!r}: tiktoken could not load it ({type(exc).__name__}). "
            "Only gpt2/r50k_base are provisioned offline; use one of those or char"
        ) from None
