"""Bad input to the corpus loader (fault tests of issue 15): each is a sentence naming the file and line,
or a counted skip, never a silent change of the data or a traceback."""

import json

import numpy as np
import pytest
from gaplab.data.corpus import load_corpus, skipped_summary
from gaplab.data.split import prepare_data
from gaplab.errors import DataError, UsageError
from gaplab.schema import PhaseParams


def params(**data):
    return PhaseParams.model_validate(
        {"data": data, "train": {"max_iters": 10, "eval_interval": 5}, "model": {"block_size": 8}}
    )


def csv_data(path, **extra):
    return params(source="csv", path=str(path), fields=["question", "answer"], **extra).data


def test_csv_row_with_a_missing_value_is_an_error_naming_the_line(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text('question,answer\nwhat,that\n"who\nis it",me\nwhere\n')
    with pytest.raises(
        DataError, match=r"qa.csv:5: the row has 1 value but the header has 2 \(question, answer\)"
    ) as e:
        load_corpus(csv_data(f))
    assert isinstance(e.value, UsageError)  # the CLI prints it and exits 2


def test_csv_row_with_an_extra_value_is_an_error(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text("question,answer\nwhat,that,and more\n")
    with pytest.raises(DataError, match=r"qa.csv:2: the row has 3 values but the header has 2"):
        load_corpus(csv_data(f))


def test_bad_records_skip_counts_them(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text("question,answer\nwhat,that\nwhere\nwho,me,you\nhow,so\n")
    c = load_corpus(csv_data(f, bad_records="skip"))
    assert [d.text for d in c.documents] == ["what\nthat", "how\nso"]
    assert [name for name, _ in c.skipped] == ["qa.csv:3", "qa.csv:4"]
    assert "2 skipped (qa.csv:3: the row has 1 value" in skipped_summary(c)
    j = tmp_path / "qa.jsonl"
    j.write_text('{"question": "a", "answer": "b"}\nnot json\n{"question": "c"}\n')
    c = load_corpus(params(source="jsonl", path=str(j), fields=["question", "answer"], bad_records="skip").data)
    assert len(c.documents) == 1 and [n for n, _ in c.skipped] == ["qa.jsonl:2", "qa.jsonl:3"]
    with pytest.raises(DataError, match=r"qa.jsonl:2: line is not JSON.*data.bad_records: skip"):
        load_corpus(params(source="jsonl", path=str(j), fields=["question", "answer"]).data)


def test_a_csv_field_longer_than_the_csv_module_limit_is_read(tmp_path):
    f = tmp_path / "long.csv"
    answer = "x" * 200_000  # over csv's default field_size_limit of 131,072
    f.write_text(f"question,answer\nq,{answer}\n")
    import csv

    before = csv.field_size_limit()
    c = load_corpus(csv_data(f))
    assert c.documents[0].text == "q\n" + answer
    assert csv.field_size_limit() == before  # the process-wide limit is left as it was


def test_symlink_pointing_outside_the_folder_is_skipped_and_counted(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the corpus")
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "inner.txt").symlink_to(folder / "a.txt")  # inside: fine
    (folder / "leak.txt").symlink_to(outside)
    c = load_corpus(params(source="files", path=str(folder), glob="*.txt").data)
    assert sorted(d.name for d in c.documents) == ["a.txt", "inner.txt"]
    assert [n for n, _ in c.skipped] == ["leak.txt"]
    assert "outside" in c.skipped[0][1]


@pytest.mark.parametrize("source", ["files", "jsonl", "csv"])
def test_a_utf8_byte_order_mark_is_dropped_in_every_source(tmp_path, source):
    bom = "\ufeff"
    if source == "files":
        (tmp_path / "a.txt").write_text(bom + "hello", encoding="utf-8")
        data = params(source="files", path=str(tmp_path), glob="*.txt").data
    elif source == "jsonl":
        (tmp_path / "a.jsonl").write_text(
            bom + json.dumps({"question": "hello", "answer": "x"}) + "\n", encoding="utf-8"
        )
        data = params(source="jsonl", path=str(tmp_path / "a.jsonl"), fields=["question"]).data
    else:
        (tmp_path / "a.csv").write_text(bom + "question,answer\nhello,x\n", encoding="utf-8")
        data = params(source="csv", path=str(tmp_path / "a.csv"), fields=["question"]).data
    assert load_corpus(data).documents[0].text == "hello"


def test_a_template_that_names_no_field_is_one_sentence(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text('{"q": "a"}\n')
    with pytest.raises(DataError, match=r"data.template = 'Q: \{question\}' cannot be filled"):
        load_corpus(params(source="jsonl", path=str(f), fields=["q"], template="Q: {question}").data)


def test_reading_stops_once_max_tokens_is_reached(tmp_path):
    """A huge first record and max_tokens 3000: only a prefix of it is tokenized, the rest is never read."""
    from gaplab.data.tokenizer import get_tokenizer

    f = tmp_path / "big.jsonl"
    words = " ".join(f"word{i % 977} and{i % 13}" for i in range(400_000))  # ~5 MB in one line
    f.write_text(json.dumps({"text": words}) + "\n" + json.dumps({"text": "second"}) + "\n{broken\n")
    p = PhaseParams.model_validate(
        {
            "data": {"source": "jsonl", "path": str(f), "fields": ["text"], "max_tokens": 3000, "split": "tail"},
            "tokenizer": {"name": "gpt2"},
            "model": {"block_size": 8},
            "train": {"max_iters": 10, "eval_interval": 5},
        }
    )
    prep = prepare_data(p)  # the broken third line is never reached: no error
    assert prep.total_tokens == 3000
    assert len(prep.corpus.documents) == 1 and not prep.corpus.complete
    full = np.asarray(get_tokenizer("gpt2").encode(words[:40_000]))[:3000]
    assert np.array_equal(np.concatenate([prep.train_base, prep.val_base]), full)
    # without max_tokens the whole file is read, and the broken line is an error naming it
    with pytest.raises(DataError, match=r"big.jsonl:3: line is not JSON"):
        prepare_data(p.model_copy(update={"data": p.data.model_copy(update={"max_tokens": None})}))


def test_max_tokens_cut_is_the_same_as_tokenizing_everything(tmp_path):
    from gaplab.data.split import _encode_capped
    from gaplab.data.tokenizer import get_tokenizer

    tok = get_tokenizer("gpt2")
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("ab cd\n  \t.,é€"), 300_000))
    whole = np.asarray(tok.encode(text))
    for need in (1, 500, 20_000):
        assert np.array_equal(_encode_capped(tok, text, need), whole[:need])
