"""gaplab's early stopping for the Hugging Face ``Trainer``: :class:`GaplabCallback`.

Add it to a Trainer whose ``TrainingArguments`` evaluate every few steps, log the train loss more often
than that, and keep the best checkpoint::

    args = TrainingArguments(output_dir="run", eval_strategy="steps", eval_steps=50, logging_steps=10,
                             save_strategy="steps", save_steps=50, load_best_model_at_end=True,
                             metric_for_best_model="eval_loss")
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[GaplabCallback()])
    trainer.train()

At every evaluation the callback records the mean of the train losses the Trainer logged since the
previous one (``logs["loss"]``) and ``eval_loss``, applies gaplab's onset rule to the curve so far
(:class:`gaplab.integrations.common.OnsetWatch`) and, once it confirms an onset, sets
``control.should_training_stop``.  The Trainer then saves that step's checkpoint (when its save steps
say so) and, with ``load_best_model_at_end``, loads the best eval's weights back; at the start the callback
warns (:class:`~gaplab.integrations.common.BestCheckpointWarning`) when the arguments cannot keep them.
Files go to ``args.output_dir`` (or ``output_dir``): ``history.csv``, ``analysis.json``,
``early_stop.json``, ``figures/loss_curves.png|svg``, ``tensorboard/seed-<seed>/``; the stop line goes to
this module's logger (``gaplab.integrations.huggingface``, level WARNING, so it shows without any logging
set-up).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

from .common import BestCheckpointWarning, MissingExtraError, OnsetWatch, PathLike, StopReport

try:
    import accelerate  # noqa: F401  (the Trainer needs it; a missing one should be named here, not mid-training)
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - the CI venv has the extra; tested with the import blocked
    raise MissingExtraError.for_extra("huggingface", exc) from None

logger = logging.getLogger(__name__)


def _name(value: Any) -> str:
    """A strategy as its plain name ("steps", "epoch", "no", "best"), whether an enum or a string."""
    return str(getattr(value, "value", value))


def checkpoint_problems(args: Any) -> list[str]:
    """Why these ``TrainingArguments`` cannot keep the best eval's weights, or feed the rule a train loss."""
    problems = []
    eval_s, save_s, log_s = _name(args.eval_strategy), _name(args.save_strategy), _name(args.logging_strategy)
    eval_steps = args.eval_steps or args.logging_steps
    if eval_s == "no":
        problems.append("eval_strategy is 'no': the Trainer never evaluates, so gaplab's rule never runs")
    if not args.load_best_model_at_end:
        problems.append(
            "load_best_model_at_end is False: when gaplab stops training the Trainer keeps the last step's "
            "weights, past the onset; set load_best_model_at_end=True and metric_for_best_model='eval_loss'"
        )
    elif args.metric_for_best_model not in (None, "loss", "eval_loss"):
        problems.append(
            f"metric_for_best_model is {args.metric_for_best_model!r}: the Trainer keeps the best checkpoint by "
            "that metric, not by the eval loss that gaplab's rule reads; set it to 'eval_loss'"
        )
    if save_s not in (eval_s, "best"):
        problems.append(
            f"save_strategy {save_s!r} differs from eval_strategy {eval_s!r}: the best eval may have no checkpoint "
            "to load; save at every eval (the same strategy and steps)"
        )
    elif save_s == eval_s == "steps" and _whole(args.save_steps) and _whole(eval_steps):
        if int(args.save_steps) % int(eval_steps):
            problems.append(
                f"save_steps={args.save_steps} is not a multiple of eval_steps={eval_steps}: the best eval may have "
                "no checkpoint to load; make save_steps a multiple of eval_steps (best: equal)"
            )
    if log_s != "steps" or (_whole(eval_steps) and _whole(args.logging_steps) and args.logging_steps > eval_steps):
        problems.append(
            f"logging every {args.logging_steps} steps ({log_s}) and evaluating every {eval_steps}: some evals get "
            "no train loss; log the train loss at least a few times per eval (logging_steps <= eval_steps / 3)"
        )
    return problems


def _whole(x: Any) -> bool:
    return isinstance(x, (int, float)) and x >= 1 and float(x).is_integer()


class GaplabCallback(TrainerCallback):
    """Stop a Hugging Face ``Trainer`` at the overfitting onset that gaplab's one rule confirms.

    ``output_dir``: where the files go (default: ``args.output_dir``); ``stop``: set
    ``control.should_training_stop`` when an onset is confirmed (False: only record and report);
    ``figure``: draw the loss figure at the end; ``tensorboard``: each eval's scalars in
    ``tensorboard/seed-<args.seed>/`` (gaplab's tags); ``vocab_size``: for the verdict (default: the model's
    ``config.vocab_size``).  After training, :attr:`report` is the :class:`StopReport` and
    :attr:`watch` holds the curve.
    """

    def __init__(
        self,
        output_dir: Optional[PathLike] = None,
        *,
        stop: bool = True,
        figure: bool = True,
        tensorboard: bool = True,
        vocab_size: Optional[int] = None,
    ):
        self.output_dir = output_dir
        self.stop = stop
        self.figure = figure
        self.tensorboard = tensorboard
        self.vocab_size = vocab_size
        self.watch: Optional[OnsetWatch] = None
        self.report: Optional[StopReport] = None
        self._lr = float("nan")
        self._training = False  # evals outside trainer.train() (a trainer.evaluate() after it) are not recorded

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        vocab = self.vocab_size or getattr(getattr(model, "config", None), "vocab_size", None)
        out = self.output_dir if self.output_dir is not None else args.output_dir
        self.watch = OnsetWatch(
            out, stop=self.stop, vocab_size=vocab, figure=self.figure, tensorboard=self.tensorboard, seed=args.seed
        )
        self.report = None
        self._training = True
        for problem in checkpoint_problems(args):
            warnings.warn(f"GaplabCallback: {problem}.", BestCheckpointWarning, stacklevel=2)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._training and logs and "loss" in logs:  # a training log (eval logs have eval_loss)
            self.watch.add_train_loss(logs["loss"])
            self._lr = logs.get("learning_rate", self._lr)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not self._training or not metrics or "eval_loss" not in metrics:
            return
        self.watch.add_eval(state.global_step, metrics["eval_loss"], lr=self._lr, epochs=state.epoch)
        if self.watch.should_stop:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self.watch is None or not self._training:
            return
        self._training = False
        checkpoint = state.best_model_checkpoint if args.load_best_model_at_end else None
        best_step = getattr(state, "best_global_step", None)
        if checkpoint and best_step not in (None, self.watch.best_iter):
            checkpoint = f"{checkpoint} (the Trainer's best, at step {best_step})"
        self.report = self.watch.finish(state.global_step, state.max_steps, checkpoint)
        if self.report.stopped or self.report.onset_iter is not None:
            logger.warning(self.report.message)
        else:
            logger.info(self.report.message)
