"""``mmlab bench emotion``: the call-centre emotion system (chapter 51_emotion_system).

Default: a synthetic ``call_center`` cohort (``subjects`` calls, full length): per-utterance
macro-F1 of each tower alone and of every fusion (group folds by call), per-call
satisfaction AUROC and ECE after temperature scaling of the best fusion, training time
and end-to-end inference time per utterance (features included).

``--data`` an Emo-DB folder: leave-one-speaker-out UAR (mean and worst speaker) of the
voice tower alone and fused with the transcript (ten fixed sentences: a control that must
not hurt). ``--data`` a MELD folder: the text tower on MELD's official split (weighted F1).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

UNIMODAL = {"voice": {"modalities": ("voice",)}, "text": {"modalities": ("text",)}}
FUSED = {"early": {"fusion": "early"}, "late": {"fusion": "late"}, "stacking": {"fusion": "stacking"},
         "attention": {"fusion": "attention"}}


def _clean(out: dict) -> dict:
    def fix(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v
    return {k: fix(v) for k, v in out.items()}


def _infer_ms(rec, utts, n: int = 40) -> float:
    """End-to-end (audio and text in, probabilities out) milliseconds per utterance: the
    towers' features (openSMILE, MFCC, MiniLM) dominate; ``model_infer_ms_per_utterance``
    is the fused model alone on precomputed features."""
    part = utts.iloc[:n]
    t0 = time.perf_counter()
    rec.predict_proba(part)
    return 1000 * (time.perf_counter() - t0) / len(part)


def run_call_center(subjects: int = 120, seed: int = 0) -> dict:
    from mmlab.systems.emotion import EmotionRecognizer, evaluate, extract, load_utterances

    wall = time.perf_counter()
    utts = load_utterances(None, calls=subjects, seed=seed)
    t0 = time.perf_counter()
    F = extract(utts)
    from mmlab.systems.emotion import _embed_cached

    _embed_cached(F)
    feature_s = time.perf_counter() - t0
    res = {name: evaluate(EmotionRecognizer(random_state=seed, **kw), F) for name, kw in {**UNIMODAL, **FUSED}.items()}
    uni = {m: res[m]["macro_f1"] for m in UNIMODAL}
    fused = {m: res[m]["macro_f1"] for m in FUSED}
    best = max(fused, key=fused.get)
    t0 = time.perf_counter()
    rec = EmotionRecognizer(random_state=seed, **FUSED[best]).fit(F)
    fit_s = time.perf_counter() - t0
    out = {
        "source": f"call_center (synthetic, {subjects} calls, seed {seed}, full length)",
        "utterances": len(F), "calls": int(F.meta["call"].nunique()), "folds": res["early"]["folds"],
        "unimodal_macro_f1": uni, "fused_macro_f1": fused, "best_fusion": best,
        "fused_gain_over_best_unimodal": fused[best] - max(uni.values()),
        "early_gain_over_best_unimodal": fused["early"] - max(uni.values()),
        "satisfaction_auroc": res[best]["satisfaction_auroc"], "escalation_auroc": res[best]["escalation_auroc"],
        "call_macro_f1": res[best].get("call_macro_f1"),
        "satisfaction_auroc_by_model": {m: r["satisfaction_auroc"] for m, r in res.items()},
        "ece": res[best]["ece"], "ece_by_model": {m: r["ece"] for m, r in res.items()},
        "temperature": rec.calibrated_.temperature,
        "train_s": feature_s + fit_s, "train_model_s": fit_s, "features_s": feature_s,
        "infer_ms_per_utterance": _infer_ms(rec, utts),
        "model_infer_ms_per_utterance": res[best]["infer_ms_per_utterance"],
        "wall_s": time.perf_counter() - wall,
    }
    return _clean(out)


def run_emodb(data, seed: int = 0) -> dict:
    from mmlab.systems.emotion import EmotionRecognizer, _embed_cached, emodb_utterances, evaluate, extract

    wall = time.perf_counter()
    utts = emodb_utterances(data)
    t0 = time.perf_counter()
    F = extract(utts)
    _embed_cached(F)
    feature_s = time.perf_counter() - t0
    voice = evaluate(EmotionRecognizer(modalities=("voice",), random_state=seed), F)
    fused = evaluate(EmotionRecognizer(random_state=seed), F)
    text = evaluate(EmotionRecognizer(modalities=("text",), random_state=seed), F)
    raw = evaluate(EmotionRecognizer(modalities=("voice",), speaker_norm=False, random_state=seed), F)
    best = voice if voice["uar"] >= fused["uar"] else fused
    t0 = time.perf_counter()
    rec = EmotionRecognizer(modalities=("voice",), random_state=seed).fit(F)
    fit_s = time.perf_counter() - t0
    out = {
        "source": f"{data} (Emo-DB, {len(F)} recordings, {F.meta['speaker'].nunique()} speakers)",
        "uar": best["uar"], "uar_voice": voice["uar"], "uar_fused": fused["uar"],
        "uar_min_speaker": best["uar_min_speaker"], "uar_min_speaker_voice": voice["uar_min_speaker"],
        "uar_min_speaker_fused": fused["uar_min_speaker"], "uar_text": text["uar"],
        "uar_voice_no_speaker_norm": raw["uar"], "uar_per_speaker": best["uar_per_speaker"],
        "fused_minus_voice": fused["uar"] - voice["uar"],
        "unimodal_macro_f1": {"voice": voice["macro_f1"], "text": text["macro_f1"]},
        "fused_macro_f1": {"early": fused["macro_f1"]},
        "ece": best["ece"], "satisfaction_auroc": None,
        "train_s": feature_s + fit_s, "train_model_s": fit_s, "features_s": feature_s,
        "infer_ms_per_utterance": _infer_ms(rec, utts),
        "wall_s": time.perf_counter() - wall,
    }
    return _clean(out)


def run_meld(data, seed: int = 0, n_train: int = 2000, n_finetune: int = 400) -> dict:
    """The text tower on MELD: trained on ``n_train`` training utterances drawn at random
    (``seed``), tested on the official test split; weighted F1 for the 7 emotions and the
    3 sentiments. Then the CPU budget: MiniLM's top layer fine-tuned for one epoch on
    ``n_finetune`` of them (emotion labels), a logistic regression on the frozen and on the
    fine-tuned embeddings, and the cost in seconds."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from mmlab.io.text import load_meld
    from mmlab.systems.emotion import EmotionRecognizer, finetune_minilm
    from mmlab.text import embed

    meld = load_meld(data, ["train", "test"])
    train = meld[meld["split"] == "train"]
    train = train.sample(min(n_train, len(train)), random_state=seed)
    test = meld[meld["split"] == "test"]
    out = {"source": f"{data} (MELD, {len(train)} train / {len(test)} test utterances)"}
    for target in ("label", "sentiment"):
        key = "emotion" if target == "label" else "sentiment"
        for text in ("minilm", "tfidf"):
            t0 = time.perf_counter()
            rec = EmotionRecognizer(modalities=("text",), text=text, C=1.0, random_state=seed).fit(
                pd.DataFrame({"audio": None, "sr": 16000, "text": train["text"].to_numpy(),
                              "label": train[target].to_numpy()}))
            pred = rec.predict(pd.DataFrame({"audio": None, "sr": 16000, "text": test["text"].to_numpy()}))
            out[f"{key}_weighted_f1_{text}"] = float(f1_score(test[target], pred, average="weighted"))
            out[f"{key}_train_s_{text}"] = time.perf_counter() - t0
    tr, te = train["text"].tolist(), test["text"].tolist()
    frozen = (embed(tr), embed(te))
    ft = train.head(n_finetune)
    enc = finetune_minilm(ft["text"].tolist(), ft["label"].to_numpy(), layers=1, epochs=1, random_state=seed)
    t0 = time.perf_counter()
    tuned = (enc.encode(tr), enc.encode(te))
    encode_s = time.perf_counter() - t0
    for target in ("label", "sentiment"):
        key = "emotion" if target == "label" else "sentiment"
        for name, (a, b) in (("frozen", frozen), ("finetuned", tuned)):
            lr = LogisticRegression(C=1.0, max_iter=3000).fit(a, train[target])
            out[f"{key}_weighted_f1_lr_{name}"] = float(f1_score(test[target], lr.predict(b), average="weighted"))
        out[f"{key}_finetune_gain"] = out[f"{key}_weighted_f1_lr_finetuned"] - out[f"{key}_weighted_f1_lr_frozen"]
    out.update(finetune_s=enc.train_s, finetune_utterances=enc.n_train, finetune_layers=enc.layers,
               finetuned_encode_s=encode_s)
    return out


def run(data: str | None = None, subjects: int | None = None, seed: int = 0, **_) -> dict:
    """``call_center`` by default (``subjects`` calls, default 120); ``data``: an Emo-DB or
    a MELD folder."""
    if data is None:
        return run_call_center(subjects or 120, seed)
    path = Path(data)
    if (path / "train_sent_emo.csv").is_file() or (path / "test_sent_emo.csv").is_file():
        return run_meld(path, seed)
    return run_emodb(path, seed)
