"""Bad and hostile input (issue 24, item 6): one sentence naming the file, what it looked like and what
gaplab reads; a run folder is read, never executed; printed dicts are literals; big files stream."""

import json
import os
import pickle
from pathlib import Path

import pytest
from gaplab.errors import DataError, UsageError
from gaplab.logs import READERS, read_log
from gaplab.logs.hf_console import parse_dict

FIXTURES = Path(__file__).parent / "fixtures"


class Booby:
    """Unpickling this object runs ``os.system``: a reader that opened the pickle would leave the marker."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unknown_file_names_what_it_looked_like_and_the_formats(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Dear diary, today the model trained for a while and then I went home.\nMore text.\n")
    with pytest.raises(DataError) as err:
        read_log(path)
    message = str(err.value)
    assert (
        str(path) in message and "it starts 'Dear diary, today the model trained for a while and then ...'" in message
    )
    assert "hf_trainer_state" in message and "keras_csv" in message and "\n" not in message
    assert isinstance(err.value, UsageError)


def test_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(DataError, match="it is empty"):
        read_log(empty)
    blob = tmp_path / "blob.dat"
    blob.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="binary data"):
        read_log(blob)


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        read_log(tmp_path / "nope.json")
    with pytest.raises(DataError, match="--format 'comet' is not a log format gaplab reads; choose one of hf_trainer"):
        read_log(FIXTURES / "nanogpt/bigram_readme_run.txt", format="comet")


def test_no_validation_loss_lists_the_keys_it_has():
    with pytest.raises(DataError, match=r"no validation loss \(its keys: current_steps, total_steps, loss, lear"):
        read_log(FIXTURES / "llamafactory/mistral_translator_no_eval_trainer_log.jsonl")


def test_trainer_state_with_train_loss_only(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": [{"step": 5, "loss": 2.0, "learning_rate": 1e-4, "epoch": 0.1}]}))
    with pytest.raises(DataError, match="keys: step, loss, learning_rate, epoch"):
        read_log(path)


def test_broken_json_is_one_sentence(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text('{\n  "log_history": [\n    {"step": 1, "loss": 2.0},\n')
    with pytest.raises(DataError, match="not valid JSON"):
        read_log(path)


def test_a_run_folder_is_read_never_executed(tmp_path):
    marker = tmp_path / "PWNED"
    out = tmp_path / "output"
    ckpt = out / "checkpoint-20"
    ckpt.mkdir(parents=True)
    state = FIXTURES / "hf_trainer_state/mood_bert_3epochs_trainer_state.json"
    (ckpt / "trainer_state.json").write_text(state.read_text())
    for name in ("training_args.bin", "optimizer.pt", "rng_state.pth", "scheduler.pt", "pytorch_model.bin"):
        (ckpt / name).write_bytes(pickle.dumps(Booby(marker)))
    (out / "events.out.tfevents.pt").write_bytes(pickle.dumps(Booby(marker)))
    for path in (out, ckpt):
        assert read_log(path).format == "hf_trainer_state"
    for forced in READERS:  # no reader, forced onto the folder or a pickle, unpickles it
        for path in (out, ckpt / "training_args.bin"):
            try:
                read_log(path, format=forced)
            except DataError:
                pass
    with pytest.raises(DataError, match="optimizer.pt: a .pt file is a pickle or weights, which gaplab never opens"):
        read_log(ckpt / "optimizer.pt")
    assert not marker.exists()


def test_console_dicts_are_literals_never_evaluated(tmp_path):
    marker = tmp_path / "PWNED"
    hostile = "{'loss': __import__('os').system('touch " + str(marker) + "'), 'epoch': 0.5}"
    assert parse_dict(hostile) is None
    path = tmp_path / "console.log"
    path.write_text(hostile + "\n{'loss': 1.0, 'epoch': 1.0}\n{'eval_loss': 1.1, 'epoch': 1.0}\n")
    run = read_log(path)
    assert list(run.history["val_loss"]) == [1.1] and not marker.exists()


def test_console_nan_printed_bare(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("{'loss': 1.2, 'epoch': 0.5}\n{'eval_loss': 1.3, 'epoch': 0.5}\n{'loss': nan, 'epoch': 1.0}\n")
    run = read_log(path)
    assert run.stopped_at == 1 and list(run.history["iter"]) == [0.5]


def test_a_huge_console_streams(tmp_path):
    """~25 MB of progress bars and dicts, one line read at a time (H7's benchmark times 200 MB)."""
    path = tmp_path / "console.log"
    bar = "\r 45%|████▌     | 450/1000 [00:45<00:55, 10.0it/s]" * 20
    with open(path, "w") as fh:
        for k in range(1, 20001):
            loss, epoch = f"{3 - k / 10000:.4g}", f"{k / 1000:.4g}"
            fh.write(
                bar + f"\n{{'loss': '{loss}', 'grad_norm': '1.1', 'learning_rate': '4e-05', 'epoch': '{epoch}'}}\n"
            )
            if k % 100 == 0:
                val = f"{2.9 - k / 20000:.4g}"
                fh.write(f"{{'eval_loss': '{val}', 'eval_runtime': '3.2', 'epoch': '{epoch}'}}\n")
    run = read_log(path)
    assert len(run.history) == 200 and len(run.train_points) == 20000 and (run.history["train_points"] == 100).all()
    assert path.stat().st_size > 20e6  # its speed is measured in benchmarks/bench_analyze.py, not here


def test_an_endless_line_without_newline_is_not_a_log(tmp_path):
    path = tmp_path / "noise.txt"
    path.write_text("x" * 3_000_000)
    with pytest.raises(DataError, match="no log reader recognises"):
        read_log(path)


def test_a_folder_with_no_log(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "config.json").write_text('{"hidden_size": 64}')
    with pytest.raises(DataError, match="a folder with no log gaplab knows"):
        read_log(tmp_path)


def test_a_console_of_carriage_returns_only_streams(tmp_path, monkeypatch):
    import gaplab.logs.hf_console as console

    monkeypatch.setattr(console, "CHUNK_BYTES", 4096)  # many chunks from a small file
    path = tmp_path / "console.log"
    parts = []
    for k in range(1, 301):
        parts.append(f"\r{k}/300 [00:01<00:02]" * 5 + f"\r{{'loss': {2 - k / 1000}, 'epoch': {k / 100}}}")
        if k % 30 == 0:
            parts.append(f"\r{{'eval_loss': {2.1 - k / 2000}, 'epoch': {k / 100}}}")
    path.write_text("".join(parts))  # not one newline: tqdm captured raw
    run = read_log(path)
    assert len(run.history) == 10 and len(run.train_points) == 300 and (run.history["train_points"] == 30).all()
