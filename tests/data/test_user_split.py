"""The user's own split (``data.val_path``): kept exactly, never re-split, in every stage that prepares data."""

import json

import numpy as np
import pytest
from gaplab.data.split import prepare_data
from gaplab.errors import DataError, StudyError
from gaplab.pipeline.config import load_study
from gaplab.schema import PhaseParams

from .stdlib_pairs import chat, docstring_code_pairs


def write_chat(path, pairs):
    path.write_text("".join(json.dumps(chat(doc, code)) + "\n" for doc, code in pairs))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    pairs = docstring_code_pairs("email", limit=60)
    return write_chat(root / "train.jsonl", pairs[:50]), write_chat(root / "val.jsonl", pairs[50:]), pairs


def params(data, **tokenizer):
    return PhaseParams.model_validate(
        {"data": data, "tokenizer": tokenizer or {}, "model": {"block_size": 16}, "train": {"max_iters": 4}}
    )


@pytest.mark.parametrize("split_on", ["tokens", "text"])
def test_val_path_keeps_every_record_wholly_on_its_side(files, split_on):
    train, val, pairs = files
    p = params({"source": "records", "path": str(train), "val_path": str(val), "split_on": split_on})
    prep = prepare_data(p)
    assert prep.user_split and prep.doc_split == ["train"] * 50 + ["val"] * 10
    assert [d.answer for d in prep.documents] == [code for _, code in pairs]
    assert set(np.unique(prep.val_owners)) == set(range(50, 60))  # no val token from a train record
    assert set(np.unique(prep.train_owners)) == set(range(50))
    val_text = prep.base_tokenizer.decode(prep.val_base.tolist())
    assert pairs[55][1] in val_text and pairs[5][1] not in val_text
    assert {d.source for d in prep.documents} == {"train.jsonl + val.jsonl"}


def test_val_path_with_a_bpe_trains_it_on_the_train_side_only(files, tmp_path):
    train, val, _ = files
    p = params(
        {"source": "records", "path": str(train), "val_path": str(val), "split_on": "text"}, name="bpe", vocab_size=300
    )
    prep = prepare_data(p, tokenizer_dir=tmp_path)
    assert prep.vocab_size == 300 and prep.doc_split.count("val") == 10


def test_the_jsonl_source_with_fields_takes_a_val_path_too(tmp_path, files):
    pairs = files[2]
    for name, part in (("t.jsonl", pairs[:40]), ("v.jsonl", pairs[40:])):
        (tmp_path / name).write_text("".join(json.dumps({"q": d, "a": c}) + "\n" for d, c in part))
    p = params(
        {
            "source": "jsonl",
            "path": str(tmp_path / "t.jsonl"),
            "val_path": str(tmp_path / "v.jsonl"),
            "fields": ["q", "a"],
        }
    )
    prep = prepare_data(p)
    assert prep.doc_split.count("val") == 20 and prep.documents[45].answer == pairs[45][1]


def test_train_and_val_of_different_formats_are_refused(tmp_path, files):
    train, _, pairs = files
    (tmp_path / "val.json").write_text(json.dumps([chat(d, c) for d, c in pairs[50:]]))
    with pytest.raises(
        DataError,
        match=r"val.json \(the val side, data.val_path\) holds json, chat records .* but .*train.jsonl \(the train side, data.path\) holds jsonl, chat",
    ):
        prepare_data(params({"source": "records", "path": str(train), "val_path": str(tmp_path / "val.json")}))


def test_a_val_side_too_small_for_the_block_names_both_files(tmp_path, files):
    train, _, pairs = files
    small = write_chat(tmp_path / "v.jsonl", [("a", "b")])
    with pytest.raises(StudyError, match=r"the val split has \d+ tokens .*data.val_path"):
        prepare_data(params({"source": "records", "path": str(train), "val_path": str(small)}))


def test_study_problems_for_val_path(tmp_path, files):
    train, val, _ = files
    study = tmp_path / "s.yaml"
    study.write_text(
        f"defaults:\n  data: {{source: records, path: {train}, val_path: {val}}}\n  train: {{max_iters: 4}}\n"
        f"phases:\n  ok: {{}}\n  cut: {{data: {{max_tokens: 500}}}}\n  stdlib: {{data: {{source: stdlib}}}}\n"
    )
    with pytest.raises(StudyError) as e:
        load_study(study)
    text = str(e.value)
    assert "data.max_tokens" in text and "data.max_train_tokens" in text
    assert "data.source 'stdlib' has no val file" in text and "phase ok" not in text
