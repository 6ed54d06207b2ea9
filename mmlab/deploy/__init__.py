"""Deploy: what runs a fitted system in production (layer 9; part 6 of the course).

It sits above :mod:`mmlab.systems` and imports it; nothing below imports this package.
Its heavy dependencies (ONNX, onnxruntime, FastAPI/uvicorn, Panel) are the ``deploy``
extra and are imported inside the modules that need them.

Modules
-------
:mod:`mmlab.deploy.dashboard`
    The clinician and supervisor dashboard (``mmlab dashboard``): a Panel app over the
    systems' documented output tables, with users, wards and persisted acknowledgements.
"""
