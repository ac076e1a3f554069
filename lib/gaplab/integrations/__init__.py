"""gaplab's onset rule inside other people's trainers: early stopping callbacks for the Hugging Face
``Trainer`` (:mod:`gaplab.integrations.huggingface`) and Lightning (:mod:`gaplab.integrations.lightning`).

Each callback records the curve at every evaluation, applies :data:`gaplab.measure.curves.ONSET_RULE`
to it (:mod:`gaplab.integrations.common`, shared by both), stops training when an onset is confirmed and
writes ``history.csv``, ``analysis.json``, ``early_stop.json`` and the loss figure into the run's output
folder, so ``gaplab analyze`` reads the run like any gaplab phase.

The trainers are optional extras (``pip install 'gaplab[huggingface]'``, ``'gaplab[lightning]'``):
importing ``gaplab`` or this package never imports them; importing a callback module without its extra
raises :class:`gaplab.integrations.common.MissingExtraError` with the install command.
"""
