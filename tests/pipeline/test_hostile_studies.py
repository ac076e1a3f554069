"""Study files written to hurt: alias bombs, names that collide or hide a newline, callables that run shell
commands, models that cannot fit, broken templates, ``extends`` of a list of phases, a 10,000-phase grid.
Each one gets one sentence and exit code 2 (or a fast, correct answer), and no named callable is called."""

import sys
import textwrap

import pytest
import yaml
from gaplab import cli
from gaplab.pipeline.config import load_study

DATA = "data: {source: stdlib, packages: [json], max_tokens: 3000}"
BASE = f"""
defaults:
  {DATA}
  tokenizer: {{name: gpt2, compact: true}}
  model: {{n_layer: 1, n_head: 2, n_embd: 32, block_size: 16}}
  train: {{max_iters: 20, eval_interval: 10}}
"""


def study_text(name: str, rest: str) -> str:
    """A study named ``name``: :data:`BASE`'s defaults and ``rest`` (phases, grid), each dedented."""
    return f"study: {name}\n" + textwrap.dedent(BASE) + textwrap.dedent(rest)


def write(tmp_path, text, name="study.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def check(path, capsys, *flags):
    code = cli.main(["check", str(path), *flags])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def alias_bomb(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """The billion laughs in YAML: ``levels`` anchors, each a list of ``width`` aliases of the one before."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines)


# --------------------------------------------------------------------------- YAML alias bombs
@pytest.mark.timeout(30)
def test_alias_bomb_is_refused_at_once(tmp_path, capsys, outputs):
    p = tmp_path / "bomb.yaml"
    p.write_text("study: bomb\n" + alias_bomb() + "\nphases: {a: {}}\n")
    code, _, err = check(p, capsys)
    assert code == 2
    assert "bomb.yaml" in err and "aliases expand to" in err and "100,000" in err
    assert len(err) < 2000  # the message never prints the expanded value
    assert not outputs.exists()


@pytest.mark.timeout(30)
def test_alias_bomb_hidden_in_generator_args_stops_check_and_dry_run(tmp_path, capsys, outputs):
    body = (
        "study: bomb\ndefaults:\n  data:\n    source: generated\n    generator: gaplab.data.teaching:qa_defects\n"
        "    generator_args:\n      junk:\n" + alias_bomb(indent="        ") + "\nphases: {a: {}}\n"
    )
    p = tmp_path / "bomb.yaml"
    p.write_text(body)
    code, _, err = check(p, capsys)
    assert code == 2 and "aliases expand to" in err
    assert cli.main(["run", str(p), "--dry-run"]) == 2
    assert "aliases expand to" in capsys.readouterr().err
    assert not outputs.exists()


def test_recursive_alias_is_refused(tmp_path, capsys):
    p = write(tmp_path, "study: loop\ndefaults: &d\n  data: {generator_args: {self: *d}}\nphases: {a: {}}\n")
    code, _, err = check(p, capsys)
    assert code == 2 and "study.yaml" in err
    assert "refers to the node that contains it" in err


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path):
    p = write(
        tmp_path,
        study_text(
            "anchors",
            """
    phases:
      a: &wide {model: {n_embd: 64}}
      b: *wide
      c: {<<: *wide, train: {max_iters: 10}}
    """,
        ),
    )
    study = load_study(p)
    assert [ph.name for ph in study.phases] == ["a", "b", "c"]
    assert study.phase("b").params.model.n_embd == 64 == study.phase("c").params.model.n_embd
    assert study.phase("c").params.train.max_iters == 10


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name",
    ["ok\n", "figures", "report.html", "summary.csv", "study_status.json", "05_compare.ipynb", "Figures", "a" * 201],
)
def test_unsafe_or_reserved_phase_names_are_refused(tmp_path, capsys, outputs, name):
    p = tmp_path / "study.yaml"
    p.write_text(
        yaml.safe_dump(
            {"study": "names", "defaults": yaml.safe_load(BASE)["defaults"], "phases": {name: {}, "fine": {}}}
        )
    )
    code, _, err = check(p, capsys)
    assert code == 2, err
    assert "(phase name)" in err and repr(name)[:30] in err
    assert ("study-level file or folder" in err) == (
        name.casefold() in ("figures", "report.html", "summary.csv", "study_status.json", "05_compare.ipynb")
    )
    assert not outputs.exists()


def test_study_name_with_a_trailing_newline_is_refused(tmp_path, capsys):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump({"study": "ci\n", "phases": {"a": {}}}))
    code, _, err = check(p, capsys)
    assert code == 2 and "study = 'ci\\n'" in err


# --------------------------------------------------------------------------- callables
def test_stdlib_generator_is_refused_and_never_runs(tmp_path, capsys, outputs):
    marker = tmp_path / "PWNED"
    p = write(
        tmp_path,
        study_text(
            "evil",
            f"""
    phases:
      a:
        data: {{source: generated, generator: "os:system", generator_args: {{command: "touch {marker}"}}}}
    """,
        ),
    )
    code, _, err = check(p, capsys)
    assert code == 2
    assert "data.generator = 'os:system'" in err and "standard library" in err
    assert cli.main(["run", str(p), "--dry-run"]) == 2
    assert not marker.exists()
    assert not outputs.exists()


@pytest.mark.parametrize("spec", ["subprocess:run", "builtins:exec", "shutil:rmtree", "evilmod:run_it"])
def test_stdlib_callables_are_refused_even_when_re_exported(tmp_path, capsys, monkeypatch, spec):
    (tmp_path / "evilmod.py").write_text("from subprocess import run as run_it\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for key, section in (
        ("data.generator", f"data: {{source: generated, generator: '{spec}'}}"),
        ("data.validators", f"data: {{validators: ['{spec}']}}"),
    ):
        p = write(tmp_path, study_text("evil", f"phases:\n  a: {{{section}}}\n"))
        code, _, err = check(p, capsys)
        assert code == 2, err
        assert f"{key} = '{spec}'" in err and "standard library" in err


def test_check_lists_callables_and_calls_none(tmp_path, capsys, monkeypatch, outputs):
    """A study's own generator and validator: check names them, says they run as code, and calls neither."""
    (tmp_path / "mygen.py").write_text(
        textwrap.dedent(f"""
        import pathlib
        from gaplab.data.corpus import Document

        def docs(n=3):
            pathlib.Path({str(tmp_path / "generator_called")!r}).write_text("yes")
            return [Document("def f():\\n    return 1\\n" * 40, "gen", f"d{{i}}") for i in range(n)]

        def no_todo(document):
            pathlib.Path({str(tmp_path / "validator_called")!r}).write_text("yes")
            return []
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    p = write(
        tmp_path,
        study_text(
            "own",
            """
    phases:
      gen: {data: {source: generated, generator: "mygen:docs", generator_args: {n: 5}, validators: ["mygen:no_todo"]}}
      plain: {}
    """,
        ),
    )
    code, out, err = check(p, capsys)
    assert code == 0, err
    assert "run as code when the data is prepared" in out and "called none" in out
    assert "data.generator 'mygen:docs': phase gen" in out and "data.validators 'mygen:no_todo': phase gen" in out
    gen_row = next(line.split() for line in out.splitlines() if line.startswith("gen "))
    assert gen_row[5] == "?"  # its train tokens are not known without calling the generator
    assert cli.main(["run", str(p), "--dry-run"]) == 0
    assert "which --dry-run does not call" in capsys.readouterr().out
    assert not (tmp_path / "generator_called").exists() and not (tmp_path / "validator_called").exists()
    assert not outputs.exists()


# --------------------------------------------------------------------------- memory
def test_a_model_that_cannot_fit_is_refused_by_check_and_train(tmp_path, capsys, outputs):
    p = write(
        tmp_path,
        study_text(
            "huge",
            """
    phases:
      big: {model: {n_layer: 12, n_head: 10, n_embd: 100000, block_size: 64}}
    """,
        ),
    )
    code, _, err = check(p, capsys)
    assert code == 2
    assert "phase 'big', model = " in err and "training needs about" in err and "TiB at its peak" in err
    assert "this machine's RAM" in err and "--skip-memory-check" in err
    code, out, _ = check(p, capsys, "--skip-memory-check")
    assert code == 0 and "TiB" in out
    assert cli.main(["train", str(p), "--phase", "big", "--quiet"]) == 2  # before any allocation
    assert "training needs about" in capsys.readouterr().err
    assert cli.main(["run", str(p), "--dry-run"]) == 2
    assert not outputs.exists() or not any(outputs.rglob("*.pt"))


def test_peak_memory_parts():
    from gaplab.model.gpt import count_params
    from gaplab.pipeline.resources import peak_memory
    from gaplab.schema import ModelConfig, TrainConfig

    m, t = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=32), TrainConfig(max_iters=10, batch_size=4)
    est = peak_memory(m, t, 1000)
    n = count_params(m, 1000)["total"]
    assert est["weights"] == est["gradients"] == 4 * n and est["adamw"] == 8 * n
    assert est["total"] == sum(v for k, v in est.items() if k != "total")
    # the fused loss never holds batch x block x vocab logits; the plain loss does (3 copies in training)
    plain = peak_memory(m, TrainConfig(max_iters=10, batch_size=4, fused_loss=False), 50_000)
    assert plain["logits"] == 3 * 4 * 4 * 32 * 50_000
    assert peak_memory(m, t, 50_000)["logits"] < plain["logits"]
    # activations grow with the batch, the weights do not
    big = peak_memory(m, TrainConfig(max_iters=10, batch_size=8), 1000)
    assert big["activations"] > est["activations"] and big["weights"] == est["weights"]


# --------------------------------------------------------------------------- templates, extends
@pytest.mark.parametrize(
    "template, says",
    [
        ("Q: {question} {", "not a valid template"),
        ("Q: {0}", "placeholder {0} is not a field name"),
        ("Q: {}", "placeholder {} is not a field name"),
        ("Q: {question:d}", "not a valid template"),
        ("Q: {answer}", "not in data.fields"),
    ],
)
def test_broken_template_is_one_sentence(tmp_path, capsys, template, says):
    (tmp_path / "qa.jsonl").write_text('{"question": "why?"}\n' * 50)
    p = tmp_path / "study.yaml"
    raw = yaml.safe_load(BASE)
    raw["defaults"]["data"] = {"source": "jsonl", "path": "qa.jsonl", "fields": ["question"], "template": template}
    p.write_text(yaml.safe_dump({"study": "tmpl", **raw, "phases": {"a": {}}}))
    code, _, err = check(p, capsys)
    assert code == 2, err
    assert f"phase 'a', data.template = {template!r}" in err and says in err


def test_extends_a_study_whose_phases_are_a_list(tmp_path, capsys):
    write(
        tmp_path,
        study_text(
            "base",
            """
    phases:
      - name: a
      - name: b
        model: {n_embd: 64}
    """,
        ),
        "base.yaml",
    )
    child = write(
        tmp_path, "study: child\nextends: base.yaml\nphases:\n  b: {train: {max_iters: 30}}\n  c: {}\n", "child.yaml"
    )
    study = load_study(child)
    assert [p.name for p in study.phases] == ["a", "b", "c"]
    assert study.phase("b").params.model.n_embd == 64 and study.phase("b").params.train.max_iters == 30
    listed = write(tmp_path, "study: child2\nextends: base.yaml\nphases:\n  - name: d\n", "child2.yaml")
    assert [p.name for p in load_study(listed).phases] == ["a", "b", "d"]
    bad = write(tmp_path, "study: child3\nextends: base.yaml\nphases:\n  - {train: {}}\n", "child3.yaml")
    code, _, err = check(bad, capsys)
    assert code == 2 and "child3.yaml: phases[0]" in err and "'name' key" in err


# --------------------------------------------------------------------------- a 10,000-phase grid
@pytest.mark.timeout(120)
def test_check_on_a_10000_phase_grid_prepares_the_data_once(tmp_path, capsys, monkeypatch):
    import gaplab.data.split as split

    calls = []
    real = split.prepare_data
    monkeypatch.setattr(split, "prepare_data", lambda *a, **k: calls.append(1) or real(*a, **k))
    ten = [round(0.1 * i, 1) for i in range(10)]
    p = write(
        tmp_path,
        study_text(
            "grid",
            f"""
    grid:
      train.learning_rate: {[1e-4 * (i + 1) for i in range(10)]}
      train.seed: {list(range(10))}
      train.weight_decay: {ten}
      train.batch_size: {list(range(1, 11))}
    """,
        ),
    )
    code, out, err = check(p, capsys)
    assert code == 0, err
    assert "10,000 phases" in out
    assert len(calls) == 1  # one data configuration, prepared once
    assert "and 9,900 more phases" in out  # the table shows the first 100 (--all for every one)
    code, out, _ = check(p, capsys, "--all")
    assert code == 0 and sum(1 for line in out.splitlines() if line.startswith("learning_rate")) == 10_000


def test_refused_modules_are_the_interpreters_standard_library():
    """The stdlib set the refusal uses is the running interpreter's own list."""
    from gaplab.data.corpus import refused_module

    assert all(refused_module(m) for m in ("os", "subprocess", "builtins", "os.path", "importlib.util"))
    assert not refused_module("gaplab.data.teaching") and not refused_module("numpy")
    assert "os" in sys.stdlib_module_names
