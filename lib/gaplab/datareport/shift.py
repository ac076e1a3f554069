"""Is validation the same kind of data as training?  Adversarial validation (the ``train_val_shift`` check).

A classifier tries to tell val records from train records: TF-IDF of word 1–2-grams and of character
3–5-grams (scikit-learn's ``TfidfVectorizer``), a logistic regression (``class_weight="balanced"``), and
its out-of-fold scores from stratified k-fold cross-validation give one ROC AUC.  0.5 is chance; a split
that sent one kind of record to val (seed 001: the last records were the examples that mattered, and a
tail split put them all in val) is told apart at an AUC near 1.

The AUC is read against a permutation null: the same cross-validation with the train/val labels shuffled
(:data:`PERMUTATIONS` times).  The check's value is how far the AUC lies beyond the null's upper edge,
``max(0, AUC − (max(null mean, 0.5) + 3 · null sd))``, in AUC units; the null sd is at least the Mann–Whitney
standard deviation of an AUC of random scores with these class sizes, ``sqrt((n_val + n_train + 1) /
(12 · n_val · n_train))``, so a few shuffles cannot make the edge too tight.  A seeded random split of one
pool reads 0 at any size (its AUC stays inside the null); a shift reads more the more surely it is one.

Units: the records (documents) when each side has at least :data:`MIN_DOCUMENTS` whole ones; otherwise
(one long text cut by a tail split) windows of :data:`WINDOW_TOKENS` tokens of each side's token stream,
folded by document when each side has windows of at least :data:`MIN_GROUPS` documents, else by
contiguous stretches (:func:`_folds` says what each answers).  At most :data:`MAX_PER_SIDE` units a side (a seeded sample) and the
first :data:`MAX_CHARS` characters of each: 100,000 records take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .check import Report, plural
from .detectors import preview

#: a sample of at most this many units per side
MAX_PER_SIDE = 1000
#: the first this many characters of each unit
MAX_CHARS = 1000
#: fewer units than this on a side: not measured
MIN_UNITS = 10
#: whole documents as units when each side has at least this many; else token windows
MIN_DOCUMENTS = 20
WINDOW_TOKENS = 32
FOLDS = 5
PERMUTATIONS = 6
#: the null's upper edge: mean + this many standard deviations
NULL_SDS = 3.0
SEED = 0

SHIFT_MEANING = (
    "how far a classifier's cross-validated AUC at telling val records from train records (TF-IDF word and "
    "character n-grams, logistic regression) lies beyond what it reaches with the labels shuffled (null "
    "mean, at least 0.5, + 3 sd), in AUC units: 0 when val reads like train, up to 0.5 when every val record gives itself away"
)


@dataclass
class Units:
    """What the classifier reads: each side's texts and names, and how they were cut."""

    train_texts: list[str]
    train_names: list[str]
    val_texts: list[str]
    val_names: list[str]
    kind: str  # "documents" or "windows"
    train_total: int
    val_total: int
    #: windows: the document each window starts in (train units first, then val); folds keep a document whole
    groups: Optional[np.ndarray] = None


def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))


def _document_units(texts: Sequence[str], names: Sequence[str], doc_split: Sequence[str]) -> Optional[Units]:
    train = [i for i, s in enumerate(doc_split) if s == "train" and texts[i].strip()]
    val = [i for i, s in enumerate(doc_split) if s == "val" and texts[i].strip()]
    if len(train) < MIN_DOCUMENTS or len(val) < MIN_DOCUMENTS:
        return None
    rng = np.random.default_rng(SEED)
    train = [train[k] for k in _sample(len(train), MAX_PER_SIDE, rng)]
    val = [val[k] for k in _sample(len(val), MAX_PER_SIDE, rng)]
    return Units(
        [texts[i][:MAX_CHARS] for i in train],
        [names[i] for i in train],
        [texts[i][:MAX_CHARS] for i in val],
        [names[i] for i in val],
        "documents",
        sum(1 for s in doc_split if s == "train"),
        sum(1 for s in doc_split if s == "val"),
    )


def _windows(ids: np.ndarray, owners: Optional[np.ndarray], names: Sequence[str], tokenizer: Any, side: str):
    """Consecutive windows of :data:`WINDOW_TOKENS` tokens of one side's stream (a seeded sample, in stream
    order), decoded, each named by the document it starts in."""
    starts = np.arange(0, max(0, len(ids) - WINDOW_TOKENS + 1), WINDOW_TOKENS)
    starts = starts[_sample(len(starts), MAX_PER_SIDE, np.random.default_rng(SEED))]
    texts, labels, groups = [], [], []
    for s in starts.tolist():
        texts.append(tokenizer.decode(ids[s : s + WINDOW_TOKENS].tolist()))
        where = names[int(owners[s])] if owners is not None else side
        labels.append(f"{where} ({side} tokens {s:,}–{s + WINDOW_TOKENS:,})")
        groups.append(int(owners[s]) if owners is not None else -1)
    return texts, labels, groups


def shift_units(inputs: Any) -> Optional[Units]:
    """The units to classify for a prepared phase (:class:`gaplab.datareport.build.ReportInputs`)."""
    if not any(s in ("val", "both") for s in inputs.doc_split):
        return None  # one file, or no validation split: nothing to compare
    units = _document_units(inputs.texts, inputs.names, inputs.doc_split)
    if units is not None:
        return units
    prepared = inputs.prepared
    tokenizer = prepared.base_tokenizer
    train_texts, train_names, train_groups = _windows(
        inputs.train_base, getattr(prepared, "train_owners", None), inputs.names, tokenizer, "train"
    )
    val_texts, val_names, val_groups = _windows(
        inputs.val_base, getattr(prepared, "val_owners", None), inputs.names, tokenizer, "val"
    )
    return Units(
        train_texts,
        train_names,
        val_texts,
        val_names,
        "windows",
        len(inputs.train_base) // WINDOW_TOKENS,
        len(inputs.val_base) // WINDOW_TOKENS,
        np.array(train_groups + val_groups, dtype=np.int64),
    )


# --------------------------------------------------------------------------- the classifier
def _features(texts: Sequence[str]):
    """TF-IDF of word 1–2-grams and character 3–4-grams (within word bounds), side by side, and the name
    of each column in words."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20_000, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=2, max_features=30_000, sublinear_tf=True)
    blocks, labels = [], []
    for vectorizer, what in ((words, "word"), (chars, "characters")):
        try:
            blocks.append(vectorizer.fit_transform(texts))
        except ValueError:  # no term in at least two units (tiny or empty texts)
            continue
        labels.extend(f"{what} {term!r}" for term in vectorizer.get_feature_names_out())
    if not blocks:
        return None, []
    features = hstack(blocks).tocsr()
    features.sort_indices()  # once here, not again in every fit on a row slice (scikit-learn sorts unsorted ones)
    return features, labels


def _model():
    from sklearn.linear_model import LogisticRegression

    # liblinear's dual problem: fewer units than features, ten times faster than the primal here
    return LogisticRegression(
        C=1.0, class_weight="balanced", solver="liblinear", dual=True, max_iter=1000, random_state=SEED
    )


def _oof_scores(features, labels: np.ndarray, folds, groups: Optional[np.ndarray]) -> np.ndarray:
    """Each unit's score from the model that did not see it, as its rank among its fold's units (0–1): the
    folds' models differ in scale and offset, and pooled raw scores would blur the AUC with them."""
    out = np.zeros(len(labels))
    for fit_on, score_on in folds.split(np.zeros(len(labels)), labels, groups):
        raw = _model().fit(features[fit_on], labels[fit_on]).decision_function(features[score_on])
        out[score_on] = (np.argsort(np.argsort(raw, kind="stable"), kind="stable") + 0.5) / len(raw)
    return out


#: windows are folded by document when each side's windows come from at least this many documents
MIN_GROUPS = 3


def _folds(units: Units) -> tuple[Any, str]:
    """Stratified folds and how they cut: ``"records"`` (shuffled); ``"documents"`` (windows, each
    document's windows in one fold: a window is never scored by a model that read the rest of its
    document, so the question is whether an unseen val document reads unlike an unseen train one); or,
    when a side's windows come from fewer than :data:`MIN_GROUPS` documents (a tail split's val is the end
    of one or two), ``"stretches"``: contiguous stretches of each side's stream, so the classifier reads
    other stretches of the same val documents, and the value says how unlike train those documents are."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if units.groups is None:
        folds = StratifiedKFold(n_splits=min(FOLDS, len(units.val_texts)), shuffle=True, random_state=SEED)
        return folds, "records"
    n_train = len(units.train_texts)
    documents = min(np.unique(g).size for g in (units.groups[:n_train], units.groups[n_train:]))
    if documents >= MIN_GROUPS:
        return StratifiedGroupKFold(n_splits=min(FOLDS, documents), shuffle=True, random_state=SEED), "documents"
    return StratifiedKFold(n_splits=min(FOLDS, len(units.val_texts))), "stretches"


def mann_whitney_sd(n_val: int, n_train: int) -> float:
    """Standard deviation of the AUC of random scores for these class sizes (Mann–Whitney U / n1·n0)."""
    return math.sqrt((n_val + n_train + 1) / (12.0 * n_val * n_train))


def adversarial_auc(units: Units) -> Optional[dict[str, Any]]:
    """Cross-validated AUC of telling val units from train units, its permutation null, and what gives
    val away; ``None`` when a side has fewer than :data:`MIN_UNITS` units or no text to read."""
    from sklearn.metrics import roc_auc_score

    n_train, n_val = len(units.train_texts), len(units.val_texts)
    if n_train < MIN_UNITS or n_val < MIN_UNITS:
        return None
    folds, folds_by = _folds(units)
    features, columns = _features(units.train_texts + units.val_texts)
    if features is None:
        return None
    labels = np.concatenate([np.zeros(n_train, np.int64), np.ones(n_val, np.int64)])
    groups = units.groups if folds_by == "documents" else None
    scores = _oof_scores(features, labels, folds, groups)
    auc = float(roc_auc_score(labels, scores))
    rng = np.random.default_rng(SEED)
    null = []
    for _ in range(PERMUTATIONS):
        shuffled = rng.permutation(labels)
        null.append(float(roc_auc_score(shuffled, _oof_scores(features, shuffled, folds, groups))))
    null_mean = float(np.mean(null))
    null_sd = max(float(np.std(null, ddof=1)) if len(null) > 1 else 0.0, mann_whitney_sd(n_val, n_train))
    # pooled out-of-fold scores of shuffled labels average a little under 0.5 on small samples; the edge
    # never starts below chance
    edge = max(null_mean, 0.5) + NULL_SDS * null_sd
    return {
        "folds_by": folds_by,
        "auc": round(auc, 4),
        "null_aucs": [round(x, 4) for x in null],
        "null_mean": round(null_mean, 4),
        "null_sd": round(null_sd, 4),
        "null_edge": round(edge, 4),
        "value": round(max(0.0, auc - edge), 4),
        "giveaways": _giveaways(features, labels, columns),
        "most_unlike_train": _most_unlike(units, scores[n_train:]),
    }


def _giveaways(features, labels: np.ndarray, columns: Sequence[str], top: int = 8) -> dict[str, list[str]]:
    """The features whose weights most say "val" (and most say "train") in a model fitted on every unit."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    weights = _model().fit(features, labels).coef_.ravel()
    order = np.argsort(weights)
    # a lone function word ("is", "as") is true but says nothing a reader can act on: not shown
    shown = [k for k in order if not (columns[k].startswith("word ") and columns[k][6:-1] in ENGLISH_STOP_WORDS)]
    return {
        "val": [columns[k] for k in shown[::-1][:top] if weights[k] > 0],
        "train": [columns[k] for k in shown[:top] if weights[k] < 0],
    }


def _most_unlike(units: Units, val_scores: np.ndarray, top: int = 3) -> list[dict[str, Any]]:
    """The val units the out-of-fold model was surest are not train."""
    order = np.argsort(-val_scores, kind="stable")[:top]
    return [
        {
            "name": units.val_names[k],
            "score": round(float(val_scores[k]), 3),
            "preview": preview(units.val_texts[k], 120),
        }
        for k in order.tolist()
    ]


# --------------------------------------------------------------------------- the report's section
def shift_section(inputs: Any) -> dict[str, Any]:
    """``report["train_val_shift"]``: the units read, the AUC against its null, ``value`` (``None`` when not
    measured: no split, or too few units on a side)."""
    units = shift_units(inputs)
    section: dict[str, Any] = {"value": None, "units": None}
    if units is None:
        return section
    section.update(
        units=units.kind,
        window_tokens=WINDOW_TOKENS if units.kind == "windows" else None,
        train_units=len(units.train_texts),
        val_units=len(units.val_texts),
        train_total=units.train_total,
        val_total=units.val_total,
        folds=FOLDS,
        permutations=PERMUTATIONS,
    )
    measured = adversarial_auc(units)
    if measured is not None:
        section.update(measured)
    return section


def shift_detail(report: Report, warn: Optional[float]) -> str:
    d = report["train_val_shift"]
    unit = "records" if d["units"] == "documents" else f"{d['window_tokens']}-token windows"
    sample = f"{d['val_units']:,} val / {d['train_units']:,} train {unit}"
    if d["val_units"] < d["val_total"] or d["train_units"] < d["train_total"]:
        sample += f", sampled from {d['val_total']:,} / {d['train_total']:,}"
    null = f"shuffled labels: {d['null_mean']:.2f} ± {d['null_sd']:.2f}, {len(d['null_aucs'])} shuffles"
    if d.get("folds_by") == "stretches":
        sample += f", folded by stretches of the stream: a side holds windows of fewer than {MIN_GROUPS} documents"
    if not d["value"]:
        return f"val reads like train: a classifier's AUC {d['auc']:.2f} is within the null ({null}; {sample})"
    text = f"a classifier tells val from train at AUC {d['auc']:.2f} ({null}; {sample})"
    giveaways = d["giveaways"]["val"][:5]
    if giveaways:
        text += f"; what gives val away: {', '.join(giveaways)}"
    unlike = d["most_unlike_train"]
    if unlike:
        text += f"; the val {plural(len(unlike), 'record', 'records')} most unlike train: " + ", ".join(
            f"{e['name']!r} ({e['preview'][:60]!r})" for e in unlike
        )
    return text
