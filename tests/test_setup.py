"""The set-up files agree: environment.yml's pins are requirements.lock's pins."""

import re

import yaml


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_matches_lock(root):
    lock = _pins((root / "requirements.lock").read_text().splitlines())
    env = yaml.safe_load((root / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"] and "conda-forge" in env["channels"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    env_pins = _pins(pip)
    top = [
        re.split(r"[=<>]", line.strip())[0].lower()
        for line in (root / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(top) <= set(env_pins), set(top) - set(env_pins)
    for name, version in env_pins.items():
        assert lock.get(name) == version, f"environment.yml pins {name}=={version}, lock has {lock.get(name)}"


def test_torch_is_pinned_to_the_cpu_build_version(root):
    lock = _pins((root / "requirements.lock").read_text().splitlines())
    assert lock["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command(root):
    ci = (root / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (root / "README.md").read_text()
