"""The Panel application (one document per browser session); run by ``panel serve``.

Every session starts from the signed-in user (the signed ``user`` cookie set by
:mod:`~mmlab.deploy.dashboard.auth`) and keeps only the rows of that user's wards before
anything is built: a patient of another ward is never sent to the browser, whatever the
URL says (``?patient=ID`` opens a patient view only when the patient is in the user's
wards).
"""

from __future__ import annotations

import html
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmlab.deploy.dashboard.store import AckStore, Users, allowed, cookie_secret
from mmlab.deploy.dashboard.tables import modalities, read_tables

_BARS = "▁▂▃▄▅▆▇█"
CONTEXT_S = {"icu": 2 * 3600.0, "stress": 60.0}


def sparkline(values) -> str:
    """Risks in [0, 1] as a text sparkline (one block character per value).

    >>> sparkline([0.0, 0.3, 0.6, 1.0])
    '▁▃▅█'
    """
    v = np.clip(np.nan_to_num(np.asarray(values, float)), 0, 1)
    return "".join(_BARS[min(int(x * len(_BARS)), len(_BARS) - 1)] for x in v)


def flags(pat: pd.DataFrame, mods: list[str]) -> list[str]:
    """Modalities the patient had but lacks (``missing``) or has with quality < 0.5
    (``poor``) in the latest window."""
    last, out = pat.iloc[-1], []
    for m in mods:
        if not pat[f"present_{m}"].any():
            continue
        if not last[f"present_{m}"]:
            out.append(f"{m} missing")
        elif last[f"quality_{m}"] < 0.5:
            out.append(f"{m} poor")
    return out


def ward_rows(risk: pd.DataFrame) -> pd.DataFrame:
    """One row per patient, highest current risk first: ward, risk, trend, sparkline, flags."""
    mods = modalities(risk)
    rows = []
    for pid, pat in risk.groupby("patient_id", sort=False):
        last = pat.iloc[-1]
        rows.append({"patient_id": pid, "ward": last["ward"], "risk": float(last["risk"]),
                     "trend": float(last["trend"]), "spark": sparkline(pat["risk"].to_numpy()[-24:]),
                     "flags": flags(pat, mods)})
    return pd.DataFrame(rows).sort_values(["risk", "patient_id"], ascending=[False, True], kind="stable")


def visible(tables, user: dict | None):
    """The tables restricted to the user's wards (empty for no user): the server-side filter."""
    risk, alerts, signals = tables
    if not user:
        return risk.iloc[:0], alerts.iloc[:0], signals.iloc[:0]
    keep = risk["ward"].map(lambda w: allowed(user, w))
    risk = risk[keep]
    pids = set(risk["patient_id"])
    return risk, alerts[alerts["patient_id"].isin(pids)], signals[signals["patient_id"].isin(pids)]


def _load(folder: Path):
    import panel as pn

    key = ("mmlab-dashboard", str(folder), *[(folder / n).stat().st_mtime for n in ("risk.csv", "alerts.jsonl", "signals.csv")])
    if key not in pn.state.cache:
        pn.state.cache[key] = read_tables(folder)
    return pn.state.cache[key]


def _session_user(users: Users) -> dict | None:
    import panel as pn
    from tornado.web import decode_signed_value

    req = pn.state.curdoc.session_context.request if pn.state.curdoc and pn.state.curdoc.session_context else None
    raw = (req.cookies or {}).get("user") if req is not None else None
    if not raw:
        return None
    name = decode_signed_value(cookie_secret(), "user", raw, max_age_days=1)
    return users.get(name.decode()) if name else None


def _fmt_trend(t: float) -> str:
    if not math.isfinite(t):
        return "–"
    return ("↑" if t > 0.02 else "↓" if t < -0.02 else "→") + f" {t:+.2f}"


def build(folder: str | Path, user: dict | None, patient: str | None = None):
    """The dashboard for ``user`` over the tables in ``folder`` (a Panel layout)."""
    import panel as pn
    from bokeh.plotting import figure

    folder = Path(folder)
    store = AckStore(folder)
    if not user:
        return pn.pane.Markdown("Not signed in. [Sign in](/login)")
    risk, alerts, signals = visible(_load(folder), user)
    mods = modalities(risk)
    header = pn.pane.HTML(
        f"<b>mmlab dashboard</b> — signed in as <b id='who'>{html.escape(user['name'])}</b> "
        f"({html.escape(user['role'])}; wards {html.escape(', '.join(user['wards']))}) · <a href='/logout'>sign out</a>")
    main = pn.Column(sizing_mode="stretch_width")

    def acked_text(aid: str) -> str:
        acks = store.acks([aid])
        if not acks:
            return f"Alert {aid}: not acknowledged"
        return "; ".join(f"Alert {aid}: acknowledged by {html.escape(a['user'])}: {html.escape(a['note'])}" for a in acks)

    def ward_view(event=None):
        rows = ward_rows(risk) if len(risk) else pd.DataFrame(columns=["patient_id", "ward", "risk", "trend", "spark", "flags"])
        open_alerts = set(alerts["alert_id"]) - {a["alert_id"] for a in store.acks(alerts["alert_id"])}
        per = alerts[alerts["alert_id"].isin(open_alerts)].groupby("patient_id").size()
        table = pd.DataFrame({
            "patient": rows["patient_id"].to_numpy(), "ward": rows["ward"].to_numpy(),
            "risk": rows["risk"].round(2).to_numpy(), "trend": [_fmt_trend(t) for t in rows["trend"]],
            "last 24 windows": rows["spark"].to_numpy(),
            "flags": ["⚠ " + ", ".join(f) if f else "" for f in rows["flags"]],
            "open alerts": [int(per.get(p, 0)) for p in rows["patient_id"]]})
        tab = pn.widgets.Tabulator(table, show_index=False, disabled=True, selectable=False, height=min(600, 40 + 32 * len(table)),
                                   sizing_mode="stretch_width")
        tab.on_click(lambda e: patient_view(str(table["patient"].iloc[e.row])))
        items = [pn.pane.HTML(f"<h3>Ward view</h3>{len(rows)} patients, highest current risk first; "
                              "click a patient to open it"), tab]
        if user["role"] == "supervisor":  # the log of acknowledgements in the supervisor's wards
            pat_of = dict(zip(alerts["alert_id"], alerts["patient_id"]))
            log = [a for a in store.acks(alerts["alert_id"])][-50:][::-1]
            items.append(pn.pane.HTML("<h4>Recent acknowledgements</h4>" + ("<br>".join(
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(a['at']))} · {html.escape(a['user'])} · "
                f"alert {html.escape(a['alert_id'])} ({html.escape(pat_of[a['alert_id']])}): {html.escape(a['note'])}"
                for a in log) or "none yet")))
        main.objects = items

    def patient_view(pid: str):
        pat = risk[risk["patient_id"] == pid]
        back = pn.widgets.Button(label="Back to ward", width=130)
        back.on_click(ward_view)
        if pat.empty:  # another ward's (or an unknown) patient: say nothing about it
            main.objects = [back, pn.pane.HTML("<b>No such patient in your wards.</b>")]
            return
        ward = pat["ward"].iloc[0]
        last = pat.iloc[-1]
        qual = ", ".join(f"{m} {last[f'quality_{m}']:.2f}" + ("" if last[f"present_{m}"] else " (absent)")
                         for m in mods if pat[f"present_{m}"].any())
        fig = figure(height=220, sizing_mode="stretch_width", title=f"{pid}: risk over time",
                     x_axis_label="hours", y_range=(0, 1), toolbar_location=None)
        fig.line(pat["t_end_h"], pat["risk"], line_width=2)
        items = [back, pn.pane.HTML(f"<h3 id='patient'>Patient {html.escape(pid)} (ward {html.escape(ward)})</h3>"
                                    f"current risk {last['risk']:.2f} {_fmt_trend(last['trend'])}; "
                                    f"signal quality now: {html.escape(qual)}"), pn.pane.Bokeh(fig)]
        sig = signals[signals["patient_id"] == pid]
        for a in alerts[alerts["patient_id"] == pid].itertuples():
            share = " · ".join(f"{m} {v:.0%}" for m, v in sorted(a.attribution.items(), key=lambda kv: -kv[1]))
            q = ", ".join(f"{m} {v:.2f}" for m, v in a.quality.items())
            t_txt = f"{a.t_s / 3600:.1f} h" if a.source == "icu" else f"{a.t_s:.0f} s"
            items.append(pn.pane.HTML(
                f"<h4>Alert {html.escape(a.alert_id)} at {t_txt} ({a.source}), risk {a.risk:.2f}</h4>"
                f"<span class='provenance'>driven by <b>{html.escape(a.driving_modality)}</b> — "
                f"attribution {html.escape(share)}; quality {html.escape(q)}</span>"))
            ctx = CONTEXT_S[a.source]
            near = sig[(sig["t_s"] >= a.t_s - ctx) & (sig["t_s"] <= a.t_s + ctx / 4)]
            if len(near):
                f2 = figure(height=160, sizing_mode="stretch_width", title="signals around the alert (z-scored)",
                            x_axis_label="seconds", toolbar_location=None)
                for k, (name, s) in enumerate(near.groupby("signal")):
                    v = s["value"].to_numpy(float)
                    v = (v - np.nanmean(v)) / (np.nanstd(v) + 1e-9)
                    f2.line(s["t_s"], v, legend_label=name, color=("#1f77b4", "#d62728", "#2ca02c", "#9467bd")[k % 4])
                f2.line([a.t_s, a.t_s], [-3, 3], color="black", line_dash="dashed")
                items.append(pn.pane.Bokeh(f2))
            status = pn.pane.HTML(acked_text(a.alert_id))
            note = pn.widgets.TextInput(placeholder="note", width=300)
            btn = pn.widgets.Button(label=f"Acknowledge {a.alert_id}", color="warning", width=200)

            def ack(event, aid=a.alert_id, w=a.ward, note=note, status=status):
                if not allowed(user, w):  # never reached: the alert was filtered out already
                    return
                store.acknowledge(aid, user["name"], note.value)
                status.object = acked_text(aid)

            btn.on_click(ack)
            items += [pn.Row(note, btn), status]
        main.objects = items

    if patient:
        patient_view(str(patient))
    else:
        ward_view()
    return pn.Column(header, main, sizing_mode="stretch_width")


def serve_session() -> None:
    """Entry point for one ``panel serve`` session."""
    import panel as pn

    folder = Path(os.environ["MMLAB_DASHBOARD_DATA"])
    user = _session_user(Users(folder / "users.json"))
    args = pn.state.session_args or {}
    patient = (args.get("patient") or [b""])[0].decode("utf-8", "replace") or None
    build(folder, user, patient).servable(title="mmlab dashboard")


if __name__.startswith("bokeh_app"):
    serve_session()
