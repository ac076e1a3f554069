"""``gaplab inspect TRAIN [VAL]`` on a person's own files, and every bad input named in one sentence (exit 2,
nothing written).  The records are real text: docstring → code pairs of the interpreter's standard library."""

import json
import os

import pytest
from gaplab.cli import main
from gaplab.pipeline import stages

from .stdlib_pairs import chat, docstring_code_pairs


@pytest.fixture(scope="module")
def pairs():
    return docstring_code_pairs("email", limit=120)


def write_chat(path, pairs):
    path.write_text("".join(json.dumps(chat(doc, code)) + "\n" for doc, code in pairs))
    return str(path)


def run(capsys, *argv):
    code = main(["inspect", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_two_files_keep_the_users_split_and_json_has_the_report_shape(tmp_path, pairs, capsys):
    train, val = write_chat(tmp_path / "train.jsonl", pairs[:100]), write_chat(tmp_path / "val.jsonl", pairs[100:])
    code, out, _ = run(capsys, train, val, "--json")
    report = json.loads(out)
    assert code == (1 if report["failed"] else 0)
    assert report["split"]["documents"] == {"train": 100, "val": 20, "both": 0}
    assert report["own_data"]["guessed"] == "jsonl, chat records (messages)"
    assert {"name", "status", "value", "message"} <= set(report["checks"][0])
    assert "split_imbalance" in {c["name"] for c in report["checks"]}
    code, out, _ = run(capsys, train, val)
    assert "split: yours, kept exactly" in out and "block size" in out and "gpt2" in out
    assert sorted(os.listdir(tmp_path)) == ["train.jsonl", "val.jsonl"]  # nothing written


def test_one_file_runs_only_the_checks_that_need_no_split(tmp_path, pairs, capsys):
    train = write_chat(tmp_path / "train.jsonl", pairs)
    code, out, _ = run(capsys, train, "--json")
    report = json.loads(out)
    names = {c["name"] for c in report["checks"]}
    assert "leakage" not in names and "split_imbalance" not in names and "exact_duplicates" in names
    assert "leakage" in report["own_data"]["not_run"]


def test_one_file_is_one_side_to_every_check(tmp_path, pairs, capsys):
    """The split made to prepare one file is not the user's: no check counts anything 'across' it, and the
    tokens are the file's.  Each of 40 prompts is asked twice, with two different answers, far apart in the
    file (so an internal split would have cut many of those pairs in two)."""
    records = pairs[:40] + [(doc, pairs[(i + 1) % 40][1]) for i, (doc, _) in enumerate(pairs[:40])]
    train = write_chat(tmp_path / "train.jsonl", records)
    code, out, _ = run(capsys, train, "--json")
    report = json.loads(out)
    conflicts = report["conflicting_answers"]
    assert conflicts["across_split"] == 0 and conflicts["inside_train"] == conflicts["conflicting_prompts"]
    assert conflicts["conflicting_prompts"] >= 38  # every prompt but where two docstrings normalize alike
    assert report["split"]["documents"] == {"train": 80, "val": 0, "both": 0}
    code, out, _ = run(capsys, train)
    tokens = report["size"]["train_tokens"] + report["size"]["val_tokens"]
    assert f"tokens: {tokens:,}; tokenizer" in out and " val; tokenizer" not in out


def test_a_check_that_fails_exits_1(tmp_path, pairs, capsys):
    copies = [pairs[0]] * 30 + pairs[:60]  # 30 copies of one record: exact duplicates fail
    code, out, _ = run(capsys, write_chat(tmp_path / "t.jsonl", copies))
    assert code == 1 and "fail  exact_duplicates" in out


def test_a_study_file_still_takes_phase(capsys):
    code, _, err = run(capsys, "params/ci.yaml")
    assert code == 2 and "needs --phase" in err


BAD = {
    "broken JSON line": ('{"messages": []}\n{"messages": [oops\n', r"bad.jsonl:2: line is not JSON"),
    "chat turn without content": (
        '{"messages": [{"role": "user", "content": "a"}]}\n{"messages": [{"role": "user"}]}\n',
        r"bad.jsonl:2: messages\[0\] has no 'content'",
    ),
    "no known fields": ('{"title": "a", "body": "b"}\n', r"bad.jsonl:1: the record has fields \['body', 'title'\]"),
    "a record without the guessed fields": (
        '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n',
        r"bad.jsonl:2: missing field 'completion' \(prompt_completion records, guessed",
    ),
    "empty file": ("", r"bad.jsonl: the file is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_sentence_naming_the_file_and_line(tmp_path, capsys, case):
    text, message = BAD[case]
    (tmp_path / "bad.jsonl").write_text(text)
    code, out, err = run(capsys, tmp_path / "bad.jsonl")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert __import__("re").search(message, err), err
    assert os.listdir(tmp_path) == ["bad.jsonl"]


def test_missing_file_and_train_val_in_different_formats(tmp_path, pairs, capsys):
    code, _, err = run(capsys, tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl" in err and "no such file or folder" in err
    train = write_chat(tmp_path / "train.jsonl", pairs[:100])
    (tmp_path / "val.csv").write_text("prompt,completion\n" + "".join(f"p{i},c{i}\n" for i in range(20)))
    code, _, err = run(capsys, train, tmp_path / "val.csv")
    assert code == 2 and "val.csv (the val side, data.val_path) holds csv, prompt_completion records" in err


def test_skip_bad_records_counts_and_names_them(tmp_path, pairs, capsys):
    lines = [json.dumps(chat(d, c)) for d, c in pairs[:100]]
    lines[10] = "{broken"
    lines[20] = json.dumps({"messages": [{"role": "user"}]})
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    code, out, _ = run(capsys, tmp_path / "t.jsonl", "--skip-bad-records", "--json")
    report = json.loads(out)
    assert report["size"]["skipped"] == 2 and report["size"]["documents"] == 98
    assert [e["name"] for e in report["size"]["skipped_examples"]] == ["t.jsonl:11", "t.jsonl:21"]


def test_inspect_and_train_stages_use_the_users_split(tmp_path, pairs):
    train, val = write_chat(tmp_path / "train.jsonl", pairs[:100]), write_chat(tmp_path / "val.jsonl", pairs[100:])
    params = {
        "study": "own",
        "phase": "mine",
        "run_dir": str(tmp_path / "run"),
        "data": {"source": "records", "path": train, "val_path": val},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
        "train": {"max_iters": 2, "eval_interval": 1, "eval_iters": 1, "batch_size": 2, "device": "cpu"},
    }
    report = stages.inspect_phase(params, enforce=False)
    assert report["split"]["documents"] == {"train": 100, "val": 20, "both": 0}
    metrics = stages.train(params, progress=False)
    assert metrics["final_val_loss"] > 0 and (tmp_path / "run" / "history.csv").exists()


def test_folders_label_field_and_validators(tmp_path, pairs, capsys):
    for side, part in (("train", pairs[:100]), ("val", pairs[100:])):
        (tmp_path / side).mkdir()
        rows = [{**chat(d, c), "origin": "email" if i % 2 else "other", "doc": d} for i, (d, c) in enumerate(part)]
        (tmp_path / side / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(
        capsys,
        tmp_path / "train",
        tmp_path / "val",
        "--label-field",
        "origin",
        "--validators",
        "gaplab.data.validators:json_valid",
        "--json",
    )
    report = json.loads(out)
    assert report["split"]["documents"] == {"train": 100, "val": 20, "both": 0}
    assert {s["source"] for s in report["split"]["sources"]} == {"email", "other"}
    assert report["validators"]["validators"]["gaplab.data.validators:json_valid"]["failing"] == 120  # code: not JSON
