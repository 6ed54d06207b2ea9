"""The call-centre emotion and satisfaction system: voice + transcript (chapter 51_emotion_system).

:class:`EmotionRecognizer` composes the layers below it, one step each:

1. **Utterances** are rows of a table (:func:`call_center_utterances`,
   :func:`emodb_utterances`, :func:`load_utterances`): ``audio`` (a 1-D waveform or None),
   ``sr``, ``text`` (str, bytes or None), and optionally ``label`` (the utterance's
   emotion), ``call``, ``turn``, ``speaker``, ``sex`` and ``call_label`` (the call's
   satisfaction). Either modality may be missing.
2. **Voice tower** (:mod:`mmlab.voice`): the 88 eGeMAPS functionals (openSMILE) plus MFCC
   statistics (20 MFCCs with deltas, mean and std), with a quality flag per utterance:
   silent, too short (< 0.1 s) or broken audio makes the voice absent; clipped or
   resampled audio is used and flagged. With **per-speaker normalisation** (default
   ``"auto"``: on when the training speakers each show several emotions, as in Emo-DB)
   each speaker's voice features are z-scored against that speaker's own utterances.
   ``voice="cnn"`` is the seed's recipe instead: chapter 11's log-mel CNN, its final hidden
   features fed to the fusion.
3. **Text tower** (:mod:`mmlab.text`): the frozen MiniLM sentence embedding plus the four
   VADER lexicon scores (``text="minilm"``), or TF-IDF plus VADER (``text="tfidf"``). An
   empty or undecodable transcript makes the text absent (flagged).
   :func:`finetune_minilm` fine-tunes MiniLM's top layers on a CPU budget (cost and gain
   are measured by ``mmlab bench emotion --data MELD``).
4. **Fusion** (:mod:`mmlab.fusion`): ``"early"`` (the seed's concatenation of the towers'
   final features), ``"late"``, ``"stacking"`` or ``"attention"`` (with modality dropout);
   ``modalities=("voice",)`` gives a unimodal model. Probabilities are **temperature
   scaled** (:class:`mmlab.evaluate.TemperatureScaler`) on out-of-fold predictions of the
   training data (folds by call, else by speaker).
5. **Per call** (when the data has ``call`` and ``call_label``): a temporal model over the
   sequence of calibrated utterance probabilities (mean, last, recency-weighted mean and
   slope of each class over the turns -> logistic regression) gives satisfaction
   probabilities and the **escalation risk** (probability of ``"dissatisfied"``);
   :meth:`EmotionRecognizer.plot_trajectory` draws the emotion trajectory.
6. **Explanation** (:mod:`mmlab.explain`): per call, which modality (exact modality
   Shapley values of the calibrated model, averaged over the call's utterances) and which
   utterances (the drop in the call's predicted probability without that utterance)
   drove the prediction; :func:`subgroup_report` checks the errors across speakers.

:func:`evaluate` scores a recognizer out of sample (leave-one-speaker-out for Emo-DB,
group folds by call otherwise): macro-F1, UAR with its per-speaker minimum, ECE, per-call
satisfaction AUROC.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, SchemaError, SignalError
from mmlab.systems._folder import load_pickled, save_pickled
from mmlab.validate import check_int, check_number, check_option

__all__ = ["EmotionRecognizer", "Features", "extract", "evaluate", "finetune_minilm", "FineTunedEncoder", "subgroup_report", "call_center_utterances",
           "emodb_utterances", "load_utterances", "voice_features", "FORMAT", "VOICE_MIN_S"]

FORMAT = "mmlab-emotion-recognizer/1"
MODALITIES = ("voice", "text")
FUSIONS = ("early", "late", "stacking", "attention")
TEXTS = ("minilm", "tfidf")
#: shorter utterances carry no usable voice (eGeMAPS needs 0.1 s)
VOICE_MIN_S = 0.1
#: share of samples at full scale above which an utterance is flagged as clipped
CLIP_FRACTION = 0.01
N_MFCC = 20


# ------------------------------------------------------------------------------- data
def call_center_utterances(cohort, speaker: str = "caller") -> pd.DataFrame:
    """One row per caller turn of a synthetic ``call_center`` cohort, in call and turn order.

    ``audio`` is the turn's slice of ``caller_audio`` (None when the call has no audio),
    ``label`` and ``call_label`` the call's satisfaction (the caller's state: every turn of
    a call carries the call's label), ``speaker`` the call (one caller per call), ``sex``.
    """
    rows = []
    for rec in cohort:
        lab = rec.phases("label")
        if lab.empty:
            raise SchemaError(f"recording {rec.subject!r} has no kind='label' annotation (not a call_center cohort?)")
        label = str(lab["label"].iloc[0])
        audio = rec["caller_audio"] if "caller_audio" in rec else None
        utt = rec.phases("utterance")
        utt = utt[utt["label"] == speaker].sort_values("onset")
        for k, u in enumerate(utt.itertuples(index=False), start=1):
            seg = None
            if audio is not None and getattr(u, "stream", "") == "caller_audio":
                seg = np.asarray(audio.slice(float(u.onset), float(u.onset + u.duration)).data[:, 0], np.float32)
            rows.append({"call": rec.subject, "turn": k, "audio": seg, "sr": int(audio.rate) if audio is not None else 8000,
                         "text": str(u.text), "label": label, "call_label": label, "speaker": rec.subject,
                         "sex": rec.meta.get("sex")})
    if not rows:
        raise SchemaError("call_center_utterances: no caller turns in this cohort")
    return pd.DataFrame(rows)


def emodb_utterances(root, speakers: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per Emo-DB recording: ``audio`` at the file's rate, ``text`` (the German
    sentence: ten fixed sentences, so the text carries no emotion), ``label``, ``speaker``,
    ``sex``; ``call`` is the file (no calls)."""
    from mmlab.io.audio import emodb_table, load_audio

    table = emodb_table(root)
    if speakers is not None:
        table = table[table["speaker"].isin([str(s) for s in speakers])]
    if table.empty:
        raise SchemaError(f"{root}: no Emo-DB recordings (of speakers {speakers})")
    rows = []
    for r in table.itertuples(index=False):
        x, sr = load_audio(r.path)
        rows.append({"call": r.file, "turn": 1, "audio": x, "sr": sr, "text": r.text, "label": r.label,
                     "speaker": r.speaker, "sex": r.sex})
    return pd.DataFrame(rows)


def load_utterances(data=None, calls: int = 60, seed: int = 0, fast: bool = False) -> pd.DataFrame:
    """Utterances from ``data``: None or ``"call_center"`` (a synthetic cohort of ``calls``
    calls), an Emo-DB folder, or a saved ``call_center`` cohort folder."""
    from mmlab import synth

    if data is None or str(data) == "call_center":
        return call_center_utterances(synth.make_cohort("call_center", n_subjects=check_int(calls, "calls", low=2),
                                                        seed=seed, fast=fast))
    path = Path(data)
    if not path.is_dir():
        raise DataFormatError(f"{path}: not a folder (expected an Emo-DB folder or a saved call_center cohort)")
    wav = path / "wav" if (path / "wav").is_dir() else path
    if any(wav.glob("*.wav")):
        return emodb_utterances(path)
    from mmlab.recording import Cohort

    return call_center_utterances(Cohort.load(path))


# ------------------------------------------------------------------------- voice tower
def _voice_names() -> list[str]:
    from mmlab.voice import _smile

    mf = [f"mfcc{i}_{s}" for s in ("mean", "std") for i in range(N_MFCC)]
    mf += [f"dmfcc{i}_{s}" for s in ("mean", "std") for i in range(N_MFCC)]
    return list(_smile().feature_names) + mf


def voice_features(x, sr: float) -> tuple[np.ndarray, str]:
    """``(features, quality)`` of one utterance: eGeMAPS (88) then MFCC statistics (80).

    ``quality`` is ``"ok"``, ``"clipped"`` (usable, flagged), ``"too_short"`` or
    ``"silent"`` (features all NaN: the voice is absent). A waveform that is not audio
    (NaN samples, outside [-1, 1], a bad rate) raises :class:`~mmlab.errors.SignalError`.
    """
    from mmlab import voice

    sr_i = voice.check_rate(sr)
    y = voice.check_audio(x, sr_i, what="utterance audio")
    n = 88 + 4 * N_MFCC
    if len(y) < VOICE_MIN_S * sr_i:
        return np.full(n, np.nan), "too_short"
    if voice.is_silent(y, sr_i):
        return np.full(n, np.nan), "silent"
    eg = voice.egemaps(y, sr_i)
    if eg.attrs["quality"] != "ok":
        return np.full(n, np.nan), eg.attrs["quality"]
    n_fft = 512 if sr_i > 12000 else 256
    mf = voice.mfcc_summary(y, sr_i, n_mfcc=N_MFCC, deltas=True, n_fft=n_fft)
    out = np.concatenate([eg.to_numpy(float), np.asarray(mf, float)])
    if not np.isfinite(out).all():
        return np.full(n, np.nan), "too_short"
    clipped = np.mean(np.abs(y) >= 0.999) > CLIP_FRACTION
    return out, "clipped" if clipped else "ok"


def _resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(target), int(sr))
    return np.clip(resample_poly(np.asarray(x, float), int(target) // g, int(sr) // g), -1, 1).astype(np.float32)


def _text_of(value) -> tuple[str | None, str | None]:
    """(text, flag): bytes are decoded as UTF-8; empty, missing or undecodable -> None."""
    from mmlab.text import _check_text

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, "text:missing"
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, "text:not_utf8"
    try:
        text = _check_text(value, "transcript")
    except SignalError:
        return None, "text:invalid"
    if not text.strip():
        return None, "text:empty"
    return text, None


@dataclass
class Features:
    """The towers' raw inputs for a table of utterances (computed once, reused by folds).

    ``voice`` ``(n, 168)`` (NaN rows where the voice is absent), ``texts`` (None where the
    text is absent), ``flags`` (per row, e.g. ``["voice:silent"]``), and the table's
    ``label``, ``call``, ``turn``, ``speaker``, ``sex``, ``call_label`` columns (None when
    absent) in ``meta``.
    """

    voice: np.ndarray
    texts: list
    flags: list
    meta: pd.DataFrame
    sr: int | None = None
    cache: dict = field(default_factory=dict)
    clips: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows) -> "Features":
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        cache = {k: v[rows] for k, v in self.cache.items()}
        clips = [self.clips[i] for i in rows] if self.clips else []
        return Features(self.voice[rows], [self.texts[i] for i in rows], [list(self.flags[i]) for i in rows],
                        self.meta.iloc[rows].reset_index(drop=True), self.sr, cache, clips)

    @property
    def labels(self) -> np.ndarray:
        if "label" not in self.meta or self.meta["label"].isna().any():
            raise SchemaError("these utterances have no 'label' column (or some labels are missing)")
        return self.meta["label"].astype(str).to_numpy()


def extract(utterances: pd.DataFrame, sr: int | None = None, progress: bool = False) -> Features:
    """The raw tower inputs of a table of utterances (see the module docstring for the
    columns). ``sr``: the rate the voice tower works at (a clip at another rate is
    resampled and flagged ``voice:resampled``); None: the first clip's rate. ``progress``
    shows a tqdm bar over the utterances."""
    if isinstance(utterances, Features):
        if sr is not None and utterances.sr is not None and int(utterances.sr) != int(sr):
            raise SchemaError(f"these features were computed at {utterances.sr} Hz, the model works at {sr} Hz; "
                              "pass the utterance table instead (clips are then resampled)")
        return utterances
    if not isinstance(utterances, pd.DataFrame):
        raise SchemaError(f"utterances: expected a DataFrame with 'audio', 'sr' and 'text' columns, "
                          f"got {type(utterances).__name__}")
    missing = [c for c in ("audio", "text") if c not in utterances]
    if missing:
        raise SchemaError(f"utterances: missing column(s) {missing}; need 'audio' (waveform or None), "
                          "'sr' and 'text' (str or None)")
    if len(utterances) == 0:
        raise SchemaError("utterances: the table is empty")
    from tqdm.auto import tqdm

    from mmlab import voice as V

    n = len(utterances)
    feats = np.full((n, 88 + 4 * N_MFCC), np.nan)
    texts, flags, clips = [], [], []
    rows = tqdm(utterances.itertuples(index=False), total=n, desc="utterances", disable=not progress, leave=False)
    for i, row in enumerate(rows):
        f: list[str] = []
        clips.append(None)
        audio = getattr(row, "audio")
        if audio is None or (np.ndim(audio) > 0 and np.size(audio) == 0) or np.ndim(audio) == 0:
            f.append("voice:missing")
        else:
            rate = getattr(row, "sr", None)
            if rate is None:
                raise SchemaError(f"utterance {i}: audio without a sample rate ('sr' column)")
            try:
                rate = V.check_rate(rate, f"utterance {i} sample rate")
            except SignalError as exc:
                raise SignalError(f"utterance {i}: {exc}") from None
            if sr is None:
                sr = rate
            x = audio
            if rate != sr:
                x = _resample(V.check_audio(audio, rate, what=f"utterance {i} audio"), rate, sr)
                f.append(f"voice:resampled_from_{rate}")
            try:
                vec, q = voice_features(x, sr)
            except SignalError as exc:
                raise SignalError(f"utterance {i}: {exc}") from None
            feats[i] = vec
            if np.isfinite(vec).all():
                clips[i] = np.asarray(x, np.float32)
            if q != "ok":
                f.append(f"voice:{q}")
        t, tf = _text_of(getattr(row, "text"))
        texts.append(t)
        if tf:
            f.append(tf)
        flags.append(f)
    cols = [c for c in ("label", "call", "turn", "speaker", "sex", "call_label") if c in utterances]
    meta = utterances[cols].reset_index(drop=True).copy()
    if "call" not in meta:
        meta["call"] = [f"u{i}" for i in range(n)]
    if "turn" not in meta:
        meta["turn"] = 1
    return Features(feats, texts, flags, meta, sr, {}, clips)


def _embed_cached(F: Features) -> np.ndarray:
    from mmlab import text as T

    if "minilm" not in F.cache:
        idx = [i for i, t in enumerate(F.texts) if t is not None]
        out = np.full((len(F), T.EMBEDDING_DIM + 4), np.nan)
        if idx:
            texts = [F.texts[i] for i in idx]
            out[idx, :T.EMBEDDING_DIM] = T.embed(texts)
            out[idx, T.EMBEDDING_DIM:] = T.vader_scores(texts).to_numpy(float)[:, :4]
        F.cache["minilm"] = out
    return F.cache["minilm"]


def _groups(F: Features) -> np.ndarray:
    """Folds keep a call (and a speaker) together: speakers when they repeat across calls."""
    m = F.meta
    if "speaker" in m and m["speaker"].notna().all() and m["speaker"].nunique() < m["call"].nunique():
        return m["speaker"].astype(str).to_numpy()
    return m["call"].astype(str).to_numpy()


# ------------------------------------------------------------------------ the system
class _Calibrated:
    """A fusion model with temperature-scaled probabilities (same predict_proba contract)."""

    def __init__(self, model, temperature: float):
        self.model, self.temperature = model, float(temperature)
        self.classes_, self.modalities_ = model.classes_, model.modalities_

    def predict_proba(self, X, mask=None):
        from mmlab.evaluate import _softmax, logits_from_proba

        return _softmax(logits_from_proba(self.model.predict_proba(X, mask)) / self.temperature)


def _trajectory(P: np.ndarray) -> np.ndarray:
    """Per-call features of a (turns, classes) probability sequence: mean, last,
    recency-weighted mean, slope per class, and log(turns)."""
    T = len(P)
    w = np.arange(1, T + 1, dtype=float)
    slope = (np.polyfit(np.arange(T), P, 1)[0] if T > 1 else np.zeros(P.shape[1]))
    return np.concatenate([P.mean(0), P[-1], (w[:, None] * P).sum(0) / w.sum(), slope, [np.log(T)]])


class EmotionRecognizer:
    """Per-utterance emotion and per-call satisfaction from voice and transcript.

    Parameters
    ----------
    fusion : {"early", "late", "stacking", "attention"}
        How the towers are combined (``"early"``: the seed's concatenation).
    modalities : sequence of "voice", "text"
        The towers used (one of them: a unimodal baseline).
    text : {"minilm", "tfidf"}
        The text tower: frozen MiniLM + VADER, or TF-IDF + VADER.
    voice : {"egemaps", "cnn"}
        The voice tower: eGeMAPS + MFCC statistics, or the seed's recipe — chapter 11's
        log-mel CNN (:class:`mmlab.voice.CNNClassifier`, clips cut or padded to
        ``cnn_duration`` s) trained on the training utterances, whose final hidden features
        (before its linear head) feed the fusion. The CNN is trained once on all training
        rows, so the inner out-of-fold probabilities behind temperature scaling are
        optimistic for it.
    speaker_norm : "auto", True or False
        z-score voice features per speaker ("auto": when every training speaker with 5 or
        more utterances shows at least two labels).
    C : float
        Inverse L2 strength of the logistic regressions.
    n_folds : int
        Inner folds (by call) for the out-of-fold probabilities behind temperature scaling
        and the per-call model.
    escalation : str
        The call label whose probability is the escalation risk.
    """

    def __init__(self, fusion: str = "early", modalities: Sequence[str] = MODALITIES, text: str = "minilm",
                 speaker_norm: Any = "auto", C: float = 0.1, n_folds: int = 3, escalation: str = "dissatisfied",
                 random_state: int = 0, voice: str = "egemaps", cnn_duration: float = 2.0, cnn_epochs: int = 20):
        self.fusion = fusion
        self.modalities = tuple(modalities)
        self.text = text
        self.voice = voice
        self.cnn_duration = cnn_duration
        self.cnn_epochs = cnn_epochs
        self.speaker_norm = speaker_norm
        self.C = C
        self.n_folds = n_folds
        self.escalation = escalation
        self.random_state = random_state

    # -------------------------------------------------------------- parts
    def _check_params(self) -> None:
        check_option(self.fusion, "fusion", FUSIONS, error=SchemaError)
        check_option(self.text, "text", TEXTS, error=SchemaError)
        check_option(self.voice, "voice", ("egemaps", "cnn"), error=SchemaError)
        check_number(self.cnn_duration, "cnn_duration", low=0.1)
        check_int(self.cnn_epochs, "cnn_epochs", low=1)
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise SchemaError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if self.speaker_norm not in ("auto", True, False):
            raise SchemaError(f"speaker_norm must be 'auto', True or False, got {self.speaker_norm!r}")
        if check_number(self.C, "C", low=0.0) <= 0:
            raise SchemaError(f"C must be > 0, got {self.C}")
        check_int(self.n_folds, "n_folds", low=2)

    def _model(self):
        from sklearn.linear_model import LogisticRegression

        from mmlab import fusion

        lr = LogisticRegression(C=self.C, max_iter=3000)
        mods = list(self.modalities)
        if self.fusion == "early" or len(mods) == 1:
            return fusion.EarlyFusion(lr, modalities=mods)
        if self.fusion == "late":
            return fusion.LateFusion(lr, modalities=mods)
        if self.fusion == "stacking":
            return fusion.StackingFusion(lr, modalities=mods, random_state=self.random_state)
        return fusion.AttentionFusion(modalities=mods, modality_dropout=0.3, hidden=32, dropout=0.3,
                                      weight_decay=1e-3, random_state=self.random_state)

    def _cnn_hidden(self, F: Features, fitting: bool) -> np.ndarray:
        import torch

        from mmlab import voice as VC
        from mmlab._torch import torch_threads

        present = [i for i, c in enumerate(F.clips) if c is not None] if F.clips else []
        if fitting:
            if len(present) < 2:
                raise SchemaError("the CNN voice tower needs at least two utterances with usable audio")
            y = F.labels
            self.cnn_ = VC.CNNClassifier(sr=F.sr, duration=self.cnn_duration, epochs=self.cnn_epochs,
                                         random_state=self.random_state).fit([F.clips[i] for i in present], y[present])
        width = 4 * self.cnn_.width * (self.cnn_.n_mels // 8)
        out = np.full((len(F), width), np.nan)
        if present:
            feats = (self.cnn_._features([F.clips[i] for i in present]) - self.cnn_.mean_) / self.cnn_.std_
            with torch_threads(self.cnn_.n_threads), torch.inference_mode():
                h = self.cnn_.module_.features(torch.from_numpy(feats).float().unsqueeze(1)).amax(dim=3).flatten(1)
            out[present] = h.numpy()
        return out

    def _voice_matrix(self, F: Features, fitting: bool) -> np.ndarray:
        V = self._cnn_hidden(F, fitting) if self.voice == "cnn" else F.voice.copy()
        present = np.isfinite(V).all(1)
        if fitting:
            self.voice_mean_ = np.nanmean(V[present], 0) if present.any() else np.zeros(V.shape[1])
            sd = np.nanstd(V[present], 0) if present.any() else np.ones(V.shape[1])
            self.voice_sd_ = np.where(sd > 0, sd, 1.0)
        if not self.speaker_norm_:
            return V
        spk = F.meta["speaker"].astype(str).to_numpy() if "speaker" in F.meta else np.array(["?"] * len(F))
        out = (V - self.voice_mean_) / self.voice_sd_
        for s in np.unique(spk):
            rows = (spk == s) & present
            if rows.sum() >= 5:
                mu, sd = V[rows].mean(0), V[rows].std(0)
                out[rows] = (V[rows] - mu) / np.where(sd > 0, sd, 1.0)
            else:
                for i in np.flatnonzero(rows):
                    if "voice:no_speaker_norm" not in F.flags[i]:
                        F.flags[i].append("voice:no_speaker_norm")
        return out

    def _text_matrix(self, F: Features, fitting: bool) -> np.ndarray:
        if self.text == "minilm":
            return _embed_cached(F)
        from mmlab import text as T

        idx = [i for i, t in enumerate(F.texts) if t is not None]
        texts = [F.texts[i] for i in idx]
        if fitting:
            if not texts:
                raise SchemaError("the text tower needs transcripts; none is usable")
            self.tfidf_ = T.make_tfidf(min_df=2 if len(texts) >= 50 else 1, max_features=2000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tfidf_.fit(texts)
        width = len(self.tfidf_.vocabulary_) + 4
        out = np.full((len(F), width), np.nan)
        if idx:
            # a transcript with no known word still counts as present (an all-zero TF-IDF row)
            rows = []
            for t in texts:
                try:
                    rows.append(self.tfidf_.transform([t]).toarray()[0])
                except SignalError:
                    rows.append(np.zeros(width - 4))
            out[idx, :-4] = np.vstack(rows)
            out[idx, -4:] = T.vader_scores(texts).to_numpy(float)[:, :4]
        return out

    def _inputs(self, F: Features, fitting: bool = False) -> tuple[dict, dict]:
        X, mask = {}, {}
        if "voice" in self.modalities:
            V = self._voice_matrix(F, fitting)
            X["voice"], mask["voice"] = np.nan_to_num(V), np.isfinite(V).all(1)
        if "text" in self.modalities:
            Tm = self._text_matrix(F, fitting)
            X["text"], mask["text"] = np.nan_to_num(Tm), np.isfinite(Tm).all(1)
        return X, mask

    # -------------------------------------------------------------- fit
    def fit(self, utterances, progress: bool = False) -> "EmotionRecognizer":
        """Fit the towers, the fusion model, its temperature and (with calls) the call model."""
        from sklearn.model_selection import StratifiedGroupKFold

        from mmlab.evaluate import TemperatureScaler

        self._check_params()
        t0 = time.perf_counter()
        F = extract(utterances)
        y = F.labels
        self.classes_ = np.array(sorted(set(y)))
        if len(self.classes_) < 2:
            raise SchemaError(f"need at least two emotion labels to train, got {list(self.classes_)}")
        self.sr_ = F.sr
        spk = F.meta["speaker"].astype(str) if "speaker" in F.meta else None
        if self.speaker_norm == "auto":
            if spk is None:
                self.speaker_norm_ = False
            else:
                counts = pd.DataFrame({"s": spk, "y": y}).groupby("s")["y"].agg(["size", "nunique"])
                big = counts[counts["size"] >= 5]
                self.speaker_norm_ = bool(len(big) and (big["nunique"] >= 2).all())
        else:
            self.speaker_norm_ = bool(self.speaker_norm)
        X, mask = self._inputs(F, fitting=True)
        if not any(mask[m].any() for m in mask):
            raise SchemaError("no training utterance has a usable modality")
        groups = _groups(F)
        n_groups = len(np.unique(groups))
        k = min(int(self.n_folds), n_groups)
        oof = np.full((len(F), len(self.classes_)), np.nan)
        if k >= 2:
            # out-of-fold probabilities: the temperature and the call model see held-out predictions
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=self.random_state)
            with warnings.catch_warnings():  # "least populated class ... less than n_splits": expected with few groups
                warnings.simplefilter("ignore", UserWarning)
                splits = list(folds.split(np.zeros(len(F)), y, groups))
            for tr, te in splits:
                if len(set(y[tr])) < len(self.classes_):
                    continue
                m = self._model().fit(_take(X, tr), y[tr], _take(mask, tr))
                oof[te] = _align(m.predict_proba(_take(X, te), _take(mask, te)), m.classes_, self.classes_)
        ok = np.isfinite(oof).all(1)
        self.model_ = self._model().fit(X, y, mask)
        self.temperature_ = TemperatureScaler().fit_proba(oof[ok], y[ok], classes=self.classes_) if ok.sum() else None
        T = self.temperature_.temperature_ if self.temperature_ is not None else 1.0
        self.calibrated_ = _Calibrated(self.model_, T)
        self.prior_ = np.array([np.mean(y == c) for c in self.classes_])
        self.call_model_ = None
        if "call_label" in F.meta and F.meta["call_label"].notna().all() and ok.all():
            P = _softmax_t(oof, T)
            self._fit_calls(F, P)
        self.n_train_ = len(F)
        self.train_s_ = time.perf_counter() - t0
        return self

    def _fit_calls(self, F: Features, P: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        calls, Z, yc = [], [], []
        for call, idx in _call_rows(F):
            calls.append(call)
            Z.append(_trajectory(P[idx]))
            yc.append(str(F.meta["call_label"].iloc[idx[0]]))
        yc = np.array(yc)
        if len(set(yc)) < 2 or min(np.unique(yc, return_counts=True)[1]) < 2:
            return
        self.call_classes_ = np.array(sorted(set(yc)))
        self.call_model_ = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)).fit(np.vstack(Z), yc)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SchemaError("this EmotionRecognizer is not fitted; call fit(utterances) first")

    # -------------------------------------------------------------- predict
    def predict_proba(self, utterances) -> pd.DataFrame:
        """Per utterance: ``p_<emotion>`` (calibrated), ``predicted``, ``present_voice``,
        ``present_text`` and ``flags`` (";"-joined; a row with no usable modality gets the
        training prior and the flag ``no_modality``)."""
        self._check_fitted()
        F = extract(utterances, sr=self.sr_)
        X, mask = self._inputs(F)
        P = self.calibrated_.predict_proba(X, mask)
        none = ~np.any(np.vstack([mask[m] for m in mask]), axis=0)
        P[none] = self.prior_
        out = pd.DataFrame(P, columns=[f"p_{c}" for c in self.classes_])
        out.insert(0, "predicted", self.classes_[np.argmax(P, 1)])
        for m in MODALITIES:
            out[f"present_{m}"] = mask[m] if m in mask else False
        flags = [list(f) + (["no_modality"] if none[i] else []) for i, f in enumerate(F.flags)]
        out["flags"] = [";".join(f) for f in flags]
        for c in ("call", "turn", "label"):
            if c in F.meta:
                out.insert(0, c, F.meta[c].to_numpy())
        return out

    def predict(self, utterances) -> np.ndarray:
        return self.predict_proba(utterances)["predicted"].to_numpy()

    def predict_calls(self, utterances, utterance_proba: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per call: satisfaction probabilities ``p_<label>``, ``predicted``, ``escalation_risk``,
        ``n_utterances`` (needs a recognizer trained on data with calls)."""
        self._check_fitted()
        if self.call_model_ is None:
            raise SchemaError("this recognizer has no call model (train it on utterances with 'call' and "
                              "'call_label', e.g. call_center)")
        F = extract(utterances, sr=self.sr_)
        up = self.predict_proba(F) if utterance_proba is None else utterance_proba
        P = up[[f"p_{c}" for c in self.classes_]].to_numpy(float)
        rows = []
        for call, idx in _call_rows(F):
            rows.append((call, len(idx), _trajectory(P[idx])))
        Pc = self.call_model_.predict_proba(np.vstack([r[2] for r in rows]))
        out = pd.DataFrame(Pc, columns=[f"p_{c}" for c in self.call_classes_])
        out.insert(0, "n_utterances", [r[1] for r in rows])
        out.insert(0, "call", [r[0] for r in rows])
        out["predicted"] = self.call_classes_[np.argmax(Pc, 1)]
        esc = f"p_{self.escalation}"
        out["escalation_risk"] = out[esc] if esc in out else np.nan
        return out

    # -------------------------------------------------------------- explain
    def explain(self, utterances, call: str | None = None) -> dict:
        """What drove the prediction, for a supervisor.

        Per call (or the whole table when there is no call model): ``modalities`` (mean
        Shapley value of each modality for the probability of the predicted label),
        ``utterances`` (per turn: the text, the predicted emotion and how much the call's
        predicted probability drops without it), ``predicted``, ``escalation_risk`` and
        ``summary`` (one sentence).
        """
        from mmlab.explain import sample_shapley

        self._check_fitted()
        F = extract(utterances, sr=self.sr_)
        if call is not None:
            sel = F.meta["call"].astype(str).to_numpy() == str(call)
            if not sel.any():
                raise SchemaError(f"no utterance of call {call!r}")
            F = F.subset(sel)
        up = self.predict_proba(F)
        X, mask = self._inputs(F)
        out: dict = {"n_utterances": len(F)}
        if self.call_model_ is not None and call is not None:
            pc = self.predict_calls(F, up).iloc[0]
            target = pc["predicted"]
            out.update(predicted=str(target), escalation_risk=float(pc["escalation_risk"]),
                       proba={c: float(pc[f"p_{c}"]) for c in self.call_classes_})
            P = up[[f"p_{c}" for c in self.classes_]].to_numpy(float)
            base = float(pc[f"p_{target}"])
            col = list(self.call_classes_).index(target)
            drops = []
            for j in range(len(F)):
                keep = np.arange(len(F)) != j
                if keep.sum() == 0:
                    drops.append(float("nan"))
                    continue
                pj = self.call_model_.predict_proba(_trajectory(P[keep])[None])[0, col]
                drops.append(base - float(pj))
            tgt = target if target in self.classes_ else "pred"
        else:
            drops = [float("nan")] * len(F)
            tgt = "pred"
            out.update(predicted=str(up["predicted"].iloc[0]) if len(F) == 1 else None)
        if len(self.calibrated_.modalities_) > 1:
            sh = sample_shapley(self.calibrated_, X, mask, target=tgt).attributions
            out["modalities"] = {m: float(sh[m].mean()) for m in self.calibrated_.modalities_}
        else:
            out["modalities"] = {self.calibrated_.modalities_[0]: float("nan")}
        turns = F.meta["turn"].to_numpy()
        out["utterances"] = [{"turn": int(turns[j]), "text": F.texts[j], "predicted": str(up["predicted"].iloc[j]),
                              "contribution": drops[j], "flags": up["flags"].iloc[j]} for j in range(len(F))]
        top = max(out["modalities"], key=lambda m: abs(out["modalities"][m])
                  if np.isfinite(out["modalities"][m]) else -1)
        ranked = sorted((u for u in out["utterances"] if np.isfinite(u["contribution"])),
                        key=lambda u: -u["contribution"])
        lead = f"; turn {ranked[0]['turn']} mattered most" if ranked else ""
        out["summary"] = f"predicted {out.get('predicted')}: {top} carried the most weight{lead}"
        return out

    def plot_trajectory(self, utterances, call: str, ax=None):
        """The emotion trajectory of one call: each label's calibrated probability per turn."""
        import matplotlib.pyplot as plt

        F = extract(utterances, sr=self.sr_)
        sel = F.meta["call"].astype(str).to_numpy() == str(call)
        if not sel.any():
            raise SchemaError(f"no utterance of call {call!r}")
        up = self.predict_proba(F.subset(sel))
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        for c in self.classes_:
            ax.plot(up["turn"], up[f"p_{c}"], marker="o", label=c)
        ax.set(xlabel="caller turn", ylabel="probability", ylim=(0, 1), title=f"call {call}")
        ax.legend(fontsize=8)
        return ax

    # -------------------------------------------------------------- save / load
    def save(self, folder) -> Path:
        """A versioned folder: ``manifest.json`` (format, mmlab version, classes, modalities,
        parameters, temperature) and ``model.pkl``."""
        self._check_fitted()
        manifest = {"classes": list(map(str, self.classes_)),
                    "modalities": list(self.calibrated_.modalities_), "fusion": self.fusion, "text": self.text,
                    "speaker_norm": self.speaker_norm_, "sr": self.sr_, "temperature": self.calibrated_.temperature,
                    "call_classes": (list(map(str, self.call_classes_)) if self.call_model_ is not None else None)}
        return save_pickled(self, folder, FORMAT, manifest)

    @classmethod
    def load(cls, folder) -> "EmotionRecognizer":
        """Load a folder written by :meth:`save`; another format or mmlab version is an error."""
        return load_pickled(cls, folder, FORMAT, "an emotion model", "mmlab emotion train",
                            lambda rec, mf: list(map(str, rec.classes_)) == mf["classes"])


# ------------------------------------------------------------------------- helpers
def _take(D: dict, idx) -> dict:
    return {k: v[idx] for k, v in D.items()}


def _align(P: np.ndarray, have, want) -> np.ndarray:
    out = np.zeros((len(P), len(want)))
    for j, c in enumerate(have):
        out[:, list(want).index(c)] = P[:, j]
    return out


def _softmax_t(P: np.ndarray, T: float) -> np.ndarray:
    from mmlab.evaluate import _softmax, logits_from_proba

    return _softmax(logits_from_proba(P) / T)


def _call_rows(F: Features):
    """(call, row indices in turn order) for every call, in order of first appearance."""
    calls = F.meta["call"].astype(str).to_numpy()
    turns = F.meta["turn"].to_numpy()
    for c in dict.fromkeys(calls):
        idx = np.flatnonzero(calls == c)
        yield c, idx[np.argsort(turns[idx], kind="stable")]


# ------------------------------------------------------------------------ evaluation
def _uar(y, pred) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(y, pred, average="macro", labels=sorted(set(y))))


def evaluate(recognizer: EmotionRecognizer, utterances, n_splits: int = 5, progress: bool = False) -> dict:
    """Out-of-sample scores of ``recognizer`` (a fresh copy per fold).

    Folds: leave-one-speaker-out when speakers repeat across utterances of different
    calls (Emo-DB), else ``n_splits`` group folds by call. Returns macro-F1, ``uar`` (mean
    over test speakers/folds), ``uar_min_speaker`` (NaN unless leave-one-speaker-out),
    ``uar_min_fold``, ``uar_pooled``, ``ece`` (calibrated),
    ``satisfaction_auroc`` (macro one-vs-rest, per call; NaN without calls), ``escalation_auroc``,
    ``train_s`` (mean per fold), ``infer_ms_per_utterance`` and the out-of-fold tables
    ``utterances`` / ``calls``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    from mmlab.evaluate import expected_calibration_error, macro_f1

    F = extract(utterances)
    y = F.labels
    groups = _groups(F)
    speakers = F.meta["speaker"].astype(str).to_numpy() if "speaker" in F.meta else groups
    loso = len(np.unique(groups)) <= 20 and not np.array_equal(groups, F.meta["call"].astype(str).to_numpy())
    if loso:
        splits = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
    else:
        k = min(check_int(n_splits, "n_splits", low=2), len(np.unique(groups)))
        splits = list(GroupKFold(n_splits=k).split(np.zeros(len(F)), y, groups))
    params = {k: getattr(recognizer, k) for k in ("fusion", "modalities", "text", "speaker_norm", "C", "n_folds",
                                                  "escalation", "random_state", "voice", "cnn_duration", "cnn_epochs")}
    tables, calls, train_s, infer_s, per = [], [], [], [], []
    for tr, te in splits:
        rec = EmotionRecognizer(**params).fit(F.subset(tr))
        train_s.append(rec.train_s_)
        t0 = time.perf_counter()
        Fte = F.subset(te)
        up = rec.predict_proba(Fte)
        infer_s.append(time.perf_counter() - t0)
        up["row"] = te
        up = up.reindex(columns=list(up.columns) + [f"p_{c}" for c in sorted(set(y)) if f"p_{c}" not in up],
                        fill_value=0.0)
        tables.append(up)
        per.append(_uar(y[te], up["predicted"].to_numpy()))
        if rec.call_model_ is not None:
            calls.append(rec.predict_calls(Fte, up))
    ut = pd.concat(tables).sort_values("row").reset_index(drop=True)
    classes = sorted(set(y))
    P = ut[[f"p_{c}" for c in classes]].to_numpy(float)
    pred = ut["predicted"].to_numpy()
    spk_uar = {s: _uar(y[speakers == s], pred[speakers == s]) for s in np.unique(speakers)} if loso else {}
    out = {"macro_f1": macro_f1(y, pred), "uar": float(np.mean(list(spk_uar.values()) if loso else per)),
           "uar_pooled": _uar(y, pred),
           "uar_min_speaker": float(min(spk_uar.values())) if loso else float("nan"),
           "uar_min_fold": float(min(per)),
           "uar_per_speaker": {k: round(v, 4) for k, v in spk_uar.items()},
           "ece": expected_calibration_error(y, P, classes=classes),
           "satisfaction_auroc": float("nan"), "escalation_auroc": float("nan"),
           "train_s": float(np.mean(train_s)), "infer_ms_per_utterance": 1000 * float(np.sum(infer_s)) / len(F),
           "folds": len(splits), "loso": bool(loso), "utterances": ut}
    if calls and "call_label" in F.meta:
        ct = pd.concat(calls).reset_index(drop=True)
        truth = F.meta.groupby(F.meta["call"].astype(str))["call_label"].first()
        ct["label"] = truth.reindex(ct["call"].astype(str)).to_numpy()
        cc = sorted(set(ct["label"]))
        Pc = ct[[f"p_{c}" for c in cc]].to_numpy(float)
        Pc = Pc / Pc.sum(1, keepdims=True)
        if len(cc) > 2:
            out["satisfaction_auroc"] = float(roc_auc_score(ct["label"], Pc, multi_class="ovr", labels=cc))
        elif len(cc) == 2:
            out["satisfaction_auroc"] = float(roc_auc_score(ct["label"] == cc[1], Pc[:, 1]))
        esc = recognizer.escalation
        if esc in cc and 0 < (ct["label"] == esc).sum() < len(ct):
            out["escalation_auroc"] = float(roc_auc_score(ct["label"] == esc, ct["escalation_risk"]))
        out["call_macro_f1"] = macro_f1(ct["label"], ct["predicted"])
        out["calls"] = ct
    return out


def subgroup_report(utterances, proba: pd.DataFrame, column: str = "sex") -> pd.DataFrame:
    """Accuracy, balanced accuracy, macro-F1 and ECE per subgroup (``column`` of the
    utterance table: ``sex``, ``speaker``...) of out-of-sample predictions ``proba``
    (a :meth:`EmotionRecognizer.predict_proba` or :func:`evaluate` table)."""
    from mmlab.explain import subgroup_metrics

    F = extract(utterances) if not isinstance(utterances, Features) else utterances
    if column not in F.meta:
        raise SchemaError(f"the utterances have no {column!r} column (have {list(F.meta.columns)})")
    classes = [c[2:] for c in proba.columns if c.startswith("p_")]
    return subgroup_metrics(F.labels, proba[[f"p_{c}" for c in classes]].to_numpy(float),
                            F.meta[column].astype(str).to_numpy(), classes=classes)


# ------------------------------------------------------------------ text fine-tuning
class FineTunedEncoder:
    """MiniLM with its top layers fine-tuned (:func:`finetune_minilm`): ``encode(texts)``
    gives L2-normalised mean-pooled ``(n, 384)`` embeddings, like :func:`mmlab.text.embed`."""

    def __init__(self, bert, tokenizer, max_length: int, seconds: float, layers: int, n_train: int):
        self.bert, self.tokenizer, self.max_length = bert, tokenizer, max_length
        self.train_s, self.layers, self.n_train = seconds, layers, n_train

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        import torch

        from mmlab.text import check_texts

        items = check_texts(texts)
        out = []
        self.bert.eval()
        with torch.inference_mode():
            for i in range(0, len(items), batch_size):
                out.append(_pool(self.bert, self.tokenizer, items[i:i + batch_size], self.max_length).numpy())
        return np.vstack(out) if out else np.zeros((0, 384), np.float32)


def _pool(bert, tokenizer, texts, max_length):
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    h = bert(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    e = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(e, dim=1)


def finetune_minilm(texts, labels, layers: int = 1, epochs: int = 1, batch_size: int = 16, lr: float = 5e-5,
                    max_length: int = 64, random_state: int = 0) -> FineTunedEncoder:
    """Fine-tune the top ``layers`` transformer layers of the shipped MiniLM (the rest
    frozen) with a linear classification head on the mean-pooled embedding, for ``epochs``
    on CPU; returns a :class:`FineTunedEncoder` (its ``train_s`` is the cost in seconds).
    The shared frozen encoder of :func:`mmlab.text.embed` is not modified (a copy is trained)."""
    import copy

    import torch

    from mmlab.text import check_texts, load_encoder

    items = check_texts(texts)
    y = np.asarray(labels).astype(str)
    if len(items) != len(y) or len(items) < 2:
        raise SchemaError(f"finetune_minilm: {len(items)} texts and {len(y)} labels (need equal counts >= 2)")
    layers = check_int(layers, "layers", low=0, high=6)
    epochs = check_int(epochs, "epochs", low=1)
    t0 = time.perf_counter()
    torch.manual_seed(int(random_state))
    st = load_encoder()
    bert = copy.deepcopy(st[0].auto_model)
    tok = st.tokenizer
    for p in bert.parameters():
        p.requires_grad = False
    for layer in (bert.encoder.layer[-layers:] if layers else []):
        for p in layer.parameters():
            p.requires_grad = True
    classes = sorted(set(y))
    target = torch.tensor([classes.index(v) for v in y])
    head = torch.nn.Linear(bert.config.hidden_size, len(classes))
    params = [{"params": [p for p in bert.parameters() if p.requires_grad], "lr": lr},
              {"params": head.parameters(), "lr": 1e-2}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    rng = np.random.default_rng(random_state)
    bert.train()
    for _ in range(epochs):
        order = rng.permutation(len(items))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            logits = head(_pool(bert, tok, [items[j] for j in idx], max_length) * 10.0)
            loss = torch.nn.functional.cross_entropy(logits, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    bert.eval()
    return FineTunedEncoder(bert, tok, max_length, time.perf_counter() - t0, layers, len(items))
