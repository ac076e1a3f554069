"""The trainer (schedule, batches, early stop, non-finite stop, exact resume, files) and device resolution."""

from __future__ import annotations

import contextlib
import csv
import math

import gaplab.train.loop as train_mod
import numpy as np
import pytest
import torch
from gaplab.errors import TrainingError
from gaplab.files import atomic_write_json, read_json
from gaplab.model.device import (
    BF16_AUTOCAST_MIN_WIDTH,
    BF16_HEAD_MIN_VOCAB,
    DeviceError,
    autocast_context,
    cpu_has_native_bf16,
    cpu_supports_bf16,
    head_matmul_dtype,
    needs_grad_scaler,
    resolve_device,
    resolve_dtype,
)
from gaplab.schema import PhaseParams, TrainConfig, planned_iters, tokens_per_iter
from gaplab.train.batches import Batches
from gaplab.train.checkpoint import load_checkpoint, load_model
from gaplab.train.history import HISTORY_COLUMNS
from gaplab.train.inputs import TrainData
from gaplab.train.loop import evaluate, train_phase
from gaplab.train.metrics import TrainMetrics
from gaplab.train.schedule import lr_at, make_optimizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ARCH_METRIC_KEYS = {
    "best_val_loss",
    "best_iter",
    "final_train_loss",
    "final_val_loss",
    "final_gap",
    "best_val_perplexity",
    "final_val_perplexity",
    "params",
    "train_tokens",
    "val_tokens",
    "tokens_per_param_total",
    "tokens_per_param_non_emb",
    "epochs",
    "iters",
    "best_val_bpb",
    "final_val_bpb",
    "val_fingerprint",
    "wall_time_s",
    "tokens_per_s",
    "device",
    "dtype",
    "stop_reason",
    "corpus_fingerprint",
    "vocab_size",
    "vocab_size_original",
    "versions",
}


def _data(train, val, vocab: int) -> TrainData:
    return TrainData(
        train=np.asarray(train, dtype=np.int64),
        val=np.asarray(val, dtype=np.int64),
        vocab_size=vocab,
        vocab_size_original=50257,
        corpus_fingerprint="fp-test",
    )


def _pattern_data(vocab: int = 32, period: int = 20) -> TrainData:
    stream = np.tile(np.arange(period), 200)  # a repeated pattern: perfectly predictable after one period
    return _data(stream[:3000], stream[3000:], vocab)


def _phase(model=None, **train) -> PhaseParams:
    t = {"max_iters": 40, "eval_interval": 10, "eval_iters": 2, "batch_size": 4, "learning_rate": 3e-3, "device": "cpu"}
    t.update(train)
    m = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}
    m.update(model or {})
    return PhaseParams.model_validate({"model": m, "train": t})


def _read_history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: float(v) for k, v in r.items()} for r in rows]


# --------------------------------------------------------------------------- schedule, optimizer, batches
def test_lr_warmup_cosine_and_constant():
    t = TrainConfig(learning_rate=1e-3, warmup_iters=10, min_lr=1e-4, lr_schedule="cosine")
    assert lr_at(0, t, 110) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert lr_at(9, t, 110) == pytest.approx(1e-3)
    assert lr_at(10, t, 110) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(60, t, 110) == pytest.approx(5.5e-4)  # half way: the mean of peak and floor
    assert lr_at(110, t, 110) == pytest.approx(1e-4)
    assert lr_at(10, TrainConfig(learning_rate=1e-3), 100) == pytest.approx(
        1e-3 / 10 + 0.5 * (1 + math.cos(math.pi * 0.1)) * 9e-4
    )
    assert lr_at(50, TrainConfig(learning_rate=2e-3, lr_schedule="constant"), 100) == 2e-3


def test_tokens_per_iter_counts_every_window_of_one_step():
    t = TrainConfig(batch_size=4, grad_accum=3, max_iters=None, epochs=2.0)
    assert tokens_per_iter(t, 16) == 4 * 3 * 16
    assert planned_iters(t, 16, 960) == 10  # 2 epochs of 960 tokens at 192 a step


def test_optimizer_decays_matrices_only():
    from gaplab.model.gpt import GPT
    from gaplab.schema import ModelConfig

    model = GPT(ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8), 30)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    # 2 embeddings + per block qkv, attn proj, fc, mlp proj
    assert len(decay["params"]) == 2 + 2 * 4
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_batches_are_shifted_windows_and_eval_windows_are_fixed():
    stream = np.arange(1000)
    b = Batches(stream[:800], stream[800:], block=8, batch=3, seed=5, eval_iters=2)
    x, y = b.next_train()
    assert x.shape == (3, 8) and torch.equal(y, x + 1)  # arange: the target is the next id
    first = [x.clone() for x, _, _ in b.eval_batches("val")]
    b.next_train()
    again = [x.clone() for x, _, _ in b.eval_batches("val")]
    assert len(first) == 2 and all(torch.equal(a, c) for a, c in zip(first, again))
    assert int(torch.cat(first).min()) >= 800  # val windows come from the val stream
    other = Batches(stream[:800], stream[800:], block=8, batch=3, seed=5, eval_iters=2)
    assert torch.equal(other.next_train()[0], x)  # same seed, same batches


def test_short_val_split_is_a_clear_error():
    with pytest.raises(TrainingError, match=r"val split has 16 tokens, but model.block_size = 16 needs at least 17"):
        Batches(np.arange(100), np.arange(16), block=16, batch=2, seed=0, eval_iters=1)


# --------------------------------------------------------------------------- training
def test_loss_falls_on_a_repeated_pattern_and_files_are_consistent(tmp_path):
    atomic_write_json(tmp_path / "metrics.json", {"analysis": {"kept": True}})  # a later stage's key
    rows_seen = []
    m = train_phase(
        _phase(max_iters=60, eval_interval=20, learning_rate=1e-2),
        _pattern_data(),
        tmp_path,
        progress=False,
        on_eval=rows_seen.append,
    )
    hist = _read_history(tmp_path)
    assert [r["iter"] for r in hist] == [0, 20, 40, 60]
    assert hist[0]["train_loss"] == pytest.approx(math.log(32), abs=0.1)  # uniform guessing at init
    assert hist[-1]["train_loss"] < 1.0 and hist[-1]["val_loss"] < 1.0
    tokens_per_iter = 4 * 16
    for r in hist:
        assert r["gap"] == pytest.approx(r["val_loss"] - r["train_loss"], abs=1e-12)
        assert r["tokens_seen"] == r["iter"] * tokens_per_iter
        assert r["epochs"] == pytest.approx(r["tokens_seen"] / 3000)
    assert [r["iter"] for r in rows_seen] == [0, 20, 40, 60]
    assert rows_seen[-1]["val_loss"] == pytest.approx(hist[-1]["val_loss"], abs=0)

    saved = read_json(tmp_path / "metrics.json")
    assert saved["analysis"] == {"kept": True}  # merged, not clobbered
    assert ARCH_METRIC_KEYS <= set(saved)
    assert m.stop_reason == "max_iters" and m.iters == 60
    assert m.final_val_loss == hist[-1]["val_loss"] and m.final_gap == hist[-1]["gap"]
    assert m.best_val_loss == min(r["val_loss"] for r in hist) and m.best_iter == 60
    assert m.best_val_perplexity == pytest.approx(math.exp(m.best_val_loss))
    assert m.params == {
        "total": 4080,
        "embedding": 32 * 16 + 16 * 16,
        "non_embedding": 12 * 16**2 + 13 * 16 + 2 * 16,
    }
    assert m.train_tokens == 3000 and m.val_tokens == 1000
    assert m.tokens_per_param_non_emb == pytest.approx(3000 / 3312)
    assert m.tokens_per_param_total == pytest.approx(3000 / m.params["total"])
    assert m.epochs == pytest.approx(60 * 64 / 3000)
    assert m.corpus_fingerprint == "fp-test" and m.vocab_size == 32 and m.vocab_size_original == 50257
    assert set(m.versions) == {"gaplab", "torch", "python"}
    for name in ("best.pt", "last.pt"):
        assert (tmp_path / "ckpt" / name).exists()


def test_checkpoints_load_weights_only_and_reproduce_the_eval(tmp_path):
    params = _phase(max_iters=20, save_every=[10], dtype="fp32")
    data = _pattern_data()
    train_phase(params, data, tmp_path, progress=False)
    raw = torch.load(tmp_path / "ckpt" / "iter_10.pt", weights_only=True)  # plain types only
    assert raw["iter"] == 10 and raw["model_config"]["n_embd"] == 16 and raw["params"]["train"]["max_iters"] == 20
    assert set(raw["rng"]) >= {"torch", "batches", "numpy", "python"}
    model, ck = load_model(tmp_path / "ckpt" / "iter_10.pt")
    assert not model.training
    batches = Batches(data.train, data.val, 16, 4, params.train.seed, params.train.eval_iters)
    losses = evaluate(model, batches, torch.device("cpu"), torch.float32)
    row10 = next(r for r in _read_history(tmp_path) if r["iter"] == 10)
    assert losses["val"] == pytest.approx(row10["val_loss"], abs=1e-6)
    assert losses["train"] == pytest.approx(row10["train_loss"], abs=1e-6)
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["iter"] == 20


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_resume_after_a_stop_gives_the_identical_history(tmp_path, dropout):
    data = _pattern_data()
    params = _phase(model={"dropout": dropout}, max_iters=40, warmup_iters=5)
    straight = train_phase(params, data, tmp_path / "a", progress=False)

    calls = {"n": 0}

    def stop_at_20() -> bool:  # polled once per iteration, starting at iter 0
        calls["n"] += 1
        return calls["n"] == 21

    first = train_phase(params, data, tmp_path / "b", progress=False, should_stop=stop_at_20)
    assert first.stop_reason == "stopped by user" and first.iters == 20
    resumed = train_phase(params, data, tmp_path / "b", progress=False, resume=True)
    assert resumed.stop_reason == "max_iters" and resumed.iters == 40

    cols = [c for c in HISTORY_COLUMNS if c != "elapsed_s"]
    ha, hb = _read_history(tmp_path / "a"), _read_history(tmp_path / "b")
    assert np.array_equal(
        [[r[c] for c in cols] for r in ha], [[r[c] for c in cols] for r in hb], equal_nan=True
    )  # exact floats
    sa = load_checkpoint(tmp_path / "a" / "ckpt" / "last.pt")["model"]
    sb = load_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert straight.best_val_loss == resumed.best_val_loss


def test_resume_with_more_iterations_continues_the_run(tmp_path):
    data = _pattern_data()
    straight = train_phase(_phase(max_iters=30, lr_schedule="constant"), data, tmp_path / "a", progress=False)
    train_phase(_phase(max_iters=20, lr_schedule="constant"), data, tmp_path / "b", progress=False)
    more = train_phase(_phase(max_iters=30, lr_schedule="constant"), data, tmp_path / "b", progress=False, resume=True)
    assert more.final_val_loss == straight.final_val_loss
    assert more.final_train_loss == straight.final_train_loss
    with pytest.raises(TrainingError, match="at iter 30, past the planned 20 iterations; raise train.max_iters"):
        train_phase(_phase(max_iters=20, lr_schedule="constant"), data, tmp_path / "b", progress=False, resume=True)


def test_resume_at_the_planned_iteration_finishes_without_training(tmp_path, monkeypatch):
    """A run killed after its last eval but before its metrics: the resume trains nothing and writes them."""
    params, data = _phase(max_iters=20), _pattern_data()
    done = train_phase(params, data, tmp_path, progress=False)
    history, last = (tmp_path / "history.csv").read_text(), (tmp_path / "ckpt" / "last.pt").read_bytes()
    (tmp_path / "metrics.json").unlink()
    steps = []
    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: steps.append(1) or 0.0)
    again = train_phase(params, data, tmp_path, progress=False, resume=True)
    assert steps == [] and again.iters == 20 and again.stop_reason == "max_iters"
    timing = ("wall_time_s",)  # the one number that depends on when the metrics were written
    assert {k: v for k, v in again.to_dict().items() if k not in timing} == {
        k: v for k, v in done.to_dict().items() if k not in timing
    }
    assert TrainMetrics.read(tmp_path) == again
    assert (tmp_path / "history.csv").read_text() == history
    assert (tmp_path / "ckpt" / "last.pt").read_bytes() == last  # already the final state: not written again


def test_resume_errors(tmp_path):
    data = _pattern_data()
    with pytest.raises(TrainingError, match="last.pt does not exist"):
        train_phase(_phase(), data, tmp_path, progress=False, resume=True)
    train_phase(_phase(max_iters=10), data, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="holds a model"):
        train_phase(_phase(model={"n_embd": 32}, max_iters=20), data, tmp_path, progress=False, resume=True)


def test_resume_refuses_a_changed_configuration_naming_each_key(tmp_path):
    data = _pattern_data()
    train_phase(_phase(max_iters=20, lr_schedule="constant"), data, tmp_path, progress=False)
    before = (tmp_path / "history.csv").read_text()
    changed = _phase(max_iters=40, lr_schedule="constant", learning_rate=1e-3, batch_size=8)
    with pytest.raises(TrainingError) as err:
        train_phase(changed, data, tmp_path, progress=False, resume=True)
    msg = str(err.value)
    assert "train.learning_rate 0.003 -> 0.001" in msg and "train.batch_size 4 -> 8" in msg
    assert "max_iters" not in msg  # more iterations at a constant rate is a plain continuation
    assert (tmp_path / "history.csv").read_text() == before  # nothing rewritten
    # with a cosine schedule the iterations already trained depend on max_iters: refused too
    train_phase(_phase(max_iters=20), data, tmp_path / "cos", progress=False)
    with pytest.raises(TrainingError, match="train.max_iters 20 -> 40 .the cosine schedule"):
        train_phase(_phase(max_iters=40), data, tmp_path / "cos", progress=False, resume=True)
    # other data under the same settings
    other = _data(data.train[::-1].copy(), data.val, 32)
    with pytest.raises(TrainingError, match="tokens differ"):
        train_phase(_phase(max_iters=40, lr_schedule="constant"), other, tmp_path, progress=False, resume=True)


def test_resume_refusal_on_the_command_line_is_one_sentence_and_exit_2(tmp_path, capsys, root):
    from gaplab import cli

    study = tmp_path / "s.yaml"
    base = (root / "params" / "ci.yaml").read_text()
    study.write_text(base)
    out = tmp_path / "out"
    assert cli.main(["train", str(study), "--phase", "small_data", "--outputs", str(out), "--quiet"]) == 0
    study.write_text(base.replace("learning_rate: 3.0e-3", "learning_rate: 1.0e-3"))
    capsys.readouterr()
    code = cli.main(["train", str(study), "--phase", "small_data", "--outputs", str(out), "--quiet", "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.learning_rate 0.003 -> 0.001" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_stop_between_evals_adds_no_row_to_the_resumed_history(tmp_path):
    data = _pattern_data()
    params = _phase(max_iters=40, lr_schedule="constant")  # evals at 0, 10, 20, 30, 40
    train_phase(params, data, tmp_path / "a", progress=False)
    calls = {"n": 0}

    def stop_at_15() -> bool:  # polled once per iteration, from iter 0
        calls["n"] += 1
        return calls["n"] == 16

    first = train_phase(params, data, tmp_path / "b", progress=False, should_stop=stop_at_15)
    assert first.iters == 15
    assert [r["iter"] for r in _read_history(tmp_path / "b")] == [0, 10, 15]  # the learner sees where it stopped
    assert load_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")["iter"] == 15
    train_phase(params, data, tmp_path / "b", progress=False, resume=True)
    ha, hb = _read_history(tmp_path / "a"), _read_history(tmp_path / "b")
    cols = [c for c in HISTORY_COLUMNS if c != "elapsed_s"]
    assert np.array_equal([[r[c] for c in cols] for r in hb], [[r[c] for c in cols] for r in ha], equal_nan=True)


def test_last_checkpoint_is_written_at_every_eval(tmp_path, monkeypatch):
    """A run killed between evals leaves the state of its last eval to resume from."""
    saved = []
    real = train_mod.save_checkpoint
    monkeypatch.setattr(
        train_mod, "save_checkpoint", lambda path, st: (saved.append((path.name, st.iter)), real(path, st))[1]
    )
    train_phase(_phase(max_iters=30, eval_interval=10), _pattern_data(), tmp_path, progress=False)
    assert [it for name, it in saved if name == "last.pt"] == [0, 10, 20, 30]


@pytest.mark.parametrize(
    "content,why",
    [(b"", "the file is empty"), (b"PK\x03\x04garbage", "truncated"), (b"not a checkpoint at all", "truncated")],
)
def test_an_unreadable_checkpoint_is_one_sentence(tmp_path, content, why):
    from gaplab.errors import CheckpointError

    path = tmp_path / "best.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg and why in msg and "train the phase again" in msg
    assert "weights_only" not in msg and "\n" not in msg


def test_a_truncated_real_checkpoint_is_one_sentence(tmp_path):
    from gaplab.errors import CheckpointError

    train_phase(_phase(max_iters=10), _pattern_data(), tmp_path, progress=False)
    path = tmp_path / "ckpt" / "best.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not written by gaplab"):
        load_checkpoint(path)


def test_early_stopping_stops_and_keeps_the_best(tmp_path):
    # Train on 0, 1, 2, ..., 15, 0, 1, ...; validate on the same ids counting down.  Both splits share
    # the unigram counts (val improves at first), then every order learned from train is wrong on val.
    data = _data(np.tile(np.arange(16), 200), np.tile(np.arange(16)[::-1], 40), 32)
    m = train_phase(
        _phase(max_iters=200, eval_interval=5, patience=2, learning_rate=1e-2, dtype="fp32"),
        data,
        tmp_path,
        progress=False,
    )
    hist = _read_history(tmp_path)
    vals = [r["val_loss"] for r in hist]
    assert m.stop_reason == "early_stop (patience 2)"
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 1.0  # it did learn the train split
    assert m.best_iter == hist[vals.index(min(vals))]["iter"] and 0 < m.best_iter < 100
    assert m.iters == m.best_iter + 2 * 5  # two evals without improvement, then stop
    assert all(v > m.best_val_loss for v in vals[-2:])
    best = load_checkpoint(tmp_path / "ckpt" / "best.pt")
    assert best["iter"] == m.best_iter and best["best_val"] == m.best_val_loss == min(vals)
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["iter"] == m.iters


def test_min_delta_counts_small_improvements_as_none(tmp_path):
    m = train_phase(_phase(max_iters=40, patience=1, min_delta=100.0), _pattern_data(), tmp_path, progress=False)
    assert m.stop_reason == "early_stop (patience 1)" and m.iters == 10 and m.best_iter == 0


def test_huge_learning_rate_stops_on_a_non_finite_loss(tmp_path):
    m = train_phase(_phase(learning_rate=1e30, max_iters=30, dtype="fp32"), _pattern_data(), tmp_path, progress=False)
    assert m.stop_reason.startswith("non-finite loss at iter ")
    assert (tmp_path / "ckpt" / "best.pt").exists() and not (tmp_path / "ckpt" / "last.pt").exists()
    assert m.best_iter == 0


def test_non_finite_step_stops_at_that_iteration(tmp_path, monkeypatch):
    real_step = train_mod.train_step
    calls = {"n": 0}

    def failing_step(*args, **kwargs):
        calls["n"] += 1
        return float("nan") if calls["n"] == 8 else real_step(*args, **kwargs)  # the step at iter 7

    monkeypatch.setattr(train_mod, "train_step", failing_step)
    m = train_phase(_phase(max_iters=30), _pattern_data(), tmp_path, progress=False)
    assert m.stop_reason == "non-finite loss at iter 7" and m.iters == 7
    assert [r["iter"] for r in _read_history(tmp_path)] == [0]
    assert read_json(tmp_path / "metrics.json")["stop_reason"] == "non-finite loss at iter 7"


def test_epochs_grad_accum_and_save_every(tmp_path):
    m = train_phase(
        _phase(max_iters=None, epochs=2.0, grad_accum=2, eval_interval=100, save_every=[3]),
        _pattern_data(),
        tmp_path,
        progress=False,
    )
    per_iter = 4 * 2 * 16
    assert m.iters == math.ceil(2.0 * 3000 / per_iter) == 47
    assert m.epochs == pytest.approx(47 * per_iter / 3000)
    hist = _read_history(tmp_path)
    assert [r["iter"] for r in hist] == [0, 47] and hist[-1]["tokens_seen"] == 47 * per_iter
    assert load_checkpoint(tmp_path / "ckpt" / "iter_3.pt")["iter"] == 3


def test_head_precision_never_changes_the_evaluation(tmp_path):
    """Row 0 is evaluated before any update: identical in fp32 and auto (bf16 training head where available)."""
    data = _pattern_data(vocab=9000)  # >= BF16_HEAD_MIN_VOCAB, so auto may pick the bf16 head
    a = train_phase(_phase(max_iters=10, dtype="fp32"), data, tmp_path / "fp32", progress=False)
    b = train_phase(_phase(max_iters=10, dtype="auto"), data, tmp_path / "auto", progress=False)
    ha, hb = _read_history(tmp_path / "fp32"), _read_history(tmp_path / "auto")
    assert ha[0]["val_loss"] == hb[0]["val_loss"]
    assert a.dtype == b.dtype == "float32"
    expected_head = "bfloat16" if (cpu_has_native_bf16() and cpu_supports_bf16()) else "float32"
    assert a.head_dtype == "float32" and b.head_dtype == expected_head
    assert abs(a.final_val_loss - b.final_val_loss) < 0.05


def test_bad_token_ids_are_refused(tmp_path):
    with pytest.raises(TrainingError, match=r"token ids from 0 to 40, outside the model's vocabulary 0..31"):
        train_phase(_phase(), _data(np.arange(41).repeat(10), np.arange(30), 32), tmp_path, progress=False)


def test_progress_bar_runs(tmp_path, capsys):
    train_phase(_phase(max_iters=10), _pattern_data(), tmp_path, progress=True)
    assert "train" in capsys.readouterr().err


# --------------------------------------------------------------------------- devices
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="train.device = 'cuda': CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:1")
    with pytest.raises(DeviceError, match="allowed: auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu0")


def test_resolve_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    native = cpu_has_native_bf16() and cpu_supports_bf16()
    assert resolve_dtype("auto", cpu, n_embd=128) == (torch.bfloat16 if native else torch.float32)
    assert resolve_dtype("auto", cpu, n_embd=BF16_AUTOCAST_MIN_WIDTH - 1) == torch.float32
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    assert resolve_dtype("bf16", torch.device("mps")) == torch.float32
    with pytest.raises(DeviceError, match="'fp16' needs CUDA"):
        resolve_dtype("fp16", cpu)
    with pytest.raises(DeviceError, match="allowed: auto, fp32, bf16, fp16"):
        resolve_dtype("float8", cpu)
    assert head_matmul_dtype("fp32", cpu, torch.float32) is None
    assert head_matmul_dtype("bf16", cpu, torch.bfloat16) == torch.bfloat16
    assert head_matmul_dtype("auto", cpu, torch.float32, BF16_HEAD_MIN_VOCAB - 1) is None  # compact vocabularies
    assert head_matmul_dtype("auto", cpu, torch.float32, 50257) == (torch.bfloat16 if native else None)
    assert head_matmul_dtype("auto", torch.device("mps"), torch.float32, 50257) is None
    assert not needs_grad_scaler(cpu, torch.float32)
    assert needs_grad_scaler(torch.device("cuda"), torch.float16)
    assert isinstance(autocast_context(cpu, torch.float32), contextlib.nullcontext)


def test_a_fresh_run_replaces_checkpoints_of_an_earlier_one(tmp_path):
    train_phase(_phase(max_iters=20, save_every=[10]), _pattern_data(), tmp_path, progress=False)
    assert (tmp_path / "ckpt" / "iter_10.pt").exists()
    train_phase(_phase(max_iters=20), _pattern_data(), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.pt", "last.pt"]


@pytest.mark.skipif(not (cpu_has_native_bf16() and cpu_supports_bf16()), reason="needs a CPU with native bf16")
def test_auto_trains_wide_models_in_bf16_and_still_evaluates_in_fp32(tmp_path):
    data = _pattern_data()
    params = _phase(model={"n_embd": 128, "n_head": 4}, max_iters=10)
    m = train_phase(params, data, tmp_path / "auto", progress=False)
    f = train_phase(
        _phase(model={"n_embd": 128, "n_head": 4}, max_iters=10, dtype="fp32"), data, tmp_path / "fp32", progress=False
    )
    assert m.dtype == "bfloat16" and f.dtype == "float32"
    assert _read_history(tmp_path / "auto")[0]["val_loss"] == _read_history(tmp_path / "fp32")[0]["val_loss"]
    assert abs(m.final_val_loss - f.final_val_loss) < 0.1


def test_a_small_split_is_evaluated_on_every_window_exactly_once():
    stream = np.arange(1000)
    b = Batches(stream[:800], stream[800:815], block=8, batch=3, seed=5, eval_iters=4)  # val: 7 windows < 12
    starts = sorted(int(x[i, 0]) for x, _, _ in b.eval_batches("val") for i in range(x.shape[0]))
    assert starts == list(range(800, 807))  # each of the 7 windows once
    assert sum(x.shape[0] for x, _, _ in b.eval_batches("train")) == 12  # a big split still gets eval_iters x batch
    # the big split's windows do not move because the other split became exact
    same = Batches(stream[:800], stream[800:], block=8, batch=3, seed=5, eval_iters=4)
    assert torch.equal(b.eval_offsets["train"], same.eval_offsets["train"])
