"""The README's table of real logs: gaplab's verdict on each log in tests/logs/fixtures beside a careful reader's.

The reader's verdicts are judgements made by eye from each log's numbers (written here once, with the reason);
gaplab's are computed now, by ``gaplab.logs.analyze`` on the fixture as its library saved it.  A log gaplab
refuses (two runs in one file, no validation loss) shows the sentence it answers with.

Usage::

    python benchmarks/analyze_table.py          # prints the Markdown table
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "logs" / "fixtures"

#: (fixture, the gaplab verdicts that say what the reader says (space-separated), source kind, the reader's
#: verdict, why: the numbers a careful reader looks at).  ``underfitting`` is gaplab's "still improving"; one
#: eval's "no trend to judge yet" is labelled underfitting too.
READER = (
    (
        "hf_trainer_state/financial_news_10epochs_trainer_state.json",
        "overfitting",
        "real",
        "overfitting from epoch 3",
        "val best 1.326 at epoch 3, then 1.37-1.51 for 7 epochs while train falls 1.35 → 1.16",
    ),
    (
        "hf_trainer_state/mood_bert_3epochs_trainer_state.json",
        "overfitting",
        "real",
        "likely overfitting, one eval of evidence",
        "val 0.808, 0.807, then 0.902 (+12 %) at the last epoch while train falls 0.83 → 0.62",
    ),
    (
        "hf_trainer_state/lora_imdb_distilbert_trainer_state.json",
        "healthy",
        "real",
        "healthy: val flat",
        "val 0.395, 0.415, 0.389: within a few %, no trend; train falls 0.54 → 0.35",
    ),
    (
        "hf_table/financebench_dora_README.md",
        "healthy",
        "real",
        "levelled off (train not logged)",
        "val falls 4.73 → 2.97 at step 26, the last three 3.07, 3.05, 3.03: a stop, not a clear rise",
    ),
    (
        "hf_table/gpt2_wikitext2_README.md",
        "underfitting",
        "real",
        "still improving",
        "val 5.385, 5.109, 5.023 with train 5.45 → 4.90: both falling, more slowly at the end",
    ),
    (
        "lightning_csv/slm_training_metrics.csv",
        "healthy",
        "real",
        "still improving, gap opening",
        "val falls every epoch (6.83 → 5.73); train (epoch means) from above val to 0.26 below it",
    ),
    (
        "lightning_csv/gpttt_metrics.csv",
        "underfitting",
        "real",
        "still improving (2 evals)",
        "val 2.39 → 1.90, train 2.48 → 2.08",
    ),
    (
        "keras_csv/tomato_leaf_training_log.csv",
        "overfitting",
        "real",
        "overfitting from about epoch 8",
        "val reaches ~0.35 by epoch 8, then scatters 0.29-0.48 and ends at 0.42; train falls 0.32 → 0.05-0.09",
    ),
    (
        "keras_csv/mnist_cnn_training_log.csv",
        "healthy underfitting",
        "real",
        "healthy: still improving",
        "val falls to its lowest, 0.009, at the last epoch; train 0.015",
    ),
    (
        "nanogpt/era_session21_training_logs.txt",
        "overfitting",
        "real",
        "overfitting from step 2500-3000",
        "val best 1.480 at step 3000 (1.49 from 2000), then 1.51-1.56 while train falls 1.07 → 0.86",
    ),
    (
        "nanogpt/bigram_readme_run.txt",
        "healthy",
        "real",
        "healthy: levelling off",
        "val 1.511, 1.493, 1.488, 1.476: still inching down; train falls faster (gap 0.37)",
    ),
    (
        "llamafactory/qwen_medical_trainer_log.jsonl",
        "underfitting",
        "real",
        "no trend (one eval)",
        "one eval_loss, 1.641 at step 500",
    ),
    (
        "keras_csv/brain_tumor_appended_runs.csv",
        "refused",
        "real",
        "four runs in one file",
        "the epochs restart at 0 three times: CSVLogger appended four runs",
    ),
    (
        "llamafactory/mistral_translator_no_eval_trainer_log.jsonl",
        "refused",
        "real",
        "nothing to judge",
        "the run logged train loss only, no eval",
    ),
    (
        "hf_trainer_state/built_3epoch_val_up39_trainer_state.json",
        "overfitting",
        "issue 24's case, built",
        "overfitting from epoch 1",
        "val 0.300, 0.372, 0.417 (+39 %) while train falls 0.50 → 0.14 (3.5×)",
    ),
    (
        "hf_table/built_20_no_log_README.md",
        "overfitting",
        "issue 24's case, built",
        "overfitting from step 104",
        "val best 5.101 at step 104, then rising every few evals to 5.388; train logged only from step 546",
    ),
)


def gaplab_cell(path: Path) -> tuple[str, str]:
    """gaplab's verdict on one fixture (``verdict, onset``), or the sentence it refuses it with."""
    from gaplab.errors import DataError
    from gaplab.logs.analyze import analyze_path

    try:
        (a,) = analyze_path(path)
    except DataError as err:
        return "refused", str(err).split(": ", 1)[1].split(";")[0]
    o = a.curve.onset
    onset = f"onset at {a.x_unit} {o.onset_iter}" if o.onset_iter is not None else "no onset"
    thin = ", thin evidence" if a.curve.thin_evidence else ""
    return a.curve.verdict, f"{onset}; best {o.best_val:.3f} at {a.x_unit} {o.best_iter}{thin}"


def table() -> str:
    rows = [
        "| log (format) | kind | evals | gaplab | | careful reader | why (the numbers) | agree |",
        "|---|---|---|---|---|---|---|---|",
    ]
    from gaplab.logs import read_log

    agreed = 0
    for fixture, agreeing, kind, reader, why in READER:
        path = FIXTURES / fixture
        verdict, detail = gaplab_cell(path)
        try:
            evals = str(len(read_log(path).history))
        except Exception:  # noqa: BLE001 - a refused log has no evals to count
            evals = "-"
        agree = verdict in agreeing.split()
        agreed += agree
        rows.append(
            f"| `{fixture}` | {kind} | {evals} | **{verdict}** | {detail} | {reader} | {why} | {'yes' if agree else 'no'} |"
        )
    rows.append(f"\ngaplab agrees with the careful reader on {agreed} of {len(READER)} logs.")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "lib"))
    print(table())
