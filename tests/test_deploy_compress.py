"""Compression (int8, pruning, distillation) and the trade-off table (chapter 60_deployment)."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from mmlab import fusion
from mmlab.deploy.compress import (distill, model_size_mb, prune, quantize_int8, sparsity, tradeoff,
                                   variants)
from mmlab.deploy.export import export_onnx
from mmlab.errors import SchemaError


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    X = {"ecg": rng.normal(1.5 * y[:, None], 1.0, (300, 6)), "eda": rng.normal(0.8 * y[:, None], 1.0, (300, 4))}
    mask = {"eda": np.arange(300) % 5 != 0}
    model = fusion.AttentionFusion(hidden=64, epochs=40).fit(X, y, mask=mask)
    return model, X, y, mask


def test_int8_is_smaller_and_close(planted, tmp_path):
    model, X, y, mask = planted
    path = export_onnx(model, tmp_path / "m.onnx")
    q = quantize_int8(path, tmp_path / "m.int8.onnx")
    assert model_size_mb(q) < 0.75 * path.stat().st_size / 1e6
    p, pq = model.predict_proba(X, mask=mask), q.predict_proba(X, mask=mask)
    assert np.abs(p - pq).mean() < 0.02 and (p.argmax(1) == pq.argmax(1)).mean() > 0.95
    with pytest.raises(SchemaError, match="sidecar"):
        quantize_int8(tmp_path / "nothing.onnx", tmp_path / "x.onnx")


def test_prune_zeroes_the_smallest_weights_of_a_copy(planted):
    model, X, y, mask = planted
    pruned = prune(model, 0.6)
    assert sparsity(model) < 0.01 and abs(sparsity(pruned) - 0.6) < 0.01
    kept = [p.detach().abs() for p in pruned.net_.parameters() if p.dim() >= 2]
    orig = [p.detach().abs() for p in model.net_.parameters() if p.dim() >= 2]
    # every weight removed is no larger than every weight kept (global magnitude pruning)
    removed_max = max(float(o[k == 0].max()) for o, k in zip(orig, kept) if (k == 0).any())
    kept_min = min(float(k[k > 0].min()) for k in kept)
    assert removed_max <= kept_min
    acc = (pruned.predict(X, mask=mask) == y).mean()
    assert acc > 0.8
    with pytest.raises(SchemaError, match="deep fusion"):
        prune(fusion.EarlyFusion().fit(X, y), 0.5)


def test_distilled_student_is_smaller_and_agrees(planted):
    model, X, y, mask = planted
    student = distill(model, X, mask, y=y, hidden=4, epochs=60)
    n_t = sum(p.numel() for p in model.net_.parameters())
    n_s = sum(p.numel() for p in student.net_.parameters())
    assert n_s < n_t / 10 and student.hidden == 4
    agree = (student.predict(X, mask=mask) == model.predict(X, mask=mask)).mean()
    assert agree > 0.9
    with pytest.raises(SchemaError, match="labels \\[7\\]"):
        distill(model, X, mask, y=np.full(300, 7), epochs=1)


def test_tradeoff_table_on_the_stress_detector(tmp_path):
    from mmlab.deploy._demo import demo_detector

    det, cohort, tables = demo_detector()
    subjects = sorted(tables["subject"].unique())
    train, test = tables[tables["subject"] != subjects[-1]], tables[tables["subject"] == subjects[-1]]
    models = variants(det, train, tmp_path, amount=0.5, hidden=8, epochs=20)
    table = tradeoff(det, test, models, repeats=20)
    assert list(table.index) == ["torch", "onnx", "int8", "pruned", "distilled"]
    assert {"size_mb", "p50_ms", "p95_ms", "macro_f1", "ece", "f1_delta"} <= set(table.columns)
    assert table.loc["torch", "f1_delta"] == 0 and abs(table.loc["onnx", "f1_delta"]) < 1e-9
    assert table.loc["int8", "size_mb"] < table.loc["onnx", "size_mb"]
    assert table.loc["distilled", "size_mb"] < table.loc["torch", "size_mb"]
    assert (table["p95_ms"] >= table["p50_ms"]).all() and table["ece"].between(0, 1).all()
