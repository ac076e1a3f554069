"""The house: rooms by data flow, no import cycles, no giant modules, one copy of the notebooks."""

import ast
import filecmp
import os
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lib" / "gaplab"
#: a module past this many lines hides its parts; split it (docs/architecture.md, "where a new X goes")
MAX_LINES = 600
ROOMS = ("data", "model", "train", "measure", "datareport", "logs", "report", "pipeline", "ui", "integrations")


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every gaplab module ``path`` imports, at the top or inside a function (a lazy import is still a
    dependency: the runner/Dask cycle that this test was written for went through one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("gaplab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("gaplab"):
                continue
            for a in node.names:  # `from .pkg import module` imports a module, not a name
                sub = f"{mod}.{a.name}"
                out.add(
                    sub
                    if (PKG.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                    or (PKG.parent / Path(*sub.split("."))).is_dir()
                    else mod
                )
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {d for d in imports_of(p) if d in mods} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(g[n]):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle():
    g = graph()
    assert len(g) > 30
    assert "gaplab.data.split" in g["gaplab.pipeline.runner"]  # the graph sees lazy imports (runner.plan)
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_rooms_follow_the_data_flow():
    """The lower rooms never import the higher ones: base < data/model < train < measure < datareport, logs <
    report < pipeline < ui < integrations (the trainer callbacks: they write history.csv, apply the onset rule and
    draw the figure).

    What two rooms share lives in the lower one or in the base (``errors``, ``schema``, ``files``, ``units``,
    ``versioning``): the trainer's perplexity comes from ``gaplab.units``, not from ``measure``."""
    order = {
        "errors": 0,
        "schema": 0,
        "files": 0,
        "units": 0,
        "versioning": 0,
        "data": 1,
        "model": 1,
        "train": 2,
        "measure": 3,
        "datareport": 4,
        "logs": 4,
        "report": 5,
        "pipeline": 6,
        "ui": 7,
        "integrations": 8,
        "cli": 9,
    }
    g = graph()
    bad = []
    for mod, deps in g.items():
        room = mod.split(".")[1] if mod != "gaplab" else "cli"
        for d in deps:
            droom = d.split(".")[1] if d != "gaplab" else "errors"
            if order.get(droom, 0) > order.get(room, 9):
                bad.append(f"{mod} -> {d}")
    assert "gaplab.units" in g["gaplab.train.metrics"]  # the graph sees the trainer's base imports
    assert bad == [], bad


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_is_a_giant(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PKG)} has {n} lines; split it by what its parts do"


#: a function past this many lines (its def to its last line) does several things; name them and split it
MAX_FUNCTION_LINES = 60


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``name (N lines, line L)`` for each function or method in ``path`` longer than ``limit`` lines."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                out.append(f"{node.name} ({lines} lines, line {node.lineno})")
    return out


def test_the_function_length_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(70))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\nclass C:\n    def long(self):\n{body}\n")
    assert long_functions(tmp_path / "m.py") == ["long (71 lines, line 6)"]


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_function_is_a_giant(path):
    assert long_functions(path) == [], f"{path.relative_to(PKG)}: split these into short, named steps"


def test_every_room_has_a_docstring_that_says_what_it_holds():
    for room in ROOMS:
        init = PKG / room / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), init
    for path in PKG.rglob("*.py"):
        if path.name != "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text()))
            assert doc and "TODO" not in doc, path


def test_one_copy_of_the_notebooks():
    """notebooks/ (what a learner opens) is the package's notebooks/ (what gaplab run executes)."""
    root_nb = PKG.parents[1] / "notebooks"
    shipped = PKG / "notebooks"
    names = sorted(p.name for p in shipped.glob("*.ipynb"))
    assert names[:6] == [
        "00_playground.ipynb",
        "01_inspect_data.ipynb",
        "02_train.ipynb",
        "03_loss_gap.ipynb",
        "04_samples.ipynb",
        "05_compare.ipynb",
    ]
    if root_nb.is_symlink() or os.path.samefile(root_nb, shipped):
        assert os.path.samefile(root_nb, shipped)
    else:  # a checkout without symlinks: the two folders must hold the same bytes
        match, mismatch, errors = filecmp.cmpfiles(root_nb, shipped, names, shallow=False)
        assert mismatch == [] and errors == []


def test_package_data_ships_what_a_run_needs(root):
    import tomllib

    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["gaplab"]
    for pattern in patterns:
        assert list(PKG.glob(pattern)), f"package-data pattern {pattern!r} matches nothing under lib/gaplab"
    for needed in ("notebooks/02_train.ipynb", "reference/seed003.csv", "keywords/stdlib_code.yaml"):
        assert any(PKG.joinpath(needed).match(p) for p in patterns), needed
