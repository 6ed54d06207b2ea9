"""Readers for real datasets, the dataset registry and ``describe`` (chapter 05_data).

Every reader takes an explicit path and returns the project's schema
(:class:`~mmlab.recording.Recording` / :class:`~mmlab.recording.Cohort`) for signals, or a
DataFrame for text and audio file tables. Nothing downloads unless
:func:`mmlab.io.registry.fetch` is called. :func:`data_dir` gives ``$MMLAB_DATA_DIR``, the
conventional home of the real datasets, without the readers depending on it.

=================  ============================================  =============================
dataset            reader(s)                                     returns
=================  ============================================  =============================
Empatica E4        read_e4(folder)                               Recording
Stress-Predict     read_stress_predict(root)                     Cohort (one per subject)
WESAD              read_wesad(root), read_wesad_subject(path)    Cohort / Recording
PhysioNet (WFDB)   read_wfdb(folder), read_wfdb_record(path)     Cohort / Recording
eegmmidb           read_eegmmidb(root), read_eegmmidb_run(path)  Cohort / Recording
FSDD               fsdd_table(root), read_fsdd(root)             DataFrame / Cohort (speakers)
Emo-DB             emodb_table(root), read_emodb(root)           DataFrame / Cohort (speakers)
RAVDESS            ravdess_table(root), read_ravdess(root)       DataFrame / Cohort (actors)
MELD (text)        load_meld(root)                               DataFrame
UCI sentiment      load_uci_sentiment(root)                      DataFrame
CWRU bearings      read_cwru(root), read_cwru_file(path)         Cohort / Recording
any of the above   describe(path), format_description(info)      dict / str
=================  ============================================  =============================

Annotation conventions: ``kind="phase"`` protocol phases, ``kind="label"`` whole-recording
or per-trial labels, ``kind="event"`` triggers and markers (E4 tags, ECG beat
annotations), ``kind="utterance"`` what is said. See ``datasets/README.md``.
"""

from __future__ import annotations

from mmlab.io._common import DATA_DIR_ENV, data_dir
from mmlab.io.audio import (
    emodb_table,
    fsdd_table,
    load_audio,
    load_clips,
    parse_emodb_name,
    parse_fsdd_name,
    parse_ravdess_name,
    ravdess_table,
    read_emodb,
    read_fsdd,
    read_ravdess,
)
from mmlab.io.cwru import parse_cwru_name, read_cwru, read_cwru_file
from mmlab.io.describe import FORMATS, describe, detect_format, format_description
from mmlab.io.eeg import MOTOR_IMAGERY_RUNS, read_eegmmidb, read_eegmmidb_run, read_motor_imagery
from mmlab.io.empatica import read_e4, read_stress_predict, read_stress_predict_subject, read_time_logs
from mmlab.io.physionet import read_wfdb, read_wfdb_record
from mmlab.io.registry import dataset_info, fetch, list_datasets
from mmlab.io.text import fix_c1_controls, load_meld, load_uci_sentiment
from mmlab.io.wesad import read_wesad, read_wesad_subject

__all__ = [
    "DATA_DIR_ENV", "data_dir",
    "read_e4", "read_stress_predict", "read_stress_predict_subject", "read_time_logs",
    "read_wesad", "read_wesad_subject",
    "read_wfdb", "read_wfdb_record",
    "read_eegmmidb", "read_eegmmidb_run", "read_motor_imagery", "MOTOR_IMAGERY_RUNS",
    "fsdd_table", "emodb_table", "ravdess_table", "read_fsdd", "read_emodb", "read_ravdess",
    "load_audio", "load_clips", "parse_fsdd_name", "parse_emodb_name", "parse_ravdess_name",
    "load_meld", "load_uci_sentiment", "fix_c1_controls",
    "read_cwru", "read_cwru_file", "parse_cwru_name",
    "describe", "format_description", "detect_format", "FORMATS",
    "fetch", "list_datasets", "dataset_info",
]
