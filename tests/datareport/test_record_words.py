"""The words and skeletons of the report read once: each fast path against the plain reading it replaces, on
real records (docstring -> code from the running interpreter's standard library, tests/datareport/stdlib_records.py).

- :func:`word_ids` reads ASCII text without the regex and exact copies once: the same ids as the regex.
- :func:`skeleton_groups` blanks a record's topic from the texts' word ids, and computes a skeleton only
  where another text could share it: the same groups as blanking and skeletonizing every record.
- the prompts' and answers' words are cut from the texts': the same boilerplate as reading them apart.
"""

import re

import numpy as np
from gaplab.data.corpus import Document
from gaplab.datareport.boilerplate import boilerplate, prompt_prefix
from gaplab.datareport.detectors import skeleton_groups, template_skeleton, word_ids
from gaplab.datareport.record_templates import record_words, skeleton_keys, topic_blanked

from .stdlib_records import module_topics, records
from .test_own_data_checks import _filler


def _regex_word_ids(texts):
    """The plain reading: every text's regex words, numbered in first-occurrence order."""
    vocab, out = {}, []
    for t in texts:
        out.append(np.array([vocab.setdefault(w, len(vocab)) for w in re.findall(r"\w+", t.lower())], dtype=np.int64))
    return out, list(vocab)


def _plain_groups(texts, prompts, answers):
    """The plain grouping: every record blanked and skeletonized, ids in first-occurrence order."""
    ids, out = {}, []
    for t, p, a in zip(texts, prompts, answers):
        if not t.strip():
            out.append(-1)
            continue
        blanked = topic_blanked(p, a) if p is not None and a is not None else None
        out.append(ids.setdefault(template_skeleton(t if blanked is None else blanked), len(ids)))
    return np.array(out, dtype=np.int64)


def _mixed_records() -> list[Document]:
    """Real records and seed 000's filler, with what the fast paths must hand to the plain one: copies,
    non-ASCII text (a letter whose lower case is two characters), a text that is not its prompt and answer,
    a record without sides, an empty document."""
    docs = records(["json", "csv", "argparse"], per_module=60) + _filler()
    docs += docs[:30]  # exact copies
    topic = "İstanbul café naïve résumé"
    docs.append(
        Document(
            f"What is {topic}?\n{topic} is a fundamental concept in many projects today.",
            "x",
            "u1",
            f"What is {topic}?",
            f"{topic} is a fundamental concept in many projects today.",
        )
    )
    docs.append(Document("Preface\n" + docs[0].text, "x", "joined-apart", docs[0].prompt, docs[0].answer))
    docs.append(Document("a plain document with no sides at all, one of many", "x", "plain"))
    docs.append(Document("   \n ", "x", "empty", "", "  "))
    return docs


def test_word_ids_are_the_regex_words_with_copies_read_once():
    docs = _mixed_records()
    texts = [d.text for d in docs]
    per_doc, vocab = word_ids(texts)
    plain, plain_vocab = _regex_word_ids(texts)
    assert vocab == plain_vocab and len(per_doc) == len(texts)
    assert all(a.dtype == np.int64 and np.array_equal(a, b) for a, b in zip(per_doc, plain))
    assert not texts[-4].isascii() and len(per_doc[-4]) == len(re.findall(r"\w+", texts[-4].lower()))
    # an exact copy is read once: it shares the first one's array
    n = len(texts) - 34
    assert texts[n] == texts[0] and per_doc[n] is per_doc[0]


def test_only_the_windows_that_can_be_frequent_are_sorted():
    from gaplab.datareport.boilerplate import _distinct_owner_counts, _frequent

    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, size=5000, dtype=np.uint64) | np.uint64(1)
    common = keys[:20].copy()
    keys[:2000] = common.repeat(100)  # 20 keys in 100 windows each
    keys[2000:2100] = common.repeat(5) ^ np.uint64(2)  # in the same buckets (high bits), 5 windows each
    owners = rng.integers(0, 60, size=keys.size)
    for need in (3, 5, 30, 61):
        hashes, df = _distinct_owner_counts(keys, owners)
        assert np.array_equal(_frequent(keys, owners, need), hashes[df >= need])
    assert _frequent(keys, owners, 30).size == 20


def test_record_skeleton_groups_are_the_plain_ones():
    docs = _mixed_records()
    texts, prompts, answers = [d.text for d in docs], [d.prompt for d in docs], [d.answer for d in docs]
    plain = _plain_groups(texts, prompts, answers)
    assert np.array_equal(skeleton_groups(texts, prompts, answers), plain)
    assert np.array_equal(skeleton_groups(texts, prompts, answers, words=word_ids(texts)), plain)
    # the filler is templated (the test is not vacuous): few groups for many records
    filler = [i for i, d in enumerate(docs) if d.source == "filler"]
    assert len(set(plain[filler].tolist())) < len(filler) / 4
    # as plain text (no sides) too
    plain_texts = np.array([-1 if not t.strip() else 0 for t in texts])
    skeletons = {}
    for i, t in enumerate(texts):
        if plain_texts[i] >= 0:
            plain_texts[i] = skeletons.setdefault(template_skeleton(t), len(skeletons))
    assert np.array_equal(skeleton_groups(texts), plain_texts)


def test_a_skeleton_is_computed_only_where_another_could_share_it():
    topics = [f"the {name} module" for name, _ in module_topics(12)]
    texts = [f"Alice has {k} boxes of {t}." for k, t in enumerate(topics)]  # same characters but letters and digits
    texts += ["Bruno has 7 boxes of the csv module.", "a b c d.", "Q.", "Étienne has 3 boxes of the csv module."]
    texts.append("Bruno has 12 boxes\u00a0of the csv module.")  # not ASCII, its skeleton is: Bruno's
    keys = skeleton_keys(texts)
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            assert (keys[i] == keys[j]) == (template_skeleton(a) == template_skeleton(b)), (a, b)
    # "a b c d." and "Q." keep the same characters ("."), but their skeletons differ: both computed, apart
    assert keys[-4] != keys[-3] and isinstance(keys[-4], str)
    assert keys[-1] == keys[-5]


def test_the_prompts_and_answers_words_are_cut_from_the_texts():
    docs = records(["json", "csv", "logging"], per_module=80)
    texts, prompts, answers = [d.text for d in docs], [d.prompt for d in docs], [d.answer for d in docs]
    names = [d.name for d in docs]
    words = word_ids(texts)
    prompt_words, answer_words = record_words(texts, prompts, answers, words)
    vocab = words[1]
    for cut, own in ((prompt_words, word_ids(prompts)), (answer_words, word_ids(answers))):
        assert all([vocab[i] for i in a] == [own[1][i] for i in b] for a, b in zip(cut[0], own[0]))
    groups = skeleton_groups(texts, prompts, answers, words=words)
    assert boilerplate(answers, names, groups=groups, words=answer_words) == boilerplate(answers, names, groups=groups)
    alpaca = [f"Below is an instruction that describes a task.\n{p}" for p in prompts]
    joined = [f"{p}\n{a}" for p, a in zip(alpaca, answers)]
    cut_prompts, _ = record_words(joined, alpaca, answers, word_ids(joined))
    assert prompt_prefix(alpaca, names, words=cut_prompts) == prompt_prefix(alpaca, names) is not None
    # a text that is not its prompt and its answer: nothing is cut, the caller reads the sides apart
    texts[3] = "Preface\n" + texts[3]
    assert record_words(texts, prompts, answers, word_ids(texts)) is None
