"""Every log format reads, from real logs kept as fixtures (sources in fixtures/README.md) or from files the
real writer produced; each test checks numbers a careful reader sees in the file."""

import math
from pathlib import Path

import pytest
from gaplab.logs import READERS, read_log

FIXTURES = Path(__file__).parent / "fixtures"


def read(rel, **kw):
    return read_log(FIXTURES / rel, **kw)


def test_every_reader_is_registered_in_order():
    names = list(READERS)
    assert names[0] == "hf_trainer_state" and names[-1] == "csv"
    assert {"hf_console", "hf_table", "lightning_csv", "keras_csv", "tensorboard", "wandb_csv", "mlx_lm"} <= set(names)
    assert {"nanogpt", "llamafactory", "gaplab_history"} <= set(names)


def test_hf_trainer_state_train_between_evals_and_best_checkpoint():
    run = read("hf_trainer_state/financial_news_10epochs_trainer_state.json")
    assert run.format == "hf_trainer_state" and run.x_unit == "step" and run.val_key == "eval_loss"
    h = run.history
    assert list(h["iter"][:3]) == [1035, 2070, 3105]
    assert h["val_loss"].idxmin() == 2 and h["val_loss"].min() == pytest.approx(1.3262380361557007)
    # two train losses (steps 500 and 1000) before the first eval: their mean; two points fit a line exactly,
    # so they say nothing of the noise around the trend (the rule uses the curve's own scatter instead)
    assert h["train_loss"][0] == pytest.approx((1.497 + 1.4898) / 2)
    assert h["train_loss_se"].isna().all()
    assert list(h["train_points"]) == [2] * 10
    assert run.best_checkpoint.endswith("checkpoint-8280")
    assert len(run.train_points) == 20 and run.train_points["epoch"].iloc[0] == pytest.approx(500 / 1035)


def test_hf_trainer_state_with_one_train_log_per_eval_has_no_spread():
    h = read("hf_trainer_state/mood_bert_3epochs_trainer_state.json").history
    assert list(h["train_points"]) == [1, 1, 1] and h["train_loss_se"].isna().all()
    assert h["val_loss"].iloc[-1] / h["val_loss"].min() == pytest.approx(0.901841938495636 / 0.807374119758606)


def test_hf_state_folder_reads_the_latest_checkpoint(tmp_path):
    src = (FIXTURES / "hf_trainer_state/financial_news_10epochs_trainer_state.json").read_text()
    early = src.replace('"global_step": 10350', '"global_step": 5175')
    for step, text in ((5175, early), (10350, src)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(text)
    run = read_log(tmp_path)
    assert run.path.endswith("checkpoint-10350/trainer_state.json")
    assert set(run.checkpoints) == {5175, 10350} and run.checkpoints[5175].endswith("checkpoint-5175")
    assert read_log(tmp_path / "checkpoint-5175").path.endswith("checkpoint-5175/trainer_state.json")
    assert any("latest trainer state" in n for n in run.notes)


@pytest.mark.parametrize("name", ["lora_imdb_new_style.log", "financial_news_old_style.log"])
def test_hf_console_dicts_among_progress_bars(name):
    run = read(f"hf_console/{name}")
    assert run.format == "hf_console" and run.x_unit == "epoch"
    state = "lora_imdb_distilbert" if "imdb" in name else "financial_news_10epochs"
    expected = read(f"hf_trainer_state/{state}_trainer_state.json").history
    # the console prints 4 significant digits (new style) or the full float (old style)
    tol = 1e-3 if "new" in name else 1e-12
    assert list(run.history["val_loss"]) == pytest.approx(list(expected["val_loss"]), rel=tol)
    assert list(run.history["train_loss"]) == pytest.approx(list(expected["train_loss"]), rel=tol)
    assert any("summary" in n for n in run.notes)


def test_hf_table_model_card():
    run = read("hf_table/gpt2_wikitext2_README.md")
    assert run.format == "hf_table" and list(run.history["iter"]) == [2804, 5608, 8412]
    assert list(run.history["train_loss"]) == [5.4451, 5.0583, 4.9032]
    assert run.history["epoch"].tolist() == [1.0, 2.0, 3.0]


def test_hf_table_all_no_log_keeps_every_eval():
    run = read("hf_table/financebench_dora_README.md")
    assert len(run.history) == 17 and run.history["train_loss"].isna().all()
    assert run.history["val_loss"].min() == 2.9699
    assert any("not logged at any of the 17 evals" in n and "No log" in n for n in run.notes)


def test_hf_table_in_a_notebook_html_output(tmp_path):
    cell = (
        '"<table border=\\"1\\" class=\\"dataframe\\">\\n <thead>\\n <tr style=\\"text-align: left;\\">\\n'
        "<th>Step</th>\\n <th>Training Loss</th>\\n <th>Validation Loss</th>\\n </tr>\\n </thead>\\n <tbody>\\n"
        "<tr>\\n <td>100</td>\\n <td>No log</td>\\n <td>2.510</td>\\n </tr>\\n"
        "<tr>\\n <td>200</td>\\n <td>2.300</td>\\n <td>2.450</td>\\n </tr>\\n </tbody>\\n</table>"
    )
    path = tmp_path / "finetune.ipynb"
    path.write_text('{"cells": [{"outputs": [{"data": {"text/html": [' + cell + '"]}}]}]}')
    run = read_log(path)
    assert run.format == "hf_table" and list(run.history["val_loss"]) == [2.51, 2.45]
    assert math.isnan(run.history["train_loss"][0]) and run.history["train_loss"][1] == 2.3


def test_lightning_sparse_rows_step_and_epoch_keys():
    run = read("lightning_csv/slm_training_metrics.csv")
    assert run.format == "lightning_csv" and run.val_key == "val_loss" and run.val_keys == ["val_loss"]
    h = run.history
    assert h["iter"][0] == 286 and h["val_loss"][0] == pytest.approx(6.833683967590332)
    first_epoch = [8.620475769042969, 7.601476669311523, 7.221154689788818, 6.983570575714111, 6.828794956207275]
    assert h["train_loss"][0] == pytest.approx(sum(first_epoch) / 5)  # train_loss_step, not train_loss_epoch
    assert h["train_points"][0] == 5 and h["epoch"][0] == 0
    assert set(run.train_points["epoch"].unique()) == set(range(10))


def test_lightning_small_log():
    h = read("lightning_csv/gpttt_metrics.csv").history
    assert list(h["iter"]) == [199, 399] and h["train_points"].tolist() == [4, 4]


def test_keras_csv_epochs():
    run = read("keras_csv/tomato_leaf_training_log.csv")
    assert run.format == "keras_csv" and run.x_unit == "epoch" and len(run.history) == 29
    assert run.history["iter"][18] == 18 and run.history["val_loss"].idxmin() == 18
    assert run.history["epoch"][0] == 1  # epochs completed at the first eval


def test_tensorboard_pytorch_writer_every_point():
    run = read("tensorboard/slm_curve_pytorch")
    lightning = read("lightning_csv/slm_training_metrics.csv").history
    assert run.format == "tensorboard" and run.val_key == "val/loss"
    assert list(run.history["iter"]) == list(lightning["iter"])
    assert list(run.history["val_loss"]) == pytest.approx(list(lightning["val_loss"]), rel=1e-6)  # float32 on disk
    assert len(run.train_points) == 57


def test_tensorboard_keras_train_and_validation_runs():
    run = read("tensorboard/tomato_leaf_keras_style")
    assert run.val_key == "validation/epoch_loss" and run.x_unit == "epoch" and len(run.history) == 29
    assert run.history["train_loss"][0] == pytest.approx(1.843022346496582, rel=1e-6)


def test_tensorboard_gaplab_tracker_tags():
    run = read("tensorboard/gaplab_quickstart_overfit")
    history = read("gaplab_history/quickstart_overfit_history.csv").history
    assert run.val_key == "loss_nats/val"
    assert list(run.history["val_loss"]) == pytest.approx(list(history["val_loss"]), rel=1e-6)


def test_tensorboard_single_event_file():
    file = next((FIXTURES / "tensorboard/slm_curve_pytorch").glob("events*"))
    assert read_log(file).format == "tensorboard"


def test_wandb_history_uses_the_global_step():
    run = read("wandb_csv/financial_news_wandb_history.csv")
    assert run.format == "wandb_csv" and run.val_key == "eval/loss"
    assert list(run.history["iter"][:2]) == [1035, 2070] and run.history["train_points"][0] == 2


def test_wandb_plain_keys():
    run = read("wandb_csv/tomato_leaf_wandb_history.csv")
    assert run.val_key == "val_loss" and not run.history["train_loss"].isna().any()
    assert any("_step" in n for n in run.notes)


def test_mlx_lm_val_and_train_lines():
    run = read("mlx_lm/slm_curve_mlx_output.txt")
    assert run.format == "mlx_lm" and run.history["iter"][0] == 1 and math.isnan(run.history["train_loss"][0])
    assert run.history["val_loss"][1] == 6.834 and run.history["train_points"][1] == 5


def test_nanogpt_lines():
    run = read("nanogpt/bigram_readme_run.txt")
    assert run.format == "nanogpt" and len(run.history) == 10
    assert run.history["train_loss"][1] == 2.0049 and run.history["val_loss"][1] == 2.0904


def test_nanogpt_overfitting_run():
    h = read("nanogpt/era_session21_training_logs.txt").history
    assert len(h) == 11 and h["iter"][h["val_loss"].idxmin()] == 3000 and h["val_loss"].iloc[-1] == 1.5565
    assert h["train_loss"].is_monotonic_decreasing


def test_nanogpt_iter_lines_are_train_points(tmp_path):
    lines = ["step 0: train loss 4.2874, val loss 4.2823"]
    lines += [f"iter {i}: loss {4.2 - i / 100:.4f}, time 12.31ms, mfu -100.00%" for i in range(0, 20, 10)]
    lines += ["step 20: train loss 3.9000, val loss 3.9500", "iter 20: loss 3.9, time 11.2ms, mfu 1.00%"]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    run = read_log(path)
    assert list(run.train_points["step"]) == [0, 10, 20] and run.history["train_loss"][1] == 3.9


def test_raschka_style_lines(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text(
        "Ep 1 (Step 000000): Train loss 9.817, Val loss 9.924\nEp 2 (Step 000005): Train loss 8.066, Val loss 8.332\n"
    )
    run = read_log(path)
    assert run.format == "nanogpt" and list(run.history["iter"]) == [0, 5] and list(run.history["epoch"]) == [1, 2]


def test_llamafactory_jsonl():
    run = read("llamafactory/qwen_medical_trainer_log.jsonl")
    assert run.format == "llamafactory" and list(run.history["iter"]) == [500]
    assert run.history["train_points"][0] == 50 and run.history["val_loss"][0] == pytest.approx(1.6410622596740723)


def test_gaplab_history_keeps_its_standard_errors():
    run = read("gaplab_history/quickstart_overfit_history.csv")
    assert run.format == "gaplab_history" and run.history["train_loss_se"][1] == pytest.approx(0.059078152462676)
    assert run.history["epoch"][1] == pytest.approx(8.533333333333333)


def test_generic_csv_with_usual_names(tmp_path):
    path = tmp_path / "losses.csv"
    path.write_text("iteration,train/loss,valid/loss\n100,2.5,2.6\n200,2.1,2.3\n300,1.9,2.35\n")
    run = read_log(path)
    assert run.format == "csv" and run.val_key == "valid/loss" and list(run.history["train_loss"]) == [2.5, 2.1, 1.9]


def test_format_forces_a_reader():
    path = FIXTURES / "lightning_csv/gpttt_metrics.csv"
    assert read_log(path, format="csv").format == "csv"


def test_console_with_steps_in_some_dicts_uses_the_epoch(tmp_path):
    path = tmp_path / "console.txt"
    path.write_text(
        "{'loss': 2.0, 'epoch': 0.5, 'step': 50}\n{'loss': 1.8, 'epoch': 1.0}\n{'eval_loss': 1.9, 'epoch': 1.0}\n"
    )
    run = read_log(path)
    assert run.x_unit == "epoch" and list(run.history["iter"]) == [1.0] and run.history["train_points"][0] == 2


def test_tensorboard_fast_path_equals_event_pb2():
    from gaplab.logs.tensorboard_events import fast_scalars, proto_scalars

    files = sorted((FIXTURES / "tensorboard").rglob("events.out.tfevents*"))
    assert len(files) == 6
    for file in files:
        fast, slow = fast_scalars(file), proto_scalars(file)
        assert sorted(fast) == sorted(slow)
        for tag, (steps, values) in fast.items():
            assert list(steps) == [s for s, _ in slow[tag]]
            assert list(values) == pytest.approx([v for _, v in slow[tag]])


def test_wandb_chart_export_reads_as_generic_csv(tmp_path):
    path = tmp_path / "wandb_export.csv"
    header = '"Step","fine-tune-3 - eval/loss","fine-tune-3 - eval/loss__MIN","fine-tune-3 - eval/loss__MAX"'
    path.write_text(header + '\n"100","2.5","2.5","2.5"\n"200","2.3","2.3","2.3"\n')
    run = read_log(path)
    assert (
        run.format == "csv" and run.val_keys == ["fine-tune-3 - eval/loss"] and list(run.history["iter"]) == [100, 200]
    )


def test_a_folder_with_one_log_file_reads_it(tmp_path):
    version = tmp_path / "lightning_logs" / "version_0"
    version.mkdir(parents=True)
    (version / "metrics.csv").write_text((FIXTURES / "lightning_csv/gpttt_metrics.csv").read_text())
    (version / "hparams.yaml").write_text("lr: 0.001\n")
    run = read_log(version)
    assert run.format == "lightning_csv" and run.path.endswith("metrics.csv")
    assert run.notes[0].startswith("read metrics.csv, the one training log in")
    (version / "copy.csv").write_text((FIXTURES / "lightning_csv/gpttt_metrics.csv").read_text())
    from gaplab.errors import DataError

    with pytest.raises(DataError, match=r"holds 2 training logs \(copy.csv \(lightning_csv\), metrics.csv"):
        read_log(version)


def test_console_numbers_printed_in_wrappers(tmp_path):
    path = tmp_path / "console.txt"
    path.write_text(
        "{'loss': np.float64(2.25), 'grad_norm': tensor(0.51, device='cuda:0'), 'learning_rate': 5e-05, 'epoch': 0.5}\n"
        "{'eval_loss': 2.4, 'eval_accuracy': np.float64(0.61), 'epoch': 0.5}\n"
    )
    run = read_log(path)
    assert run.history["train_loss"][0] == 2.25 and run.history["val_loss"][0] == 2.4


def test_the_logs_own_standard_errors_are_kept(tmp_path):
    h = read("gaplab_history/quickstart_overfit_history.csv").history
    assert h["val_loss_se"][1] == pytest.approx(0.06611383161237885)
    path = tmp_path / "log.csv"
    path.write_text("iter,train_loss,val_loss,val_loss_se,lr\n100,2.5,2.6,0.4,1e-3\n200,2.1,2.3,0.3,1e-3\n")
    run = read_log(path)
    assert list(run.history["val_loss_se"]) == [0.4, 0.3] and run.history["train_loss_se"].isna().all()
    assert read("keras_csv/mnist_cnn_training_log.csv").history["val_loss_se"].isna().all()
