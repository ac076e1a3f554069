"""gaplab.sample: generation and sample-quality metrics, on crafted inputs with known answers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gaplab.measure import text_quality as text_quality_mod
from gaplab.measure.generate import collect_prompts, derive_seed, filter_logits, generate, load_prompts
from gaplab.measure.ngram_index import MemorizationIndex, suffix_array
from gaplab.measure.samples import evaluate_samples, read_samples, write_samples
from gaplab.measure.text_quality import (
    bracket_balance,
    code_metrics,
    compile_patterns,
    distinct_n,
    find_stutters,
    format_compliance,
    is_parseable_prefix,
    is_python_corpus,
    load_keyword_set,
    longest_repeated_substring,
    parse_keyword_set,
    parseable_lines,
    repeated_ngram_share,
    repetition_metrics,
    tokenize_errors,
    words,
)
from gaplab.schema import DataConfig
from torch import nn


# --------------------------------------------------------------------------- helpers
class CharTok:
    """A character tokenizer over a fixed alphabet."""

    def __init__(self, alphabet: str):
        self.alphabet = alphabet

    def encode(self, text: str) -> list[int]:
        return [self.alphabet.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.alphabet[int(i)] for i in ids)


class TinyLM(nn.Module):
    """Embedding + running sum + linear head; refuses contexts longer than block_size."""

    def __init__(self, vocab: int, block_size: int = 8, last_only: bool = False):
        super().__init__()
        self.config = SimpleNamespace(block_size=block_size)
        self.last_only = last_only
        g = torch.Generator().manual_seed(0)
        self.emb = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, vocab)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(vocab, 16, generator=g))
            self.head.weight.copy_(torch.randn(vocab, 16, generator=g))
            self.head.bias.zero_()

    def forward(self, idx):
        assert idx.shape[1] <= self.config.block_size, "context longer than block_size"
        logits = self.head(self.emb(idx).cumsum(dim=1))
        return logits[:, -1:, :] if self.last_only else logits


ALPHABET = "abcdefghijklmnopqrstuvwxyz _\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def lm():
    return TinyLM(len(ALPHABET)), CharTok(ALPHABET)


def _gen(model, tok, **kw):
    args = dict(max_new_tokens=20, temperature=1.0, top_k=None, top_p=None, num_samples=2, seed=7)
    args.update(kw)
    return generate(model, tok, ["ab", "x"], **args)


# --------------------------------------------------------------------------- generation
def test_same_seed_same_samples_and_other_rng_use_does_not_matter(lm):
    model, tok = lm
    first = _gen(model, tok)
    torch.manual_seed(999)
    torch.rand(1000)  # other use of the global generator between runs
    second = _gen(model, tok)
    assert [r["token_ids"] for r in first] == [r["token_ids"] for r in second]
    assert len(first) == 4 and [(r["prompt_index"], r["sample_index"]) for r in first] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]


def test_different_seed_different_samples(lm):
    model, tok = lm
    a = _gen(model, tok, seed=1)
    b = _gen(model, tok, seed=2)
    assert [r["token_ids"] for r in a] != [r["token_ids"] for r in b]
    assert a[0]["token_ids"] != a[1]["token_ids"]  # the two samples of one prompt differ too


def test_sample_depends_only_on_seed_prompt_and_index(lm):
    model, tok = lm
    two = _gen(model, tok, num_samples=2)
    one = _gen(model, tok, num_samples=1)
    assert one[0]["token_ids"] == two[0]["token_ids"]
    assert one[1]["token_ids"] == two[2]["token_ids"]


def _greedy(model, ids, steps):
    ids = list(ids)
    for _ in range(steps):
        logits = model(torch.tensor([ids[-model.config.block_size :]]))
        ids.append(int(logits[0, -1].argmax()))
    return ids


@pytest.mark.parametrize("last_only", [False, True])
def test_top_k_1_is_greedy_and_context_is_cropped(last_only):
    model, tok = TinyLM(len(ALPHABET), block_size=8, last_only=last_only), CharTok(ALPHABET)
    rows = generate(
        model, tok, ["abc"], max_new_tokens=20, temperature=0.7, top_k=1, top_p=None, num_samples=2, seed=3
    )  # 23 tokens > block_size 8: the model asserts on longer input
    expected = _greedy(model, tok.encode("abc"), 20)[3:]
    assert rows[0]["token_ids"] == expected and rows[1]["token_ids"] == expected
    assert rows[0]["text"] == tok.decode(expected)
    assert rows[0]["full_text"] == "abc" + tok.decode(expected)
    assert rows[0]["prompt_tokens"] == 3 and rows[0]["new_tokens"] == 20


def test_tiny_top_p_is_greedy_and_training_mode_restored(lm):
    model, tok = lm
    model.train()
    rows = generate(
        model, tok, ["ab"], max_new_tokens=10, temperature=1.0, top_k=None, top_p=1e-6, num_samples=1, seed=0
    )
    assert rows[0]["token_ids"] == _greedy(model, tok.encode("ab"), 10)[2:]
    assert model.training


def test_filter_logits_known_values():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = lambda out: torch.isfinite(out[0]).nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_p=0.7)) == [0, 1]  # 0.5 < 0.7 <= 0.8
    assert kept(filter_logits(logits, top_p=0.5)) == [0]  # the first token alone reaches 0.5
    assert kept(filter_logits(logits, top_p=0.96)) == [0, 1, 2, 3]
    assert kept(filter_logits(logits, top_k=2)) == [0, 1]
    assert kept(filter_logits(logits[:, [3, 2, 1, 0]], top_k=3)) == [1, 2, 3]
    out = filter_logits(torch.tensor([[2.0, 4.0]]), temperature=2.0)
    assert out.tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=1.5)


def test_prompt_with_no_tokens_is_a_clear_error():
    model = TinyLM(3)
    tok = SimpleNamespace(encode=lambda s: [], decode=lambda ids: "")
    with pytest.raises(ValueError, match="prompt #0 = '' encodes to no tokens"):
        generate(model, tok, [""], max_new_tokens=2, num_samples=1)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(1337, 0, 0) == derive_seed(1337, 0, 0)
    seeds = {derive_seed(1337, p, s) for p in range(5) for s in range(5)}
    assert len(seeds) == 25 and all(0 <= x < 2**63 for x in seeds)


# --------------------------------------------------------------------------- prompts
def test_load_prompts_list_lines_and_yaml(tmp_path):
    assert load_prompts(["import json", "def "]) == ["import json", "def "]
    lines = tmp_path / "prompts.txt"
    lines.write_text("import json\n\ndef main():\\n    return\nback\\\\slash\n")
    assert load_prompts(str(lines)) == ["import json", "def main():\n    return", "back\\slash"]
    ylist = tmp_path / "prompts.yaml"
    ylist.write_text('- "\\n"\n- prompt: "class "\n  keywords: [def]\n')
    assert load_prompts(ylist) == ["\n", "class "]


def test_load_prompts_errors_name_the_file_and_value(tmp_path):
    with pytest.raises(ValueError, match="no such prompts file: .*nope.txt"):
        load_prompts(str(tmp_path / "nope.txt"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- ok\n- 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml\): prompt #1 = 3"):
        load_prompts(bad)
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts([])


# --------------------------------------------------------------------------- repetition
def test_distinct_n_over_words():
    units = words("a b a b")
    assert units == ["a", "b", "a", "b"]
    assert distinct_n(units, 1) == 0.5
    assert distinct_n(units, 2) == pytest.approx(2 / 3)
    assert distinct_n(units, 3) == 1.0
    assert distinct_n(units, 5) is None
    assert words("x = f(a_b, 10)") == ["x", "=", "f", "(", "a_b", ",", "10", ")"]


def test_repeated_ngram_share():
    assert repeated_ngram_share(list("ababab"), 2) == 1.0
    assert repeated_ngram_share(list("abcabd"), 2) == pytest.approx(2 / 5)  # ab twice among ab bc ca ab bd
    assert repeated_ngram_share(list("abcdef"), 2) == 0.0
    assert repeated_ngram_share(list("a"), 2) is None


def test_longest_repeated_substring():
    assert longest_repeated_substring("banana") == "ana"
    assert longest_repeated_substring("aaaa") == "aaa"
    assert longest_repeated_substring("abc") == ""
    assert longest_repeated_substring("import os\nimport sys\n") == "import "
    assert longest_repeated_substring("") == ""


def test_stutters_from_the_seed_samples():
    [g] = find_stutters('defginggingging.DEBUG)")')
    assert (g["kind"], g["unit"], g["repeats"], g["start"], g["example"]) == ("run", "ging", 3, 3, "defginggingging")
    [lg] = find_stutters("logging.basicConfig(level=loggingging.DEBUG)")
    assert (lg["kind"], lg["repeats"], lg["example"]) == ("word", 2, "loggingging")
    [pdf] = find_stutters("def get_pdf_pdf_embeddings(collection):")
    assert (pdf["kind"], pdf["unit"], pdf["example"]) == ("word", "_pdf", "get_pdf_pdf_embeddings")


def test_no_stutters_in_ordinary_code():
    code = (
        "import logging\n# ==========\nlogger = logging.getLogger(__name__)\n"
        "def get_page(x):\n    '''%s%s%s'''\n    return x + 1000000\n"
    )
    assert find_stutters(code) == []


def test_repetition_metrics_row():
    m = repetition_metrics("ab ab ab ab")
    assert m["distinct_1"] == 0.25 and m["distinct_2"] == pytest.approx(1 / 3)
    assert m["repeated_3gram_share"] == 1.0  # both 3-grams are (ab, ab, ab)
    assert m["longest_repeat"] == "ab ab ab" and m["longest_repeat_chars"] == 8  # overlapping occurrences
    assert m["stutter_count"] == 1 and m["stutters"][0]["unit"] == "ab "  # a short word three times
    assert repetition_metrics("ab ab ab")["stutter_count"] == 0  # "ab " only twice


# --------------------------------------------------------------------------- memorisation
def test_suffix_array_matches_naive_sort():
    rng = np.random.default_rng(0)
    for n, vocab in [(1, 1), (7, 1), (40, 2), (200, 3), (300, 50)]:
        t = rng.integers(0, vocab, n)
        assert suffix_array(t).tolist() == sorted(range(n), key=lambda i: tuple(t[i:]))


def test_matching_statistics_agree_with_brute_force_and_the_binary_search_index():
    """One suffix-array index for samples (binary search) and leakage (one suffix array over both streams)."""
    from gaplab.measure.ngram_index import SuffixIndex, exact_spans, index_in, matching_statistics

    rng = np.random.default_rng(3)
    for _ in range(150):
        text, query = rng.integers(0, 3, int(rng.integers(1, 50))), rng.integers(0, 3, int(rng.integers(1, 30)))
        lengths, where = matching_statistics(text, query)
        for i in range(len(query)):
            best = max(
                next(
                    (m for m in range(min(len(query) - i, len(text) - j)) if query[i + m] != text[j + m]),
                    min(len(query) - i, len(text) - j),
                )
                for j in range(len(text))
            )
            assert lengths[i] == best
            assert list(text[where[i] : where[i] + best]) == list(query[i : i + best])
        assert SuffixIndex(text).matching_lengths(query)[0].tolist() == lengths.tolist()
    spans = exact_spans([1, 2, 9, 2, 3, 9, 3, 4, 9, 4, 5], [1, 2, 3, 4, 5], min_tokens=2)
    assert [s["tokens"] for s in spans] == [2, 2, 2]
    values = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    members = np.unique(values[::7])
    got = index_in(values, members)
    assert np.array_equal(got >= 0, np.isin(values, members)) and np.array_equal(
        members[got[got >= 0]], values[got >= 0]
    )


def test_hash_set_finds_members_through_long_probe_chains():
    """Small ints (0 included) and a set packed into few home slots: every member is found however far it
    was pushed from its home slot, every other value is -1."""
    from gaplab.measure.ngram_index import HashSet, index_in

    rng = np.random.default_rng(5)
    for members in (
        np.arange(0, 40, dtype=np.uint64),
        np.unique(rng.integers(0, 2**64 - 1, 3000, dtype=np.uint64, endpoint=True)),
        np.arange(0, 2**20, 2**10, dtype=np.uint64) << np.uint64(40),  # values that differ in high bits only
    ):
        values = np.concatenate([members, members + np.uint64(1), rng.permutation(members)])
        expected = np.searchsorted(members, values)
        expected = np.where(members[np.minimum(expected, members.size - 1)] == values, expected, -1)
        assert np.array_equal(HashSet(members).find(values), expected)
        assert np.array_equal(index_in(values, members), expected)
    assert index_in(np.array([3], dtype=np.uint64), np.zeros(0, dtype=np.uint64)).tolist() == [-1]


def test_planted_training_span_is_found_with_exact_length():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 1000, 20_000)
    val = rng.integers(0, 1000, 2_000)
    index = MemorizationIndex(train, val, n=8)
    planted = train[4321 : 4321 + 37].tolist()
    sample = [5000, 5001] + planted + [5002, 5003, 5004]  # ids the training stream never holds
    m = index.measure(sample)
    assert m["mem_longest_tokens"] == 37
    assert m["mem_longest_start"] == 2
    assert train[m["mem_train_position"] : m["mem_train_position"] + 37].tolist() == planted
    windows = len(sample) - 8 + 1
    assert m["train_ngram_share"] == pytest.approx((37 - 8 + 1) / windows)


def test_ngram_shares_train_val_novel_and_decoded_span():
    tok = CharTok("abcdefghijklmnopqrstuvwxyz")
    train = tok.encode("abcdef")
    val = tok.encode("hijk")
    index = MemorizationIndex(train, val, n=3, tokenizer=tok)
    m = index.measure(tok.encode("abcdhijxyz"))
    # 3-grams: abc bcd (train) | cdh dhi (none) | hij (val) | ijx jxy xyz (none)
    assert m["train_ngram_share"] == pytest.approx(2 / 8)
    assert m["val_only_ngram_share"] == pytest.approx(1 / 8)
    assert m["novel_ngram_share"] == pytest.approx(5 / 8)
    assert (m["mem_longest_tokens"], m["mem_longest_text"], m["mem_longest_chars"]) == (4, "abcd", 4)
    short = index.measure(tok.encode("ab"))
    assert short["train_ngram_share"] is None and short["mem_longest_tokens"] == 2


def test_whitespace_runs_are_not_memorization():
    """quickstart's balanced phase 'copied' 48 spaces of indentation: that is not memorization."""
    tok = CharTok(" \n=abcdefghijklmnopqrstuvwxyz():")
    train = tok.encode("def f():\n" + " " * 48 + "return x\n" + "=" * 30 + "\n")
    index = MemorizationIndex(train, n=8, tokenizer=tok)
    sample = tok.encode(" " * 48 + "qzvk wyq")  # indentation copied, then nothing from train
    m = index.measure(sample)
    assert m["mem_longest_any_tokens"] == 48  # what the old metric reported as the longest copy
    assert m["mem_longest_tokens"] == 0 and m["mem_longest_text"] is None
    # the 41 all-space 8-grams are not counted; of the content 8-grams none is in train
    assert m["content_ngrams"] == 5  # the windows starting at 44..48 hold >= 4 of "qzvk wyq"'s letters
    assert m["train_ngram_share"] == 0.0
    ruler = index.measure(tok.encode("=" * 30))
    assert ruler["mem_longest_tokens"] == 0 and ruler["train_ngram_share"] is None


def test_longest_copied_span_is_trimmed_and_needs_content():
    tok = CharTok(" \n=.abcdefghijklmnopqrstuvwxyz():")
    train = tok.encode("        return self.total\n        ")
    index = MemorizationIndex(train, n=8, tokenizer=tok, min_content=4)
    m = index.measure(tok.encode("x     return self.total\n   qq"))
    # the copied span is "     return self.total\n   " (26 chars); trimmed to its content
    assert m["mem_longest_any_tokens"] == 26
    assert m["mem_longest_text"] == "return self.total"
    assert m["mem_longest_tokens"] == len("return self.total")
    assert m["mem_longest_content_tokens"] == len("returnselftotal")
    assert m["mem_longest_start"] == 6
    assert train[m["mem_train_position"] : m["mem_train_position"] + 17] == tok.encode("return self.total")
    # three letters are not a copy with min_content 4
    assert index.measure(tok.encode("  ret  "))["mem_longest_tokens"] == 0


def test_repetition_ignores_indentation_and_rulers():
    code = "def f():\n        x = 1\n        \n        \n        y = 2\n# ==========\n# ==========\n"
    assert len(longest_repeated_substring(code)) >= 17  # the raw repeat is indentation and the ruler
    m = repetition_metrics(code)
    assert m["longest_repeat"] == "" or "\n" not in m["longest_repeat"]
    assert m["longest_repeat_chars"] < 8
    assert text_quality_mod.squeeze_trivial_runs("a    b\n\n=====c") == "a b =c"
    assert text_quality_mod.longest_content_repeat("return x\n    return x") == "return x"


def test_memorization_index_rejects_non_integer_ids():
    with pytest.raises(ValueError, match="train_tokens must be integer"):
        MemorizationIndex(np.array([0.5, 1.5]))


# --------------------------------------------------------------------------- code
VALID = "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n"
TRUNCATED = "import json\n\ndef load(path):\n    return json.loads(open(path).read(\n"
UNFINISHED_LAST_LINE = 'import logging\nlogging.basicConfig(level=logging.DEBUG)\nprint(f"\\tPage Text'
BROKEN = 'def get_page_number\']}")\n                print(f"\\tPage Text\n'


def test_parseable_prefix_valid_truncated_broken():
    assert is_parseable_prefix(VALID)
    assert is_parseable_prefix(TRUNCATED)  # open bracket: incomplete, not wrong
    assert is_parseable_prefix("class A:\n    def f(self):\n")  # open block
    assert is_parseable_prefix('x = """doc\nstring')  # open triple-quoted string
    assert is_parseable_prefix(UNFINISHED_LAST_LINE)  # a string cut open by the end of generation
    for cut in ("x = foo.", "if x", "from a import", "try:\n    pass\nexce", "x = 0x", "s = 'ab"):
        assert is_parseable_prefix(cut), cut  # only broken where generation stopped
    assert not is_parseable_prefix("import json\n       Nvancoaf   ```as")  # garbage before the cut
    assert not is_parseable_prefix('defginggingging.DEBUG)")')
    assert is_parseable_prefix("    return x\n")  # a piece of a function body
    assert is_parseable_prefix("        return x\n\n    def g(self):\n        yield 1\n")  # two levels
    assert is_parseable_prefix("        try:\n            x = await f()\n")
    assert not is_parseable_prefix("x = 1\n    y = 2\n")  # unexpected indent stays an error
    assert not is_parseable_prefix(BROKEN)
    assert not is_parseable_prefix("x = )\n")
    assert not is_parseable_prefix('defginggingging.DEBUG)")\n')


def test_parseable_lines_counts_the_good_prefix():
    assert parseable_lines("import json\nx = 1\ny = )\nz = 2\n") == 2
    assert parseable_lines(VALID) == 6


def test_bracket_balance():
    assert bracket_balance("f(a[1], {2: (3)})") == {"errors": 0, "open": 0}
    assert bracket_balance("f(a[1)") == {"errors": 1, "open": 0}
    assert bracket_balance("x = ')' + (") == {"errors": 0, "open": 1}  # brackets in strings do not count
    assert bracket_balance("# (\n)") == {"errors": 1, "open": 0}  # nor in comments
    assert bracket_balance('"""(\n"""\n]') == {"errors": 1, "open": 0}
    assert bracket_balance("s = 'it\\'s ('") == {"errors": 0, "open": 0}


def test_tokenize_errors():
    assert tokenize_errors(VALID) == 0
    assert tokenize_errors("x = (1,\n") == 0  # unfinished, not an error
    assert tokenize_errors("x = $\n") == 1


def test_code_metrics_row():
    m = code_metrics(TRUNCATED)
    assert m["parse_ok"] and m["parse_lines_ok"] == 4 and m["parse_line_share"] == 1.0
    assert (m["bracket_errors"], m["brackets_open"], m["brackets_balanced"]) == (0, 2, False)
    b = code_metrics("x = 1\ny = )\n")
    assert not b["parse_ok"] and b["parse_line_share"] == 0.5 and b["bracket_errors"] == 1


def test_is_python_corpus():
    assert is_python_corpus(DataConfig(source="stdlib"))
    assert is_python_corpus(DataConfig(source="files", path="/x", glob="**/*.py"))
    assert not is_python_corpus(DataConfig(source="files", path="/x", glob="**/*.md"))
    assert not is_python_corpus(DataConfig(source="jsonl", path="/x.jsonl", fields=["q"]))
    assert is_python_corpus({"source": "text", "path": "/code/main.py"})


# --------------------------------------------------------------------------- keywords and format
def test_keyword_score():
    r = text_quality_mod.keyword_score("logging.debug('x %s', y)", ["%s", ")", "missing"])
    assert r["keyword_score"] == pytest.approx(2 / 3) and r["keywords_missing"] == ["missing"]
    assert text_quality_mod.keyword_score("jsondecoder", ["JSONDecoder"])["keyword_score"] == 1.0
    assert text_quality_mod.keyword_score("jsondecoder", ["JSONDecoder"], case_sensitive=True)["keyword_score"] == 0.0


def test_format_compliance():
    text = "### Solution\ndef f():\n    pass\n### Usage\nf()\n"
    r = format_compliance(text, ["^### Solution", "^### Usage", "^### Sanity test"])
    assert r == {"format_ok": False, "format_missing": ["^### Sanity test"]}
    assert format_compliance(text, ["^### Solution", "^### Usage"])["format_ok"] is True
    assert format_compliance(text, [])["format_ok"] is None
    with pytest.raises(ValueError, match=r"sample.format_patterns: '\(' is not a valid"):
        compile_patterns(["("])


def test_keyword_set_validation_and_builtin():
    ks = load_keyword_set("stdlib_code")
    assert 12 <= len(ks.items) <= 16
    assert {i.difficulty for i in ks.items} == {"easy", "medium", "hard"}
    assert "logging.debug(" in ks.prompts and "raise ValueError(" in ks.prompts
    with pytest.raises(ValueError, match=r"item #1 \('b'\): keywords = \[\]"):
        parse_keyword_set([{"prompt": "a", "keywords": ["x"]}, {"prompt": "b", "keywords": []}], "ks.yaml")
    with pytest.raises(ValueError, match="unknown key"):
        parse_keyword_set([{"prompt": "a", "keywords": ["x"], "level": "easy"}])
    with pytest.raises(ValueError, match="no such keyword-set file"):
        load_keyword_set("/nowhere/else.yaml")
    assert collect_prompts(["\n", "class "], ks)[:3] == ["\n", "class ", "import json\n"]
    assert len(collect_prompts(["\n", "class "], ks)) == 1 + len(ks.items)  # "class " is not repeated


# --------------------------------------------------------------------------- evaluate + write
def _rows():
    return [
        {"prompt": "p1", "text": "abc)", "full_text": "p1abc)", "token_ids": [0, 1, 2]},
        {"prompt": "p1", "text": "ab", "full_text": "p1ab", "token_ids": [0, 1]},
        {"prompt": "p2", "text": "### Solution\nginggingging", "full_text": "x = (", "token_ids": [9, 9]},
        {"prompt": "other", "text": "zzz", "full_text": "x = 1\n", "token_ids": [3]},
    ]


def test_evaluate_samples_aggregates():
    ks = parse_keyword_set(
        [
            {"prompt": "p1", "keywords": ["a", "c"], "category": "basics", "difficulty": "easy"},
            {"prompt": "p2", "keywords": ["ging", "x", "y", "z"], "category": "gates", "difficulty": "hard"},
        ]
    )
    index = MemorizationIndex([0, 1, 2, 5], [9, 9, 9], n=2)
    rows, agg = evaluate_samples(_rows(), index=index, python=True, format_patterns=["^### Solution"], keyword_set=ks)
    assert [r["keyword_score"] if "keyword_score" in r else None for r in rows] == [1.0, 0.5, 0.25, None]
    assert agg["keyword_score"] == pytest.approx((1.0 + 0.5 + 0.25) / 3)
    assert agg["keyword_by_category"] == {"basics": 0.75, "gates": 0.25}
    assert agg["keyword_by_difficulty"] == {"easy": 0.75, "hard": 0.25}
    assert agg["format_ok_share"] == 0.25 and agg["format_by_pattern"] == {"^### Solution": 0.25}
    assert agg["stutter_share"] == 0.25 and agg["stutter_examples"] == ["ginggingging"]
    assert [r["mem_longest_tokens"] for r in rows] == [3, 2, 0, 0]
    assert agg["mem_longest_tokens_max"] == 3 and agg["mem_longest_tokens"] == pytest.approx(5 / 4)
    assert [r["train_ngram_share"] for r in rows] == [1.0, 1.0, 0.0, None]
    assert [r["val_only_ngram_share"] for r in rows] == [0.0, 0.0, 1.0, None]
    assert agg["val_only_ngram_share"] == pytest.approx(1 / 3)
    assert [r["parse_ok"] for r in rows] == [False, True, True, True]  # "p1abc)" has an unmatched ')'
    assert agg["parse_ok_share"] == 0.75
    assert agg["n_samples"] == 4 and rows[0]["prompt"] == "p1" and "token_ids" in rows[0]


def test_evaluate_without_optional_parts_has_only_repetition():
    rows, agg = evaluate_samples([{"prompt": "p", "text": "a b a b", "token_ids": [1]}])
    assert agg["distinct_1"] == 0.5
    assert not any(k.startswith(("mem_", "parse", "keyword", "format")) for k in agg)
    assert "parse_ok" not in rows[0]


def test_write_and_read_samples(tmp_path):
    rows = [{"prompt": "é", "token_ids": np.array([1, 2]), "score": np.float64(0.5)}, {"prompt": "b"}]
    path = write_samples(tmp_path, rows)
    assert path == tmp_path / "samples.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [{"prompt": "é", "token_ids": [1, 2], "score": 0.5}, {"prompt": "b"}]
    assert read_samples(tmp_path)[1] == {"prompt": "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["samples.jsonl"]


def test_gaplab_gpt_samples_with_its_kv_cache_as_without_it():
    """The cached path (gaplab's GPT) picks the same tokens as a full forward over the cropped context."""
    from gaplab.model.gpt import GPT
    from gaplab.schema import ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=8), len(ALPHABET)).eval()
    with torch.no_grad():
        model.wte.weight.mul_(30)  # well separated logits: no argmax tie for rounding to flip
    tok = CharTok(ALPHABET)
    rows = generate(model, tok, ["abc"], max_new_tokens=20, temperature=1.0, top_k=1, num_samples=1, seed=0)
    assert rows[0]["token_ids"] == _greedy(model, tok.encode("abc"), 20)[3:]  # 23 tokens: cropped past block 8
    calls = []
    model.next_logits = lambda idx, cache, _f=model.next_logits: calls.append(idx.shape[1]) or _f(idx, cache)
    generate(model, tok, ["abc"], max_new_tokens=8, temperature=1.0, top_k=1, num_samples=1, seed=0)
    assert calls == [3, 1, 1, 1, 1, 1, 8, 8]  # prompt, then one token per step until the context passes 8
