"""Systems: what a user points at recordings (layer 8; part 5 of the course).

A system composes the layers below it (readers -> align -> features -> fusion ->
evaluate/explain) into one object with a batch path, a streaming path that gives the same
results, and a versioned save folder. Nothing below this package imports it; only
``deploy``, ``bench`` and ``cli`` sit above.

Modules
-------
:mod:`mmlab.systems.alerts`
    Consensus alerting (k of the n modalities present agree for a minimum duration, with
    per-modality hysteresis and a refractory period): one state machine shared by the batch
    and the streaming path, so streaming equals batch by construction.
:mod:`mmlab.systems.stress`
    The wearable stress detector (chapter 50): block-wise window features from every device
    present, per-person calibration, per-modality detectors and a fused model, consensus
    alerts; batch, streaming (same results), save/load, leave-one-subject-out evaluation
    at window and event level (``mmlab stress ...``, ``mmlab bench stress``).
:mod:`mmlab.systems.emotion`
    The call-centre emotion and satisfaction system (chapter 51): voice (eGeMAPS + MFCC
    statistics) and transcript (MiniLM or TF-IDF, with a lexicon) towers, early / late /
    stacking / attention fusion with temperature-scaled probabilities, per-call
    satisfaction and escalation risk from the utterance trajectory, a supervisor's
    explanation (modality Shapley, utterance influence), bad-input flags, save/load
    (``mmlab emotion ...``, ``mmlab bench emotion``).
:mod:`mmlab.systems.federated`
    Federated, privacy-preserving sepsis monitoring across hospitals (chapter 52): split
    learning across modality nodes with attention fusion inside a hospital, Flower
    FedAvg/FedProx across hospitals (simulation and deployment engine), Opacus DP-SGD,
    SecAgg+, a dashboard table with provenance (``mmlab federated up``,
    ``mmlab bench federated``).
:mod:`mmlab.systems.maintenance`
    Predictive maintenance (chapter 53): vibration, thermal and note encoders, per-modality
    adapters and an attention fusion head (fault class and failure-horizon risk), a sensor
    added with the old parts frozen, a per-modality drift monitor; save/load, machine-wise
    evaluation (``mmlab maintenance ...``, ``mmlab bench maintenance``).
"""
