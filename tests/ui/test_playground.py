"""The playground's logic: readouts, the risk rule, save-as-phase, and the widgets driven from Python."""

import time

import numpy as np
import pytest
import yaml
from gaplab import files as files_mod
from gaplab.errors import StudyError
from gaplab.pipeline.config import load_study, validate_phase
from gaplab.ui.playground import (
    CorpusStats,
    describe_changes,
    outcome_line,
    predict_risk,
    readout,
    settings_to_phase,
)
from gaplab.ui.playground_save import next_phase_name, run_hint, save_as_phase
from gaplab.ui.playground_view import Playground, live_plot_into

# Seed 003, phase 1: 1,000 tokens, 2 layers, 2 heads, n_embd 32, block 16, 500 iters of batch 4, GPT-2 vocabulary.
SEED_P1 = dict(
    corpus="json+logging",
    max_tokens=1000,
    n_layer=2,
    n_head=2,
    n_embd=32,
    block_size=16,
    max_iters=500,
    batch_size=4,
    learning_rate=1e-3,
    compact=False,
)
# A fast, valid run for training tests: 1 layer, compact vocabulary, 2,000 tokens of json.
TINY = dict(
    corpus="json",
    max_tokens=2000,
    compact=True,
    n_layer=1,
    n_head=2,
    n_embd=32,
    block_size=32,
    max_iters=40,
    batch_size=8,
    learning_rate=3e-3,
    eval_iters=2,
    evals=4,
)


def fake_stats(tokens=100_000, vocab=50257, distinct=300):
    """A corpus stream of ``tokens`` ids cycling through ``distinct`` values."""
    return CorpusStats("json+logging", "gpt2", np.arange(tokens, dtype=np.int64) % distinct, vocab)


# --------------------------------------------------------------------------- readout
def test_seed_phase1_readout_by_hand():
    r = readout(SEED_P1, stats=fake_stats())
    # per block: 2 LayerNorms 2*(32+32) + attention 32*96+96 + 32*32+32 + MLP 32*128+128 + 128*32+32 = 12,704;
    # two blocks + final LayerNorm (64) = 25,472.  Embedding: 50,257*32 + 16*32 = 1,608,736.
    assert r["params_non_embedding"] == 25_472
    assert r["params_embedding"] == 1_608_736
    assert r["params_total"] == 1_634_208
    assert r["embedding_share"] == pytest.approx(1_608_736 / 1_634_208)
    assert round(r["embedding_share"], 2) == 0.98  # the seed's "98% of model!"
    assert (r["train_tokens"], r["val_tokens"]) == (900, 100)
    assert r["tokens_per_param"] == pytest.approx(900 / 1_634_208)  # all parameters, as Chinchilla counts them
    assert r["tokens_per_param_non_emb"] == pytest.approx(900 / 25_472)  # 0.0353, Kaplan's N
    assert r["tokens_per_iter"] == 64 and r["tokens_seen"] == 32_000
    assert r["epochs"] == pytest.approx(32_000 / 900)  # 35.6
    assert r["chinchilla_tokens"] == 20 * 1_634_208
    assert r["kaplan_tokens"] == pytest.approx(5e3 * 25_472**0.74)
    assert r["risk"] == "overfitting-high"
    assert "0.000551 tokens per parameter (all counted" in r["prediction"] and "35.6 epochs" in r["prediction"]
    assert "98%" in r["embedding_note"] and "Only 300 of GPT-2's 50,257 tokens" in r["embedding_note"]
    assert r["problems"] == []


def test_readout_matches_the_real_model():
    from gaplab.model.gpt import GPT
    from gaplab.schema import ModelConfig

    r = readout(SEED_P1, stats=fake_stats())
    model = GPT(ModelConfig(block_size=16, n_layer=2, n_head=2, n_embd=32), 50257)
    assert model.param_breakdown() == {
        "total": r["params_total"],
        "embedding": r["params_embedding"],
        "non_embedding": r["params_non_embedding"],
    }


def test_compact_vocabulary_and_small_corpus():
    # stream of 1,500 tokens cycling 40 ids; ask for 5,000 tokens: the whole corpus is used.
    stats = fake_stats(tokens=1500, distinct=40)
    r = readout({**SEED_P1, "max_tokens": 5000, "compact": True}, stats=stats)
    assert (r["train_tokens"], r["val_tokens"], r["corpus_tokens"]) == (1350, 150, 1500)
    assert r["vocab_size"] == 41  # 40 ids seen in train + one unknown id
    assert r["params_embedding"] == 41 * 32 + 16 * 32
    assert r["embedding_note"] == ""
    assert r["epochs"] == pytest.approx(32_000 / 1350)


def test_readout_reports_problems():
    r = readout({**SEED_P1, "n_head": 3}, stats=fake_stats())
    assert any("model.n_embd" in p and "divisible" in p for p in r["problems"])
    r = readout({**SEED_P1, "block_size": 128}, stats=fake_stats())  # 100 val tokens < 129
    assert any("val split has 100 tokens" in p and "129" in p for p in r["problems"])


def test_readout_refuses_values_outside_the_schema():
    with pytest.raises(StudyError, match="data.max_tokens"):
        readout({**SEED_P1, "max_tokens": 0}, stats=fake_stats())
    with pytest.raises(StudyError, match="model.dropout"):
        readout({**SEED_P1, "dropout": 1.5}, stats=fake_stats())


@pytest.mark.parametrize(
    "tokenizer,compact,max_tokens", [("gpt2", True, 3000), ("gpt2", False, 4321), ("char", True, 5000)]
)
def test_exact_sizes_match_prepare_data(tokenizer, compact, max_tokens):
    from gaplab.data.split import prepare_data

    s = {**SEED_P1, "corpus": "json", "tokenizer": tokenizer, "compact": compact, "max_tokens": max_tokens}
    r = readout(s)
    params, problems = validate_phase(settings_to_phase(s), "t", "t")
    assert not problems
    prep = prepare_data(params)
    assert (r["train_tokens"], r["val_tokens"], r["vocab_size"]) == (len(prep.train), len(prep.val), prep.vocab_size)


# --------------------------------------------------------------------------- risk rule
@pytest.mark.parametrize(
    "tpp,epochs,iters,category",
    [
        (0.0353, 35.6, 500, "overfitting-high"),  # seed 003 phase 1
        (19.9, 16.0, 1000, "overfitting-high"),  # boundary: 16 epochs counts
        (1.0, 8.0, 1000, "overfitting"),
        (1.0, 4.0, 1000, "balanced"),  # 4 epochs is still safe
        (25.0, 30.0, 1000, "balanced"),  # many epochs, but >= 20 tokens per parameter
        (50.0, 0.5, 5000, "underfitting"),  # not even one epoch
        (4.2, 1.42, 75, "underfitting"),  # quickstart's underfit phase: 75 steps
        (1.08, 3.8, 400, "balanced"),  # quickstart's balanced phase
        (0.001, 40.0, 50, "overfitting-high"),  # few steps, but 40 epochs of tiny data
    ],
)
def test_predict_risk_categories(tpp, epochs, iters, category):
    risk = predict_risk(tpp, epochs, iters)
    assert risk.category == category
    assert "\n" not in risk.text


def test_predict_risk_text_names_its_numbers():
    assert predict_risk(0.01, 40, 500).text.startswith(
        "High risk of overfitting: 0.01 tokens per parameter (all counted; Chinchilla ~20) and 40 epochs."
    )
    assert "only 50% of the training tokens" in predict_risk(50, 0.5, 5000).text
    assert "only 75 optimizer steps" in predict_risk(4.2, 1.42, 75).text


# --------------------------------------------------------------------------- settings -> phase
def test_settings_to_phase_is_a_valid_phase():
    phase = settings_to_phase(SEED_P1)
    params, problems = validate_phase(phase, "t", "t")
    assert problems == []
    assert params.data.packages == ["json", "logging"] and params.data.max_tokens == 1000
    assert (params.model.n_layer, params.model.n_head, params.model.n_embd, params.model.block_size) == (2, 2, 32, 16)
    assert (params.train.max_iters, params.train.batch_size, params.train.learning_rate) == (500, 4, 1e-3)
    assert params.train.eval_interval == 25  # ~20 evals per run
    assert params.tokenizer.name == "gpt2" and params.tokenizer.compact is False


def test_bad_settings_are_clear_errors():
    with pytest.raises(StudyError, match="model.n_embd"):
        settings_to_phase({**SEED_P1, "n_head": 3})
    with pytest.raises(ValueError, match="unknown playground setting.*n_embed"):
        settings_to_phase({**SEED_P1, "n_embed": 64})
    with pytest.raises(ValueError, match="corpus = 'xml'.*json\\+logging"):
        settings_to_phase({**SEED_P1, "corpus": "xml"})


# --------------------------------------------------------------------------- save as phase
STUDY = """\
# my study: comments survive
study: mine
defaults:
  train: {eval_interval: 10}
phases:
  a:   # the first phase
    train: {max_iters: 20}
  b:
    train: {max_iters: 30}
sizes:
  wee: {n_layer: 1, n_head: 1, n_embd: 16, block_size: 16}
"""


def _scratch_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_save_creates_a_missing_study(tmp_path):
    path = tmp_path / "new folder" / "my-study.yaml"
    assert save_as_phase(path, "p1", SEED_P1) == path
    study = load_study(path)
    assert study.name == "my-study" and [p.name for p in study.phases] == ["p1"]
    ph = study.phase("p1").params
    assert (ph.model.n_embd, ph.data.max_tokens, ph.train.max_iters) == (32, 1000, 500)


def test_save_appends_and_keeps_comments(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    save_as_phase(path, "pg", {**SEED_P1, "n_embd": 64})
    text = path.read_text()
    assert text.startswith(STUDY.split("sizes:")[0])  # everything before the next key, comments included
    assert text.rstrip().endswith("wee: {n_layer: 1, n_head: 1, n_embd: 16, block_size: 16}")
    study = load_study(path)
    assert [p.name for p in study.phases] == ["a", "b", "pg"]
    pg = study.phase("pg").params
    assert pg.model.n_embd == 64 and pg.train.max_iters == 500 and pg.train.eval_interval == 25
    assert study.phase("a").params.train.eval_interval == 10  # the others are untouched
    assert _scratch_files(tmp_path) == []


@pytest.mark.parametrize("name", ["1.5", "yes", "null"])
def test_save_quotes_names_yaml_would_read_as_other_types(tmp_path, name):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    save_as_phase(path, name, SEED_P1)
    assert [p.name for p in load_study(path).phases] == ["a", "b", name]
    assert "# the first phase" in path.read_text()  # appended as text, not re-dumped


@pytest.mark.parametrize(
    "name, message",
    [
        ("b", "already has a phase with this name.*taken: a, b"),
        ("my phase!", "phase name"),
        ("p1\n", "phase name"),
        ("figures", "study-level file or folder"),
    ],
)
def test_save_refuses_a_taken_or_bad_phase_name_and_leaves_the_file(tmp_path, name, message):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    with pytest.raises(StudyError, match=message):
        save_as_phase(path, name, SEED_P1)
    assert path.read_text() == STUDY


def test_save_leaves_the_file_untouched_when_the_study_would_be_invalid(tmp_path):
    # valid alone, but the study's defaults warm up for 1,000 iters and the new phase runs only 500
    text = "study: warm\ndefaults:\n  train: {warmup_iters: 1000}\nphases:\n  long:\n    train: {max_iters: 2000}\n"
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(StudyError) as err:
        save_as_phase(path, "short", SEED_P1)
    assert str(path) in str(err.value) and "train.warmup_iters" in str(err.value)
    assert path.read_text() == text
    assert _scratch_files(tmp_path) == []


def test_save_refuses_an_invalid_study(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("study: broken\nphases:\n  a:\n    modle: {n_layer: 2}\n")
    before = path.read_text()
    with pytest.raises(StudyError, match="unknown section"):
        save_as_phase(path, "new", SEED_P1)
    assert path.read_text() == before


def test_save_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_as_phase(path, "pg", SEED_P1)
    assert path.read_text() == STUDY
    assert _scratch_files(tmp_path) == []


def test_save_overrides_epochs_from_the_defaults(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("study: ep\ndefaults:\n  train: {epochs: 3}\nphases:\n  a: {}\n")
    save_as_phase(path, "pg", SEED_P1)
    pg = load_study(path).phase("pg").params.train
    assert (pg.max_iters, pg.epochs) == (500, None)


def test_save_into_a_list_of_phases(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("study: lst\nphases:\n  - name: a\n    train: {max_iters: 20, eval_interval: 10}\n")
    save_as_phase(path, "pg", SEED_P1)
    assert [p.name for p in load_study(path).phases] == ["a", "pg"]
    assert yaml.safe_load(path.read_text())["phases"][1]["name"] == "pg"


# --------------------------------------------------------------------------- the widgets, without a browser
def test_playground_default_is_seed_phase1_with_a_compact_vocabulary(tmp_path):
    """The default run: seed 003's phase 1 model and data, compact vocabulary (seconds, not minutes, to train);
    the readout still tells the 98 % of GPT-2's full table."""
    pg = Playground(run_dir=tmp_path / "runs", study_path=tmp_path / "study.yaml")
    s = pg.settings
    assert (s.n_layer, s.n_head, s.n_embd, s.block_size, s.max_tokens, s.max_iters, s.batch_size) == (
        2,
        2,
        32,
        16,
        1000,
        500,
        4,
    )
    assert s.compact and s.learning_rate == 3e-3
    assert pg.readout["params_non_embedding"] == 25_472 and pg.readout["risk"] == "overfitting-high"
    assert "1,634,208 parameters, 98% of them embeddings" in pg.readout_panel.value


def test_playground_builds_and_updates_on_change(tmp_path):
    pg = Playground(run_dir=tmp_path / "runs", study_path=tmp_path / "study.yaml", **SEED_P1)
    assert "1,634,208" in pg.readout_panel.value and "High risk of overfitting" in pg.readout_panel.value
    assert pg.embedding_bar.value == pytest.approx(0.98441, abs=1e-5) and pg.embedding_bar.bar_style == "danger"
    pg.controls["n_embd"].value = 48
    # n_embd 48: non-embedding 2*(2*96 + 48*144+144 + 48*48+48 + 48*192+192 + 192*48+48) + 96 = 56,640;
    # embedding 50,257*48 + 16*48 = 2,413,104
    assert pg.readout["params_total"] == 2_469_744
    assert "2,469,744" in pg.readout_panel.value
    pg.controls["compact"].value = True
    assert pg.embedding_bar.value < 0.5 and pg.embedding_bar.bar_style == "info"
    pg.set(n_head=5)
    assert "divisible" in pg.readout_panel.value and pg.train_button.disabled
    pg.set(n_head=4)
    assert not pg.train_button.disabled
    assert pg.settings.n_embd == 48 and pg.settings.compact is True


def test_playground_widgets_have_classes_and_display():
    pg = Playground()
    for widget, cls in (
        (pg.train_button, "gaplab-train"),
        (pg.stop_button, "gaplab-stop"),
        (pg.controls["n_embd"], "gaplab-n-embd"),
        (pg.readout_panel, "gaplab-readout"),
        (pg.curves, "gaplab-curves"),
        (pg.save_button, "gaplab-save"),
        (pg.progress, "gaplab-progress"),
        (pg.ui, "gaplab-playground"),
    ):
        assert cls in widget._dom_classes
    assert pg.controls["max_iters"].description == "iterations"
    assert "application/vnd.jupyter.widget-view+json" in pg._repr_mimebundle_()
    with pytest.raises(ValueError, match="unknown knob"):
        pg.set(n_embed=3)


def test_playground_save_button(tmp_path):
    path = tmp_path / "pg.yaml"
    pg = Playground(run_dir=tmp_path / "runs", study_path=path)
    pg.save_button.click()
    assert "Saved phase <b>playground_1</b>" in pg.save_status.value
    assert pg.phase_name.value == "playground_2"
    pg.phase_name.value = "playground_1"
    pg.save_button.click()
    assert "already has a phase" in pg.save_status.value
    assert [p.name for p in load_study(path).phases] == ["playground_1"]


def test_live_plot_into_an_output_widget():
    import ipywidgets

    out = ipywidgets.Output()
    on_eval = live_plot_into(out, min_interval=0, max_iters=100)
    # before the first eval: a line saying so, not an empty pair of 0-1 axes
    assert len(out.outputs) == 1 and "image/png" not in out.outputs[0]["data"]
    assert "first evaluation" in out.outputs[0]["data"]["text/plain"]
    pngs = []
    for it, (tr, va) in enumerate([(4.0, 4.1), (3.0, 3.4)]):
        on_eval({"iter": it * 10, "train_loss": tr, "val_loss": va, "gap": va - tr})
        assert len(out.outputs) == 1  # redrawn in place, not appended
        pngs.append(out.outputs[0]["data"]["image/png"])
    assert pngs[0] != pngs[1]


def test_live_plot_redraws_are_throttled_until_flush():
    import ipywidgets

    out = ipywidgets.Output()
    on_eval = live_plot_into(out, min_interval=3600)
    on_eval({"iter": 0, "train_loss": 4.0, "val_loss": 4.1, "gap": 0.1})
    first = out.outputs[0]["data"]["image/png"]  # the first eval is drawn at once
    on_eval({"iter": 10, "train_loss": 3.0, "val_loss": 3.4, "gap": 0.4})
    assert out.outputs[0]["data"]["image/png"] == first  # skipped: too soon
    on_eval.flush()
    assert out.outputs[0]["data"]["image/png"] != first


# --------------------------------------------------------------------------- run history, prediction vs outcome
@pytest.mark.parametrize(
    "risk,analysis,line",
    [
        (
            "overfitting-high",
            {"verdict": "overfitting", "onset_iter": 250},
            "predicted: high risk of overfitting → observed: overfitting from iter 250 (as predicted)",
        ),
        (
            "overfitting-high",
            {"verdict": "memorizing", "onset_iter": 100},
            "predicted: high risk of overfitting → observed: memorizing from iter 100 (as predicted)",
        ),
        (
            "underfitting",
            {"verdict": "overfitting", "onset_iter": 40},
            "predicted: likely underfitting → observed: overfitting from iter 40 (not as predicted)",
        ),
        (
            "balanced",
            {"verdict": "healthy", "onset_iter": None},
            "predicted: balanced → observed: healthy (as predicted)",
        ),
        (
            "overfitting",
            {"verdict": "underfitting", "onset_iter": None},
            "predicted: some risk of overfitting → observed: underfitting (not as predicted)",
        ),
    ],
)
def test_outcome_line(risk, analysis, line):
    assert outcome_line(risk, analysis) == line


def test_describe_changes():
    assert describe_changes(SEED_P1, {**SEED_P1, "n_embd": 48, "compact": True}) == "compact off, n_embd 32"
    assert describe_changes(SEED_P1, SEED_P1) == "same settings"
    assert describe_changes({**SEED_P1, "learning_rate": 3e-3}, SEED_P1) == "learning_rate 0.003"


def test_next_phase_name_skips_taken_names(tmp_path):
    path = tmp_path / "params" / "pg.yaml"
    assert next_phase_name(path) == "playground_1"
    save_as_phase(path, "playground_1", SEED_P1)
    save_as_phase(path, "playground_2", SEED_P1)
    assert next_phase_name(path) == "playground_3"
    pg = Playground(run_dir=tmp_path / "runs", study_path=path)  # a second session on the same file
    assert pg.phase_name.value == "playground_3"


def test_run_hint_is_right_from_the_repository_root(tmp_path):
    where, command = run_hint(tmp_path / "repo" / "notebooks" / ".." / "params" / "playground.yaml", "p_1")
    assert where == (tmp_path / "repo").resolve() and command == "gaplab run params/playground.yaml --phases p_1"
    where, command = run_hint(tmp_path / "elsewhere.yaml", "p_1")
    assert where is None and command == f"gaplab run {(tmp_path / 'elsewhere.yaml').resolve()} --phases p_1"


def test_playground_save_message_names_the_command_from_the_repository_root(tmp_path):
    (tmp_path / "notebooks").mkdir()
    pg = Playground(run_dir=tmp_path / "runs", study_path=tmp_path / "notebooks" / ".." / "params" / "pg.yaml")
    pg.save()
    assert f"from the repository root (<code>{tmp_path.resolve()}</code>)" in pg.save_status.value
    assert "<code>gaplab run params/pg.yaml --phases playground_1</code>" in pg.save_status.value


@pytest.mark.slow
def test_two_runs_make_a_history_and_each_ends_with_prediction_vs_outcome(tmp_path, one_torch_thread):
    from gaplab.measure.curves import analyze_run

    pg = Playground(run_dir=tmp_path / "runs", **{**TINY, "evals": 5})
    seen_locked = []
    pg.controls["n_embd"].observe(lambda ch: seen_locked.append(ch), names="disabled")
    pg.train(wait=True)
    assert pg.error is None, pg.log.outputs
    assert [c["new"] for c in seen_locked] == [True, False]  # locked while it trained, unlocked after
    first = pg.runs[0]
    a = analyze_run(tmp_path / "runs" / "run-001")  # the one verdict function, on the run's folder
    assert first.outcome == outcome_line(pg.readout["risk"], a) and first.outcome.startswith("predicted: ")
    assert first.outcome in pg.outcome.value
    pg.set(n_embd=16)
    pg.train(wait=True)
    assert pg.error is None, pg.log.outputs
    assert [r.name for r in pg.runs] == ["run-001", "run-002"]
    assert pg.runs[1].outcome in pg.outcome.value
    assert "run-002" in pg.history_panel.value and "changed: n_embd 16" in pg.history_panel.value
    # the second run was drawn over the first one's val curve, labelled with what the first one had
    assert pg.earlier_curves(pg.runs[1].settings)[0][0] == "run-001: n_embd 32"
    assert pg.curves.outputs[0]["data"]["image/png"]


@pytest.mark.slow
def test_playground_trains_in_the_background(tmp_path):
    pg = Playground(run_dir=tmp_path / "runs", **TINY)
    pg.train(wait=True)
    assert pg.error is None, pg.log.outputs
    m = pg.last_metrics
    assert m["iters"] == 40 and m["stop_reason"] == "max_iters"
    assert pg.last_run_dir == tmp_path / "runs" / "run-001"
    assert (pg.last_run_dir / "ckpt" / "best.pt").exists() and (pg.last_run_dir / "history.csv").exists()
    assert pg.progress.value == 40 and "done" in pg.status.value
    assert "image/png" in pg.curves.outputs[0]["data"]
    assert len(pg.samples) == 3 and "Samples from the best checkpoint" in pg.log.outputs[0]["text"]
    assert not pg.train_button.disabled and pg.stop_button.disabled
    assert m["train_tokens"] == pg.readout["train_tokens"] and m["vocab_size"] == pg.readout["vocab_size"]
    assert m["params"]["total"] == pg.readout["params_total"]


@pytest.mark.slow
def test_playground_stop_keeps_what_was_learned(tmp_path):
    pg = Playground(run_dir=tmp_path / "runs", **{**TINY, "max_iters": 5000})
    pg.train()
    deadline = time.time() + 60
    while not pg.status.value.startswith("iter") and pg.training and time.time() < deadline:
        time.sleep(0.05)  # wait for the first evaluation
    pg.stop_button.click()
    if pg.training:  # while it stops: the button says so and cannot be pressed again
        assert pg.stop_button.disabled and pg.stop_button.description == "Stopping ..."
        assert pg.stop_button.button_style != "danger"
    m = pg.wait(timeout=120)
    assert pg.stop_button.disabled and pg.stop_button.description == "Stop"
    assert pg.error is None, pg.log.outputs
    assert m["stop_reason"] == "stopped by user" and m["iters"] < 5000
    assert (pg.last_run_dir / "ckpt" / "best.pt").exists() and pg.samples
