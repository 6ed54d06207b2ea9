"""ONNX export of the fusion models: onnxruntime equals PyTorch within TOLERANCE per kind,
masked modalities included (chapter 60_deployment)."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from mmlab import fusion
from mmlab.deploy.export import TOLERANCE, OnnxFusion, export_onnx, model_kind, to_torch
from mmlab.errors import SchemaError


def _data(temporal=False, n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    lead = (n, 3) if temporal else (n,)
    shift = (2.0 * y)[(slice(None),) + (None,) * (len(lead))]
    X = {"ecg": rng.normal(shift, 1.0, (*lead, 3)) + 5.0, "eda": rng.normal(0.0, 2.0, (*lead, 2))}
    mask = {"eda": np.arange(n) % 4 != 0, "ecg": np.arange(n) % 7 != 0}
    return X, y, mask


MODELS = {
    "early": lambda: fusion.EarlyFusion(),
    "attention": lambda: fusion.AttentionFusion(epochs=15, modality_dropout=0.2),
    "temporal": lambda: fusion.TemporalFusion(epochs=10),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_onnx_equals_torch_with_masks(kind, tmp_path):
    X, y, mask = _data(temporal=kind == "temporal")
    model = MODELS[kind]().fit(X, y, mask=mask)
    assert model_kind(model) == kind
    path = export_onnx(model, tmp_path / "m.onnx")
    rt = OnnxFusion(path)
    assert rt.modalities_ == model.modalities_ and list(rt.classes_) == list(model.classes_)
    Xt, _, mt = _data(temporal=kind == "temporal", n=60, seed=1)
    mt["eda"][:10] = False  # a stretch of rows with EDA gone
    mt["ecg"][5:8] = False  # rows 5..7: nothing present at all
    ref = model.predict_proba(Xt, mask=mt)
    got = rt.predict_proba(Xt, mask=mt)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < TOLERANCE[kind]
    # absent values are never looked at: NaN there changes nothing
    Xn = {m: a.copy() for m, a in Xt.items()}
    Xn["eda"][~mt["eda"]] = np.nan
    assert np.array_equal(rt.predict_proba(Xn, mask=mt), got)
    # masking a modality really changes the prediction (the mask reaches the graph)
    assert np.abs(rt.predict_proba(Xt) - got).max() > 1e-3
    assert (rt.predict(Xt, mask=mt) == model.predict(Xt, mask=mt)).mean() > 0.97


def test_torch_graph_is_a_copy_in_eval_mode():
    X, y, mask = _data()
    model = fusion.AttentionFusion(epochs=5).fit(X, y, mask=mask)
    g = to_torch(model)
    assert not g.training and model.net_ is not g.net


def test_unsupported_and_unfitted_models(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y, mask = _data()
    with pytest.raises(SchemaError, match="not fitted"):
        export_onnx(fusion.AttentionFusion(), tmp_path / "a.onnx")
    forest = fusion.EarlyFusion(RandomForestClassifier(5, random_state=0)).fit(X, y)
    with pytest.raises(SchemaError, match="RandomForestClassifier cannot be exported"):
        export_onnx(forest, tmp_path / "f.onnx")
    with pytest.raises(SchemaError, match="LateFusion cannot be exported"):
        export_onnx(fusion.LateFusion().fit(X, y), tmp_path / "l.onnx")
    with pytest.raises(SchemaError, match="sidecar"):
        OnnxFusion(tmp_path / "missing.onnx")


def test_runtime_checks_inputs_like_the_estimator(tmp_path):
    X, y, mask = _data()
    rt = OnnxFusion(export_onnx(fusion.EarlyFusion().fit(X, y, mask=mask), tmp_path / "e.onnx"))
    with pytest.raises(SchemaError, match="fitted with 3"):
        rt.predict_proba({"ecg": X["ecg"][:, :2], "eda": X["eda"]})
    with pytest.raises(SchemaError, match="no modality 'eda'"):
        rt.predict_proba({"ecg": X["ecg"]})
    assert rt.predict_proba({m: a[:0] for m, a in X.items()}).shape == (0, 2)


def test_stress_detector_fused_model_runs_in_onnx(stress_model, tmp_path):
    from mmlab.deploy.export import export_detector

    det, table = stress_model
    ref = det.predict_table(table)
    rt_det = export_detector(det, tmp_path / "onnx")
    got = rt_det.predict_table(table)
    ok = ref["fused"].notna()
    assert ok.sum() > 10 and got["fused"].notna().equals(ok)
    assert np.abs(got["fused"][ok] - ref["fused"][ok]).max() < TOLERANCE[model_kind(det.fused_)]
    assert type(det.fused_).__name__ == "TemporalFusion"  # the original is untouched


@pytest.fixture(scope="module")
def stress_model():
    from mmlab.deploy._demo import demo_detector

    det, cohort, tables = demo_detector()
    return det, tables[tables["subject"] == sorted(tables["subject"].unique())[-1]]


@pytest.mark.parametrize("cls", ["TensorFusion", "LowRankFusion", "GatedFusion", "TransformerFusion"])
def test_other_deep_models_export_too(cls, tmp_path):
    X, y, mask = _data()
    model = getattr(fusion, cls)(epochs=5).fit(X, y, mask=mask)
    assert model_kind(model) == "deep"
    rt = OnnxFusion(export_onnx(model, tmp_path / "m.onnx"))
    assert np.abs(rt.predict_proba(X, mask=mask) - model.predict_proba(X, mask=mask)).max() < TOLERANCE["deep"]
