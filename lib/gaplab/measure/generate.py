"""Generation from a trained model: prompts, sampling filters, and seeded continuations.

Generation uses temperature, top-k (Fan et al., 2018, "Hierarchical Neural Story Generation") and
nucleus / top-p filtering (Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration"),
each sample drawn with its own ``torch.Generator`` so the result depends only on
``(seed, prompt, sample)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from .text_quality import KeywordSet


# =========================================================================== prompts
def _unescape_line(line: str) -> str:
    r"""``\n``, ``\t`` and ``\\`` in a one-prompt-per-line file become a newline, a tab and a backslash."""
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[line[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def load_prompts(spec: Union[str, Path, Sequence[str]]) -> list[str]:
    r"""The prompts ``sample.prompts`` names: a list as is, or a file.

    A ``.yaml``/``.yml``/``.json`` file holds a list of strings (or of mappings
    with a ``prompt`` key, so a keyword-set file works too).  Any other file has
    one prompt per line; blank lines are skipped and ``\n``, ``\t``, ``\\`` in a
    line are unescaped (so ``def f():\n    return`` is a two-line prompt).
    """
    if isinstance(spec, (list, tuple)):
        prompts = list(spec)
        where = "sample.prompts"
    elif isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        where = f"sample.prompts ({path})"
        if not path.is_file():
            raise ValueError(
                f"sample.prompts: no such prompts file: {path}; allowed: a list of prompts, "
                "or a file with one prompt per line, or a YAML/JSON list"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        if path.suffix.lower() in (".yaml", ".yml", ".json"):
            try:
                raw = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{where}: not valid YAML/JSON: {exc}") from None
            if not isinstance(raw, list):
                raise ValueError(f"{where}: the file holds {type(raw).__name__}; allowed: a list of prompts")
            prompts = [item.get("prompt") if isinstance(item, dict) else item for item in raw]
        else:
            prompts = [_unescape_line(line) for line in text.splitlines() if line.strip()]
    else:
        raise ValueError(f"sample.prompts = {spec!r}: allowed: a list of prompts or a file path")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or p == "":
            raise ValueError(f"{where}: prompt #{i} = {p!r}: allowed: a non-empty string")
    if not prompts:
        raise ValueError(f"{where}: no prompts; allowed: at least one non-empty prompt")
    return prompts


# =========================================================================== generation
def derive_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The generator seed for one sample: a hash of ``(seed, prompt_index, sample_index)`` (63 bits)."""
    digest = hashlib.sha256(f"gaplab-sample:{seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def filter_logits(logits, *, temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None):
    """Scale by ``1/temperature``, keep the ``top_k`` largest, then the nucleus of mass ``top_p``.

    Removed entries become ``-inf``.  Ties with the k-th largest logit are kept.
    Top-p keeps the smallest set of most likely tokens whose probability reaches
    ``top_p`` (the most likely token is always kept).  Works on ``(..., V)``.
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"sample.temperature = {temperature!r}: allowed: > 0")
    out = logits.float() / float(temperature)
    if top_k is not None:
        if top_k <= 0:
            raise ValueError(f"sample.top_k = {top_k!r}: allowed: > 0 or null")
        k = min(int(top_k), out.shape[-1])
        kth = torch.topk(out, k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"sample.top_p = {top_p!r}: allowed: 0 < top_p <= 1 or null")
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def _block_size(model) -> int:
    cfg = getattr(model, "config", None)
    size = getattr(cfg, "block_size", None)
    if not isinstance(size, int) or size <= 0:
        raise ValueError(
            "generate(): the model needs a `config.block_size` (a positive int); "
            f"got {size!r} on {type(model).__name__}"
        )
    return size


class _NextLogits:
    """The logits of the token after a growing list of ids, for one sample.

    A model with ``next_logits``/``new_cache`` (gaplab's GPT) keeps a :class:`gaplab.model.gpt.KVCache`: each new
    token costs one position's forward pass, and the cache starts again from the last ``block`` ids when the
    context outgrows the model.  Any other model (``forward(idx)`` returning logits) reads the whole cropped
    context at every token.
    """

    def __init__(self, model, block: int, device):
        self.model, self.block, self.device = model, block, device
        self.cached = callable(getattr(model, "next_logits", None)) and callable(getattr(model, "new_cache", None))
        self.cache = None

    def __call__(self, ids: list[int]):
        import torch

        if not self.cached:
            idx = torch.tensor([ids[-self.block :]], dtype=torch.long, device=self.device)
            return self.model(idx)[:, -1, :]
        if self.cache is None or len(ids) > self.block:
            self.cache = self.model.new_cache()
            feed = ids[-self.block :]
        else:
            feed = ids[-1:]
        return self.model.next_logits(torch.tensor([feed], dtype=torch.long, device=self.device), self.cache)


def _prompt_ids(tokenizer, prompt: str, index: int) -> list[int]:
    ids = [int(t) for t in tokenizer.encode(prompt)]
    if not ids:
        raise ValueError(
            f"sample.prompts: prompt #{index} = {prompt!r} encodes to no tokens; "
            "allowed: a prompt with at least one token, e.g. '\\n'"
        )
    return ids


def _continue(next_logits: _NextLogits, prompt_ids: list[int], max_new_tokens: int, seed: int, filters) -> list[int]:
    """``prompt_ids`` and ``max_new_tokens`` more, each drawn with a CPU generator seeded with ``seed``."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        last = filter_logits(next_logits(ids).detach().to("cpu"), **filters)
        probs = torch.softmax(last, dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=gen)[0, 0]))
    return ids


def _with_text(row: dict[str, Any], tokenizer, prompt_ids: list[int], ids: list[int]) -> dict[str, Any]:
    new = ids[len(prompt_ids) :]
    row.update(
        text=tokenizer.decode(new),
        full_text=tokenizer.decode(ids),
        token_ids=new,
        prompt_tokens=len(prompt_ids),
        new_tokens=len(new),
    )
    return row


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: Optional[int] = 50,
    top_p: Optional[float] = None,
    num_samples: int = 2,
    seed: int = 1337,
    device: Optional[str] = None,
) -> list[dict[str, Any]]:
    """Sample ``num_samples`` continuations of each prompt.

    Returns one dict per sample: ``prompt, prompt_index, sample_index, seed,
    text`` (the generated continuation only), ``full_text`` (prompt and
    continuation decoded together), ``token_ids`` (generated ids only),
    ``prompt_tokens`` and ``new_tokens``.  The context is cropped to the
    model's ``block_size``; gaplab's GPT reuses the keys and values of earlier
    positions (:class:`_NextLogits`).  Each sample has its own CPU
    ``torch.Generator`` seeded with :func:`derive_seed`, so it does not depend
    on other random number use, on ``num_samples`` or on the other prompts.
    ``device`` defaults to the model's.
    """
    import torch

    if max_new_tokens <= 0:
        raise ValueError(f"sample.max_new_tokens = {max_new_tokens!r}: allowed: > 0")
    if num_samples <= 0:
        raise ValueError(f"sample.num_samples = {num_samples!r}: allowed: > 0")
    prompts = [prompts] if isinstance(prompts, str) else prompts
    block = _block_size(model)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    filters = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            for pi, prompt in enumerate(prompts):
                prompt_ids = _prompt_ids(tokenizer, prompt, pi)
                for si in range(num_samples):
                    s = derive_seed(seed, pi, si)
                    ids = _continue(_NextLogits(model, block, device), prompt_ids, max_new_tokens, s, filters)
                    row = {"prompt": prompt, "prompt_index": pi, "sample_index": si, "seed": s}
                    rows.append(_with_text(row, tokenizer, prompt_ids, ids))
    finally:
        model.train(was_training)
    return rows


def collect_prompts(
    prompts_spec: Union[str, Path, Sequence[str]], keyword_set: Optional[KeywordSet] = None
) -> list[str]:
    """``sample.prompts`` followed by the keyword set's prompts that are not already there."""
    prompts = load_prompts(prompts_spec)
    if keyword_set is not None:
        prompts += [p for p in keyword_set.prompts if p not in prompts]
    return prompts
