"""The seed study's stand-in corpus is the standard-library package closest to seed 003's own."""

import yaml
from gaplab.data.slices import (
    SEED003_CORPUS,
    closest_stdlib_package,
    count_functions,
    distance,
    python_corpus_stats,
    stats_beside_seed,
)
from gaplab.data.tokenizer import get_tokenizer


def test_stats_and_distance_by_hand():
    tok = get_tokenizer("gpt2")
    src = ["def f():\n    return 1\n", "async def g():\n    pass\nclass A:\n    def m(self): ...\n"]
    s = python_corpus_stats(src, tok)
    assert s["files"] == 2 and s["functions"] == 3 and s["tokens"] == sum(len(tok.encode(t)) for t in src)
    assert count_functions("def (broken") == 0
    assert distance(SEED003_CORPUS, SEED003_CORPUS) == 0
    twice = {k: 2 * v for k, v in SEED003_CORPUS.items()}
    assert abs(distance(twice, SEED003_CORPUS) - 4 * 0.6931) < 1e-3  # ln 2 per number


def test_the_seed_study_uses_the_closest_package(root):
    ranked = closest_stdlib_package(get_tokenizer("gpt2"))
    d, name, stats = ranked[0]
    assert all(r[2]["tokens"] >= SEED003_CORPUS["tokens"] for r in ranked)  # room for phase 4's 20.7 K
    study = yaml.safe_load((root / "params" / "seed_study.yaml").read_text())
    assert study["defaults"]["data"]["packages"] == [name]
    desc = " ".join(study["description"].split())
    assert (
        f"{stats['files']} files, {stats['tokens']:,} GPT-2 tokens, {stats['unique_tokens']:,} distinct tokens, "
        f"{stats['functions']} functions" in desc
    )  # the description states the numbers it was chosen by
    assert "seed 003's ChromaDB code: 31 files, 23,028 tokens, 971 unique tokens, 129 functions" in stats_beside_seed(
        stats, name
    )
