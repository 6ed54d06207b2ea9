"""The call-centre emotion system (mmlab.systems.emotion): planted voice and text structure,
fusion with an uninformative text (the Emo-DB control), per-call satisfaction, explanation,
bad input, save/load, Emo-DB leave-one-speaker-out (real data), chapter 51's grading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlab.errors import SchemaError, SignalError
from mmlab.systems.emotion import EmotionRecognizer, evaluate, extract, subgroup_report

SR = 8000
WORDS = {"happy": ["great, thank you so much", "wonderful, that solved it", "you have been really helpful",
                   "excellent service, thanks"],
         "angry": ["this is terrible and useless", "i am furious, nothing works", "awful, the worst service",
                   "this is unacceptable, i want to complain"]}


def _voice(rng, label: str, speaker_f0: float, seconds: float = 0.6) -> np.ndarray:
    """A harmonic 'voice': angry is 7 semitones higher, louder and rougher (planted)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = speaker_f0 * (2 ** (7 / 12) if label == "angry" else 1.0)
    f0t = f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t)) * (1 + (0.02 if label == "angry" else 0.0)
                                                         * rng.standard_normal(len(t)))
    phase = 2 * np.pi * np.cumsum(f0t) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(np.pi * t / seconds) * 1.5, 0, 1)
    amp = 0.6 if label == "angry" else 0.08
    x = amp * env * x / np.max(np.abs(x)) + 0.002 * rng.standard_normal(len(t))
    return np.clip(x, -0.98, 0.98).astype(np.float32)


def _utterances(n_calls: int = 12, turns: int = 3, text_informative: bool = True, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_calls):
        label = ("happy", "angry")[c % 2]
        f0 = rng.uniform(120, 150)
        for k in range(1, turns + 1):
            text = (WORDS[label][int(rng.integers(0, 4))] if text_informative else "I am calling about my account")
            rows.append({"call": f"C{c:02d}", "turn": k, "audio": _voice(rng, label, f0), "sr": SR, "text": text,
                         "label": label, "call_label": label, "speaker": f"C{c:02d}", "sex": "F" if c % 4 < 2 else "M"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def feats():
    """Features of 16 planted calls (eGeMAPS once); calls C00-C11 train, C12-C15 test."""
    return extract(_utterances(16))


@pytest.fixture(scope="module")
def split(feats):
    calls = feats.meta["call"].to_numpy()
    test = np.isin(calls, ["C12", "C13", "C14", "C15"])
    return feats.subset(~test), feats.subset(test)


@pytest.fixture(scope="module")
def fitted(split):
    return EmotionRecognizer(text="tfidf").fit(split[0])


# ------------------------------------------------------------------------- planted structure
def test_each_tower_alone_recovers_planted_labels(split):
    train, test = split
    for mods in (("voice",), ("text",)):
        rec = EmotionRecognizer(modalities=mods, text="tfidf").fit(train)
        pred = rec.predict(test)
        assert (pred == test.labels).mean() == 1.0, mods


def test_cnn_voice_tower_hidden_features_feed_the_fusion(split):
    """The seed's recipe: chapter 11's log-mel CNN, its final hidden features fused early."""
    train, test = split
    rec = EmotionRecognizer(voice="cnn", modalities=("voice",), cnn_duration=0.6, cnn_epochs=15).fit(train)
    assert rec.cnn_.module_ is not None
    assert (rec.predict(test) == test.labels).mean() >= 0.9
    fused = EmotionRecognizer(voice="cnn", text="tfidf", cnn_duration=0.6, cnn_epochs=15).fit(train)
    assert fused.model_.dims_["voice"] == 4 * 8 * (40 // 8)
    assert (fused.predict(test) == test.labels).all()


def test_fused_probabilities_are_calibrated_and_sum_to_one(fitted, split):
    out = fitted.predict_proba(split[1])
    P = out[["p_angry", "p_happy"]].to_numpy()
    assert np.allclose(P.sum(1), 1.0) and list(fitted.classes_) == ["angry", "happy"]
    assert (out["predicted"].to_numpy() == split[1].labels).all()
    assert out["present_voice"].all() and out["present_text"].all() and (out["flags"] == "").all()
    assert fitted.temperature_.temperature_ > 0 and not fitted.speaker_norm_  # one label per caller


def test_uninformative_text_does_not_hurt_voice():
    """The Emo-DB control: the same sentence for every label; fusing it must not hurt the voice."""
    F = extract(_utterances(12, text_informative=False, seed=1))
    voice = evaluate(EmotionRecognizer(modalities=("voice",), text="tfidf"), F, n_splits=4)
    fused = evaluate(EmotionRecognizer(text="tfidf"), F, n_splits=4)
    text = evaluate(EmotionRecognizer(modalities=("text",), text="tfidf"), F, n_splits=4)
    assert voice["macro_f1"] >= 0.95 and fused["macro_f1"] >= voice["macro_f1"] - 0.01
    assert text["macro_f1"] <= 0.7  # the constant sentence is at chance


def test_calls_satisfaction_and_escalation(fitted, split):
    calls = fitted.predict_calls(split[1])
    assert list(calls["call"]) == ["C12", "C13", "C14", "C15"]
    assert list(calls["predicted"]) == ["happy", "angry", "happy", "angry"]
    assert calls["escalation_risk"].isna().all()  # no "dissatisfied" label here
    rec = EmotionRecognizer(text="tfidf", escalation="angry").fit(split[0])
    risk = rec.predict_calls(split[1])["escalation_risk"].to_numpy()
    assert risk[1] > 0.5 > risk[0] and risk[3] > 0.5 > risk[2]


def test_explain_names_the_driving_modality_and_utterances(split):
    """Voice informative, text constant: the voice must carry the explanation."""
    F = extract(_utterances(12, text_informative=False, seed=2))
    rec = EmotionRecognizer(text="tfidf").fit(F.subset(F.meta["call"] < "C10"))
    e = rec.explain(F.subset(F.meta["call"] >= "C10"), call="C11")
    assert e["predicted"] == "angry" and len(e["utterances"]) == 3
    assert e["modalities"]["voice"] > abs(e["modalities"]["text"])
    assert "voice carried the most weight" in e["summary"]
    assert all(np.isfinite(u["contribution"]) for u in e["utterances"])


def test_subgroup_report_rows_per_group(fitted, split):
    out = fitted.predict_proba(split[1])
    table = subgroup_report(split[1], out, "sex")
    assert {"F", "M", "all"} <= set(table.index.astype(str)) or {"F", "M", "all"} <= set(table.iloc[:, 0].astype(str))


def test_evaluate_reports_per_call_auroc(feats):
    ev = evaluate(EmotionRecognizer(text="tfidf", escalation="angry"), feats, n_splits=4)
    assert ev["macro_f1"] == 1.0 and ev["satisfaction_auroc"] >= 0.75 and ev["escalation_auroc"] >= 0.75
    assert not ev["loso"] and ev["folds"] == 4 and len(ev["utterances"]) == len(feats)


# ------------------------------------------------------------------------------ bad input
def _one(audio, text, sr=SR):
    return pd.DataFrame([{"audio": audio, "sr": sr, "text": text}])


def test_bad_audio_is_flagged_and_text_still_predicts(fitted):
    rng = np.random.default_rng(5)
    good = _voice(rng, "angry", 150.0)
    cases = {"voice:silent": np.zeros(SR // 2, np.float32),
             "voice:too_short": good[: int(0.05 * SR)],
             "voice:missing": None}
    for flag, audio in cases.items():
        out = fitted.predict_proba(_one(audio, "this is terrible and useless"))
        assert flag in out["flags"].iloc[0] and not out["present_voice"].iloc[0]
        assert out["predicted"].iloc[0] == "angry", flag
    clipped = np.clip(good * 8, -1, 1)
    out = fitted.predict_proba(_one(clipped, "great, thank you so much"))
    assert "voice:clipped" in out["flags"].iloc[0] and out["present_voice"].iloc[0]


def test_wrong_sample_rate(fitted):
    rng = np.random.default_rng(6)
    x = _voice(rng, "angry", 150.0, seconds=0.6)
    with pytest.raises(SignalError, match="utterance 0"):
        fitted.predict_proba(_one(x, "hello", sr=0))
    x16 = np.repeat(x, 2)  # the same sound at 16 kHz: resampled to the model's 8 kHz, flagged
    out = fitted.predict_proba(_one(x16, "I am calling", sr=16000))
    assert "voice:resampled_from_16000" in out["flags"].iloc[0] and out["present_voice"].iloc[0]


def test_bad_transcripts_fall_back_to_voice(fitted):
    rng = np.random.default_rng(7)
    x = _voice(rng, "angry", 140.0)
    for text, flag in (("", "text:empty"), ("   ", "text:empty"), (None, "text:missing"),
                       (b"\xff\xfe caf\xe9", "text:not_utf8")):
        out = fitted.predict_proba(_one(x, text))
        assert flag in out["flags"].iloc[0] and not out["present_text"].iloc[0]
        assert out["predicted"].iloc[0] == "angry"
    ok = fitted.predict_proba(_one(x, "great, thank you so much".encode("utf-8")))
    assert ok["present_text"].iloc[0]


def test_call_without_any_audio_and_row_without_anything(fitted):
    df = pd.DataFrame([{"call": "X", "turn": k, "audio": None, "sr": SR, "text": t}
                       for k, t in enumerate(["awful, the worst service", "this is unacceptable, i want to complain"], 1)])
    out = fitted.predict_proba(df)
    assert (out["predicted"] == "angry").all() and not out["present_voice"].any()
    assert fitted.predict_calls(df)["predicted"].iloc[0] == "angry"
    empty = fitted.predict_proba(_one(None, ""))
    assert "no_modality" in empty["flags"].iloc[0]
    assert np.allclose(empty[["p_angry", "p_happy"]].to_numpy(), fitted.prior_)


def test_bad_tables_and_parameters(fitted):
    with pytest.raises(SchemaError, match="missing column"):
        fitted.predict_proba(pd.DataFrame({"audio": [None]}))
    with pytest.raises(SchemaError, match="empty"):
        fitted.predict_proba(pd.DataFrame({"audio": [], "text": []}))
    with pytest.raises(SchemaError, match="fusion must be one of"):
        EmotionRecognizer(fusion="concat").fit(_utterances(2))
    with pytest.raises(SchemaError, match="not fitted"):
        EmotionRecognizer().predict_proba(_one(None, "hi"))
    with pytest.raises(SchemaError, match="no call model"):
        EmotionRecognizer(text="tfidf", modalities=("text",)).fit(
            _utterances(4).drop(columns="call_label")).predict_calls(_utterances(2))


# ------------------------------------------------------------------------------ save / load
def test_save_load_roundtrip_and_incompatible(fitted, split, tmp_path):
    folder = fitted.save(tmp_path / "m")
    back = EmotionRecognizer.load(folder)
    a = fitted.predict_proba(split[1])
    b = back.predict_proba(split[1])
    pd.testing.assert_frame_equal(a, b)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["classes"] == ["angry", "happy"] and manifest["modalities"] == ["voice", "text"]
    manifest["mmlab_version"] = "0.0.0"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="retrain"):
        EmotionRecognizer.load(folder)
    manifest["format"] = "mmlab-emotion-recognizer/0"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="model format"):
        EmotionRecognizer.load(folder)
    with pytest.raises(SchemaError, match="no manifest"):
        EmotionRecognizer.load(tmp_path)


def test_cli_predict_prints_probabilities_and_contributions(fitted, tmp_path, capsys):
    import soundfile as sf

    from mmlab.cli import main

    folder = fitted.save(tmp_path / "model")
    wav = tmp_path / "u.wav"
    sf.write(wav, _voice(np.random.default_rng(8), "angry", 140.0), SR)
    assert main(["emotion", "predict", str(wav), "--text", "awful, the worst service", "--model", str(folder)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predicted"] == "angry" and set(out["proba"]) == {"angry", "happy"}
    assert set(out["modality_contributions"]) == {"voice", "text"} and out["flags"] == []
    assert main(["emotion", "predict", str(tmp_path / "none.wav"), "--model", str(folder)]) == 2
    assert "audio file is missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------ real data
DATA = os.environ.get("MMLAB_DATA_DIR")


@pytest.mark.skipif(not DATA, reason="MMLAB_DATA_DIR is not set")
def test_emodb_leave_one_speaker_out_beats_chance():
    from mmlab.systems.emotion import emodb_utterances

    utts = emodb_utterances(Path(DATA) / "emodb", speakers=["03", "08", "09", "10"])
    F = extract(utts)
    ev = evaluate(EmotionRecognizer(modalities=("voice",)), F)
    assert ev["loso"] and ev["folds"] == 4 and set(ev["uar_per_speaker"]) == {"03", "08", "09", "10"}
    assert ev["uar"] > 0.45  # seven classes: chance is 0.14
    rec = EmotionRecognizer(modalities=("voice",)).fit(F)
    assert rec.speaker_norm_  # every Emo-DB speaker shows every emotion


@pytest.mark.skipif(not DATA, reason="MMLAB_DATA_DIR is not set")
def test_meld_text_tower_beats_majority():
    from mmlab.io.text import load_meld

    meld = load_meld(Path(DATA) / "meld_text")
    train = meld[meld["split"] == "train"].head(400)
    test = meld[meld["split"] == "test"].head(200)
    rec = EmotionRecognizer(modalities=("text",)).fit(pd.DataFrame({"audio": None, "sr": SR, "text": train["text"],
                                                                    "label": train["label"]}))
    pred = rec.predict(pd.DataFrame({"audio": None, "sr": SR, "text": test["text"]}))
    majority = test["label"].value_counts(normalize=True).iloc[0]
    assert (pred == test["label"].to_numpy()).mean() > majority - 0.02
