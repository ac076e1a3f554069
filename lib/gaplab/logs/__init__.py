"""Training logs written elsewhere, read as one :class:`~gaplab.logs.base.RunLog`: Hugging Face, Lightning,
Keras, TensorBoard, W&B, mlx-lm, nanoGPT, LlamaFactory and gaplab's own ``history.csv``.

``base.py`` is the interface (``RunLog``, ``Reader``, the registry, ``read_log``); ``shape.py`` turns a log's
points into a ``RunLog`` (stitching, NaN cuts, the train level at each eval); each format is one module
here that registers one reader.  Importing this package registers them all, in the order they are tried:
the named formats first, the generic CSV last.
"""

# isort: off
from gaplab.logs import (  # noqa: F401  (each import registers its reader, in this order)
    hf_state,
    llamafactory,
    tensorboard_events,
    hf_console,
    mlx_lm,
    nanogpt,
    hf_table,
    gaplab_history,
    wandb_csv,
    lightning_csv,
    keras_csv,
    generic_csv,
)

# isort: on
from gaplab.logs.base import READERS, Reader, RunLog, read_log, register

__all__ = ["READERS", "Reader", "RunLog", "read_log", "register"]
