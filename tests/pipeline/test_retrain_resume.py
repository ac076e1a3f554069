"""``gaplab train --resume`` of a run killed after its last eval: the phase is finished without training."""

import json

import pytest
from gaplab import cli
from gaplab.data.split import prepare_data
from gaplab.pipeline.config import load_study
from gaplab.train.metrics import TrainMetrics
from gaplab.train.replicates import train_replicates

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STUDY = """
study: ends
defaults:
  data: {source: stdlib, packages: [json], max_tokens: 4000}
  tokenizer: {name: char}
  model: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 16}
  train: {max_iters: 8, batch_size: 4, eval_interval: 4, eval_iters: 1, threads: 1}
  sample: {enabled: false}
phases:
  p: {}
"""


def test_resume_of_a_run_killed_after_its_last_eval_places_the_phase(tmp_path, capsys):
    study = tmp_path / "ends.yaml"
    study.write_text(STUDY)
    out = tmp_path / "outputs"
    final, work = out / "ends" / "p", out / "ends" / ".staging" / "train-p"
    # what a gaplab train killed after its last eval leaves: its staging folder, ckpt/last.pt at iter 8, no metrics
    ph = load_study(study).phase("p")
    done = train_replicates(ph.params, prepare_data(ph.params, "p", str(study)), work, progress=False)[0]
    (work / "metrics.json").unlink()
    history = (work / "history.csv").read_text()

    assert cli.main(["train", str(study), "--phase", "p", "--outputs", str(out), "--quiet", "--resume"]) == 0
    assert "already at the planned" not in capsys.readouterr().err
    placed = TrainMetrics.read(final)
    assert placed.iters == 8 and placed.stop_reason == "max_iters" and placed.train_time_s == done.train_time_s
    assert placed.final_val_loss == done.final_val_loss and placed.best_iter == done.best_iter
    assert (final / "history.csv").read_text() == history and (final / "ckpt" / "best.pt").is_file()
    assert json.loads((final / "status.json").read_text())["state"] == "trained"
    assert not work.exists()

    # the placed phase is finished: resuming it again has nothing to train, and says so
    assert cli.main(["train", str(study), "--phase", "p", "--outputs", str(out), "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "already at the planned 8 iterations" in err and "raise train.max_iters" in err
    assert TrainMetrics.read(final) == placed and not work.exists()
