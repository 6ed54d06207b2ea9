"""Shared representations of two modalities (chapters 21_cca and 22_contrastive).

* :mod:`~mmlab.represent.cca` -- linear CCA (scikit-learn) and deep CCA (PyTorch), planted
  views with known canonical correlations;
* :mod:`~mmlab.represent.contrastive` -- CLIP-style dual encoders trained with InfoNCE and
  a learnable temperature, zero-shot labels from text prompts;
* :mod:`~mmlab.represent.pairs` -- paired views from recordings (voice <-> transcript,
  physiology <-> voice, window statistics), group splits, per-subject z-scores;
* :mod:`~mmlab.represent.retrieval` -- cross-modal retrieval: ranks, recall@k, chance.

Importing this package is cheap: PyTorch, librosa and the text encoder are imported by the
functions that need them.
"""

from mmlab.represent.cca import (DeepCCA, LinearCCA, canonical_correlations, cca_closed_form, cca_loss,
                                 make_correlated_views, make_fusion_task, make_nonlinear_views)
from mmlab.represent.contrastive import (CALL_DESCRIPTIONS, CALL_PROMPTS, ContrastiveAligner, DualEncoder,
                                         info_nce, make_paired_views, zero_shot_predict, zero_shot_scores)
from mmlab.represent.pairs import (PHYSIO_STREAMS, VOICE_FEATURES, Pairs, call_center_pairs, concat_pairs,
                                   split_by_group, stress_pairs, utterance_voice_features, window_views,
                                   zscore_by_group)
from mmlab.represent.retrieval import (chance_recall, recall_at_k, retrieval_ranks, retrieval_report,
                                       similarity)

__all__ = [
    "LinearCCA", "DeepCCA", "cca_closed_form", "cca_loss", "canonical_correlations",
    "make_correlated_views", "make_nonlinear_views", "make_fusion_task",
    "info_nce", "DualEncoder", "ContrastiveAligner", "zero_shot_scores", "zero_shot_predict",
    "make_paired_views", "CALL_PROMPTS", "CALL_DESCRIPTIONS",
    "Pairs", "split_by_group", "zscore_by_group", "window_views", "concat_pairs",
    "utterance_voice_features", "VOICE_FEATURES", "call_center_pairs",
    "PHYSIO_STREAMS", "stress_pairs",
    "similarity", "retrieval_ranks", "recall_at_k", "chance_recall", "retrieval_report",
]
