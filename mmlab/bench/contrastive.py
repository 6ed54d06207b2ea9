"""``mmlab bench contrastive``: the voice <-> transcript dual encoder on call_center."""

from __future__ import annotations

def run(subjects: int = 200, seed: int = 0, **_) -> dict:
    """Voice <-> transcript alignment on a full-length ``call_center`` cohort (chapter
    22_contrastive).

    One pair per caller turn (voice features <-> frozen MiniLM embedding of the
    transcript); 30 % of the calls are held out. Times feature extraction, text embedding
    and training separately (wall clock, one process; training uses one PyTorch thread).
    Reports held-out recall@1/5/10 (mean of voice->text and text->voice) against chance
    and against linear CCA (4 components on PCA-64 views) on the same split, and zero-shot
    satisfaction labels from caller-style prompts (and from one-line descriptions) per turn
    and per call (scores averaged over the call's turns) against the majority class, and
    a supervised logistic regression on the voice features as the ceiling.
    Target: training under 2 minutes on 2 CPU cores.
    """
    import time

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmlab import synth
    from mmlab.represent import (CALL_DESCRIPTIONS, CALL_PROMPTS, ContrastiveAligner, LinearCCA,
                                 call_center_pairs, retrieval_report, split_by_group, zero_shot_predict,
                                 zero_shot_scores)
    from mmlab.text import embed

    t = time.perf_counter()
    cohort = synth.make_cohort("call_center", n_subjects=subjects, seed=seed)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = call_center_pairs(cohort, embed=False)
    voice_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs.b = embed(pairs.meta["text"].tolist())
    text_s = time.perf_counter() - t
    groups = pairs.meta["group"].to_numpy()
    keep = np.isfinite(pairs.a).all(axis=1)
    tr, te = split_by_group(groups, 0.3, random_state=seed)
    tr, te = tr[keep[tr]], te[keep[te]]
    A, B, y = pairs.a, pairs.b, pairs.meta["label"].to_numpy()

    model = ContrastiveAligner(random_state=seed).fit(A[tr], B[tr], groups=groups[tr])
    rep = model.retrieval(A[te], B[te], names=("voice", "text"))
    t = time.perf_counter()
    cca = LinearCCA(4, pca=64).fit(A[tr], B[tr])
    cca_s = time.perf_counter() - t
    crep = retrieval_report(*cca.transform(A[te], B[te]), names=("voice", "text"))

    def both(r: dict, k: int) -> float:
        return round((r[f"voice->text@{k}"] + r[f"text->voice@{k}"]) / 2, 4)

    scores = zero_shot_scores(model, A[te], CALL_PROMPTS)
    zs = float(np.mean(scores.idxmax(axis=1).to_numpy() == y[te]))
    per_call = scores.groupby(groups[te]).mean()  # one decision per call: mean over its turns
    call_y = pairs.meta.iloc[te].groupby("group")["label"].first()
    zs_call = float(np.mean(per_call.idxmax(axis=1) == call_y.loc[per_call.index]))
    zs_desc = float(np.mean(zero_shot_predict(model, A[te], CALL_DESCRIPTIONS) == y[te]))
    values, counts = np.unique(y[tr], return_counts=True)
    majority = values[np.argmax(counts)]
    chance_acc = float(np.mean(y[te] == majority))
    chance_call = float(np.mean(call_y == majority))
    sup = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(A[tr], y[tr])
    return {
        "scenario": "call_center", "subjects": subjects, "seed": seed,
        "n_train": int(len(tr)), "n_test": int(len(te)),
        "generate_s": round(generate_s, 2), "voice_features_s": round(voice_s, 2),
        "text_embed_s": round(text_s, 2), "train_s": round(model.train_seconds_, 2),
        "epochs": int(len(model.history_)), "best_epoch": int(model.best_epoch_),
        "temperature": round(model.temperature_, 4),
        "recall_at_1": both(rep, 1), "recall_at_5": both(rep, 5), "recall_at_10": both(rep, 10),
        "voice_to_text_at_1": round(rep["voice->text@1"], 4), "text_to_voice_at_1": round(rep["text->voice@1"], 4),
        "chance_at_1": round(rep["chance@1"], 4), "chance_at_10": round(rep["chance@10"], 4),
        "cca_train_s": round(cca_s, 2), "cca_recall_at_1": both(crep, 1), "cca_recall_at_10": both(crep, 10),
        "zero_shot_accuracy": round(zs, 4), "zero_shot_accuracy_descriptions": round(zs_desc, 4),
        "chance_accuracy": round(chance_acc, 4),
        "zero_shot_call_accuracy": round(zs_call, 4), "chance_call_accuracy": round(chance_call, 4),
        "supervised_voice_accuracy": round(float(sup.score(A[te], y[te])), 4),
    }

# ------------------------------------------------------------------------------ fusion
