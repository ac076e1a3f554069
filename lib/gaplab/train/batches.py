"""Training batches from a seeded generator, and the fixed evaluation windows."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TrainingError


class Batches:
    """Random training windows from a seeded generator, and fixed evaluation windows.

    Token streams are held as int64 tensors on ``device``; a batch is
    ``batch`` windows of ``block + 1`` tokens cut at random offsets.  The
    training offsets come from ``torch.Generator`` seeded with ``seed``; the
    evaluation offsets (``eval_iters x batch`` per split) are drawn once from
    ``seed + 1`` and reused at every eval.  A split with no more distinct
    windows than that is evaluated on each of its windows exactly once: the
    exact mean over the split, and cheaper than drawing the same few windows
    again and again (seed 003's phase 0 has 7 val windows).
    """

    def __init__(
        self,
        train: np.ndarray,
        val: np.ndarray,
        block: int,
        batch: int,
        seed: int,
        eval_iters: int,
        device: torch.device = torch.device("cpu"),
    ):
        self.block, self.batch, self.device = block, batch, torch.device(device)
        self.train = torch.as_tensor(np.asarray(train, dtype=np.int64)).to(self.device)
        self.val = torch.as_tensor(np.asarray(val, dtype=np.int64)).to(self.device)
        for name, data in (("train", self.train), ("val", self.val)):
            if len(data) < block + 1:
                raise TrainingError(
                    f"the {name} split has {len(data)} tokens, but model.block_size = {block} needs at least "
                    f"{block + 1} (one window plus its next-token target); raise data.max_tokens or "
                    f"data.val_fraction, or lower model.block_size"
                )
        self.gen = torch.Generator().manual_seed(seed)
        fixed = torch.Generator().manual_seed(seed + 1)
        n_eval = eval_iters * batch
        self.eval_offsets = {}
        for name, d in (("train", self.train), ("val", self.val)):
            drawn = torch.randint(len(d) - block, (n_eval,), generator=fixed)  # drawn always: same stream
            self.eval_offsets[name] = torch.arange(len(d) - block) if len(d) - block <= n_eval else drawn
        #: per split: True when its evaluation covers every window once (no sampling noise)
        self.exact = {
            name: len(self.eval_offsets[name]) == len(d) - block
            for name, d in (("train", self.train), ("val", self.val))
        }
        self._arange = torch.arange(block + 1, device=self.device)

    def _windows(self, data: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = data[offsets.to(self.device)[:, None] + self._arange]
        return w[:, :-1], w[:, 1:]

    def next_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.randint(len(self.train) - self.block, (self.batch,), generator=self.gen)
        return self._windows(self.train, offsets)

    def eval_batches(self, split: str):
        """``(x, y, positions)`` batches of the fixed evaluation windows; ``positions`` (numpy, like ``y``) are
        the indices of the target tokens in the split's stream, for looking up their bytes."""
        data = self.train if split == "train" else self.val
        offsets = self.eval_offsets[split]
        for s in range(0, len(offsets), self.batch):
            off = offsets[s : s + self.batch]
            x, y = self._windows(data, off)
            yield x, y, off.numpy()[:, None] + 1 + np.arange(self.block)
