"""The federated health system (chapter 52): data tables, split learning, DP, wire checks,
a Flower simulation (shared by several tests), SecAgg+ and the deployment engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmlab.errors import SchemaError
from mmlab.systems import federated as F
from mmlab.systems._federated_data import HospitalData


def planted(n=240, seed=0, hospital="H1", absent_audio=0.3) -> HospitalData:
    """A hospital whose label is planted in vitals feature 0 (+ a weaker copy in audio)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    X = {"vitals": rng.normal(size=(n, 9)).astype(np.float32),
         "notes": (0.05 * rng.normal(size=(n, 384))).astype(np.float32),
         "audio": rng.normal(size=(n, 52)).astype(np.float32)}
    X["vitals"][:, 0] += 2.5 * y
    X["audio"][:, 0] += 1.0 * y
    present = {"vitals": np.ones(n, bool), "notes": rng.random(n) < 0.8, "audio": rng.random(n) >= absent_audio}
    patient = np.array([f"P{i // 4:02d}" for i in range(n)])
    return HospitalData(hospital, X, present, y, patient, np.tile(np.arange(1.0, 5.0), n // 4), rng.random(n) < 0.7)


# ----------------------------------------------------------------------------- model
def test_forward_is_extractors_then_attention_fusion_and_absent_weight_is_zero():
    d = planted(40)
    net = F.build_net(F.DIMS, 16, 0)
    from mmlab.systems._federated_model import tensors
    xs, pr, _ = tensors(d, np.arange(40))
    logits, alpha = net(xs, pr, return_weights=True)
    ref = super(F.HealthNet, net).forward(xs, pr)           # AttentionFusionNet's own forward
    assert torch.equal(logits, ref)
    assert torch.all(alpha[~pr] == 0)
    assert torch.allclose(alpha.sum(1), torch.ones(40))
    # absent values never reach the output (NaN there changes nothing)
    xs2 = [x.clone() for x in xs]
    xs2[2][~pr[:, 2]] = float("nan")
    assert torch.equal(net(xs2, pr), logits)


def test_split_learning_sends_only_embeddings_and_gradients_and_learns_planted_label():
    d = planted(240)
    s = F.SplitHospital(d, hidden=8, seed=0).fit(epochs=15)
    assert s.wire, "no messages recorded"
    kinds = {(w["from"], w["kind"]) for w in s.wire}
    assert kinds == {(m, "embeddings") for m in F.MODALITIES} | {("fusion", "gradients")}
    for w in s.wire:
        assert w["shape"][1:] == (8,), w            # (rows, hidden): never the raw (rows, d_in)
        assert w["dtype"] == "float32"
    # each node only sends rows it has data for: audio sends fewer rows than vitals
    tot = {m: sum(w["shape"][0] for w in s.wire if w["from"] == m) for m in F.MODALITIES}
    assert tot["audio"] < tot["vitals"]
    p, alpha = s.predict(d.rows("test"))
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(d.y[d.rows("test")], p) > 0.9
    # the split parts assembled into one net give the same scores
    p2, _ = F.predict(s.as_net(), d, d.rows("test"))
    assert np.allclose(p, p2, atol=1e-6)
    # vitals carries the planted signal: it gets the largest mean weight
    assert alpha[:, 0].mean() > alpha[:, 1].mean()


def test_embedding_privacy_clips_rows_and_epsilon_behaves():
    d = planted(40)
    s = F.SplitHospital(d, seed=0, embed_clip=0.5, embed_noise=0.0)
    rows, z = s.nodes["vitals"].send_embeddings(np.arange(40), training=False)
    assert np.all(np.linalg.norm(z, axis=1) <= 0.5 + 1e-6)
    e1, e2 = F.embedding_epsilon(2.0, 10, 1e-5), F.embedding_epsilon(4.0, 10, 1e-5)
    assert e2 < e1 < F.embedding_epsilon(2.0, 40, 1e-5)


def test_dp_epsilon_accumulates_from_history_and_matches_opacus_accountant():
    from opacus.accountants import RDPAccountant

    d = planted(120)
    net = F.build_net(F.DIMS, 16, 0)
    dp = {"noise_multiplier": 1.1, "max_grad_norm": 1.0, "delta": 1e-3}
    r1 = F.train_local(net, d, epochs=2, batch_size=16, dp=dp)
    r2 = F.train_local(net, d, epochs=2, batch_size=16, dp=dp, dp_history=r1["history"])
    assert 0 < r1["epsilon"] < r2["epsilon"]
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in r2["history"]]
    assert acc.get_epsilon(1e-3) == pytest.approx(r2["epsilon"])
    steps = sum(h[2] for h in r2["history"])
    n_train = d.rows("train").size
    assert steps == 2 * 2 * round(n_train / 16)           # 2 rounds x 2 epochs x 1/q steps


def test_fedprox_term_keeps_weights_closer_to_the_start():
    d = planted(120)
    start = F.build_net(F.DIMS, 16, 0)
    w0 = torch.cat([p.detach().flatten() for p in start.parameters()])
    dist = {}
    for mu in (0.0, 10.0):
        net = F.build_net(F.DIMS, 16, 0)
        F.train_local(net, d, epochs=5, mu=mu, seed=1)
        dist[mu] = float((torch.cat([p.detach().flatten() for p in net.parameters()]) - w0).norm())
    assert dist[10.0] < 0.8 * dist[0.0]


# ----------------------------------------------------------------------------- wire checks
def _reply(sd, metrics=None, extra=None):
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

    rec = {"arrays": ArrayRecord({k: torch.as_tensor(v) for k, v in sd.items()}),
           "metrics": MetricRecord(metrics or {"num-examples": 10, "epsilon": 0.0})}
    if extra:
        rec["leak"] = ConfigRecord(extra)
    return RecordDict(rec)


def test_check_update_accepts_the_model_and_rejects_malformed_or_extra_content():
    net = F.build_net(F.DIMS, 16, 0)
    from mmlab.systems._federated_model import expected_shapes
    exp = expected_shapes(net)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    assert F.check_update(_reply(sd), exp) == sum(v.nbytes for v in sd.values())
    bad = dict(sd, **{"enc.0.0.weight": sd["enc.0.0.weight"][:, :-1]})
    with pytest.raises(SchemaError, match=r"enc\.0\.0\.weight.*shape \(16, 8\).*\(16, 9\).*malformed"):
        F.check_update(_reply(bad), exp)
    with pytest.raises(SchemaError, match="exactly 'arrays' and 'metrics'"):
        F.check_update(_reply(sd, extra={"patient": "P01"}), exp)
    with pytest.raises(SchemaError, match="not allowed"):
        F.check_update(_reply(sd, {"num-examples": 10, "hr_mean": 80.0}), exp)
    with pytest.raises(SchemaError, match="unexpected"):
        F.check_update(_reply(dict(sd, raw=np.zeros((5, 9), np.float32))), exp)


def test_fedavg_known_answer_and_shape_error():
    out = F.fedavg([[np.array([0.0, 2.0])], [np.array([4.0, 6.0])]], [1, 3])
    assert np.allclose(out[0], [3.0, 5.0])
    with pytest.raises(SchemaError, match="shapes"):
        F.fedavg([[np.zeros(2)], [np.zeros(3)]], [1, 1])


def test_dashboard_table_schema_trend_and_provenance():
    d = planted(40)
    net = F.build_net(F.DIMS, 16, 0)
    df = F.check_dashboard_table(F.dashboard_table(net, d))
    assert list(df.columns) == list(F.DASHBOARD_SCHEMA)
    first = df.groupby("patient_id").head(1)
    assert first["trend"].isna().all() and df["trend"].notna().sum() == len(df) - len(first)
    p = df[df["patient_id"] == "P01"]
    assert np.allclose(p["trend"].iloc[1:], np.diff(p["risk"]))
    # the driving modality is always one that was present
    for m in F.MODALITIES:
        assert df.loc[df["driving_modality"] == m, f"present_{m}"].all()
    broken = df.copy()
    broken.loc[~broken["present_audio"], "attention_audio"] = 0.5
    with pytest.raises(SchemaError, match="absent modality"):
        F.check_dashboard_table(broken)


def test_the_dashboard_reads_the_real_dashboard_table():
    """The contract between this system and mmlab.deploy.dashboard: its real output passes the
    dashboard's schema check (``hospital`` becomes the ward) and yields alerts whose
    attribution is the attention of the modalities present."""
    from mmlab.deploy.dashboard import alerts_from_risk, check_risk_table

    df = F.dashboard_table(F.build_net(F.DIMS, 16, 0), planted(40))
    risk = check_risk_table(df)
    assert (risk["ward"] == df["hospital"]).all() and len(risk) == len(df)
    alerts = alerts_from_risk(df, threshold=float(df["risk"].median()))
    assert len(alerts) > 0
    for _, a in alerts.iterrows():
        row = df[(df["patient_id"] == a["patient_id"]) & (df["t_end_h"] * 3600.0 == a["t_s"])].iloc[0]
        assert set(a["attribution"]) == {m for m in F.MODALITIES if row[f"present_{m}"]}


def test_hospital_tables_bad_input_is_clear():
    from mmlab.recording import Cohort, Recording

    with pytest.raises(SchemaError, match="not from the icu_ward"):
        F.hospital_tables(Cohort([Recording("S01")]))
    with pytest.raises(SchemaError, match="not a hospital folder"):
        F.load_hospital("/nonexistent/H1")


def test_bad_federation_options_are_clear_errors(tmp_path):
    with pytest.raises(SchemaError, match="unknown federation options \\['nope'\\]"):
        F._options({}, {"nope": 1})
    with pytest.raises(SchemaError, match="noise multiplier"):
        F._parse_experiment("dp:abc")
    with pytest.raises(SchemaError, match="unknown experiment 'fedsgd'"):
        F._parse_experiment("fedsgd")
    with pytest.raises(SchemaError, match="holds no hospital folders"):
        F.run_federated(tmp_path)


# ----------------------------------------------------------------------------- Flower simulation
@pytest.fixture(scope="module")
def hospitals(tmp_path_factory):
    """24 icu_ward patients in 3 hospitals; H1 has no septic patient (one class)."""
    tables, folder = F.prepare(24, seed=1, folder=tmp_path_factory.mktemp("hosp"), prevalence=[0.0, 0.5, 0.5])
    return tables, folder


@pytest.fixture(scope="module")
def federation(hospitals):
    tables, folder = hospitals
    return F.run_federated(folder, {"experiments": "fedavg,dp:1.0", "rounds": 2, "local-epochs": 1,
                                    "fail-hospital": "H2", "malformed-hospital": "H3", "fail-round": 2})


def test_hospital_tables_from_icu_ward(hospitals):
    tables, folder = hospitals
    assert sorted(tables) == ["H1", "H2", "H3"]
    assert tables["H1"].y.sum() == 0 and tables["H2"].y.sum() > 0
    for h, d in tables.items():
        assert d.dims == F.DIMS
        assert d.present["notes"].any() and d.present["audio"].any()
        # per-hospital standardisation on its own training rows
        v = d.X["vitals"][d.train & d.present["vitals"]]
        assert np.allclose(v[:, 0].mean(), 0, atol=1e-4)
        back = F.load_hospital(folder / h)
        assert np.array_equal(back.X["notes"], d.X["notes"]) and np.array_equal(back.y, d.y)


def test_only_parameter_arrays_of_expected_shapes_cross_the_wire(federation, hospitals):
    tables, _ = hospitals
    from mmlab.systems._federated_model import expected_shapes
    exp = {k: list(v) for k, v in expected_shapes(F.build_net(F.DIMS, 16, 0)).items()}
    rows = {d.n for d in tables.values()} | {int(d.train.sum()) for d in tables.values()}
    for name, r in federation["experiments"].items():
        assert r["audit"]["wire"], name
        for w in r["audit"]["wire"]:
            assert w["records"] == ["arrays", "metrics"]
            assert w["arrays"] == exp
            assert set(w["metrics"]) <= set(F.METRIC_KEYS)
            assert not any(s[0] in rows for s in w["arrays"].values())   # no per-row (raw data) array
            assert w["bytes"] == sum(4 * int(np.prod(s)) for s in exp.values())


def test_dropout_and_malformed_update_round_completes_with_the_rest(federation):
    r = federation["experiments"]["fedavg"]
    fails = r["audit"]["failures"]
    assert [f["round"] for f in fails] == [2] and "H2 dropped out in round 2" in fails[0]["reason"]
    rej = r["audit"]["rejected"]
    assert [x["round"] for x in rej] == [2] and "malformed" in rej[0]["reason"]
    by_round = {k: {w["hospital"] for w in r["audit"]["wire"] if w["round"] == k} for k in (1, 2)}
    assert by_round == {1: {"H1", "H2", "H3"}, 2: {"H1"}}
    assert len(r["train_metrics"]) == 2                 # round 2 was aggregated from H1 alone
    assert r["train_metrics"][2]["num-examples"] < r["train_metrics"][1]["num-examples"]


def test_epsilon_reported_every_round_non_decreasing_max_over_hospitals(federation):
    assert federation["experiments"]["fedavg"]["epsilon"] == [0.0, 0.0]
    r = federation["experiments"]["dp:1.0"]
    eps = r["epsilon"]
    assert len(eps) == 2 and eps[0] > 0 and all(b >= a for a, b in zip(eps, eps[1:]))
    last: dict[str, float] = {}                  # each hospital's latest ε (H2 and H3 miss round 2)
    for k, e in enumerate(eps, start=1):
        last.update({w["hospital"]: w["epsilon"] for w in r["audit"]["wire"] if w["round"] == k})
        assert e == pytest.approx(max(last.values()))
    assert len(last) == 3
    assert r["delta"] == F.DEFAULTS["delta"]


def test_one_class_hospital_trains_and_federated_model_scores(federation, hospitals):
    tables, _ = hospitals
    r = federation["experiments"]["fedavg"]
    assert any(w["hospital"] == "H1" for w in r["audit"]["wire"])          # H1 (one class) took part
    net = F.net_from_state(r["state_dict"])
    df = F.check_dashboard_table(F.dashboard_table(net, tables["H2"]))
    assert len(df) == tables["H2"].n
    assert np.isnan(F.auroc(net, tables["H1"]))                               # one class: no AUROC


@pytest.mark.slow
def test_secagg_plus_aggregate_equals_fedavg(hospitals):
    _, folder = hospitals
    r = F.run_secagg(folder, {"local-epochs": 1})
    assert r["failures"] == 0
    assert r["equal"] and r["max_abs_diff"] < 1e-4
    # and it is not trivially equal: the clients' updates differ from each other
    assert not np.allclose(r["aggregate"][0], F.build_net(F.DIMS, 16, 0).state_dict()["enc.0.0.weight"].numpy())


# ----------------------------------------------------------------------------- deployment engine
@pytest.mark.slow
def test_federated_up_runs_superlink_and_supernodes_on_localhost_and_stops_them(tmp_path, capsys):
    from mmlab.cli import main

    code = main(["federated", "up", "--hospitals", "3", "--rounds", "1", "--subjects", "12", "--workdir",
                 str(tmp_path), "--set", "local-epochs=1", "--set", "fraction-evaluate=0", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["processes"] == 4 and out["left_running"] == []
    assert out["fedavg"]["auroc_by_round"] == {}                              # evaluation switched off
    assert out["fedavg"]["failures"] == 0 and out["fedavg"]["rejected"] == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["options"]["fraction-evaluate"] == 0 and res["options"]["local-epochs"] == 1   # --set arrived
    wire = res["experiments"]["fedavg"]["audit"]["wire"]
    assert sorted(w["hospital"] for w in wire) == ["H1", "H2", "H3"]       # one reply per SuperNode
    assert (tmp_path / "result.npz").is_file()


def test_system_save_load_round_trip_and_incompatible_folder(federation, hospitals, tmp_path):
    tables, _ = hospitals
    model = F.FederatedHealth.from_result(federation, "dp:1.0")
    p = model.predict_proba(tables["H3"])
    back = F.FederatedHealth.load(model.save(tmp_path / "m"))
    assert np.array_equal(back.predict_proba(tables["H3"]), p)
    assert back.info_["epsilon"] == federation["experiments"]["dp:1.0"]["epsilon"][-1] > 0
    mf = tmp_path / "m" / "manifest.json"
    mf.write_text(mf.read_text().replace(F.FORMAT, "mmlab-federated-health/0"))
    with pytest.raises(SchemaError, match="format"):
        F.FederatedHealth.load(tmp_path / "m")
    with pytest.raises(SchemaError, match="not fitted"):
        F.FederatedHealth().predict_proba(tables["H3"])
