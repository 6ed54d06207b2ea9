"""Export a fitted fusion model to ONNX and run it with onnxruntime (chapter 60_deployment).

:func:`to_torch` turns a fitted model of :mod:`mmlab.fusion` into one self-contained
``nn.Module`` — the per-modality standardisation (absent rows replaced by 0 with
``torch.where``, so NaN there never reaches the output) followed by the network — whose
``forward(x_<m1>, x_<m2>, ..., present)`` takes one float32 tensor per modality and the bool
presence tensor ``(n, M)`` (``(n, T, M)`` for the temporal model) and returns logits.
Supported: every deep model (:class:`~mmlab.fusion.AttentionFusion`,
:class:`~mmlab.fusion.TemporalFusion`, ...) and :class:`~mmlab.fusion.EarlyFusion` with a
linear classifier (a logistic regression: the concatenation ``[z_m, present_m]`` times its
coefficients).

:func:`export_onnx` writes ``model.onnx`` (batch size dynamic) and a sidecar
``model.onnx.json`` (modalities, feature sizes, classes, kind); :class:`OnnxFusion` loads
it and offers the estimator's ``predict_logits`` / ``predict_proba`` / ``predict`` with the
same input checks, so it can replace the fitted model anywhere (e.g. a
:class:`~mmlab.systems.stress.StressDetector`'s ``fused_``).

Agreement with PyTorch (tested on planted data, with masked modalities): the maximum
absolute difference of the probabilities is below :data:`TOLERANCE` for each kind (float32
arithmetic in a different operator order; standardisation is done in float32 in the graph
and in float64 by the estimator).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from mmlab.errors import SchemaError
from mmlab.fusion._contract import check_inputs

__all__ = ["to_torch", "export_onnx", "export_detector", "OnnxFusion", "model_kind", "TOLERANCE", "FORMAT"]

FORMAT = "mmlab-onnx-fusion/1"
#: maximum absolute difference of probabilities, ONNX runtime vs PyTorch, per model kind.
TOLERANCE = {"early": 1e-5, "attention": 1e-4, "temporal": 1e-4, "deep": 1e-4}


def model_kind(model: Any) -> str:
    """``"early"``, ``"attention"``, ``"temporal"`` or ``"deep"`` (another deep model); a
    model that cannot be exported raises :class:`~mmlab.errors.SchemaError`."""
    from mmlab.fusion import AttentionFusion, EarlyFusion, TemporalFusion
    from mmlab.fusion.deep import DeepFusion

    if not hasattr(model, "classes_"):
        raise SchemaError(f"{type(model).__name__} is not fitted: fit it before exporting")
    if isinstance(model, TemporalFusion):
        return "temporal"
    if isinstance(model, AttentionFusion):
        return "attention"
    if isinstance(model, DeepFusion):
        return "deep"
    if isinstance(model, EarlyFusion):
        est = model.estimator_
        if hasattr(est, "coef_") and hasattr(est, "intercept_") and hasattr(est, "predict_proba"):
            return "early"
        raise SchemaError(f"EarlyFusion with {type(est).__name__} cannot be exported: only a linear "
                          "classifier with coef_/intercept_ (a LogisticRegression) can")
    raise SchemaError(f"{type(model).__name__} cannot be exported to ONNX; supported: the deep "
                      "fusion models and EarlyFusion with a logistic regression")


class _LinearHead(nn.Module):
    """Early fusion's logistic regression: logits from ``[z_m, present_m]`` per modality."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray):
        super().__init__()
        coef, intercept = np.atleast_2d(coef), np.atleast_1d(intercept)
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(f) = softmax([0, f])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.r_[0.0, intercept]
        self.linear = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))

    def forward(self, zs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        blocks = []
        for i, z in enumerate(zs):
            blocks += [z, present[:, i:i + 1].to(z.dtype)]
        return self.linear(torch.cat(blocks, dim=1))


class FusionGraph(nn.Module):
    """Standardisation + network in one module (see the module docstring)."""

    def __init__(self, net: nn.Module, means: list[np.ndarray], scales: list[np.ndarray]):
        super().__init__()
        self.net = net
        for i, (mu, sd) in enumerate(zip(means, scales)):
            self.register_buffer(f"mean{i}", torch.as_tensor(mu, dtype=torch.float32))
            self.register_buffer(f"scale{i}", torch.as_tensor(sd, dtype=torch.float32))
        self.n_modalities = len(means)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        xs, present = inputs[:-1], inputs[-1]
        zs = []
        for i, x in enumerate(xs):
            z = (x - getattr(self, f"mean{i}")) / getattr(self, f"scale{i}")
            zs.append(torch.where(present[..., i:i + 1], z, torch.zeros_like(z)))
        return self.net(zs, present)


def to_torch(model: Any) -> FusionGraph:
    """The fitted ``model`` as one ``nn.Module`` in eval mode (a copy: ``model`` is untouched)."""
    kind = model_kind(model)
    mods = list(model.modalities_)
    means = [np.asarray(model.scaler_.mean_[m], float) for m in mods]
    scales = [np.asarray(model.scaler_.scale_[m], float) for m in mods]
    if kind == "early":
        net = _LinearHead(model.estimator_.coef_, model.estimator_.intercept_)
    else:
        net = copy.deepcopy(model.net_).cpu()
    return FusionGraph(net, means, scales).eval()


def _example(model: Any, kind: str, n: int = 3):
    shape = (n, 2) if kind == "temporal" else (n,)
    xs = [torch.zeros(*shape, int(model.dims_[m])) for m in model.modalities_]
    present = torch.ones(*shape, len(model.modalities_), dtype=torch.bool)
    return (*xs, present)


def export_onnx(model: Any, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` (fitted; see :func:`model_kind`) to ``path`` (a ``.onnx`` file) and its
    sidecar ``<path>.json``; returns ``path``. Inputs ``x0, x1, ...`` (one per modality, in
    ``modalities_`` order) and ``present``; output ``logits``; the batch size (and the
    sequence length of the temporal model) is dynamic."""
    kind = model_kind(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = to_torch(model)
    M = len(model.modalities_)
    names = [f"x{i}" for i in range(M)] + ["present"]
    axes = {0: "n", 1: "T"} if kind == "temporal" else {0: "n"}
    dyn = {nm: dict(axes) for nm in names}
    dyn["logits"] = {0: "n"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and LSTM notes
        torch.onnx.export(graph, _example(model, kind), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=dyn, opset_version=opset,
                          dynamo=False)
    side = {"format": FORMAT, "kind": kind, "modalities": list(model.modalities_),
            "dims": {m: int(model.dims_[m]) for m in model.modalities_},
            "classes": [c.item() if hasattr(c, "item") else c for c in model.classes_]}
    Path(str(path) + ".json").write_text(json.dumps(side, indent=2))
    return path


class OnnxFusion:
    """A fusion model exported by :func:`export_onnx`, run by onnxruntime on CPU.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file (its ``.json`` sidecar next to it).
    n_threads : int, default 1
        onnxruntime's intra-op threads (1 is fastest for models this small).
    """

    def __init__(self, path: str | Path, n_threads: int = 1):
        import onnxruntime as ort

        path = Path(path)
        side = Path(str(path) + ".json")
        if not path.is_file() or not side.is_file():
            raise SchemaError(f"{path}: no ONNX model with its .json sidecar there (export_onnx writes both)")
        meta = json.loads(side.read_text())
        if meta.get("format") != FORMAT:
            raise SchemaError(f"{side}: format {meta.get('format')!r}, this mmlab reads {FORMAT!r}")
        self.path, self.kind = path, meta["kind"]
        self.modalities_ = list(meta["modalities"])
        self.dims_ = dict(meta["dims"])
        self.classes_ = np.asarray(meta["classes"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __getstate__(self):  # sessions do not pickle: reopen from the file
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def predict_logits(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        xs, present, n = check_inputs(X, mask, self.modalities_, temporal=self.kind == "temporal",
                                      dims=self.dims_)
        if n == 0:
            return np.zeros((0, len(self.classes_)))
        feed = {f"x{i}": xs[m].astype(np.float32) for i, m in enumerate(self.modalities_)}
        feed["present"] = np.stack([present[m] for m in self.modalities_], axis=-1)
        return self.session.run(["logits"], feed)[0].astype(np.float64)

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        z = self.predict_logits(X, mask)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        return self.classes_[self.predict_proba(X, mask).argmax(axis=1)]


def export_detector(detector: Any, folder: str | Path):
    """A copy of a fitted :class:`~mmlab.systems.stress.StressDetector` whose fused model runs
    in onnxruntime (``folder/fused.onnx``); the per-modality detectors stay as they are."""
    import pickle

    if not hasattr(detector, "fused_"):
        raise SchemaError("the detector is not fitted: fit it or StressDetector.load(folder)")
    path = export_onnx(detector.fused_, Path(folder) / "fused.onnx")
    out = pickle.loads(pickle.dumps(detector))
    out.fused_ = OnnxFusion(path)
    return out
