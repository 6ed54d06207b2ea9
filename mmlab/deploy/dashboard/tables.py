"""The dashboard's input tables: their schema (the contract), a check, and a synthetic source.

Three tables live in the data folder (``DIR``), written by :func:`write_tables` and read by
:func:`read_tables`:

``risk.csv`` -- one row per patient and window (:data:`RISK_COLUMNS`)
    ``patient_id`` (str), ``ward`` (str; the federated system's ``hospital`` column is
    accepted as the ward), ``t_end_h`` (hours, end of the window), ``risk`` in [0, 1],
    ``trend`` (risk minus the previous window's, NaN first), ``driving_modality`` (the
    present modality with the largest attribution, ``""`` when none), and per modality
    ``m``: ``attention_m`` (attribution, 0 when absent; a row's sum is 1 when any is
    present) and ``present_m`` (bool). Optional ``quality_m`` in [0, 1] (signal quality;
    missing means 1 when present, 0 when absent). This is the table
    ``mmlab.systems.federated.dashboard_table`` writes (issue 12).
``alerts.jsonl`` -- one JSON object per alert (:data:`ALERT_COLUMNS`)
    ``alert_id`` (str, unique), ``patient_id``, ``ward``, ``source`` (``icu`` | ``stress``),
    ``t_s`` (seconds since the start of the record, when raised), ``risk`` (fused
    probability), ``driving_modality``, ``attribution`` (modality -> share, summing to 1),
    ``quality`` (modality -> quality) and ``detail`` (the system's own record: the stress
    system's ``Alert.to_dict()``).
``signals.csv`` -- raw signals for the patient view: ``patient_id``, ``signal``, ``t_s``, ``value``.

:func:`check_tables` (or the per-table :func:`check_risk_table`, :func:`check_alert_table`,
:func:`check_signal_table`) raises :class:`~mmlab.errors.SchemaError` naming the missing or
bad column. :func:`synthetic_tables` builds the three tables from the ``icu_ward`` and
``stress_protocol`` scenarios with a transparent stand-in scorer (not a trained model) until
the systems' outputs are dropped in the folder instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.validate import check_int

#: Columns every risk table has (plus ``attention_<m>`` / ``present_<m>`` per modality).
RISK_COLUMNS = ("patient_id", "ward", "t_end_h", "risk", "trend", "driving_modality")
#: Keys every alert has.
ALERT_COLUMNS = ("alert_id", "patient_id", "ward", "source", "t_s", "risk", "driving_modality",
                 "attribution", "quality", "detail")
#: Columns of the signal table.
SIGNAL_COLUMNS = ("patient_id", "signal", "t_s", "value")


def modalities(risk: pd.DataFrame) -> list[str]:
    """The modalities of a risk table (from its ``attention_<m>`` columns), in column order."""
    return [c[len("attention_"):] for c in risk.columns if c.startswith("attention_")]


def _need(df: pd.DataFrame, cols, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")


def check_risk_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check a risk table against the contract and return it normalised (a ``ward`` column,
    ``quality_<m>`` filled in). Raises :class:`SchemaError` naming the bad column.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"patient_id": ["p1"], "hospital": ["H1"], "t_end_h": [1.0], "risk": [0.3],
    ...                   "trend": [float("nan")], "driving_modality": ["vitals"],
    ...                   "attention_vitals": [1.0], "present_vitals": [True]})
    >>> check_risk_table(t)[["patient_id", "ward", "quality_vitals"]].to_dict("records")
    [{'patient_id': 'p1', 'ward': 'H1', 'quality_vitals': 1.0}]
    >>> check_risk_table(t.drop(columns="risk"))
    Traceback (most recent call last):
    ...
    mmlab.errors.SchemaError: risk table: missing column(s) ['risk']; has ['patient_id', 'ward', 't_end_h', 'trend', 'driving_modality', 'attention_vitals', 'present_vitals']
    """
    if isinstance(df, pd.DataFrame) and "ward" not in df.columns and "hospital" in df.columns:
        df = df.rename(columns={"hospital": "ward"})
    _need(df, RISK_COLUMNS, "risk table")
    mods = modalities(df)
    if not mods:
        raise SchemaError("risk table: no attention_<modality> column (provenance is required)")
    _need(df, [f"present_{m}" for m in mods], "risk table")
    df = df.copy()
    for c in ("patient_id", "ward"):
        if df[c].isna().any() or (df[c].astype(str) == "").any():
            raise SchemaError(f"risk table: column {c!r} has empty values")
        df[c] = df[c].astype(str)
    for c in ("t_end_h", "risk", "trend"):
        try:
            df[c] = df[c].astype(float)
        except (TypeError, ValueError) as e:
            raise SchemaError(f"risk table: column {c!r} is not numeric ({e})") from None
    if df["t_end_h"].isna().any():
        raise SchemaError("risk table: column 't_end_h' has NaN")
    r = df["risk"].to_numpy()
    if not ((r >= 0) & (r <= 1)).all():
        raise SchemaError("risk table: column 'risk' must lie in [0, 1] (NaN not allowed)")
    if df.duplicated(["patient_id", "t_end_h"]).any():
        raise SchemaError("risk table: columns 'patient_id', 't_end_h' have duplicate rows")
    if df.groupby("patient_id")["ward"].nunique().max() > 1:
        raise SchemaError("risk table: column 'ward' differs within a patient")
    for m in mods:
        p = df[f"present_{m}"]
        if p.dtype != bool:
            if not p.isin([0, 1, True, False]).all():
                raise SchemaError(f"risk table: column 'present_{m}' must be boolean")
            df[f"present_{m}"] = p.astype(bool)
        q = f"quality_{m}"
        if q in df.columns:
            qv = df[q].astype(float)
            if ((qv < 0) | (qv > 1)).any():
                raise SchemaError(f"risk table: column {q!r} must lie in [0, 1]")
        else:
            df[q] = df[f"present_{m}"].astype(float)
    a = df[[f"attention_{m}" for m in mods]].to_numpy(float)
    pres = df[[f"present_{m}" for m in mods]].to_numpy(bool)
    if (a < -1e-9).any() or np.abs(a[~pres]).max(initial=0.0) > 1e-6:
        bad = [m for k, m in enumerate(mods) if (np.abs(a[~pres[:, k], k]) > 1e-6).any() or (a[:, k] < -1e-9).any()]
        raise SchemaError(f"risk table: column(s) {[f'attention_{m}' for m in bad]} non-zero where absent or negative")
    if not np.allclose(a.sum(1)[pres.any(1)], 1.0, atol=1e-4):
        raise SchemaError("risk table: attention_<m> columns of a row must sum to 1")
    bad = set(df["driving_modality"].fillna("").astype(str)) - set(mods) - {""}
    if bad:
        raise SchemaError(f"risk table: column 'driving_modality' has unknown modalities {sorted(bad)}")
    df["driving_modality"] = df["driving_modality"].fillna("").astype(str)
    return df.sort_values(["patient_id", "t_end_h"], kind="stable").reset_index(drop=True)


def check_alert_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check an alert table (one row per alert); raises :class:`SchemaError` naming the column."""
    _need(df, ALERT_COLUMNS, "alert table")
    df = df.copy()
    if df["alert_id"].duplicated().any():
        raise SchemaError("alert table: column 'alert_id' has duplicates")
    df["alert_id"] = df["alert_id"].astype(str)
    df["patient_id"] = df["patient_id"].astype(str)
    df["ward"] = df["ward"].astype(str)
    bad = set(df["source"]) - {"icu", "stress"}
    if bad:
        raise SchemaError(f"alert table: column 'source' has unknown values {sorted(bad)}")
    for c in ("attribution", "quality", "detail"):
        if not all(isinstance(v, dict) for v in df[c]):
            raise SchemaError(f"alert table: column {c!r} must hold dicts (modality -> value)")
    for a in df["attribution"]:
        if a and not math.isclose(sum(a.values()), 1.0, abs_tol=1e-3):
            raise SchemaError("alert table: column 'attribution' must sum to 1 per alert")
    try:
        df["t_s"] = df["t_s"].astype(float)
        df["risk"] = df["risk"].astype(float)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"alert table: column 't_s' or 'risk' is not numeric ({e})") from None
    return df.reset_index(drop=True)


def check_signal_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check a signal table (long format: patient_id, signal, t_s, value)."""
    _need(df, SIGNAL_COLUMNS, "signal table")
    df = df.copy()
    df["patient_id"] = df["patient_id"].astype(str)
    try:
        df["t_s"] = df["t_s"].astype(float)
        df["value"] = df["value"].astype(float)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"signal table: column 't_s' or 'value' is not numeric ({e})") from None
    return df


def check_tables(risk: pd.DataFrame, alerts: pd.DataFrame, signals: pd.DataFrame) -> tuple:
    """Check the three tables and that every alert's patient is in the risk table with the
    same ward; returns them normalised."""
    risk, alerts, signals = check_risk_table(risk), check_alert_table(alerts), check_signal_table(signals)
    wards = risk.groupby("patient_id")["ward"].first()
    unknown = sorted(set(alerts["patient_id"]) - set(wards.index))
    if unknown:
        raise SchemaError(f"alert table: column 'patient_id' has patients not in the risk table: {unknown[:5]}")
    if len(alerts) and (wards.loc[alerts["patient_id"]].to_numpy() != alerts["ward"].to_numpy()).any():
        raise SchemaError("alert table: column 'ward' disagrees with the risk table")
    return risk, alerts, signals


def write_tables(folder: str | Path, risk: pd.DataFrame, alerts: pd.DataFrame, signals: pd.DataFrame) -> Path:
    """Check and write the three tables into ``folder`` (created)."""
    risk, alerts, signals = check_tables(risk, alerts, signals)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    risk.to_csv(folder / "risk.csv", index=False)
    signals.to_csv(folder / "signals.csv", index=False)
    with open(folder / "alerts.jsonl", "w") as f:
        for rec in alerts.to_dict("records"):
            f.write(json.dumps(rec) + "\n")
    return folder


def read_tables(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read and check the tables written by :func:`write_tables` (or by the systems)."""
    folder = Path(folder)
    for name in ("risk.csv", "alerts.jsonl", "signals.csv"):
        if not (folder / name).exists():
            raise SchemaError(f"dashboard data folder {folder}: missing {name} "
                              "(write it with `mmlab dashboard --data DIR --demo`)")
    risk = pd.read_csv(folder / "risk.csv", dtype={"patient_id": str, "ward": str, "hospital": str,
                                                     "driving_modality": str})
    with open(folder / "alerts.jsonl") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    alerts = pd.DataFrame(recs, columns=list(ALERT_COLUMNS)) if not recs else pd.DataFrame(recs)
    signals = pd.read_csv(folder / "signals.csv", dtype={"patient_id": str, "signal": str})
    return check_tables(risk, alerts, signals)


# ---- from the systems' outputs ----------------------------------------------------------

def alerts_from_risk(risk: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """ICU alerts from a risk table (e.g. the federated system's ``dashboard_table``): one
    alert each time a patient's risk crosses ``threshold`` upwards (or starts above it),
    with the window's attention weights of the present modalities as the attribution."""
    risk = check_risk_table(risk)
    mods = modalities(risk)
    out = []
    for pid, pat in risk.groupby("patient_id", sort=True):
        prev = None
        for row in pat.itertuples(index=False):
            r = row._asdict()
            if r["risk"] >= threshold and (prev is None or prev < threshold):
                pres = [m for m in mods if r[f"present_{m}"]]
                att = {m: float(r[f"attention_{m}"]) for m in pres}
                tot = sum(att.values()) or 1.0
                out.append({"alert_id": f"{pid}-{r['t_end_h']:g}", "patient_id": pid, "ward": r["ward"],
                            "source": "icu", "t_s": float(r["t_end_h"]) * 3600.0, "risk": float(r["risk"]),
                            "driving_modality": r["driving_modality"],
                            "attribution": {m: round(v / tot, 4) for m, v in att.items()},
                            "quality": {m: round(float(r[f"quality_{m}"]), 3) for m in pres},
                            "detail": {"rule": f"risk crossed {threshold:g}", "t_end_h": float(r["t_end_h"])}})
            prev = r["risk"]
    return check_alert_table(pd.DataFrame(out, columns=list(ALERT_COLUMNS)))


def alerts_from_stress(alerts, patient_id: str, ward: str) -> pd.DataFrame:
    """Rows of the alert table from the stress system's alerts of one person
    (:class:`~mmlab.systems.alerts.Alert` objects or their ``to_dict()``): the attribution
    is each voter's mean probability as a share, the quality the alert's own, ``risk`` the
    mean fused probability (else the largest voter mean); ``detail`` keeps the whole dict."""
    out = []
    for a in alerts:
        d = a if isinstance(a, dict) else a.to_dict()
        for key in ("onset", "raised_at", "voters", "quality"):
            if key not in d:
                raise SchemaError(f"stress alert: missing key {key!r} (expected Alert.to_dict())")
        means = {m: float(v["mean"]) for m, v in d["voters"].items()}
        tot = sum(means.values()) or 1.0
        share = {m: round(v / tot, 4) for m, v in means.items()}
        drive = max(share, key=share.get, default="")
        risk = d.get("fused")
        out.append({"alert_id": f"{patient_id}-{d['raised_at']:.0f}", "patient_id": str(patient_id), "ward": str(ward),
                    "source": "stress", "t_s": float(d["raised_at"]),
                    "risk": float(risk if risk is not None else max(means.values(), default=0.0)),
                    "driving_modality": drive, "attribution": share,
                    "quality": {m: float(q) for m, q in d["quality"].items()}, "detail": dict(d)})
    return check_alert_table(pd.DataFrame(out, columns=list(ALERT_COLUMNS)))


# ---- synthetic source ---------------------------------------------------------------

def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _icu_tables(n: int, seed: int, hours: float | None):
    from mmlab.synth import icu_ward

    knobs = {} if hours is None else {"hours": float(hours)}
    cohort = icu_ward(n_subjects=n, seed=seed, fast=True, **knobs)
    cues = ("letharg", "rigor", "escalat", "confus", "drowsy", "clammy", "mottl", "review")
    risk_rows, signals = [], []
    for rec in cohort.recordings:
        pid, ward = rec.subject, str(rec.meta["hospital"])
        hr, rr, sp = (rec.streams[k] for k in ("hr", "resp_rate", "spo2"))
        t = hr.start + np.arange(hr.n_samples) / hr.rate
        x = {k: rec.streams[k].data[:, 0].astype(float) for k in ("hr", "resp_rate", "spo2")}
        base = {k: np.nanmedian(v[: int(2 * 3600 * hr.rate)]) for k, v in x.items()}
        z = ((x["hr"] - base["hr"]) / 12 + (x["resp_rate"] - base["resp_rate"]) / 4
             + (base["spo2"] - x["spo2"]) / 2) / 3
        for k, v in x.items():
            keep = np.arange(len(v)) % 5 == 0
            signals.append(pd.DataFrame({"patient_id": pid, "signal": k, "t_s": t[keep], "value": v[keep]}))
        ann = rec.annotations
        notes = ann[ann["kind"] == "note"]
        clips = [(s.start, s) for name, s in rec.streams.items() if name.startswith("voice_")]
        rms0 = None
        prev, H = None, int(rec.duration // 3600)
        for h in range(1, H + 1):
            lo, hi = (h - 1) * 3600.0, h * 3600.0
            w = (t >= lo) & (t < hi)
            ok = np.isfinite(z[w])
            q_v = float(ok.mean()) if w.any() else 0.0
            ev_v = float(np.nanmean(z[w])) if ok.any() else 0.0
            nt = notes[(notes["onset"] >= hi - 4 * 3600) & (notes["onset"] < hi)]
            ev_n = float(sum(any(c in str(s).lower() for c in cues) for s in nt["text"])) if len(nt) else 0.0
            cl = [s for st, s in clips if hi - 2 * 3600 <= st < hi]
            ev_a = 0.0
            if cl:
                rms = float(np.sqrt(np.mean(cl[-1].data[:, 0].astype(float) ** 2)) + 1e-9)
                rms0 = rms0 or rms
                ev_a = max(0.0, -math.log(rms / rms0)) * 3
            pres = {"vitals": q_v > 0.2, "notes": len(nt) > 0, "audio": bool(cl)}
            contrib = {"vitals": 1.5 * ev_v, "notes": 1.0 * ev_n, "audio": 0.8 * ev_a}
            score = -2.0 + sum(contrib[m] for m in contrib if pres[m])
            risk = _sig(score)
            mag = {m: (abs(contrib[m]) + 0.05) if pres[m] else 0.0 for m in contrib}
            tot = sum(mag.values())
            att = {m: (v / tot if tot else 0.0) for m, v in mag.items()}
            drive = max((m for m in att if pres[m]), key=att.get, default="")
            row = {"patient_id": pid, "ward": ward, "t_end_h": float(h), "risk": risk,
                   "trend": np.nan if prev is None else risk - prev, "driving_modality": drive}
            row.update({f"attention_{m}": att[m] for m in att})
            row.update({f"present_{m}": pres[m] for m in att})
            row.update({f"quality_{m}": (q_v if m == "vitals" else float(pres[m])) for m in att})
            risk_rows.append(row)
            prev = risk
    return risk_rows, signals


def _stress_tables(n: int, seed: int, ward: str):
    from mmlab.synth import stress_protocol
    from mmlab.systems.alerts import Alert

    cohort = stress_protocol(n_subjects=n, seed=seed, fast=True)
    risk_rows, alert_tables, signals = [], [], []
    for rec in cohort.recordings:
        pid, alerts = rec.subject, []
        eda = {}
        for m, name in (("chest", "chest_eda"), ("wrist", "wrist_eda")):
            s = rec.streams[name]
            v = s.data[:, 0].astype(float)
            step = max(1, int(round(s.rate)))
            k = len(v) // step
            v1 = np.nanmean(v[: k * step].reshape(k, step), axis=1)
            t1 = s.start + (np.arange(k) + 0.5) * step / s.rate
            eda[m] = (t1, v1)
            signals.append(pd.DataFrame({"patient_id": pid, "signal": name, "t_s": t1, "value": v1}))
        ann = rec.annotations
        base = ann[(ann["kind"] == "phase") & (ann["label"] == "baseline")].iloc[0]
        utt = ann[ann["kind"] == "utterance"]
        prev = None
        for w_end in np.arange(10.0, rec.duration + 1e-9, 10.0):
            p, q, pres = {}, {}, {}
            for m, (t1, v1) in eda.items():
                b = v1[(t1 >= base["onset"]) & (t1 < base["onset"] + base["duration"])]
                w = (t1 >= w_end - 10) & (t1 < w_end)
                ok = np.isfinite(v1[w])
                pres[m] = bool(ok.any())
                q[m] = float(ok.mean()) if w.any() else 0.0
                zz = (np.nanmean(v1[w]) - np.nanmean(b)) / (np.nanstd(b) + 0.05) if pres[m] else 0.0
                p[m] = _sig(zz - 1.0)
            talk = utt[(utt["onset"] < w_end) & (utt["onset"] + utt["duration"] > w_end - 10)]
            pres["voice"] = len(talk) > 0
            q["voice"] = float(pres["voice"])
            p["voice"] = 0.5
            fused = float(np.mean([p[m] for m in p if pres[m]])) if any(pres.values()) else 0.0
            mag = {m: (abs(p[m] - 0.5) + 0.01) if pres[m] else 0.0 for m in p}
            tot = sum(mag.values())
            att = {m: (v / tot if tot else 0.0) for m, v in mag.items()}
            drive = max((m for m in att if pres[m]), key=att.get, default="")
            row = {"patient_id": pid, "ward": ward, "t_end_h": w_end / 3600.0, "risk": fused,
                   "trend": np.nan if prev is None else fused - prev, "driving_modality": drive}
            row.update({f"attention_{m}": att[m] for m in att})
            row.update({f"present_{m}": pres[m] for m in att})
            row.update({f"quality_{m}": q[m] for m in att})
            risk_rows.append(row)
            if fused >= 0.6 and (prev is None or prev < 0.6):
                voters = {m: {"max": round(p[m], 4), "mean": round(p[m], 4), "n": 1} for m in p if pres[m]}
                a = Alert(onset=w_end - 10, raised_at=w_end, end=None, n_present=sum(pres.values()), k=2,
                          voters=voters, quality={m: q[m] for m in p if pres[m]}, fused=fused, fused_max=fused)
                alerts.append(a)
            prev = fused
        alert_tables.append(alerts_from_stress(alerts, pid, ward))
    return risk_rows, [r for t in alert_tables for r in t.to_dict("records")], signals


def synthetic_tables(n_icu: int = 12, n_stress: int = 2, seed: int = 0, hours: float | None = None,
                     stress_ward: str = "S1") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The dashboard's (risk, alerts, signals) tables from the synthetic scenarios.

    ``icu_ward`` (``n_icu`` patients, fast mode; ``hours`` long, default 8) gives the ICU
    wards (ward = hospital, ``H1``...), hourly risk with modalities vitals / notes / audio;
    ``stress_protocol`` (``n_stress`` subjects) gives the ward ``stress_ward`` with 10-s
    windows over chest / wrist / voice and alerts whose ``detail`` is a stress-system
    :class:`~mmlab.systems.alerts.Alert` dict. The scorer is a transparent stand-in
    (z-scores of the vitals and EDA against the person's own start, cue words in notes,
    a quieter voice), *not* a trained model: the point is the tables' schema.
    """
    n_icu = check_int(n_icu, "n_icu", low=1)
    n_stress = check_int(n_stress, "n_stress", low=0)
    r1, s1 = _icu_tables(n_icu, seed, hours)
    a1 = alerts_from_risk(pd.DataFrame(r1), threshold=0.5).to_dict("records")
    r2, a2, s2 = _stress_tables(n_stress, seed, stress_ward) if n_stress else ([], [], [])
    risk = pd.DataFrame(r1 + r2)
    mods = [c[len("attention_"):] for c in risk.columns if c.startswith("attention_")]
    for m in mods:
        risk[f"attention_{m}"] = risk[f"attention_{m}"].fillna(0.0)
        risk[f"present_{m}"] = risk[f"present_{m}"].fillna(False).astype(bool)
        risk[f"quality_{m}"] = risk[f"quality_{m}"].fillna(0.0)
    cols = list(RISK_COLUMNS) + [f"{k}_{m}" for k in ("attention", "present", "quality") for m in mods]
    alerts = pd.DataFrame(a1 + a2, columns=list(ALERT_COLUMNS))
    signals = pd.concat(s1 + s2, ignore_index=True)
    return check_tables(risk[cols], alerts, signals)
