"""Consensus alerting: k of the n modalities present must agree, for long enough, and not too often.

A wearable that cries wolf is switched off. The alerting rule here therefore asks several
independent sensors (modalities) to agree before it speaks, and it is one state machine,
:class:`ConsensusAlerter`, fed one time point at a time. The batch path
(:func:`consensus_alerts`) runs the very same machine over a table, so a stream fed the same
rows, in any chunking, gives identical alerts by construction.

The rule, step by step, at every update ``t``:

1. **Presence.** A modality is *present* when it has a finite probability, is not flagged
   absent in ``present`` and (if ``min_quality`` is set) its quality is at least
   ``min_quality``. An absent modality never votes and does not count as a "no": it shrinks
   ``n_present``. Its vote is reset, so when it comes back it must cross ``on`` again
   (no burst of stale votes after a drop-out).
2. **Hysteresis, per modality.** A present modality that is not voting starts voting when
   its probability is ``>= on``; a voting modality stops when its probability is ``< off``.
   A probability oscillating between ``off`` and ``on`` does not toggle the vote.
3. **Consensus** holds while ``votes >= k``: k of the ``n_present`` modalities present.
   With fewer than ``k`` modalities present no alert can be raised (a single modality must
   not be able to defeat a consensus of two); the alert records ``n_present``. The
   *onset* is the time of the first update at which consensus holds.
4. **Minimum duration.** An alert is raised at the first update ``t`` with
   ``t - onset >= min_duration_s`` while consensus still holds (``raised_at`` is that
   update's time: with updates every ``dt`` seconds it is ``onset + min_duration_s``
   rounded up to the update grid).
5. **End.** An open alert ends at the first update at which consensus no longer holds
   (``end_reason="consensus_dropped"``), or at :meth:`ConsensusAlerter.finish`
   (``end_reason="finished"``).
6. **Gaps** (only with ``max_gap_s``). When two updates are more than ``max_gap_s`` apart,
   nothing is known in between: an open alert ends at the earlier update
   (``end_reason="gap"``), the consensus period and every vote are reset.
7. **Refractory period.** After an alert ends at ``end``, no new alert is raised before
   ``end + refractory_s``. A consensus that begins inside the refractory period keeps its
   onset; its alert is raised at the first update that satisfies both the minimum duration
   and the refractory period.

Times are seconds on any clock, non-decreasing from one update to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError, SignalError
from mmlab.validate import check_int, check_number

__all__ = ["Alert", "ConsensusAlerter", "consensus_alerts"]


@dataclass
class Alert:
    """One consensus alert with its provenance (what :class:`ConsensusAlerter` emits).

    Attributes
    ----------
    onset : float
        Time at which consensus began (seconds).
    raised_at : float
        Time at which the alert was raised (consensus held for ``min_duration_s``).
    end : float or None
        Time at which it ended; ``None`` while the alert is open.
    n_present : int
        Number of modalities present when the alert was raised.
    k : int
        The consensus threshold in force.
    voters : dict
        ``modality -> {"max": p, "mean": p, "n": count}``: the probabilities of every
        modality over the updates (from ``onset`` to ``end``) at which it voted.
    quality : dict
        ``modality -> mean quality`` of each voter over the updates at which it voted (only
        for modalities whose quality was passed to ``update``).
    fused : float or None
        Mean fused probability from onset to end (``None`` when none was passed).
    fused_max : float or None
        Maximum fused probability from onset to end.
    end_reason : str or None
        ``"consensus_dropped"``, ``"gap"`` or ``"finished"``; ``None`` while open.

    ``to_dict`` gives the JSON-lines schema (the fields above plus ``duration``);
    ``Alert.from_dict`` reads it back.
    """

    onset: float
    raised_at: float
    end: float | None = None
    n_present: int = 0
    k: int = 2
    voters: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    fused: float | None = None
    fused_max: float | None = None
    end_reason: str | None = None

    @property
    def duration(self) -> float | None:
        """``end - onset`` in seconds once the alert has ended, ``None`` while open."""
        return None if self.end is None else self.end - self.onset

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Alert":
        """The alert that :meth:`to_dict` wrote (``duration`` is recomputed, not read)."""
        known = {"onset", "raised_at", "end", "n_present", "k", "voters", "quality", "fused",
                 "fused_max", "end_reason", "duration"}
        if not isinstance(d, Mapping) or not {"onset", "raised_at"} <= set(d):
            raise SchemaError(f"an alert record needs at least 'onset' and 'raised_at', got {d!r}")
        extra = set(d) - known
        if extra:
            raise SchemaError(f"an alert record has unknown fields {sorted(extra)}")
        return cls(**{k: v for k, v in d.items() if k != "duration"})

    @property
    def is_open(self) -> bool:
        return self.end is None

    def to_dict(self) -> dict:
        """A JSON-ready dict (one JSON line per alert event); floats are plain Python floats."""
        return {
            "onset": float(self.onset), "raised_at": float(self.raised_at),
            "end": None if self.end is None else float(self.end),
            "duration": None if self.duration is None else float(self.duration),
            "n_present": int(self.n_present), "k": int(self.k),
            "voters": {m: {"max": float(v["max"]), "mean": float(v["mean"]), "n": int(v["n"])}
                       for m, v in self.voters.items()},
            "quality": {m: float(q) for m, q in self.quality.items()},
            "fused": None if self.fused is None else float(self.fused),
            "fused_max": None if self.fused_max is None else float(self.fused_max),
            "end_reason": self.end_reason,
        }


class _Episode:
    """Running statistics of one consensus period (onset to end)."""

    def __init__(self, onset: float):
        self.onset = onset
        self.p_max: dict[str, float] = {}
        self.p_sum: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self.q_sum: dict[str, float] = {}
        self.q_n: dict[str, int] = {}
        self.f_sum = 0.0
        self.f_n = 0
        self.f_max = -math.inf

    def add(self, voting: Sequence[str], proba: Mapping[str, float],
            quality: Mapping[str, float], fused: float | None) -> None:
        for m in voting:
            p = proba[m]
            self.p_max[m] = max(self.p_max.get(m, -math.inf), p)
            self.p_sum[m] = self.p_sum.get(m, 0.0) + p
            self.n[m] = self.n.get(m, 0) + 1
            q = quality.get(m)
            if q is not None and math.isfinite(q):
                self.q_sum[m] = self.q_sum.get(m, 0.0) + q
                self.q_n[m] = self.q_n.get(m, 0) + 1
        if fused is not None:
            self.f_sum += fused
            self.f_n += 1
            self.f_max = max(self.f_max, fused)

    def fill(self, alert: Alert) -> None:
        alert.voters = {m: {"max": self.p_max[m], "mean": self.p_sum[m] / self.n[m], "n": self.n[m]}
                        for m in sorted(self.n)}
        alert.quality = {m: self.q_sum[m] / self.q_n[m] for m in sorted(self.q_n)}
        alert.fused = self.f_sum / self.f_n if self.f_n else None
        alert.fused_max = self.f_max if self.f_n else None


def _finite_or_none(value: Any, what: str) -> float | None:
    """``None`` for a missing value (None/NaN), a float otherwise; inf is an error."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SignalError(f"{what} must be a number, got {value!r}") from None
    if math.isnan(v):
        return None
    if not math.isfinite(v):
        raise SignalError(f"{what} must be finite or NaN (absent), got {value!r}")
    return v


class ConsensusAlerter:
    """k-of-n consensus alerting with hysteresis, minimum duration and refractory period.

    One state machine for the batch and the streaming path: feed it one time point at a
    time with :meth:`update` (a window, or a chunk of a stream), close it with
    :meth:`finish`. The rule is described in full in :mod:`mmlab.systems.alerts`.

    Parameters
    ----------
    k : int, default 2
        Number of modalities that must vote "stress" together. Consensus holds while
        ``votes >= k``; with fewer than ``k`` modalities present no alert can be raised.
    on : float, default 0.7
        A modality starts voting when its probability is ``>= on``.
    off : float, default 0.5
        A voting modality stops when its probability is ``< off`` (``0 <= off <= on <= 1``).
    min_duration_s : float, default 30.0
        Consensus must hold this long (seconds, from its onset) before an alert is raised.
    refractory_s : float, default 300.0
        No new alert is raised within this many seconds after an alert ends.
    min_quality : float or None, default None
        When set, a modality whose quality (passed to :meth:`update`) is below it, or NaN,
        counts as absent. ``None``: quality is recorded, never used to decide.
    max_gap_s : float or None, default None
        When set, two updates further apart than this break the consensus (an open alert
        ends at the earlier update, ``end_reason="gap"``) and reset every vote.

    Attributes
    ----------
    alerts : list of Alert
        Every alert raised so far, in order (the open one last).
    voting : dict
        ``modality -> bool``, the current hysteresis state of each modality seen.

    Examples
    --------
    Two of three modalities agree from t = 10 s; the third is absent from t = 20 s:

    >>> al = ConsensusAlerter(k=2, on=0.7, off=0.5, min_duration_s=20, refractory_s=60)
    >>> out = []
    >>> for t in range(0, 80, 10):
    ...     p = {"ecg": 0.9, "eda": 0.8, "resp": 0.2} if 10 <= t < 50 else {"ecg": 0.1, "eda": 0.2, "resp": 0.2}
    ...     present = {"resp": t < 20}
    ...     out += [(t, a.end) for a in al.update(t, p, present)]
    >>> out  # (update time, end) of each alert event: raised at 30 s, ended at 50 s
    [(30, None), (50, 50.0)]
    >>> a = al.alerts[0]
    >>> a.onset, a.raised_at, a.duration, a.n_present, sorted(a.voters)
    (10.0, 30.0, 40.0, 2, ['ecg', 'eda'])
    """

    def __init__(self, k: int = 2, on: float = 0.7, off: float = 0.5, min_duration_s: float = 30.0,
                 refractory_s: float = 300.0, min_quality: float | None = None,
                 max_gap_s: float | None = None):
        self.k = check_int(k, "k (modalities that must agree)", low=1)
        self.on = check_number(on, "on (threshold to start voting)", low=0.0, high=1.0)
        self.off = check_number(off, "off (threshold to stop voting)", low=0.0, high=1.0)
        if self.off > self.on:
            raise SignalError(f"off must be <= on (hysteresis: a vote starts at on and stops "
                              f"below off), got on={on!r}, off={off!r}")
        self.min_duration_s = check_number(min_duration_s, "min_duration_s", low=0.0, unit="seconds")
        self.refractory_s = check_number(refractory_s, "refractory_s", low=0.0, unit="seconds")
        self.min_quality = (None if min_quality is None
                            else check_number(min_quality, "min_quality", low=0.0))
        self.max_gap_s = (None if max_gap_s is None
                          else check_number(max_gap_s, "max_gap_s", low=0.0, unit="seconds"))
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything: votes, consensus, alerts, the last time seen."""
        self.voting: dict[str, bool] = {}
        self.alerts: list[Alert] = []
        self._t: float | None = None
        self._episode: _Episode | None = None
        self._open: Alert | None = None
        self._last_end: float | None = None

    def get_params(self) -> dict:
        return {"k": self.k, "on": self.on, "off": self.off, "min_duration_s": self.min_duration_s,
                "refractory_s": self.refractory_s, "min_quality": self.min_quality,
                "max_gap_s": self.max_gap_s}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ConsensusAlerter({args})"

    def _check_time(self, t: Any, what: str) -> float:
        t = check_number(t, what, unit="seconds")
        if self._t is not None and t < self._t:
            raise SignalError(f"{what} must not go back in time: got {t:g} s after {self._t:g} s "
                              "(updates must have non-decreasing times)")
        return t

    # ------------------------------------------------------------------ one step
    def update(self, t: float, proba: Mapping[str, float], present: Mapping[str, bool] | None = None,
               *, quality: Mapping[str, float] | None = None, fused: float | None = None) -> list[Alert]:
        """Consume one time point; return the alerts raised or ended at it.

        Parameters
        ----------
        t : float
            Time of this window or chunk (seconds); not earlier than the previous update.
        proba : mapping
            ``modality -> probability of stress`` in [0, 1]; NaN or None means absent.
        present : mapping, optional
            ``modality -> bool``; False marks a modality absent whatever its probability. A
            modality not named here is present when its probability is finite.
        quality : mapping, optional
            ``modality -> signal quality`` (any scale); recorded in the alert's provenance,
            and used for presence when ``min_quality`` is set.
        fused : float, optional
            The fused probability at ``t``; recorded in the alert's provenance.

        Returns
        -------
        list of Alert
            The alerts whose state changed at ``t``: a newly raised alert (``end is None``)
            and/or an alert that ended (at ``t``, or at the previous update after a gap).
            The objects are the ones in :attr:`alerts`; an open alert is updated in place
            until it ends. A bad input raises before any state changes.
        """
        t = self._check_time(t, "update time t")
        if not isinstance(proba, Mapping):
            raise SchemaError(f"proba must be a mapping modality -> probability, got {type(proba).__name__}")
        present = {} if present is None else present
        quality = {} if quality is None else quality
        if not isinstance(present, Mapping) or not isinstance(quality, Mapping):
            raise SchemaError("present and quality must be mappings modality -> value")
        fused_v = _finite_or_none(fused, "fused probability")
        if fused_v is not None and not 0.0 <= fused_v <= 1.0:
            raise SignalError(f"fused probability must be in [0, 1], got {fused!r}")

        # read and check everything first, so a bad input leaves the state untouched
        seen: dict[str, tuple[float | None, float | None]] = {}
        for m in sorted(set(proba) | set(self.voting), key=str):
            p = _finite_or_none(proba.get(m), f"probability of modality {m!r}")
            if p is not None and not 0.0 <= p <= 1.0:
                raise SignalError(f"probability of modality {m!r} must be in [0, 1], got {proba[m]!r} at t={t:g}")
            seen[m] = (p, _finite_or_none(quality.get(m), f"quality of modality {m!r}"))

        changed: list[Alert] = []
        if self.max_gap_s is not None and self._t is not None and t - self._t > self.max_gap_s:
            if self._open is not None:
                changed.append(self._close(self._t, "gap"))
            self._episode = None
            self.voting = {m: False for m in self.voting}

        probs: dict[str, float] = {}
        quals: dict[str, float] = {}
        for m, (p, q) in seen.items():
            if q is not None:
                quals[m] = q
            ok = p is not None and bool(present.get(m, True))
            if ok and self.min_quality is not None:
                ok = q is not None and q >= self.min_quality
            if not ok:
                self.voting[m] = False            # absent: no vote, and no stale vote on return
                continue
            probs[m] = p
            was = self.voting.get(m, False)
            self.voting[m] = p >= self.off if was else p >= self.on
        voters = sorted(m for m in probs if self.voting[m])
        n_present = len(probs)
        consensus = len(voters) >= self.k
        self._t = t

        if not consensus:
            if self._open is not None:
                changed.append(self._close(t, "consensus_dropped"))
            self._episode = None
            return changed
        if self._episode is None:
            self._episode = _Episode(t)
        self._episode.add(voters, probs, quals, fused_v)
        if self._open is not None:
            self._episode.fill(self._open)
        elif (t - self._episode.onset >= self.min_duration_s
              and (self._last_end is None or t >= self._last_end + self.refractory_s)):
            alert = Alert(onset=self._episode.onset, raised_at=t, n_present=n_present, k=self.k)
            self._episode.fill(alert)
            self._open = alert
            self.alerts.append(alert)
            changed.append(alert)
        return changed

    def _close(self, t: float, reason: str) -> Alert:
        alert = self._open
        alert.end = t
        alert.end_reason = reason
        self._open = None
        self._last_end = t
        return alert

    def finish(self, t_end: float | None = None) -> list[Alert]:
        """End of the data: close an open alert at ``t_end`` (default: the last update time).

        Parameters
        ----------
        t_end : float, optional
            Time at which the data ends; not earlier than the last update.

        Returns
        -------
        list of Alert
            The alert closed (``end_reason="finished"``), or an empty list.
        """
        if t_end is None:
            if self._t is None:
                return []
            t_end = self._t
        t_end = self._check_time(t_end, "finish time t_end")
        self._t = t_end
        self._episode = None
        self.voting = {m: False for m in self.voting}
        return [self._close(t_end, "finished")] if self._open is not None else []


# ------------------------------------------------------------------ the batch path
def _table(df: Any, what: str, n: int) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{what} must be a pandas DataFrame with one column per modality, "
                          f"got {type(df).__name__}")
    if len(df) != n:
        raise SchemaError(f"{what} has {len(df)} rows but times has {n}")
    return df


def _modality_table(table, what: str, n: int, known: list[str], dtype):
    """``(columns, values)`` of an optional per-modality table of ``n`` rows whose columns
    must be modalities of ``proba`` (``([], None)`` when ``table`` is None)."""
    if table is None:
        return [], None
    frame = _table(table, what, n)
    cols = [str(c) for c in frame.columns]
    unknown = set(cols) - set(known)
    if unknown:
        raise SchemaError(f"{what} names modalities that proba lacks: {sorted(unknown)}")
    return cols, frame.to_numpy(dtype=dtype)


def consensus_alerts(times: Any, proba: pd.DataFrame, present: pd.DataFrame | None = None, *,
                     quality: pd.DataFrame | None = None, fused: Any = None, t_end: float | None = None,
                     **params: Any) -> list[Alert]:
    """Consensus alerts over a table of per-window probabilities (the batch path).

    Runs one :class:`ConsensusAlerter` over the rows in order and closes it at ``t_end``;
    feeding the same rows to :meth:`ConsensusAlerter.update` one by one gives the same
    alerts.

    Parameters
    ----------
    times : array-like of float, shape (n,)
        Window times in seconds, non-decreasing.
    proba : DataFrame, shape (n, n_modalities)
        One column per modality: its probability of stress; NaN means absent.
    present : DataFrame of bool, optional
        Presence flags by modality (a column not given: present wherever proba is finite).
    quality : DataFrame, optional
        Per-modality signal quality, recorded in the alerts (and used with ``min_quality``).
    fused : array-like of float, shape (n,), optional
        Fused probability per window, recorded in the alerts.
    t_end : float, optional
        When the data ends; an alert still open is closed there (default: the last time).
    **params
        Arguments of :class:`ConsensusAlerter` (``k``, ``on``, ``off``, ``min_duration_s``,
        ``refractory_s``, ``min_quality``, ``max_gap_s``).

    Returns
    -------
    list of Alert
        Every alert, closed, in the order raised.

    Examples
    --------
    >>> t = np.arange(0, 100, 5.0)
    >>> hot = (t >= 20) & (t < 60)
    >>> P = pd.DataFrame({"ecg": np.where(hot, 0.9, 0.1), "eda": np.where(hot, 0.8, 0.2)})
    >>> [(a.onset, a.raised_at, a.end) for a in consensus_alerts(t, P, min_duration_s=10)]
    [(20.0, 30.0, 60.0)]
    >>> consensus_alerts(t, P, k=3)  # three must agree, only two are present
    []
    """
    alerter = ConsensusAlerter(**params)
    times = np.asarray(times, dtype=float).ravel() if not isinstance(times, pd.Series) \
        else times.to_numpy(dtype=float)
    n = len(times)
    proba = _table(proba, "proba", n)
    cols = [str(c) for c in proba.columns]
    if len(set(cols)) != len(cols):
        raise SchemaError(f"proba has duplicate modality columns: {cols}")
    P = proba.to_numpy(dtype=float)
    pres_cols, B = _modality_table(present, "present", n, cols, bool)
    qual_cols, Q = _modality_table(quality, "quality", n, cols, float)
    F = None
    if fused is not None:
        F = np.asarray(fused, dtype=float).ravel()
        if len(F) != n:
            raise SchemaError(f"fused has {len(F)} values but times has {n}")
    for i in range(n):
        alerter.update(times[i], dict(zip(cols, P[i].tolist())),
                       dict(zip(pres_cols, B[i].tolist())) if pres_cols else None,
                       quality=dict(zip(qual_cols, Q[i].tolist())) if qual_cols else None,
                       fused=None if F is None else F[i])
    alerter.finish(t_end)
    return list(alerter.alerts)
