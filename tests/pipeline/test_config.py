"""Study files: merging, grid expansion and errors that teach (file, phase, key, value, allowed)."""

import textwrap

import pytest
from gaplab import cli
from gaplab.errors import StudyError
from gaplab.pipeline.config import deep_merge, expand_grid, load_study, parse_study
from gaplab.schema import planned_iters

GOOD = """
study: t
description: a test
defaults:
  data: {source: stdlib, packages: [json], max_tokens: 3000}
  tokenizer: {name: gpt2, compact: true}
  model: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 16}
  train: {max_iters: 20, eval_interval: 10}
phases:
  a: {}
  b:
    model: {n_embd: 64}
"""


def write(tmp_path, text, name="study.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_deep_merge_keeps_unrelated_keys():
    base = {"model": {"n_layer": 2, "n_embd": 32}, "train": {"lr": 1}}
    out = deep_merge(base, {"model": {"n_embd": 64}})
    assert out == {"model": {"n_layer": 2, "n_embd": 64}, "train": {"lr": 1}}
    assert base["model"]["n_embd"] == 32  # not mutated


def test_phases_are_ordered_and_merged(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    assert [p.name for p in study.phases] == ["a", "b"]
    b = study.phase("b").params
    assert b.model.n_embd == 64 and b.model.n_layer == 1 and b.data.max_tokens == 3000
    resolved = study.phase("a").resolved("t", "/x")
    assert set(resolved) == {"study", "phase", "run_dir", "data", "tokenizer", "model", "train", "sample", "replicates"}
    assert resolved["replicates"] == 1
    assert resolved["train"]["batch_size"] == 8  # defaults filled in


def test_grid_expansion_names_and_counts():
    phases = expand_grid({"data.max_tokens": [125_000, 1_000_000], "model": ["tiny", "small", "medium"]})
    assert len(phases) == 6
    assert [n for n, _ in phases][:3] == ["d125k_tiny", "d125k_small", "d125k_medium"]
    assert phases[-1] == ("d1M_medium", {"data": {"max_tokens": 1_000_000}, "model": "medium"})


def test_grid_in_a_study(tmp_path):
    text = GOOD.replace(
        "phases:\n  a: {}\n  b:\n    model: {n_embd: 64}\n",
        "grid:\n  data.max_tokens: [2000, 3000]\n  model: [micro, tiny]\n",
    )
    study = load_study(write(tmp_path, text))
    assert [p.name for p in study.phases] == ["d2k_micro", "d2k_tiny", "d3k_micro", "d3k_tiny"]
    assert study.phase("d3k_tiny").params.model.n_embd == 64


def test_planned_iters_from_epochs():
    study = parse_study(
        {"study": "s", "phases": {"p": {"train": {"epochs": 2, "batch_size": 4, "eval_interval": 1}}}}, "f"
    )
    t = study.phases[0].params.train
    assert planned_iters(t, block_size=10, train_tokens=400) == 20  # 2 * 400 / (4 * 10)


BAD = [
    # (study text, key, value fragment, message fragment)
    ("defaults:\n  model: {n_embd: 100, n_head: 3}\n", "model.n_embd", "100", "divisible by model.n_head"),
    ("defaults:\n  modle: {n_layer: 2}\n", "modle", "n_layer", "did you mean 'model'"),
    ("defaults:\n  train: {learning_rat: 0.1}\n", "train.learning_rat", "0.1", "did you mean 'learning_rate'"),
    ("defaults:\n  data: {val_fraction: 0.7}\n", "data.val_fraction", "0.7", "less than or equal to 0.5"),
    (
        "defaults:\n  train: {max_iters: 10, eval_interval: 50}\n",
        "train.eval_interval",
        "50",
        "<= train.max_iters (10)",
    ),
    ("defaults:\n  train: {max_iters: 10, epochs: 2}\n", "train.max_iters", "10", "exactly one of"),
    ("defaults:\n  train: {learning_rate: -1}\n", "train.learning_rate", "-1", "greater than 0"),
    ("defaults:\n  model: {n_layer: 0}\n", "model.n_layer", "0", "greater than 0"),
    ("defaults:\n  tokenizer: {name: gtp2}\n", "tokenizer.name", "gtp2", "did you mean 'gpt2'"),
    ("defaults:\n  data: {split: random}\n", "data.split", "random", "'tail', 'documents' or 'chunks'"),
    (
        "defaults:\n  tokenizer: {compact_from: corpus}\n",
        "tokenizer.compact_from",
        "corpus",
        "set tokenizer.compact: true",
    ),
    (
        "defaults:\n  tokenizer: {compact: true, compact_from: all}\n",
        "tokenizer.compact_from",
        "all",
        "'train' or 'corpus'",
    ),
    ("defaults:\n  data: {source: jsonl}\n", "data.path", "None", "needs a path"),
    ("defaults:\n  data: {fail_on: [templatd]}\n", "data.fail_on", "templatd", "did you mean 'templated'"),
    ("defaults:\n  model: {size: huge}\n", "model.size", "huge", "unknown model size"),
    ("defaults:\n  train: {dtype: fp8}\n", "train.dtype", "fp8", "'auto', 'fp32', 'bf16' or 'fp16'"),
    ("defaults:\n  replicates: 0\n", "replicates", "0", "greater than or equal to 1"),
    ("defaults:\n  replicate: 3\n", "replicate", "3", "did you mean 'replicates'"),
    # a removed key says why it went and what to do
    ("defaults:\n  train: {max_iters: 10, restore_best: true}\n", "train.restore_best", "True", "ckpt/best.pt"),
]


@pytest.mark.parametrize("body,key,value,msg", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_study_exit_2_names_key_and_value(tmp_path, outputs, capsys, body, key, value, msg):
    text = "study: bad\nphases:\n  p1: {}\n" + body
    path = write(tmp_path, text)
    code = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and "phase 'p1'" in err
    assert f"{key} = " in err and value in err
    assert msg in err
    assert not outputs.exists()  # nothing written


def test_all_problems_reported_at_once(tmp_path):
    text = "study: bad\ndefaults:\n  model: {n_embd: 10, n_head: 3}\n  train: {batch_size: 0}\nphases:\n  a: {}\n  b: {data: {val_fraction: 0.9}}\n"
    with pytest.raises(StudyError) as ei:
        load_study(write(tmp_path, text))
    keys = [(p.phase, p.key) for p in ei.value.problems]
    assert ("a", "model.n_embd") in keys and ("a", "train.batch_size") in keys
    assert ("b", "data.val_fraction") in keys and ("b", "model.n_embd") in keys


def test_top_level_and_yaml_errors(tmp_path, capsys):
    p = write(tmp_path, "study: x\nphase:\n  a: {}\n")
    assert cli.main(["check", str(p)]) == 2
    assert "did you mean 'phases'" in capsys.readouterr().err
    p = write(tmp_path, "study: x\nphases: {a: [1, 2}\n", "broken.yaml")
    assert cli.main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML at line 2" in err and "broken.yaml" in err
    assert cli.main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "no such study file" in capsys.readouterr().err


def test_yaml_is_loaded_safely(tmp_path, capsys):
    p = write(tmp_path, "study: !!python/object/apply:os.system ['echo pwned']\nphases: {a: {}}\n")
    assert cli.main(["check", str(p)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_block_size_larger_than_split_is_reported(tmp_path, capsys, outputs):
    text = GOOD.replace("max_tokens: 3000", "max_tokens: 150")
    code = cli.main(["check", str(write(tmp_path, text))])
    err = capsys.readouterr().err
    assert code == 2 and "model.block_size = 16" in err and "the val split has 15 tokens" in err
    assert not outputs.exists()


def test_shipped_studies_validate(root):
    for path in sorted((root / "params").glob("*.yaml")):
        study = load_study(path)
        assert study.phases, path


def test_extends_inherits_and_overrides(tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    child = write(
        tmp_path,
        "study: child\nextends: base.yaml\ndefaults:\n  tokenizer: {compact: false}\n"
        "phases:\n  b: {train: {max_iters: 30}}\n  c: {}\n",
        "child.yaml",
    )
    study = load_study(child)
    assert study.name == "child" and [p.name for p in study.phases] == ["a", "b", "c"]
    b = study.phase("b").params
    assert b.model.n_embd == 64 and b.train.max_iters == 30 and b.tokenizer.compact is False
    loop = write(tmp_path, "study: loop\nextends: loop.yaml\n", "loop.yaml")
    with pytest.raises(StudyError, match="loop"):
        load_study(loop)


def test_validator_that_does_not_import_is_a_study_error(tmp_path, capsys, outputs):
    p = write(tmp_path, "study: v\nphases:\n  a: {data: {validators: [json_valid, 'nosuch.module:check']}}\n")
    assert cli.main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert "data.validators = 'nosuch.module:check'" in err and "does not import" in err
    assert "json_valid" not in err.split("data.validators = ")[1].split(":")[0]  # the short name is fine
    assert not outputs.exists()


def test_check_seed_study_reproduces_the_seeds_sizes(root, capsys):
    """Seed 003 reports 29,995,392 / 1,634,208 / 7,242,624 parameters and 900 / 4,500 / 13,500 / 20,700 train tokens."""
    assert cli.main(["check", str(root / "params" / "seed_study.yaml")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("phase")}
    assert rows["phase0"][1] == "29,995,392" and rows["phase1"][1] == "1,634,208" and rows["phase4"][1] == "7,242,624"
    assert [rows[f"phase{i}"][5] for i in range(1, 5)] == ["900", "4,500", "13,500", "20,700"]
    assert rows["phase4"][3] == "793,344"  # non-embedding: 4 layers of 128 wide
    # epochs = 3000 iters x 16 x 128 / 20,700 train tokens
    assert float(rows["phase4"][-1]) == pytest.approx(3000 * 16 * 128 / 20700, abs=0.05)
