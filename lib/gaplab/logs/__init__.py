"""Training logs written elsewhere, read as one :class:`~gaplab.logs.base.RunLog`: Hugging Face, Lightning,
Keras, TensorBoard, W&B, mlx-lm, nanoGPT, LlamaFactory and gaplab's own ``history.csv``.

``base.py`` is the interface (``RunLog``, ``Reader``, the registry, ``read_log``); each format is one
module here that registers one reader; importing this package registers them all.
"""

from gaplab.logs.base import READERS, Reader, RunLog, read_log, register

__all__ = ["READERS", "Reader", "RunLog", "read_log", "register"]
