"""Deploy: what runs a fitted system in production (layer 9; part 6 of the course).

It sits above :mod:`mmlab.systems` and imports it; nothing below imports this package.
Its heavy dependencies (ONNX, onnxruntime, FastAPI/uvicorn, Panel) are the ``deploy``
extra and are imported inside the modules that need them.

Modules
-------
:mod:`mmlab.deploy.export`
    Fitted fusion models (early, attention, temporal, ...) to ONNX, run by onnxruntime;
    equal to PyTorch within a stated tolerance, masks included.
:mod:`mmlab.deploy.compress`
    Dynamic int8 quantization, magnitude pruning, distillation; the trade-off table.
:mod:`mmlab.deploy.serve`
    ``mmlab serve``: the HTTP service (FastAPI + uvicorn) — window batches with dynamic
    batching, per-subject streams, fallback, validation, promote/rollback without restart.
:mod:`mmlab.deploy.registry`
    Model versions with model cards, an audit log of promotions, rollback.
:mod:`mmlab.deploy.dashboard`
    The clinician and supervisor dashboard (``mmlab dashboard``): a Panel app over the
    systems' documented output tables, with users, wards and persisted acknowledgements.
"""
