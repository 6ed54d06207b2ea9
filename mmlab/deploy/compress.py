"""Compression of a fitted deep fusion model, and the trade-off table (chapter 60_deployment).

Three ways to make a model smaller or faster, each returning a model with the estimator's
``predict_proba(X, mask)`` so it can replace the original (e.g. a stress detector's
``fused_``):

- :func:`quantize_int8` — onnxruntime's dynamic int8 quantization of an exported ONNX model
  (weights stored as int8, activations quantized on the fly): 4x smaller weights.
- :func:`prune` — magnitude pruning (``torch.nn.utils.prune``, global L1 over the weights
  of every linear and recurrent layer): the smallest ``amount`` of weights set to zero. The
  file is as large as before (dense storage) and the speed the same on CPU; pruning pays
  only with sparse storage or kernels, which the table makes visible.
- :func:`distill` — knowledge distillation into a student of the same architecture and a
  smaller ``hidden`` width, trained to match the teacher's temperature-softened
  probabilities (``T**2``-scaled KL divergence), mixed with the hard labels when given.

:func:`tradeoff` measures, for a stress detector and a labelled feature table, each
variant's size on disk, per-window latency (p50/p95 of one window through the fused model,
in-process, one thread), macro-F1 and ECE of the fused probability on the labelled windows.
"""

from __future__ import annotations

import copy
import io
import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmlab._torch import minibatches, seeded, torch_threads, train_loop
from mmlab.errors import SchemaError
from mmlab.fusion._contract import encode_known
from mmlab.validate import check_fraction, check_int, check_positive

__all__ = ["quantize_int8", "prune", "sparsity", "distill", "variants", "tradeoff", "model_size_mb"]


def _deep(model: Any, what: str):
    from mmlab.fusion.deep import DeepFusion

    if not isinstance(model, DeepFusion) or not hasattr(model, "net_"):
        raise SchemaError(f"{what} needs a fitted deep fusion model (AttentionFusion, TemporalFusion, ...), "
                          f"got {type(model).__name__}")
    return model


def quantize_int8(onnx_path: str | Path, out_path: str | Path):
    """Dynamic int8 quantization of a model written by :func:`~mmlab.deploy.export.export_onnx`;
    returns the :class:`~mmlab.deploy.export.OnnxFusion` of ``out_path``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mmlab.deploy.export import OnnxFusion

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not Path(str(onnx_path) + ".json").is_file():
        raise SchemaError(f"{onnx_path}: not an exported fusion model (no .json sidecar)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process is for large vision models
    try:
        quantize_dynamic(str(onnx_path), str(out_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    shutil.copyfile(str(onnx_path) + ".json", str(out_path) + ".json")
    return OnnxFusion(out_path)


def _prunable(net: nn.Module) -> list[tuple[nn.Module, str]]:
    out = []
    for mod in net.modules():
        for name, p in mod.named_parameters(recurse=False):
            if name.startswith("weight") and p.dim() >= 2:
                out.append((mod, name))
    return out


def prune(model: Any, amount: float = 0.5):
    """A copy of ``model`` whose smallest ``amount`` (a fraction) of weights, by absolute
    value over all layers together, are zero (made permanent)."""
    from torch.nn.utils import prune as tprune

    _deep(model, "prune")
    amount = check_fraction(amount, "amount")
    out = copy.deepcopy(model)
    params = _prunable(out.net_)
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    for mod, name in params:
        tprune.remove(mod, name)
    out.net_.eval()
    return out


def sparsity(model: Any) -> float:
    """Share of zero weights in the prunable layers of a deep model."""
    params = [getattr(m, n) for m, n in _prunable(_deep(model, "sparsity").net_)]
    total = sum(p.numel() for p in params)
    return float(sum(int((p == 0).sum()) for p in params) / max(total, 1))


def distill(teacher: Any, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None,
            y: Any = None, hidden: int = 8, temperature: float = 2.0, alpha: float = 0.5,
            epochs: int = 60, batch_size: int = 64, lr: float = 3e-3, random_state: int = 0):
    """A student of ``teacher``'s class with width ``hidden``, trained on ``(X, mask)`` to
    match the teacher's probabilities softened by ``temperature``; with labels ``y`` the
    loss is ``alpha * soft + (1 - alpha) * cross-entropy``. The student shares the
    teacher's standardisation, modalities and classes."""
    _deep(teacher, "distill")
    hidden = check_int(hidden, "hidden", low=1)
    T = check_positive(temperature, "temperature")
    alpha = check_fraction(alpha, "alpha", open_low=False, open_high=False)
    student = type(teacher)(**{**teacher.get_params(), "hidden": hidden, "epochs": epochs,
                               "random_state": random_state})
    for attr in ("modalities_", "dims_", "classes_", "scaler_"):
        setattr(student, attr, copy.deepcopy(getattr(teacher, attr)))
    xs, present, n = student._prepare(X, mask)
    with torch.no_grad(), torch_threads(teacher.n_threads):
        soft = torch.as_tensor(teacher.predict_logits(X, mask), dtype=torch.float32)
    soft = torch.softmax(soft / T, dim=1)
    yi = None
    if y is not None:
        yi = torch.as_tensor(encode_known(y, teacher.classes_, n), dtype=torch.long)
    z = student.scaler_.transform(xs, present)
    gen = torch.Generator().manual_seed(random_state)
    with seeded(random_state), torch_threads(student.n_threads):
        net = student._build()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=student.weight_decay)

        def loss_fn(rows):
            xb, pb = student._tensors(z, present, rows)
            logp = torch.log_softmax(net(xb, pb) / T, dim=1)
            loss = nn.functional.kl_div(logp, soft[rows], reduction="batchmean") * T * T
            if yi is not None:
                loss = alpha * loss + (1 - alpha) * nn.functional.cross_entropy(net(xb, pb), yi[rows])
            return loss

        res = train_loop(net, opt, lambda e: minibatches(np.arange(n), batch_size, gen), loss_fn,
                         epochs=epochs, desc="distill")
    student.net_, student.history_, student.best_epoch_ = net.eval(), res.history, res.best_epoch
    return student


def model_size_mb(model: Any) -> float:
    """Size on disk (MB): the ONNX file of an ONNX model, the saved ``state_dict`` of a deep
    model, the pickle of anything else."""
    path = getattr(model, "path", None)
    if path is not None and Path(path).is_file():
        return Path(path).stat().st_size / 1e6
    buf = io.BytesIO()
    if hasattr(model, "net_"):
        torch.save(model.net_.state_dict(), buf)
    else:
        pickle.dump(model, buf)
    return buf.getbuffer().nbytes / 1e6


def _fused_inputs(detector, table: pd.DataFrame):
    norm = detector._normalise(table)
    X, mask = detector._inputs(norm)
    Xf, Mf = detector._fused_inputs(norm, X, mask)
    anyp = np.any([mask[m] for m in detector.modalities_], axis=0) & norm["calibrated"].to_numpy(bool)
    rows = np.flatnonzero(anyp)
    return {m: v[rows] for m, v in Xf.items()}, {m: v[rows] for m, v in Mf.items()}, norm.iloc[rows]


def variants(detector, train_table: pd.DataFrame, folder: str | Path, amount: float = 0.5,
             hidden: int = 8, epochs: int = 60) -> dict[str, Any]:
    """The fused model of a fitted stress ``detector`` as ``torch`` (the original), ``onnx``,
    ``int8``, ``pruned`` (``amount``) and ``distilled`` (width ``hidden``, trained on the
    windows of ``train_table``), ONNX files under ``folder``."""
    from mmlab.deploy.export import OnnxFusion, export_onnx

    fused = _deep(detector.fused_, "variants")
    folder = Path(folder)
    onnx_path = export_onnx(fused, folder / "fused.onnx")
    X, M, norm = _fused_inputs(detector, train_table)
    lab = norm["label"].isin(["rest", "stress"]).to_numpy()
    student = distill(fused, {m: v[lab] for m, v in X.items()}, {m: v[lab] for m, v in M.items()},
                      y=norm["label"].to_numpy()[lab], hidden=hidden, epochs=epochs,
                      random_state=detector.random_state)
    return {"torch": fused, "onnx": OnnxFusion(onnx_path),
            "int8": quantize_int8(onnx_path, folder / "fused.int8.onnx"),
            "pruned": prune(fused, amount), "distilled": student}


def _latency_ms(model, X, M, repeats: int) -> np.ndarray:
    n = len(next(iter(X.values())))
    times = []
    with torch_threads(1):
        for i in range(repeats):
            r = i % n
            x1 = {m: v[r:r + 1] for m, v in X.items()}
            m1 = {m: v[r:r + 1] for m, v in M.items()}
            t0 = time.perf_counter()
            model.predict_proba(x1, mask=m1)
            times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1e3


def tradeoff(detector, table: pd.DataFrame, models: Mapping[str, Any], repeats: int = 200) -> pd.DataFrame:
    """One row per variant of ``models`` (e.g. from :func:`variants`): ``size_mb``,
    ``p50_ms``, ``p95_ms`` (one window through the fused model), ``macro_f1`` and ``ece`` of
    the detector with that fused model on the labelled windows of ``table`` (held-out
    subjects), and the deltas against the first variant."""
    from mmlab.evaluate import expected_calibration_error, macro_f1

    repeats = check_int(repeats, "repeats", low=1)
    X, M, norm = _fused_inputs(detector, table)
    if not len(norm):
        raise SchemaError("the table has no calibrated window with a modality present")
    rows = []
    for name, model in models.items():
        det = copy.copy(detector)
        det.fused_ = model
        probs = det.predict_table(table)
        lab = probs["label"].isin(["rest", "stress"]) & probs["fused"].notna()
        y = probs.loc[lab, "label"].to_numpy()
        p = probs.loc[lab, "fused"].to_numpy(float)
        pred = np.where(p >= 0.5, "stress", "rest")
        lat = _latency_ms(model, X, M, repeats)
        rows.append({"variant": name, "size_mb": model_size_mb(model),
                     "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
                     "macro_f1": macro_f1(y, pred, labels=["rest", "stress"]),
                     "ece": expected_calibration_error(y, np.c_[1 - p, p], classes=["rest", "stress"]),
                     "n_windows": int(lab.sum())})
    out = pd.DataFrame(rows).set_index("variant")
    out["f1_delta"] = out["macro_f1"] - out["macro_f1"].iloc[0]
    out["speedup"] = out["p50_ms"].iloc[0] / out["p50_ms"]
    return out
