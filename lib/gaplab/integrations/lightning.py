"""gaplab's early stopping for Lightning: :class:`GaplabCallback`, a ``lightning.pytorch.Callback``.

Add it to a ``Trainer`` whose module returns its train loss from ``training_step`` and logs its val loss
as ``val_loss`` (``self.log("val_loss", loss)`` in ``validation_step``)::

    trainer = L.Trainer(max_steps=2000, val_check_interval=50, callbacks=[GaplabCallback("run")])
    trainer.fit(model, train_loader, val_loader)

At every validation the callback records the mean of the train losses of the steps since the previous
one (what ``training_step`` returned) and the monitored val loss, applies gaplab's onset rule to the curve
so far (:class:`gaplab.integrations.common.OnsetWatch`) and, once it confirms an onset, sets
``trainer.should_stop``.  With ``restore_best`` (the default) it keeps a CPU copy of the module's
``state_dict`` at the best eval and loads it back when fitting ends; a ``ModelCheckpoint`` in the trainer
(monitoring the same loss) is named in the report as the file that holds them too.  Files go to
``output_dir`` (default: ``trainer.default_root_dir``): ``history.csv``, ``analysis.json``,
``early_stop.json``, ``figures/loss_curves.png|svg``, ``tensorboard/seed-<seed>/``; the stop line goes to
Lightning's log (``rank_zero_info``, shown by default) and is :attr:`GaplabCallback.report`'s ``message``.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Optional

from .common import BestCheckpointWarning, MissingExtraError, OnsetWatch, PathLike, StopReport

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.rank_zero import rank_zero_info
except ImportError as exc:  # pragma: no cover - the CI venv has the extra; tested with the import blocked
    raise MissingExtraError.for_extra("lightning", exc) from None


def _loss_value(outputs: Any) -> float:
    """The train loss in what ``training_step`` returned (a tensor, or a dict with ``"loss"``)."""
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    try:
        return float(value.detach()) if hasattr(value, "detach") else float(value)
    except (TypeError, ValueError):
        return math.nan


class GaplabCallback(pl.Callback):
    """Stop a Lightning ``fit`` at the overfitting onset that gaplab's one rule confirms.

    ``output_dir``: where the files go (default: ``trainer.default_root_dir``); ``monitor``: the logged
    val loss (nats per token); ``stop``: set ``trainer.should_stop`` when an onset is confirmed (False:
    only record and report); ``restore_best``: keep a CPU copy of the weights at the best eval and load
    it back at the end of ``fit``; ``figure``: draw the loss figure; ``tensorboard``: each eval's scalars in
    ``tensorboard/seed-<seed>/`` (the seed ``seed_everything`` set, else 0); ``vocab_size``: for the verdict.
    After ``fit``, :attr:`report` is the :class:`StopReport` and :attr:`watch` holds the curve.
    """

    def __init__(
        self,
        output_dir: Optional[PathLike] = None,
        *,
        monitor: str = "val_loss",
        stop: bool = True,
        restore_best: bool = True,
        figure: bool = True,
        tensorboard: bool = True,
        vocab_size: Optional[int] = None,
    ):
        self.output_dir = output_dir
        self.monitor = monitor
        self.stop = stop
        self.restore_best = restore_best
        self.figure = figure
        self.tensorboard = tensorboard
        self.vocab_size = vocab_size
        self.watch: Optional[OnsetWatch] = None
        self.report: Optional[StopReport] = None
        self.best_state: Optional[dict[str, Any]] = None

    def on_fit_start(self, trainer, pl_module):
        out = self.output_dir if self.output_dir is not None else trainer.default_root_dir
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # what seed_everything set, if it was called
        self.watch = OnsetWatch(
            out, stop=self.stop, vocab_size=self.vocab_size, figure=self.figure, tensorboard=self.tensorboard, seed=seed
        )
        self.report, self.best_state = None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.watch is not None:
            self.watch.add_train_loss(_loss_value(outputs))

    def on_validation_end(self, trainer, pl_module):
        if self.watch is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warnings.warn(
                f"GaplabCallback: no {self.monitor!r} among the logged metrics ({sorted(trainer.callback_metrics)}); "
                f"log the val loss as {self.monitor!r} in validation_step, or pass monitor=",
                BestCheckpointWarning,
                stacklevel=2,
            )
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        per_epoch = trainer.num_training_batches / max(1, trainer.accumulate_grad_batches)
        epochs = trainer.global_step / per_epoch if 0 < per_epoch < math.inf else math.nan
        if self.watch.add_eval(trainer.global_step, float(value), lr=lr, epochs=epochs) and self.restore_best:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        if self.watch.should_stop:
            trainer.should_stop = True

    def on_fit_end(self, trainer, pl_module):
        if self.watch is None:
            return
        checkpoint = None
        if self.restore_best and self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
            checkpoint = "restored into the module (a CPU copy kept at the best eval)"
        saver = trainer.checkpoint_callback
        if saver is not None and getattr(saver, "monitor", None) == self.monitor and saver.best_model_path:
            checkpoint = f"{checkpoint}; also {saver.best_model_path}" if checkpoint else saver.best_model_path
        planned = trainer.estimated_stepping_batches
        planned = int(planned) if isinstance(planned, (int, float)) and math.isfinite(planned) else None
        self.report = self.watch.finish(trainer.global_step, planned, checkpoint)
        rank_zero_info(self.report.message)
