"""Seed 001's mistake, rebuilt from real text: write ``train.jsonl`` and ``val.jsonl`` into a folder.

2,000 "plain" chat records (a standard-library docstring → the function's code, as code-alpaca pairs are) and
20 "perfect" records in the format the fine-tune was meant to teach (### Solution / ### Usage / ### Sanity
test), appended at the end; split by position 98/2 as seed 001's ``prepare_dataset`` did, so that 19 of
the 20 perfect records land in validation (train: 1,979 plain + 1 perfect; val: 21 plain + 19 perfect).
The text comes from the running interpreter's standard library; nothing is downloaded or committed.

    PYTHONPATH=lib python benchmarks/seed001_example.py /tmp/seed001 && gaplab inspect /tmp/seed001/train.jsonl /tmp/seed001/val.jsonl
"""

from __future__ import annotations

import ast
import json
import sys
import sysconfig
import textwrap
from pathlib import Path


def functions(package: str) -> list[tuple[str, str, str]]:
    """``(name, first docstring paragraph, code without the docstring)`` of a stdlib package's functions."""
    root = Path(sysconfig.get_paths()["stdlib"]) / package
    out = []
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]:
        if "test" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            if not doc or len(doc) < 25:
                continue
            body = lines[node.lineno - 1 : node.end_lineno]
            first, last = node.body[0].lineno - node.lineno, node.body[0].end_lineno - node.lineno
            code = textwrap.dedent("\n".join(body[:first] + body[last + 1 :]))
            out.append((node.name, doc.split("\n\n")[0].strip(), code))
    return out


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def perfect(name: str, doc: str, code: str) -> dict:
    answer = (
        f"### Solution\n```python\n{code}\n```\n### Usage\n```python\nresult = {name}(...)\n```\n"
        f"### Sanity test\n```python\nassert callable({name})\n```"
    )
    return chat(f"{doc}\nAnswer with a Solution, a Usage example and a Sanity test.", answer)


def main(folder: str) -> None:
    plain_pool = [
        f
        for p in (
            "email",
            "logging",
            "http",
            "xml",
            "urllib",
            "json",
            "importlib",
            "asyncio",
            "multiprocessing",
            "unittest",
            "idlelib",
        )
        for f in functions(p)
    ]
    perfect_pool = functions("textwrap") + functions("string") + functions("shlex")
    plain = [chat(doc, code) for _, doc, code in plain_pool[:2000]]
    good = [perfect(*f) for f in perfect_pool[:20]]
    assert len(plain) == 2000 and len(good) == 20, (len(plain), len(good))
    records = plain + good  # the perfect examples appended at the end, as in seed 001
    train = records[:1979] + [records[2000]]  # 98/2 by position: one perfect record stayed in train
    val = records[1979:2000] + records[2001:]
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.jsonl", train), ("val.jsonl", val)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    print(f"{out}/train.jsonl: {len(train)} records (1 perfect); {out}/val.jsonl: {len(val)} records (19 perfect)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "seed001")
