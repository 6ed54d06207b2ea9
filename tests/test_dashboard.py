"""The dashboard (issue 13): schema, store and auth without a browser; then the served app
in headless Chromium (Debian's /usr/bin/chromium through Playwright; skipped when absent).

The browser tests share one server and one browser per module. Screenshots of a failing
browser test go to test-output/dashboard/.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import http.cookiejar
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlab.deploy.dashboard import (AckStore, Users, allowed, check_alert_table, check_risk_table, check_tables,
                                    hash_password, read_tables, synthetic_tables, verify_password, write_tables)
from mmlab.deploy.dashboard.app import flags, sparkline, visible, ward_rows
from mmlab.errors import MMLabError, SchemaError
from mmlab.systems.federated import DASHBOARD_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
PASSWORDS = {"alice": "alice-pw-7", "bob": "bob-pw-7", "sup": "sup-pw-7"}


def _risk_rows(pid, ward, risks, present_notes=None, quality_vitals=None):
    rows, prev = [], None
    for h, r in enumerate(risks, start=1):
        pn_ = True if present_notes is None else present_notes[h - 1]
        qv = 1.0 if quality_vitals is None else quality_vitals[h - 1]
        av = 0.7 if pn_ else 1.0
        rows.append({"patient_id": pid, "ward": ward, "t_end_h": float(h), "risk": r,
                     "trend": np.nan if prev is None else r - prev, "driving_modality": "vitals",
                     "attention_vitals": av, "attention_notes": 1 - av, "present_vitals": True,
                     "present_notes": pn_, "quality_vitals": qv, "quality_notes": float(pn_)})
        prev = r
    return rows


def planted_tables():
    """Ward A: A1 (risk rising, one alert at 3 h, driven by vitals 80 %), A2 (low risk, notes
    missing in the latest window); ward B: B1 (alert at 2 h, driven by notes)."""
    risk = pd.DataFrame(_risk_rows("A1", "A", [0.1, 0.3, 0.8, 0.9])
                        + _risk_rows("A2", "A", [0.2, 0.2, 0.15, 0.1], present_notes=[1, 1, 1, 0],
                                     quality_vitals=[1, 1, 1, 0.3])
                        + _risk_rows("B1", "B", [0.4, 0.95, 0.7, 0.6]))
    alerts = pd.DataFrame([
        {"alert_id": "A1-3", "patient_id": "A1", "ward": "A", "source": "icu", "t_s": 3 * 3600.0, "risk": 0.8,
         "driving_modality": "vitals", "attribution": {"vitals": 0.8, "notes": 0.2},
         "quality": {"vitals": 0.97, "notes": 1.0}, "detail": {}},
        {"alert_id": "B1-2", "patient_id": "B1", "ward": "B", "source": "icu", "t_s": 2 * 3600.0, "risk": 0.95,
         "driving_modality": "notes", "attribution": {"vitals": 0.35, "notes": 0.65},
         "quality": {"vitals": 1.0, "notes": 1.0}, "detail": {}}])
    t = np.arange(0, 4 * 3600, 300.0)
    signals = pd.concat([pd.DataFrame({"patient_id": p, "signal": "hr", "t_s": t, "value": 80 + t / 600})
                         for p in ("A1", "A2", "B1")], ignore_index=True)
    return risk, alerts, signals


# ---- schema ---------------------------------------------------------------------------------

def test_planted_tables_pass_and_hospital_is_read_as_ward():
    risk, alerts, signals = check_tables(*planted_tables())
    assert set(risk["ward"]) == {"A", "B"} and len(alerts) == 2
    fed = planted_tables()[0].rename(columns={"ward": "hospital"}).drop(columns=["quality_vitals", "quality_notes"])
    out = check_risk_table(fed)
    assert list(out["ward"].unique()) == ["A", "B"]
    assert out["quality_notes"].tolist() == out["present_notes"].astype(float).tolist()  # filled from presence


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.drop(columns=["risk"]), "missing column(s) ['risk']"),
    (lambda r: r.drop(columns=["present_notes"]), "['present_notes']"),
    (lambda r: r.drop(columns=["attention_vitals", "attention_notes"]), "attention_<modality>"),
    (lambda r: r.assign(risk=r["risk"] * 2), "'risk' must lie in [0, 1]"),
    (lambda r: r.assign(attention_vitals=0.5), "must sum to 1"),
    (lambda r: r.assign(driving_modality="smell"), "unknown modalities ['smell']"),
    (lambda r: r.assign(quality_vitals=1.5), "'quality_vitals' must lie in [0, 1]"),
    (lambda r: pd.concat([r, r.iloc[:1]]), "duplicate rows"),
    (lambda r: r.assign(ward=np.where(r.index == 0, "Z", r["ward"])), "'ward' differs within a patient"),
])
def test_risk_table_errors_name_the_column(mutate, message):
    risk = planted_tables()[0]
    with pytest.raises(SchemaError) as e:
        check_risk_table(mutate(risk))
    assert message in str(e.value)


def test_alert_table_errors_and_cross_check():
    risk, alerts, signals = planted_tables()
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['attribution'\]"):
        check_alert_table(alerts.drop(columns=["attribution"]))
    with pytest.raises(SchemaError, match="'source' has unknown values"):
        check_alert_table(alerts.assign(source="fridge"))
    with pytest.raises(SchemaError, match="'attribution' must sum to 1"):
        check_alert_table(alerts.assign(attribution=[{"vitals": 0.5}, {"notes": 1.0}]))
    with pytest.raises(SchemaError, match="not in the risk table"):
        check_tables(risk[risk["patient_id"] != "B1"], alerts, signals)
    with pytest.raises(SchemaError, match="'ward' disagrees"):
        check_tables(risk, alerts.assign(ward="A"), signals)


def test_synthetic_tables_follow_the_schema_and_round_trip(tmp_path):
    risk, alerts, signals = synthetic_tables(n_icu=3, n_stress=1, seed=0, hours=4)
    assert set(risk["ward"]) >= {"S1"} and set(risk["patient_id"]) >= {"P01", "P02", "P03", "S01"}
    assert {"vitals", "notes", "audio", "chest", "wrist", "voice"} <= {c[10:] for c in risk if c.startswith("attention_")}
    stress = alerts[alerts["source"] == "stress"]
    assert len(stress) and {"onset", "raised_at", "voters", "quality", "fused"} <= set(stress["detail"].iloc[0])
    write_tables(tmp_path, risk, alerts, signals)
    r2, a2, s2 = read_tables(tmp_path)
    pd.testing.assert_frame_equal(r2, risk, check_dtype=False)
    assert a2["attribution"].tolist() == alerts["attribution"].tolist() and len(s2) == len(signals)


def test_read_tables_names_the_missing_file(tmp_path):
    with pytest.raises(SchemaError, match="missing risk.csv"):
        read_tables(tmp_path)


def test_ward_rows_sort_flag_and_sparkline():
    risk = check_risk_table(planted_tables()[0])
    rows = ward_rows(risk)
    assert rows["patient_id"].tolist() == ["A1", "B1", "A2"]  # current risk 0.9, 0.6, 0.1
    a2 = rows.set_index("patient_id").loc["A2"]
    assert a2["flags"] == ["notes missing"] or a2["flags"] == ["vitals poor", "notes missing"]
    assert "vitals poor" in a2["flags"] and "notes missing" in a2["flags"]
    assert rows.set_index("patient_id").loc["A1", "flags"] == []
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"


# ---- users, wards and the acknowledgement store ---------------------------------------------

def test_passwords_are_hashed_and_never_on_disk(tmp_path):
    users = Users(tmp_path / "users.json")
    users.add("alice", "s3cret-horse", "clinician", ["A"])
    text = (tmp_path / "users.json").read_text()
    assert "s3cret-horse" not in text and "alice" in text
    assert oct((tmp_path / "users.json").stat().st_mode)[-3:] == "600"
    assert users.authenticate("alice", "s3cret-horse") == {"name": "alice", "role": "clinician", "wards": ["A"]}
    assert users.authenticate("alice", "s3cret-horsE") is None
    assert users.authenticate("mallory", "s3cret-horse") is None
    assert users.authenticate("alice", "") is None
    h1, h2 = hash_password("x"), hash_password("x")
    assert h1["hash"] != h2["hash"] and verify_password("x", h1) and not verify_password("y", h1)
    with pytest.raises(MMLabError, match="role"):
        users.add("bob", "pw", "janitor", ["A"])


def test_ward_filter_is_server_side():
    tables = check_tables(*planted_tables())
    alice = {"name": "alice", "role": "clinician", "wards": ["A"]}
    risk, alerts, signals = visible(tables, alice)
    assert set(risk["patient_id"]) == {"A1", "A2"} and list(alerts["alert_id"]) == ["A1-3"]
    assert set(signals["patient_id"]) == {"A1", "A2"}
    assert len(visible(tables, None)[0]) == 0
    assert allowed({"wards": ["*"]}, "B") and not allowed(alice, "B") and not allowed(None, "A")


def _document_json(layout) -> str:
    from bokeh.document import Document

    doc = Document()
    doc.add_root(layout.get_root(doc))
    from bokeh.core.json_encoder import serialize_json

    return serialize_json(doc.to_json())


def test_built_documents_hold_no_other_ward(tmp_path):
    pytest.importorskip("panel")
    from mmlab.deploy.dashboard.app import build

    write_tables(tmp_path, *planted_tables())
    alice = {"name": "alice", "role": "clinician", "wards": ["A"]}
    ward = _document_json(build(tmp_path, alice))
    assert "A1" in ward and "A2" in ward and "B1" not in ward
    other = _document_json(build(tmp_path, alice, patient="B1"))  # a URL naming a ward-B patient
    assert "No such patient in your wards" in other and "B1" not in other
    own = _document_json(build(tmp_path, alice, patient="A1"))
    assert "driven by" in own and "vitals 80" in own and "Alert A1-3" in own
    assert "Not signed in" in _document_json(build(tmp_path, None, patient="A1"))
    AckStore(tmp_path).acknowledge("B1-2", "bob", "called the registrar")
    AckStore(tmp_path).acknowledge("A1-3", "alice", "fluids started")
    sup = _document_json(build(tmp_path, {"name": "sup", "role": "supervisor", "wards": ["A"]}))
    assert "Recent acknowledgements" in sup and "fluids started" in sup and "registrar" not in sup
    assert "Recent acknowledgements" not in _document_json(build(tmp_path, alice))


def _ack_many(folder, who, n):
    store = AckStore(folder)
    return [store.acknowledge(f"X-{k % 3}", who, f"note {who} {k}") for k in range(n)]


def test_concurrent_acks_lose_nothing_and_persist(tmp_path):
    with cf.ThreadPoolExecutor(8) as ex:
        ids = [i for f in [ex.submit(_ack_many, tmp_path, f"u{w}", 25) for w in range(8)] for i in f.result()]
    with cf.ProcessPoolExecutor(2) as ex:
        ids += [i for f in [ex.submit(_ack_many, tmp_path, f"p{w}", 25) for w in range(2)] for i in f.result()]
    acks = AckStore(tmp_path).acks()  # a fresh connection: what a restarted server reads
    assert len(ids) == len(set(ids)) == len(acks) == 250
    assert {(a["user"], a["note"]) for a in acks} == {(f"{u}", f"note {u} {k}") for u in
                                                       [f"u{w}" for w in range(8)] + ["p0", "p1"] for k in range(25)}
    assert len(AckStore(tmp_path).acks(["X-0"])) == 8 * 9 + 2 * 9


def test_cookie_secret_from_env_or_generated_file(tmp_path, monkeypatch):
    from mmlab.deploy.dashboard import cookie_secret

    monkeypatch.setenv("MMLAB_DASHBOARD_COOKIE_SECRET", "from-env")
    assert cookie_secret() == "from-env"
    monkeypatch.delenv("MMLAB_DASHBOARD_COOKIE_SECRET")
    monkeypatch.setenv("MMLAB_CONFIG_DIR", str(tmp_path / "cfg"))
    s = cookie_secret()
    assert len(s) >= 40 and cookie_secret() == s
    assert oct((tmp_path / "cfg" / "dashboard_cookie_secret").stat().st_mode)[-3:] == "600"
    assert not any(ROOT in p.parents for p in [tmp_path])  # the generated file is outside the repository


# ---- the served app -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("panel")
    from mmlab.deploy.dashboard.server import free_port, start, stop

    folder = tmp_path_factory.mktemp("dashboard")
    write_tables(folder, *planted_tables())
    users = Users(folder / "users.json")
    users.add("alice", PASSWORDS["alice"], "clinician", ["A"])
    users.add("bob", PASSWORDS["bob"], "clinician", ["B"])
    users.add("sup", PASSWORDS["sup"], "supervisor", ["*"])
    old = os.environ.get("MMLAB_DASHBOARD_COOKIE_SECRET")
    os.environ["MMLAB_DASHBOARD_COOKIE_SECRET"] = "test-secret-" + "x" * 40
    port = free_port()
    state = {"folder": folder, "port": port, "log": folder / "server.log"}
    state["proc"], state["url"] = start(folder, port, log=state["log"])

    def restart():
        stop(state["proc"])
        state["proc"], state["url"] = start(folder, port, log=state["log"])

    state["restart"] = restart
    yield state
    stop(state["proc"])
    if old is None:
        os.environ.pop("MMLAB_DASHBOARD_COOKIE_SECRET", None)
    else:
        os.environ["MMLAB_DASHBOARD_COOKIE_SECRET"] = old


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install it with `make browser` (Debian's chromium) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, server, request):
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:  # the call failed (its report is logged before teardown)
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    ctx.close()


def _login(pg, url, name, password=None):
    pg.goto(url + "/app")
    pg.fill("#username", name)
    pg.fill("#password", PASSWORDS.get(name, "") if password is None else password)
    pg.click("#signin")


def test_browser_login_patient_provenance_ack_survives_restart(page, server):
    pg, url = page, server["url"]
    _login(pg, url, "alice")
    pg.get_by_text("Ward view").wait_for()
    pg.get_by_role("gridcell", name="A1", exact=True).wait_for()
    assert pg.get_by_role("gridcell", name="A2", exact=True).count() == 1
    assert pg.get_by_role("gridcell", name="B1", exact=True).count() == 0
    assert pg.get_by_text("notes missing").count() == 1  # A2's flag
    pg.get_by_role("gridcell", name="A1", exact=True).click()  # a widget event: the server answers
    pg.get_by_text("Patient A1 (ward A)").wait_for()
    prov = pg.locator(".provenance").first
    prov.wait_for()
    assert "driven by vitals" in prov.inner_text() and "vitals 80%" in prov.inner_text()
    pg.get_by_text("Alert A1-3: not acknowledged").wait_for()
    pg.get_by_placeholder("note").fill("seen, fluids started")
    pg.get_by_role("button", name="Acknowledge A1-3").click()
    pg.get_by_text("Alert A1-3: acknowledged by alice: seen, fluids started").wait_for()
    server["restart"]()
    pg.goto(server["url"] + "/app?patient=A1")  # same cookie, new server process
    pg.get_by_text("Patient A1 (ward A)").wait_for()
    pg.get_by_text("Alert A1-3: acknowledged by alice: seen, fluids started").wait_for()


def test_browser_two_sessions_ack_at_once(browser, server):
    pages = []
    for name in ("alice", "sup"):
        ctx = browser.new_context()
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        _login(pg, server["url"], name)
        pg.get_by_text("Ward view").wait_for()
        pg.goto(server["url"] + "/app?patient=A1")
        pg.get_by_placeholder("note").fill(f"{name} at once")
        pages.append(pg)
    try:
        for pg in pages:
            pg.get_by_role("button", name="Acknowledge A1-3").click(no_wait_after=True)
        for pg, name in zip(pages, ("alice", "sup")):
            pg.get_by_text(f"acknowledged by {name}: {name} at once").wait_for()
        notes = [a["note"] for a in AckStore(server["folder"]).acks(["A1-3"])]
        assert "alice at once" in notes and "sup at once" in notes
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for k, pg in enumerate(pages):
            pg.screenshot(path=str(SHOTS / f"two_sessions_{k}.png"), full_page=True)
        raise
    finally:
        for pg in pages:
            pg.context.close()


def test_browser_ward_a_cannot_reach_ward_b(page, server):
    pg = page
    _login(pg, server["url"], "alice")
    pg.get_by_text("Ward view").wait_for()
    pg.goto(server["url"] + "/app?patient=B1")
    pg.get_by_text("No such patient in your wards.").wait_for()
    assert pg.get_by_text("B1").count() == 0 and pg.get_by_text("ward B").count() == 0
    assert pg.get_by_role("button", name="Acknowledge B1-2").count() == 0
    # bob of ward B does see it: the patient exists
    pg.context.clear_cookies()
    _login(pg, server["url"], "bob")
    pg.goto(server["url"] + "/app?patient=B1")
    pg.get_by_text("Patient B1 (ward B)").wait_for()
    assert "driven by notes" in pg.locator(".provenance").first.inner_text()


def test_browser_wrong_password_gets_only_the_login_page(page, server):
    pg = page
    _login(pg, server["url"], "alice", password="not-her-password")
    pg.get_by_text("Wrong user name or password.").wait_for()
    assert "/login" in pg.url and pg.get_by_text("Ward view").count() == 0
    pg.goto(server["url"] + "/app?patient=A1")
    assert "/login" in pg.url
    pg.locator("#signin").wait_for()
    assert pg.get_by_text("A1").count() == 0


def test_http_without_cookie_gets_login_only(server):
    url = server["url"]
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    body = op.open(url + "/app?patient=A1").read().decode()
    assert "Sign in" in body and "bokeh" not in body.lower()
    with pytest.raises(urllib.error.HTTPError) as e:
        op.open(url + "/login", urllib.parse.urlencode({"username": "alice", "password": "x"}).encode())
    assert e.value.code == 401
    forged = urllib.request.Request(url + "/app", headers={"Cookie": "user=alice"})  # unsigned cookie
    assert "Sign in" in op.open(forged).read().decode()


# ---- the command ------------------------------------------------------------------------------

def test_cli_adds_users_and_refuses_a_folder_without_users(tmp_path, monkeypatch, capsys):
    from mmlab.cli import main

    assert main(["dashboard", "--data", str(tmp_path), "--port", "1"]) == 2
    assert "no users.json" in capsys.readouterr().err
    monkeypatch.setenv("MMLAB_DASHBOARD_PASSWORD", "carol-pw-9")
    assert main(["dashboard", "--data", str(tmp_path), "--add-user", "carol", "--role", "supervisor",
                 "--wards", "A,B"]) == 0
    assert Users(tmp_path / "users.json").authenticate("carol", "carol-pw-9")["wards"] == ["A", "B"]
    assert "carol-pw-9" not in (tmp_path / "users.json").read_text()
    assert main(["dashboard", "--data", str(tmp_path), "--add-user", "dave", "--role", "janitor"]) == 2


# ---- the systems' outputs ---------------------------------------------------------------------

#: The federated system's dashboard columns (its real output is checked in test_federated_system).
FED_COLUMNS = list(DASHBOARD_SCHEMA)


def test_a_federated_style_table_passes_and_yields_alerts():
    fed = pd.DataFrame({"patient_id": ["p1"] * 3 + ["p2"] * 2, "hospital": ["H1"] * 3 + ["H2"] * 2,
                        "t_end_h": [1.0, 2.0, 3.0, 1.0, 2.0], "risk": [0.2, 0.7, 0.4, 0.9, 0.95],
                        "trend": [np.nan, 0.5, -0.3, np.nan, 0.05], "driving_modality": ["vitals", "notes", "vitals", "audio", ""],
                        "attention_vitals": [1.0, 0.2, 0.6, 0.0, 0.0], "attention_notes": [0.0, 0.8, 0.4, 0.0, 0.0],
                        "attention_audio": [0.0, 0.0, 0.0, 1.0, 0.0],
                        "present_vitals": [True, True, True, False, False], "present_notes": [False, True, True, False, False],
                        "present_audio": [False, False, False, True, False]})[FED_COLUMNS]
    from mmlab.deploy.dashboard import alerts_from_risk

    risk = check_risk_table(fed)
    assert risk["ward"].tolist() == ["H1"] * 3 + ["H2"] * 2
    al = alerts_from_risk(fed)
    assert al["alert_id"].tolist() == ["p1-2", "p2-1"]  # p1 crosses at 2 h; p2 starts above
    assert al["attribution"].tolist() == [{"vitals": 0.2, "notes": 0.8}, {"audio": 1.0}]
    assert al["driving_modality"].tolist() == ["notes", "audio"] and al["t_s"].tolist() == [7200.0, 3600.0]


def test_stress_system_alerts_become_alert_rows():
    from mmlab.deploy.dashboard import alerts_from_stress
    from mmlab.systems.alerts import Alert

    a = Alert(onset=100.0, raised_at=110.0, end=150.0, n_present=3, k=2,
              voters={"chest": {"max": 0.9, "mean": 0.6, "n": 4}, "wrist": {"max": 0.7, "mean": 0.2, "n": 4}},
              quality={"chest": 0.95, "wrist": 0.4}, fused=0.7, fused_max=0.8, end_reason="finished")
    rows = alerts_from_stress([a, a.to_dict() | {"raised_at": 300.0}], "S01", "S1")
    assert rows["alert_id"].tolist() == ["S01-110", "S01-300"]
    assert rows["attribution"].iloc[0] == {"chest": 0.75, "wrist": 0.25} and rows["driving_modality"].iloc[0] == "chest"
    assert rows["quality"].iloc[0] == {"chest": 0.95, "wrist": 0.4} and rows["risk"].iloc[0] == 0.7
    assert rows["detail"].iloc[0] == a.to_dict()
    with pytest.raises(SchemaError, match="missing key 'voters'"):
        alerts_from_stress([{"onset": 1.0, "raised_at": 2.0, "quality": {}}], "S01", "S1")


def test_bench_replicates_patients_and_refuses_unknown_options():
    from mmlab.bench.dashboard import replicate, run

    risk, alerts, signals = check_tables(*planted_tables())
    risk = risk.assign(patient_id="P" + risk["patient_id"])  # replicate copies the ICU ids (P...)
    alerts = alerts.assign(patient_id="P" + alerts["patient_id"])
    signals = signals.assign(patient_id="P" + signals["patient_id"])
    r, a, s = check_tables(*replicate((risk, alerts, signals), 7))
    assert r["patient_id"].nunique() == 7 and "PA1~1" in set(r["patient_id"]) and "PA1~2" in set(r["patient_id"])
    assert set(a["alert_id"]) == {"A1-3", "B1-2", "A1-3~1", "B1-2~1", "A1-3~2"} and a["alert_id"].is_unique
    assert len(s) == len(signals) / 3 * 7
    with pytest.raises(MMLabError, match=r"unknown option\(s\) \['bogus'\]"):
        run(params={"bogus": 1})
    with pytest.raises(MMLabError, match="mode must be"):
        run(params={"mode": "carrier-pigeon"})


def test_login_redirects_only_inside_the_app():
    from mmlab.deploy.dashboard.auth import _safe_next

    assert _safe_next("/app?patient=A1") == "/app?patient=A1"
    for bad in ("https://evil.example", "//evil.example", "/\\evil.example", None, ""):
        assert _safe_next(bad) == "/app"
