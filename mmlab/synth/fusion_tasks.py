"""Planted fusion tasks: small per-window feature tables whose answer we know (chapter
30_fusion_taxonomy).

:func:`fusion_task` draws the features of three modalities (``ecg``, ``acc``, ``eda``) for
``n_subjects`` subjects, ``windows`` windows each, labelled ``"rest"`` or ``"stress"``
(half each, per subject), in the input contract of :mod:`mmlab.fusion` (``X`` a dict of
``(n, d)`` arrays). Two kinds of structure are planted:

* ``kind="independent"``: every modality carries its own evidence of the label
  (heart rate up and HRV down, fidgeting, tonic EDA and SCRs up), with independent noise,
  so each modality alone is useful and the modalities never need each other.
* ``kind="coupled"``: the label lives only in a relation *between* modalities. Physical
  activity ``a`` (a latent, sd ``activity_sd``) raises heart rate and shows in the
  accelerometer; stress is heart rate *beyond what movement explains*:
  ``ecg.hr = strength * s + activity_sd * a + noise`` and ``acc.motion = a + small noise``,
  with ``s = +-1/2``. Heart rate alone is swamped by activity, motion alone says nothing
  about the label, and ``hr - activity_sd * motion`` separates the classes. ``eda`` carries
  no label information in this kind.

``noise_features`` appends that many pure-noise columns to ``eda`` (a modality with many
noisy features). Each subject has its own offset on every feature (sd ``subject_sd``),
so leave-one-subject-out is harder than a random split. The same arguments always give the
same arrays.
"""

from __future__ import annotations

import numpy as np

from mmlab.errors import SchemaError

KINDS = ("independent", "coupled")
CLASSES = ("rest", "stress")


def fusion_task(kind: str = "independent", n_subjects: int = 12, windows: int = 40, *,
                strength: float = 2.0, noise_features: int = 0, activity_sd: float = 2.0,
                subject_sd: float = 0.3, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(X, y, groups)`` of a planted fusion task (see the module docstring).

    ``X = {"ecg": (n, 2) [hr, hrv], "acc": (n, 2) [motion, posture], "eda": (n, 2 +
    noise_features) [scl, scr, noise...]}``, ``y`` labels ``"rest"``/``"stress"``, ``groups``
    subject ids ``"P01"``...; ``n = n_subjects * windows``. ``strength`` scales the label's
    effect relative to unit noise.
    """
    if kind not in KINDS:
        raise SchemaError(f"kind must be one of {KINDS}, got {kind!r}")
    if int(n_subjects) < 2 or int(windows) < 2:
        raise SchemaError(f"need n_subjects >= 2 and windows >= 2, got {n_subjects} and {windows}")
    if int(noise_features) < 0:
        raise SchemaError(f"noise_features must be >= 0, got {noise_features}")
    n_subjects, windows, noise_features = int(n_subjects), int(windows), int(noise_features)
    rng = np.random.default_rng(seed)
    n = n_subjects * windows
    groups = np.repeat([f"P{i + 1:02d}" for i in range(n_subjects)], windows)
    stress = np.concatenate([rng.permutation(np.arange(windows) < windows // 2) for _ in range(n_subjects)])
    s = np.where(stress, 0.5, -0.5) * strength
    noise = lambda *shape: rng.normal(size=shape)  # noqa: E731
    if kind == "independent":
        hr, hrv = 0.8 * s + noise(n), -0.5 * s + noise(n)
        motion, posture = 0.7 * s + noise(n), 0.4 * s + noise(n)
        scl, scr = 0.8 * s + noise(n), 0.5 * s + noise(n)
    else:
        a = noise(n)
        hr = s + activity_sd * a + 0.5 * noise(n)
        hrv = -0.3 * activity_sd * a + noise(n)
        motion, posture = a + 0.1 * noise(n), noise(n)
        scl, scr = noise(n), noise(n)
    X = {"ecg": np.column_stack([hr, hrv]), "acc": np.column_stack([motion, posture]),
         "eda": np.column_stack([scl, scr, noise(n, noise_features)])}
    subj = np.repeat(np.arange(n_subjects), windows)
    for m, v in X.items():
        X[m] = v + subject_sd * rng.normal(size=(n_subjects, v.shape[1]))[subj]
    y = np.where(stress, CLASSES[1], CLASSES[0])
    return X, y, groups
