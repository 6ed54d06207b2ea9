"""mmlab.text: tokens, normalisation, TF-IDF, VADER, MiniLM embeddings, baselines (chapter 10_text)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlab import text as T
from mmlab.errors import MMLabError, SignalError


# ------------------------------------------------------------------ normalisation
def test_normalize_repairs_c1_controls_and_folds_unicode():
    # MELD stores the apostrophe as U+0092 (a Windows-1252 byte read as Latin-1)
    assert T.normalize("I don\x92t KNOW\x85") == "i don't know..."  # NFKC: … -> ...
    assert T.normalize("I don\x92t\x85", unicode_form=None) == "i don't…"
    assert T.normalize("ﬁne  Ｃａｆé\t\n ok ") == "fine café ok"
    assert T.normalize("Café", strip_accents=True) == "cafe"
    assert T.normalize("Keep Case", lowercase=False) == "Keep Case"
    assert T.normalize("don\x92t", fix_controls=False, ascii_quotes=False) == "don\x92t"


def test_normalize_and_tokenize_reject_non_strings_by_name():
    for bad in (None, 3.5, float("nan"), b"bytes"):
        with pytest.raises(SignalError, match="expected a str"):
            T.normalize(bad)
        with pytest.raises(SignalError):
            T.word_tokenize(bad)
    with pytest.raises(SignalError, match=r"texts\[1\].*missing value"):
        T.check_texts(["fine", None])
    with pytest.raises(SignalError, match="unicode_form"):
        T.normalize("x", unicode_form="NFX")


def test_empty_string_is_defined_output():
    assert T.normalize("") == ""
    assert T.word_tokenize("") == []
    assert T.subword_tokenize("") == []
    assert T.vader_scores("").iloc[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert T.check_texts([]) == []
    assert T.embed([]).shape == (0, T.EMBEDDING_DIM)


# ------------------------------------------------------------------------- tokens
def test_word_tokenize_known_answer():
    assert T.word_tokenize("I don't like it, it's $5.99!") == \
        ["I", "don't", "like", "it", ",", "it's", "$", "5.99", "!"]
    assert T.word_tokenize("well... ok", punctuation=False) == ["well", "ok"]
    assert T.word_tokenize("naïve café") == ["naïve", "café"]


def test_wordpiece_splits_rare_words_into_known_pieces():
    assert T.subword_tokenize("unaffordable") == ["una", "##ff", "##ord", "##able"]
    assert T.subword_tokenize("tokenization") == ["token", "##ization"]
    # the tokenizer lower-cases and strips accents itself
    assert T.subword_tokenize("Great CAFÉ") == ["great", "cafe"]
    assert T.load_tokenizer() is T.load_tokenizer()  # loaded once


# ------------------------------------------------------------------------- TF-IDF
def test_tfidf_weights_rare_terms_above_common_ones():
    docs = ["the service was good", "the food was cold", "the staff was rude", "the view"]
    vec = T.make_tfidf(ngram_range=(1, 1))
    X = vec.fit_transform(docs)
    vocab = list(vec.get_feature_names_out())
    idf = dict(zip(vocab, vec.idf_))
    assert idf["the"] < idf["was"] < idf["service"]
    assert np.allclose(np.asarray(X.multiply(X).sum(axis=1)).ravel(), 1.0)  # L2 rows
    top = T.top_terms(vec, X[0], k=2)
    assert {t for t, _ in top} == {"service", "good"}


def test_tfidf_uses_normalisation():
    vec = T.make_tfidf(ngram_range=(1, 1)).fit(["Don\x92t GO", "don't go"])
    assert list(vec.get_feature_names_out()) == ["don't", "go"]


# -------------------------------------------------------------------------- VADER
def test_vader_polarity_known_answers():
    s = T.vader_scores(["great service", "terrible", "The service was not great.", "a table"])
    assert list(s.columns) == ["neg", "neu", "pos", "compound"]
    assert s.compound[0] > 0.5
    assert s.compound[1] < -0.4
    assert s.compound[2] < 0          # negation flips the sign
    assert s.compound[3] == 0.0       # no sentiment words


# --------------------------------------------------------------------- embeddings
def test_minilm_embeddings_shape_norm_and_determinism():
    texts = ["great service", "the cat sat on the mat", "terrible food"]
    a = T.embed(texts)
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, T.embed(texts))
    # batching does not change the result beyond float round-off
    assert np.allclose(a, T.embed(texts, batch_size=1, cache=False), atol=1e-5)
    assert np.allclose(a, T.embed(texts[::-1], cache=False)[::-1], atol=1e-5)
    # the cache returns what the model gives, duplicates included
    assert np.array_equal(T.embed(texts + texts[:1])[3], a[0])
    raw = T.embed(texts, normalize_embeddings=False)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), a, atol=1e-5)
    assert T.embed("great service").shape == (384,)
    assert T.load_encoder() is T.load_encoder()


def test_paraphrases_are_closer_than_unrelated_sentences():
    e = T.embed(["The staff were very helpful.", "The employees helped me a lot.",
                 "It is raining in the mountains today."])
    sim = T.cosine_similarity(e)
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.4
    assert np.allclose(np.diag(sim), 1.0, atol=1e-5)


def test_embed_rejects_bad_input():
    with pytest.raises(SignalError, match=r"texts\[0\]"):
        T.embed([None, "ok"])
    with pytest.raises(SignalError, match="batch_size"):
        T.embed(["ok"], batch_size=0)
    with pytest.raises(SignalError):
        T.embed(42)


# ---------------------------------------------------------------------- baselines
def test_baselines_learn_a_planted_word_and_beat_majority():
    rng = np.random.default_rng(0)
    filler = ["the order", "my parcel", "this phone", "our table", "the film", "the room"]
    texts, labels = [], []
    for i in range(80):
        lab = i % 2
        cue = "excellent" if lab else "awful"
        texts.append(f"{filler[rng.integers(0, 6)]} was {cue}")
        labels.append(lab)
    res = T.evaluate_sentiment(texts, labels, test_size=0.25, random_state=0, embeddings=False)
    acc = dict(zip(res.model, res.accuracy))
    assert set(acc) == {"tfidf+logreg", "vader+logreg", "vader rule"}
    assert acc["tfidf+logreg"] == 1.0
    assert acc["vader rule"] == 1.0
    assert (res.majority == 0.5).all() and (res.n_test == 20).all()


def test_estimators_follow_the_sklearn_api():
    from sklearn.base import clone

    models = T.sentiment_models(binary_positive=1)
    assert set(models) == {"tfidf+logreg", "vader+logreg", "minilm+logreg", "vader rule"}
    clone(models["minilm+logreg"])
    X = T.MiniLMEmbedder().fit_transform(["one", "two"])
    assert X.shape == (2, 384)
    assert T.VaderFeatures().fit_transform(["great"]).shape == (1, 4)
    with pytest.raises(SignalError, match="two classes"):
        T.VaderRule(positive_label="pos").fit(["a", "b"], ["x", "y"])
    with pytest.raises(SignalError, match="3 texts but 2 labels"):
        T.evaluate_sentiment(["a", "b", "c"], [0, 1])


def test_call_transcripts_from_the_call_center_scenario():
    from mmlab.synth import make_cohort

    cohort = make_cohort("call_center", 6, seed=1, fast=True, caller_turns=2)
    calls = T.call_transcripts(cohort)
    assert list(calls.columns) == ["subject", "text", "label", "n_turns"]
    assert len(calls) == 6 and (calls.n_turns == 2).all()
    assert set(calls.label) <= {"satisfied", "neutral", "dissatisfied"}
    assert calls.label.tolist() == cohort.participants.satisfaction.tolist()
    agents = T.call_transcripts(cohort, speaker="agent")
    assert (agents.n_turns == 3).all()  # greeting + one reply per caller turn
    with pytest.raises(SignalError, match="no 'nobody' utterances"):
        T.call_transcripts(cohort, speaker="nobody")


def test_errors_are_mmlab_errors():
    assert issubclass(SignalError, MMLabError)


# ---------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_uci_tfidf_and_vader_baselines_on_held_out_sentences(data_dir):
    from mmlab.io import load_uci_sentiment

    root = data_dir / "uci_sentiment"
    if not root.is_dir():
        pytest.skip("uci_sentiment not in MMLAB_DATA_DIR")
    df = load_uci_sentiment(root)
    assert len(df) == 3000
    res = T.evaluate_sentiment(df.text, df.label, test_size=0.3, random_state=0, embeddings=False)
    acc = dict(zip(res.model, res.accuracy))
    # measured on this split: tfidf 0.827, vader+logreg 0.823, vader rule (compound >= 0) 0.747
    assert acc["tfidf+logreg"] >= 0.78
    assert acc["vader+logreg"] >= 0.78
    assert acc["vader rule"] >= 0.70
    assert isinstance(res, pd.DataFrame) and (res.n_test == 900).all()


def test_repeated_splits_average_and_report_spread():
    rng = np.random.default_rng(1)
    texts = [f"{'good' if i % 2 else 'bad'} {'x' * int(rng.integers(1, 4))}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    one = T.evaluate_sentiment(texts, labels, embeddings=False, n_splits=1)
    five = T.evaluate_sentiment(texts, labels, embeddings=False, n_splits=5)
    assert (one.accuracy_sd == 0).all() and (five.n_test == 12).all()
    assert five.set_index("model").loc["tfidf+logreg", "accuracy"] == 1.0
    # no signal (every text the same, 3:1 classes): the model can only guess the majority
    same = T.evaluate_sentiment(["same words"] * 40, [0] * 30 + [1] * 10, embeddings=False, n_splits=5,
                                models={"tfidf": T.sentiment_models(embeddings=False)["tfidf+logreg"]})
    assert same.accuracy[0] == same.majority[0] == 0.75
    with pytest.raises(SignalError, match="n_splits"):
        T.evaluate_sentiment(texts, labels, n_splits=0)


# ------------------------------------------------ issue 17: clear errors, not tracebacks
@pytest.mark.parametrize("call", [T.word_tokenize, T.normalize, T.subword_tokenize, T.embed])
def test_lone_surrogates_are_a_clear_error(call):
    with pytest.raises(SignalError, match=r"lone surrogate U\+D800 at character 3"):
        call("abc\ud800def")


def test_tfidf_of_texts_without_words_is_a_clear_error():
    with pytest.raises(SignalError, match="hold no words"):
        T.make_tfidf().fit_transform([""])
    with pytest.raises(SignalError, match="hold no words"):
        T.make_tfidf().fit(["  ", "?!"])
    with pytest.raises(SignalError, match="ngram_range must be a pair"):
        T.make_tfidf([""])
    with pytest.raises(SignalError, match="one str"):
        T.make_tfidf().fit_transform("just one text")
    X = T.make_tfidf().fit_transform(["", "a real text"])      # one empty text among others is fine
    assert X.shape[0] == 2 and X[0].nnz == 0


def test_progress_bar_counts_the_fits_and_changes_nothing(capsys):
    texts = [f"{'good' if i % 2 else 'bad'} item {i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    quiet = T.evaluate_sentiment(texts, labels, embeddings=False, n_splits=2)
    assert "fitting baselines" not in capsys.readouterr().err
    shown = T.evaluate_sentiment(texts, labels, embeddings=False, n_splits=2, progress=True)
    err = capsys.readouterr().err
    assert "fitting baselines" in err and "0/6" in err   # 2 splits x 3 models (tfidf, vader, rule)
    pd.testing.assert_frame_equal(quiet, shown)
