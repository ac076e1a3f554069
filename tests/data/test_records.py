"""Fine-tuning records read by content (gaplab.data.records): one case per format and record kind, each
built from real text (docstring → code pairs of the running interpreter's standard library)."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gaplab.data import records
from gaplab.data.records import RecordOptions, read_records, read_side, sniff_format
from gaplab.errors import DataError

from .stdlib_pairs import chat, docstring_code_pairs


@pytest.fixture(scope="module")
def pairs():
    return docstring_code_pairs("json") + docstring_code_pairs("textwrap")


def read(path, **options):
    corpus, shape = read_records(path, RecordOptions(**options))
    return corpus.documents, shape


def test_chat_jsonl_text_is_the_turns_without_keys_and_the_sides_are_the_roles(tmp_path, pairs):
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps(chat(doc, code)) + "\n" for doc, code in pairs))
    docs, shape = read(f)
    assert shape.describe() == "jsonl, chat records (messages)"
    assert len(docs) == len(pairs)
    doc, code = pairs[3]
    assert docs[3].text == f"You write Python.\n{doc}\n{code}"
    assert docs[3].prompt == f"You write Python.\n{doc}" and docs[3].answer == code
    assert docs[3].name == "train.jsonl:4" and docs[3].source == "train"
    assert not any('"role"' in d.text or "content" in d.text.split("\n")[0] for d in docs)


def test_multi_turn_chat_keeps_the_turn_order_in_text_and_every_assistant_turn_in_the_answer(tmp_path, pairs):
    (d1, c1), (d2, c2) = pairs[:2]
    turns = [
        {"role": "user", "content": d1},
        {"role": "assistant", "content": c1},
        {"role": "tool", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": d2}]},
        {"role": "assistant", "content": c2},
    ]
    f = tmp_path / "multi.jsonl"
    f.write_text(json.dumps({"messages": turns}) + "\n")
    (doc,), _ = read(f)
    assert doc.text == "\n".join([d1, c1, "ok", d2, c2])
    assert doc.prompt == "\n".join([d1, "ok", d2]) and doc.answer == "\n".join([c1, c2])


def test_sharegpt_conversations_are_chat(tmp_path, pairs):
    doc, code = pairs[0]
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"conversations": [{"from": "human", "value": doc}, {"from": "gpt", "value": code}]}))
    (d,), shape = read(f)
    assert shape.kind == "chat" and (d.prompt, d.answer) == (doc, code)


@pytest.mark.parametrize("chunk", [1 << 20, 97])  # 97 characters: every record crosses a read
def test_alpaca_json_array_is_read_element_by_element_with_line_numbers(tmp_path, pairs, monkeypatch, chunk):
    monkeypatch.setattr(records, "_CHUNK", chunk)
    rows = [
        {"instruction": doc, "input": "" if i % 2 else "Python 3", "output": code}
        for i, (doc, code) in enumerate(pairs)
    ]
    f = tmp_path / "alpaca.json"
    f.write_text(json.dumps(rows, indent=2))
    docs, shape = read(f)
    assert shape.describe() == "json, alpaca records (instruction, input, output)"
    assert [d.answer for d in docs] == [code for _, code in pairs]
    assert docs[0].prompt == f"{pairs[0][0]}\nPython 3" and docs[1].prompt == pairs[1][0]
    lines = f.read_text().splitlines()
    for d in docs[:5]:
        line = int(d.name.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{"  # the line where the record starts


def test_csv_question_answer_and_tsv_prompt_completion(tmp_path, pairs):
    qa = tmp_path / "qa.csv"
    with open(qa, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["question", "answer"])
        w.writerows(pairs)  # code has commas, quotes and line breaks
    docs, shape = read(qa)
    assert sniff_format(qa) == "csv" and shape.kind == "question_answer"
    assert [(d.prompt, d.answer) for d in docs] == pairs
    pc = tmp_path / "pc.tsv"
    with open(pc, "w", newline="") as handle:
        w = csv.writer(handle, delimiter="\t")
        w.writerow(["prompt", "completion"])
        w.writerows(pairs)
    docs, shape = read(pc)
    assert shape.describe() == "tsv, prompt_completion records (prompt, completion)"
    assert docs[2].text == f"{pairs[2][0]}\n{pairs[2][1]}"


def test_parquet_chat_records(tmp_path, pairs):
    f = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([chat(doc, code) for doc, code in pairs]), f)
    docs, shape = read(f)
    assert shape.describe() == "parquet, chat records (messages)"
    assert [d.answer for d in docs] == [code for _, code in pairs]
    assert docs[0].name == "train.parquet: row 1"


def test_plain_text_is_one_record_even_with_commas_in_its_first_line(tmp_path, pairs):
    f = tmp_path / "notes.txt"
    f.write_text("\n\n".join(f"{doc}, as code:\n{code}" for doc, code in pairs[:3]))
    (doc,), shape = read(f)
    assert shape.describe() == "text, text records (text)" and doc.text == f.read_text()
    assert doc.prompt is None and doc.answer is None


def test_text_field_records_and_fields_and_template_override_the_guess(tmp_path, pairs):
    f = tmp_path / "mixed.jsonl"
    f.write_text("".join(json.dumps({"doc": d, "code": c, "text": "x"}) + "\n" for d, c in pairs))
    docs, shape = read(f)
    assert shape.kind == "text" and docs[0].text == "x"
    docs, shape = read(f, fields=("doc", "code"))
    assert shape.kind == "fields" and (docs[0].prompt, docs[0].answer) == pairs[0]
    docs, _ = read(f, fields=("doc", "code"), template="### {doc}\n{code}")
    assert docs[0].text == f"### {pairs[0][0]}\n{pairs[0][1]}"
    docs, _ = read(f, template="Q: {doc} A: {text}")
    assert docs[1].text == f"Q: {pairs[1][0]} A: x"


def test_a_folder_side_labels_each_record_by_its_file_and_refuses_mixed_kinds(tmp_path, pairs):
    side = tmp_path / "train"
    (side / "json").mkdir(parents=True)
    (side / "json" / "a.jsonl").write_text("".join(json.dumps(chat(d, c)) + "\n" for d, c in pairs[:4]))
    (side / "b.jsonl").write_text("".join(json.dumps(chat(d, c)) + "\n" for d, c in pairs[4:6]))
    (side / ".hidden.jsonl").write_text("not read")
    corpus, shape = read_side(side, RecordOptions())
    assert [d.source for d in corpus.documents] == ["b.jsonl"] * 2 + ["json/a.jsonl"] * 4
    (side / "c.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    with pytest.raises(
        DataError, match=r"c.jsonl holds jsonl, prompt_completion records .* but .*b.jsonl holds jsonl, chat"
    ):
        read_side(side, RecordOptions())


def test_a_broken_json_array_names_the_line_of_the_record_that_breaks(tmp_path, pairs):
    rows = [{"prompt": d, "completion": c} for d, c in pairs[:3]]
    rows[1]["completion"] = "MARK"
    text = json.dumps(rows, indent=1).replace('"MARK"', "MARK")  # the second record is not JSON
    f = tmp_path / "a.json"
    f.write_text(text)
    second = [i for i, line in enumerate(text.splitlines(), start=1) if line == " {"][1]
    with pytest.raises(DataError, match=rf"a.json:{second}: the JSON array breaks here"):
        read(f)
