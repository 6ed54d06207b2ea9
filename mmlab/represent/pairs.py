"""Paired views from recordings: the data side of CCA and contrastive learning
(chapters 21_cca and 22_contrastive).

Row ``i`` of view A and row ``i`` of view B describe the same item. This module builds
such pairs from the synthetic cohorts and real recordings, and holds the small tools that
keep evaluations honest:

* :class:`Pairs` -- ``a``, ``b`` (float arrays) and ``meta`` (one row per item: ``group``,
  ``label``, ``text``...);
* :func:`split_by_group` -- train/test rows with whole calls or subjects on one side;
* :func:`zscore_by_group` -- per-subject z-scores (people differ more than states do);
* :func:`window_views` -- two views of a recording as per-window stream statistics (e.g.
  cardiac vs skin on an Empatica E4), chapter 21_cca;
* :func:`utterance_voice_features`, :func:`call_center_pairs` -- caller audio <->
  transcript embedding, one pair per turn of the synthetic ``call_center`` scenario;
* :func:`stress_pairs` -- physiology around a spoken self-report (the window features of
  :mod:`mmlab.features`) <-> its voice features, synthetic ``stress_protocol``.

Windows are on the reference clock. :func:`window_views` slices streams of other devices
on their own clock, which is off by at most a few seconds in the synthetic cohorts and not
at all on a single-device recording such as an E4 (chapter 20 shows how to estimate and
remove such offsets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab._torch import validation_split
from mmlab.errors import SignalError
from mmlab.validate import check_positive

__all__ = [
    "Pairs", "split_by_group", "zscore_by_group", "window_views", "utterance_voice_features",
    "VOICE_FEATURES", "call_center_pairs", "PHYSIO_STREAMS", "stress_pairs", "concat_pairs",
]


def split_by_group(groups, test_fraction: float = 0.3, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` with whole groups (calls, subjects) on one side only."""
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise SignalError("split_by_group: need at least two groups")
    if not 0 < test_fraction < 1:
        raise SignalError(f"split_by_group: test_fraction must be in (0, 1), got {test_fraction}")
    return validation_split(len(groups), test_fraction, np.random.default_rng(random_state), groups=groups)



@dataclass
class Pairs:
    """Paired views of the same items (chapter 22_contrastive).

    ``a`` ``(n, p)`` and ``b`` ``(n, q)`` float arrays whose rows are paired; ``meta`` one
    row per item (``group`` -- the call or subject -- ``label``, ``text``...); feature
    names in ``a_names``/``b_names``. ``subset(rows)`` selects rows of all three.
    """

    a: np.ndarray
    b: np.ndarray
    meta: pd.DataFrame
    a_names: list[str] = field(default_factory=list)
    b_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.a)

    def subset(self, rows) -> "Pairs":
        rows = np.asarray(rows)
        return Pairs(self.a[rows], self.b[rows], self.meta.iloc[rows].reset_index(drop=True),
                     list(self.a_names), list(self.b_names))


#: Names of :func:`utterance_voice_features` (13 MFCC means and stds, then prosody).
VOICE_FEATURES: list[str] = ([f"mfcc{i}_mean" for i in range(13)] + [f"mfcc{i}_std" for i in range(13)]
                             + ["f0_log_mean", "f0_sd_st", "voiced_fraction", "rms_db", "rms_db_std",
                                "log_duration"])


def utterance_voice_features(x, sr: float) -> np.ndarray:
    """One vector per utterance (chapter 22_contrastive): :data:`VOICE_FEATURES`.

    Mean and std of 13 MFCCs (:func:`mmlab.voice.mfcc_summary`, 32 ms frames), log mean F0
    and F0 spread in semitones (Praat, :func:`mmlab.voice.pitch_praat`), voiced fraction,
    mean and std of the frame level in dB, and the log duration. An unvoiced clip gets
    NaN pitch features (drop or impute those rows); a clip that is too short or broken
    raises :class:`~mmlab.errors.SignalError` from :mod:`mmlab.voice`.
    """
    import librosa

    from mmlab import voice

    sr_i = voice.check_rate(sr)
    y = voice.check_audio(x, sr_i, min_samples=int(0.1 * sr_i), what="utterance")
    n_fft = int(2 ** round(math.log2(0.032 * sr_i)))
    mf = voice.mfcc_summary(y, sr_i, n_mfcc=13, deltas=False, n_fft=n_fft)
    ps = voice.pitch_summary(voice.pitch_praat(y, sr_i))
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=n_fft // 2)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-5))
    loud = db[db > db.max() - 35.0]
    f0 = ps["f0_mean"]
    return np.concatenate([mf, [np.log(f0) if np.isfinite(f0) else np.nan, ps["f0_sd_st"],
                                ps["voiced_fraction"], loud.mean(), loud.std(),
                                np.log(len(y) / sr_i)]]).astype(float)


def call_center_pairs(cohort, embed: bool = True, encoder: Callable[[list[str]], np.ndarray] | None = None,
                      speaker: str = "caller", progress: bool = False) -> Pairs:
    """Voice <-> transcript pairs, one per caller turn of a ``call_center`` cohort
    (chapter 22_contrastive).

    ``a``: :func:`utterance_voice_features` of the turn's audio (``caller_audio`` from the
    annotation's onset for its duration); ``b``: the transcript embedded by the frozen
    text tower (``encoder``, default :func:`mmlab.text.embed`: MiniLM, 384 dims; with
    ``embed=False`` ``b`` is an empty ``(n, 0)`` array). ``meta``: ``group`` (call id),
    ``turn`` (1, 2, ... within the call), ``onset``, ``duration``, ``label`` (the call's
    satisfaction) and ``text``. Calls without audio are skipped; a turn whose pitch
    cannot be measured keeps NaN features (see ``Pairs.a``). ``progress=True`` shows a
    tqdm bar over the calls.
    """
    from tqdm.auto import tqdm

    rows, feats = [], []
    for rec in tqdm(cohort, desc="calls: voice features", disable=not progress):
        if "caller_audio" not in rec:
            continue
        audio = rec["caller_audio"]
        lab = rec.phases("label")
        call_label = str(lab["label"].iloc[0]) if len(lab) else ""
        utt = rec.phases("utterance")
        utt = utt[(utt["label"] == speaker) & (utt["stream"] == "caller_audio")]
        for turn, u in enumerate(utt.itertuples(index=False), start=1):
            seg = audio.slice(float(u.onset), float(u.onset + u.duration)).data[:, 0]
            try:
                f = utterance_voice_features(seg, audio.rate)
            except SignalError:
                continue  # shorter than an analysis window: no usable audio for this turn
            feats.append(f)
            rows.append({"group": rec.subject, "turn": turn, "onset": float(u.onset),
                         "duration": float(u.duration), "label": call_label, "text": str(u.text)})
    if not rows:
        raise SignalError("call_center_pairs: no caller turns with audio in this cohort "
                          "(is it a call_center cohort?)")
    meta = pd.DataFrame(rows)
    if embed:
        if encoder is None:
            from mmlab.text import embed as encoder
        b = np.asarray(encoder(meta["text"].tolist()), dtype=float).reshape(len(meta), -1)
    else:
        b = np.zeros((len(meta), 0))
    return Pairs(np.vstack(feats), b, meta, list(VOICE_FEATURES), [f"text{i}" for i in range(b.shape[1])])


#: Streams of a ``stress_protocol`` recording behind :func:`stress_pairs`' physiology view
#: (prefix -> stream, the format of :func:`mmlab.features.window_features`).
PHYSIO_STREAMS: dict[str, str] = {"ecg": "chest_ecg", "eda": "chest_eda", "resp": "chest_resp"}


def stress_pairs(cohort, window_s: float = 30.0, streams: Mapping[str, str] | None = None,
                 step_s: float = 0.5, progress: bool = False) -> Pairs:
    """Physiology <-> voice pairs, one per spoken self-report of a ``stress_protocol``
    cohort (chapter 22_contrastive).

    For every utterance with audio: ``a`` = the physiology of the ``window_s`` seconds
    centred on it -- :func:`mmlab.features.window_features` of ``streams`` (default
    :data:`PHYSIO_STREAMS`: heart rate and HRV from the chest ECG, skin conductance level
    and responses, breathing rate), the window of a grid every ``step_s`` whose centre
    is nearest to the utterance's; ``b`` = :func:`utterance_voice_features` of the speech
    in its clip. ``meta``: ``group`` (subject), ``label`` (the phase at the utterance),
    ``onset``, ``text``, ``stream``. Windows where the physiology is unusable keep NaN
    features (the features module never invents values); drop or impute those rows.
    Subjects differ more than phases do: consider :func:`zscore_by_group` on both views.
    ``progress=True`` shows a tqdm bar over the sessions.
    """
    from tqdm.auto import tqdm

    from mmlab.features import feature_columns, window_features

    window_s = check_positive(window_s, "stress_pairs: window_s", unit="seconds")
    step_s = check_positive(step_s, "stress_pairs: step_s", unit="seconds")
    streams = dict(PHYSIO_STREAMS if streams is None else streams)
    rows, fa, fb = [], [], []
    a_names: list[str] = []
    for rec in tqdm(cohort, desc="sessions: physiology and voice", disable=not progress):
        utt = rec.phases("utterance")
        utt = utt[(utt["stream"].astype(str) != "") & utt["stream"].isin(list(rec.streams))]
        if utt.empty or any(n not in rec for n in streams.values()):
            continue
        table = window_features(rec, window_s=window_s, step_s=step_s, streams=streams)
        cols = feature_columns(table)
        a_names = a_names or cols
        centres = ((table["start"] + table["end"]) / 2).to_numpy()
        values = table[cols].to_numpy(dtype=float)
        for u in utt.itertuples(index=False):
            clip = rec[u.stream]
            lead = float(clip.meta.get("speech_onset_s", 0.0))
            i0 = int(round(lead * clip.rate))
            seg = clip.data[i0: i0 + int(round(float(u.duration) * clip.rate)), 0]
            try:
                vb = utterance_voice_features(seg, clip.rate)
            except SignalError:
                continue  # too short to analyse: no voice view for this utterance
            mid = float(u.onset) + float(u.duration) / 2
            fa.append(values[int(np.argmin(np.abs(centres - mid)))])
            fb.append(vb)
            rows.append({"group": rec.subject, "label": str(rec.label_at(float(u.onset))[0]),
                         "onset": float(u.onset), "text": str(u.text), "stream": str(u.stream)})
    if not rows:
        raise SignalError("stress_pairs: no utterances with audio and physiology in this cohort "
                          f"(is it a stress_protocol cohort with streams {sorted(streams.values())}?)")
    return Pairs(np.vstack(fa), np.vstack(fb), pd.DataFrame(rows), list(a_names), list(VOICE_FEATURES))


def zscore_by_group(X, groups) -> np.ndarray:
    """Each column z-scored within each group (e.g. per subject): removes baselines
    that differ between people so that within-person changes remain. NaN stays NaN; a
    constant column within a group becomes 0."""
    X = np.asarray(X, dtype=float)
    groups = np.asarray(groups)
    if X.ndim != 2 or len(groups) != len(X):
        raise SignalError(f"zscore_by_group: X of shape {X.shape} and {len(groups)} groups")
    out = np.empty_like(X)
    for g in np.unique(groups):
        m = groups == g
        mu = np.nanmean(X[m], axis=0)
        sd = np.nanstd(X[m], axis=0)
        out[m] = (X[m] - mu) / np.where(sd > 0, sd, 1.0)
        out[m] = np.where(np.isfinite(X[m]) & (sd == 0), 0.0, out[m])
    return out




def _stream_stats(rec, name: str, t0: float, t1: float, stats: Sequence[str]) -> list[float]:
    x = rec[name].slice(t0, t1).data.astype(float).reshape(-1, rec[name].n_channels)
    x = np.linalg.norm(x, axis=1) if x.shape[1] > 1 else x[:, 0]  # several channels: magnitude
    x = x[np.isfinite(x)]
    out = []
    for st in stats:
        if len(x) < 2:
            out.append(np.nan)
        elif st == "mean":
            out.append(float(x.mean()))
        elif st == "std":
            out.append(float(x.std()))
        elif st == "slope":
            t = np.linspace(0.0, t1 - t0, len(x))
            out.append(float(60.0 * np.polyfit(t - t.mean(), x, 1)[0]))
        else:
            raise SignalError(f"window_views: unknown statistic {st!r}; use 'mean', 'std' or 'slope'")
    return out


def window_views(rec, views: Mapping[str, Sequence[str]], window_s: float = 60.0, step_s: float | None = None,
                 stats: Sequence[str] = ("mean", "std"), label_kind: str = "phase",
                 min_coverage: float = 0.8) -> Pairs:
    """Two views of one recording as per-window statistics of its streams (chapter 21_cca).

    ``views`` maps a view name to stream names, e.g. ``{"cardiac": ["wrist_hr",
    "wrist_bvp"], "skin": ["wrist_eda", "wrist_temp", "wrist_acc"]}`` (exactly two views).
    Windows of ``window_s`` seconds every ``step_s`` (default: ``window_s``) span the
    time all named streams cover; each stream contributes ``stats`` (``mean``, ``std``,
    ``slope`` per minute) of its samples in the window, multi-channel streams through
    their magnitude. Windows where a stream has less than ``min_coverage`` of its
    expected samples (a dropout, the end of the recording) are dropped, never filled.
    ``meta``: ``group`` (subject), ``t_start``, ``label`` (the ``label_kind`` annotation
    at the window centre, ``""`` if none).
    """
    if len(views) != 2:
        raise SignalError(f"window_views: need exactly two views, got {list(views)}")
    window_s = check_positive(window_s, "window_views: window_s", unit="seconds")
    if step_s is not None:
        step_s = check_positive(step_s, "window_views: step_s", unit="seconds")
    bad = [st for st in stats if st not in ("mean", "std", "slope")]
    if bad or not len(stats):
        raise SignalError(f"window_views: statistics must be some of 'mean', 'std', 'slope'; got {list(stats)}")
    step = float(step_s or window_s)
    names = [n for v in views.values() for n in v]
    for n in names:
        if n not in rec:
            raise SignalError(f"window_views: recording {rec.subject!r} has no stream {n!r}; "
                              f"streams: {sorted(rec.streams)}")
    lo = max(rec[n].start for n in names)
    hi = min(rec[n].end for n in names)
    starts = np.arange(lo, hi - window_s + 1e-9, step)
    fa, fb, rows = [], [], []
    (va, sa), (vb, sb) = views.items()
    for t0 in starts:
        t1 = t0 + window_s
        ok = True
        for n in names:
            s = rec[n]
            if s.rate is not None:
                got = np.isfinite(s.slice(t0, t1).data.reshape(-1, s.n_channels)).all(axis=1).sum()
                ok &= got >= min_coverage * window_s * s.rate
        if not ok:
            continue
        fa.append([v for n in sa for v in _stream_stats(rec, n, t0, t1, stats)])
        fb.append([v for n in sb for v in _stream_stats(rec, n, t0, t1, stats)])
        rows.append({"group": rec.subject, "t_start": float(t0),
                     "label": str(rec.label_at(t0 + window_s / 2, label_kind)[0])})
    if not rows:
        raise SignalError(f"window_views: recording {rec.subject!r} has no complete {window_s} s window "
                          f"covered by all of {names}")
    a_names = [f"{n}_{st}" for n in sa for st in stats]
    b_names = [f"{n}_{st}" for n in sb for st in stats]
    return Pairs(np.array(fa, dtype=float), np.array(fb, dtype=float), pd.DataFrame(rows), a_names, b_names)


def concat_pairs(parts: Sequence[Pairs]) -> Pairs:
    """Stack several :class:`Pairs` (e.g. one per subject) into one."""
    parts = list(parts)
    if not parts:
        raise SignalError("concat_pairs: nothing to concatenate")
    return Pairs(np.vstack([p.a for p in parts]), np.vstack([p.b for p in parts]),
                 pd.concat([p.meta for p in parts], ignore_index=True), list(parts[0].a_names),
                 list(parts[0].b_names))
