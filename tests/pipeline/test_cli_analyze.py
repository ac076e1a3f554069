"""``gaplab analyze LOG [LOG …] [--format F] [--val KEY] [--json] [--plot FILE]``: the verdict for any training
log (one run: a block; several: a table and, for replicates, their spread), and one sentence for a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gaplab import cli

from tests.measure.seed_curves import seed_curve

FIXTURES = Path(__file__).resolve().parents[1] / "logs" / "fixtures"


def write_log(path, curve_name: str = "003 phase 4 log", extra: str = "", extra_values=None) -> str:
    c = seed_curve(curve_name)
    lines = ["iter,train_loss,val_loss" + extra]
    for k, (i, t, v) in enumerate(zip(c.iters, c.train, c.val)):
        lines.append(f"{i},{t},{v}" + (f",{extra_values[k]}" if extra_values else ""))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_analyze_prints_verdict_onset_best_noise_and_reason(tmp_path, capsys):
    log = write_log(tmp_path / "log.csv")
    assert cli.main(["analyze", log]) == 0
    out = capsys.readouterr().out
    assert "verdict: overfitting" in out
    assert "onset: iter 2000" in out and "best val: 4.045 nats at iter 2000" in out
    assert "noise: val ±0.075 nats per eval (scatter)" in out
    assert "reason: Val loss stopped improving at iter 2000" in out
    assert "what to do: Best val 4.045 at iter 2000, last 4.200 at iter 3000: stopping at the best would have " in out


def test_analyze_json_is_one_object(tmp_path, capsys):
    log = write_log(tmp_path / "log.csv", "003 phase 2 log")
    assert cli.main(["analyze", log, "--json"]) == 0
    out = capsys.readouterr().out
    j = json.loads(out)  # one object, strict JSON
    assert out.count("\n") == 1
    assert {"verdict", "onset_iter", "best_iter", "best_val", "reason", "val_noise", "val_noise_source"} <= set(j)
    assert j["verdict"] == "underfitting" and j["onset_iter"] is None
    assert (j["best_iter"], j["best_val"]) == (1000, pytest.approx(1.5665)) and j["file"] == log


def test_analyze_uses_standard_error_columns_and_ignores_others(tmp_path, capsys):
    c = seed_curve("003 phase 4 log")
    log = write_log(
        tmp_path / "log.csv",
        extra=",val_loss_se,tokens_seen,lr",
        extra_values=[f"0.4,{i * 2048},1e-3" for i in c.iters],
    )
    assert cli.main(["analyze", log, "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["val_noise_source"] == "val_loss_se" and j["val_noise"] == pytest.approx(0.4)
    # with evals this noisy the improvement from the 1,000-1,400 plateau (4.23) to 4.04 is within the noise:
    # val stopped improving at the plateau while train fell by 1.3 nats
    assert j["onset_iter"] == 1200 and j["verdict"] == "overfitting"


def test_analyze_vocab_size_flags_a_uniform_guess(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("iter,train_loss,val_loss\n" + "".join(f"{i},{10.8 - i / 1e4},10.82\n" for i in range(0, 1000, 100)))
    assert cli.main(["analyze", str(log), "--vocab-size", "50257", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "underfitting"


@pytest.mark.parametrize(
    "text,what",
    [
        (None, "no such file or folder"),
        ("", "it is empty"),
        ("iter,train_loss\n0,1.0\n", "has no validation loss (its keys: iter, train_loss)"),
        ("hello, world\nthis is not a log\n", "no log reader recognises this file (it starts 'hello, world')"),
        (b"\x80\x02}q\x00.", "no log reader recognises this file (it starts binary data)"),
    ],
)
def test_analyze_bad_log_is_one_sentence_and_exit_2(tmp_path, capsys, text, what):
    path = tmp_path / "log.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    assert cli.main(["analyze", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}") and what in err


@pytest.mark.parametrize(
    "args,what",
    [
        (["--plot", "curves.pdf"], "--plot curves.pdf: .pdf is not allowed; give a .png or .svg file"),
        (["--format", "nonsense"], "--format 'nonsense' is not a log format gaplab reads"),
        (["--val", "eval_other_loss"], "eval_other_loss"),
    ],
)
def test_analyze_bad_option_is_one_sentence_and_exit_2(tmp_path, capsys, args, what):
    log = write_log(tmp_path / "log.csv")
    assert cli.main(["analyze", log, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and what in captured.err


def test_analyze_a_folder_with_no_log_is_one_sentence(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    (tmp_path / "training_args.bin").write_bytes(b"\x80\x04not opened")
    assert cli.main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}") and len(err.strip().splitlines()) == 1


def test_analyze_three_epoch_fine_tune_reads_overfitting_with_thin_evidence(capsys):
    log = FIXTURES / "hf_trainer_state" / "built_3epoch_val_up39_trainer_state.json"
    assert cli.main(["analyze", str(log), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["verdict"] == "overfitting" and j["onset_iter"] == 156 and j["thin_evidence"] is True
    assert j["keep_checkpoint"] == "out/checkpoint-156" and "evidence is thin" in j["reason"]


def test_analyze_several_runs_prints_one_table_and_json_a_list(tmp_path, capsys):
    logs = [write_log(tmp_path / "p4.csv"), write_log(tmp_path / "p2.csv", "003 phase 2 log")]
    no_log = FIXTURES / "hf_table" / "built_20_no_log_README.md"
    assert cli.main(["analyze", *logs, str(no_log)]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()
    assert table[0].split()[:4] == ["run", "evals", "verdict", "onset"] and len(table) == 5
    assert "p4.csv" in table[2] and "overfitting" in table[2] and "underfitting" in table[3]
    assert "built_20_no_log_README.md [Validation Loss]" in table[4] and "5.101 (step 104)" in table[4]
    assert "train loss was not logged at 20 of 23 evals" in out
    assert cli.main(["analyze", *logs, "--json"]) == 0
    objects = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in objects] == logs and [o["verdict"] for o in objects] == ["overfitting", "underfitting"]


def test_analyze_replicates_prints_their_spread(tmp_path, capsys):
    for seed, name in enumerate(("003 phase 4 log", "003 phase 4 table")):
        write_log(tmp_path / f"seed{seed}.csv", name)  # the same run, printed twice: the same evals
    assert cli.main(["analyze", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 replicates (the same 16 evals)" in out and "2 of 2 have an onset" in out


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_analyze_plot_writes_the_figure(tmp_path, capsys, suffix):
    log = write_log(tmp_path / "log.csv")
    figure = tmp_path / f"curves{suffix}"
    assert (
        cli.main(["analyze", log, str(FIXTURES / "hf_table" / "built_20_no_log_README.md"), "--plot", str(figure)]) == 0
    )
    data = figure.read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in data[:2000]
    assert f"figure: {figure}" in capsys.readouterr().out


def test_analyze_skips_blank_lines_and_missing_losses(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("iter,train_loss,val_loss\n0,5.0,5.1\n\n100,4.0,4.4\n200,,\n300,3.0,3.9\n")
    assert cli.main(["analyze", str(log), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["n_evals"] == 3 and j["best_iter"] == 300


def test_analyze_a_folder_with_one_bad_run_says_it_and_analyses_the_rest(capsys):
    assert cli.main(["analyze", str(FIXTURES / "keras_csv")]) == 0
    captured = capsys.readouterr()
    assert "mnist_cnn_training_log.csv" in captured.out and "tomato_leaf_training_log.csv" in captured.out
    assert captured.err.startswith("skipped: ") and "brain_tumor_appended_runs.csv" in captured.err
    assert "Traceback" not in captured.err


def test_analyze_json_of_a_gaplab_history_is_its_metrics_analysis(tmp_path, capsys):
    """`gaplab analyze history.csv --json` gives the analysis metrics.json holds for that run (same keys, values)."""
    import shutil

    from gaplab.measure.curves import judge
    from gaplab.train.history import load_history

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURES / "gaplab_history" / "quickstart_overfit_history.csv", run / "history.csv")
    assert cli.main(["analyze", str(run / "history.csv"), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    expected = judge(load_history(run))
    assert {k: j[k] for k in expected} == expected
