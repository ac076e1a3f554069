"""`gaplab inspect --json` prints the whole data report; `check` and `inspect` print skipped files."""

import json

from gaplab import cli
from gaplab.files import read_json
from gaplab.pipeline.stages import inspect_phase


def _study(tmp_path, bad_csv=False):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(12):
        (folder / f"doc{i:02d}.txt").write_text(f"document number {i} says " + " ".join(f"w{i}x{j}" for j in range(80)))
    (folder / "image.txt").write_bytes(b"\x89PNG\x00\x00binary")
    (folder / "latin1.txt").write_bytes(b"caf\xe9 au lait")
    study = tmp_path / "s.yaml"
    study.write_text(f"""study: s
defaults:
  data: {{source: files, path: {folder}, glob: "*.txt", split: documents, val_fraction: 0.2}}
  tokenizer: {{name: gpt2, compact: true}}
  model: {{n_layer: 1, n_head: 2, n_embd: 16, block_size: 16}}
  train: {{max_iters: 10, eval_interval: 5}}
phases:
  one: {{}}
""")
    return study


def test_inspect_json_is_the_data_report(tmp_path, capsys):
    study = _study(tmp_path)
    assert cli.main(["inspect", str(study), "--phase", "one", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    from gaplab.pipeline.config import load_study

    s = load_study(study)
    params = s.phase("one").resolved(s.name, str(tmp_path / "run"))
    inspect_phase(params, enforce=False)
    written = read_json(tmp_path / "run" / "data_report.json")
    printed.pop("timings_s"), written.pop("timings_s")
    assert printed == written
    assert {"duplicates", "leakage", "boilerplate", "checks", "size"} <= set(printed)
    assert printed["duplicates"]["near"]["threshold"] == 0.3


def test_check_and_inspect_print_the_skipped_files(tmp_path, capsys):
    study = _study(tmp_path)
    assert cli.main(["check", str(study)]) == 0
    out = capsys.readouterr().out
    assert "one: data: 2 skipped (image.txt: binary (NUL bytes); latin1.txt: not UTF-8 (byte 3))" in out
    cli.main(["inspect", str(study), "--phase", "one"])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "data: 2 skipped (image.txt: binary (NUL bytes); latin1.txt: not UTF-8 (byte 3))"
