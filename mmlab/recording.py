"""The one schema: Stream, Recording, Cohort (chapter 05_data).

A **Stream** is what one sensor channel group on one device produced: samples along the
first axis, a sampling rate (or explicit timestamps for irregular streams such as beat
intervals), the start time on *its own device's clock*, channel names, units and a
modality. A **Recording** is one subject's session: named streams, time-stamped
annotations (phases, labels, utterance transcripts, events) on the session's reference
clock, and subject metadata. A **Cohort** is recordings plus a participants table.

Clocks. Every device has its own clock. ``Stream.start`` (and ``Stream.times`` for
irregular streams) are seconds on that device's clock; annotations are seconds on the
recording's reference clock (``Recording.t0`` gives the reference clock's origin as unix
time when it is known). Synthetic scenarios keep the true clock mapping of each device in
``Recording.meta["clock_truth"]`` so alignment can be scored: for device ``d``,
``device_time = offset_s + (1 + drift_ppm * 1e-6) * reference_time``.

On disk (``Cohort.save`` / ``Cohort.load``) the layout follows BIDS conventions::

    cohort/
      dataset_description.json      name, scenario, label names, generator settings
      participants.tsv              one row per subject (participant_id first)
      sub-<id>/
        sub-<id>_recording.json     subject metadata, t0, the list of streams
        sub-<id>_events.tsv         annotations: onset, duration, kind, label, text, ...
        sub-<id>_<stream>.json      stream sidecar: modality, rate, start, channels, units
        sub-<id>_<stream>.npy       regularly sampled signals (n_samples, n_channels) and image
                                    stacks; NumPy's format loads at memory speed, any dtype
        sub-<id>_<stream>.parquet   irregular streams: a ``time`` column plus one per channel
        sub-<id>_<stream>.wav       audio (float WAV: lossless)

Saving and loading are lossless (dtype, values, metadata), which a test checks for
every stream type.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError, SchemaError
from mmlab.validate import check_rate

FORMAT_NAME = "mmlab-cohort"
FORMAT_VERSION = 1

#: Modalities mmlab knows about. Others are allowed, but these get sensible defaults.
MODALITIES = (
    "ecg", "eda", "resp", "bvp", "ppg", "acc", "temp", "emg", "eeg", "hr", "ibi",
    "spo2", "bp", "audio", "text", "image", "vibration", "event", "other",
)

#: Annotation columns that are always present (extra columns are kept as they are).
ANNOTATION_COLUMNS = ("onset", "duration", "kind", "label", "text")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SchemaError(
            f"{what} name {name!r} is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


# --------------------------------------------------------------------------- Clock
#: Largest plausible clock drift (ppm); beyond it a "clock" is a unit mistake.
MAX_DRIFT_PPM = 1e5


#: What :func:`mmlab.align.fit_drift` and :func:`mmlab.align.estimate_clock` return beside
#: a clock: how well the line fits (``rmse_s``), how many lags it used, the lag track.
FIT_DIAGNOSTICS = ("rmse_s", "n_used", "n", "track")


@dataclass(frozen=True)
class Clock:
    """A device clock against the reference clock: the one clock model of mmlab.

    ``device_time = offset_s + (1 + drift_ppm * 1e-6) * reference_time``; ``jitter_s`` is
    the standard deviation of the noise on the device's timestamps (0 for an ideal
    clock). Values are coerced to float and checked (finite, ``|drift_ppm| < 1e5``,
    ``jitter_s >= 0``); a bad value raises :class:`~mmlab.errors.SchemaError`.

    Examples
    --------
    >>> c = Clock.from_mapping({"offset_s": 2, "drift_ppm": 100})
    >>> round(c.to_device(10.0), 6), round(c.to_reference(c.to_device(10.0)), 6)
    (12.001, 10.0)
    >>> Clock.from_mapping({"offset": 2.0})
    Traceback (most recent call last):
    ...
    mmlab.errors.SchemaError: clock: unknown key 'offset' (expected offset_s, drift_ppm, jitter_s)
    """

    offset_s: float = 0.0
    drift_ppm: float = 0.0
    jitter_s: float = 0.0

    def __post_init__(self, where: str = "clock"):
        vals = {}
        for key in ("offset_s", "drift_ppm", "jitter_s"):
            v = getattr(self, key)
            try:
                if isinstance(v, (bool, np.bool_)) or isinstance(v, str):
                    raise TypeError
                v = float(v)
            except (TypeError, ValueError):
                raise SchemaError(f"{where}: {key} must be a number, got {v!r}") from None
            if not math.isfinite(v):
                raise SchemaError(f"{where}: {key} must be finite, got {v!r}")
            vals[key] = v
        if abs(vals["drift_ppm"]) >= MAX_DRIFT_PPM:
            raise SchemaError(f"{where}: drift_ppm {vals['drift_ppm']!r} is not plausible "
                              f"(|drift| must be below {MAX_DRIFT_PPM:g} ppm)")
        if vals["jitter_s"] < 0:
            raise SchemaError(f"{where}: jitter_s must be >= 0, got {vals['jitter_s']!r}")
        for key, v in vals.items():
            object.__setattr__(self, key, v)

    @classmethod
    def from_mapping(cls, value: Any, device: str | None = None) -> "Clock":
        """A Clock from ``{"offset_s", "drift_ppm", "jitter_s"}`` (missing keys are 0).

        Also accepts a :class:`Clock`, an ``(offset_s, drift_ppm)`` pair or a lone offset,
        as :func:`mmlab.align.align_recording` does. The fit diagnostics that
        :func:`mmlab.align.fit_drift` and :func:`mmlab.align.estimate_clock` return beside
        the clock (:data:`FIT_DIAGNOSTICS`) are ignored, so their result can be passed on
        as it is. Any other key, and non-numbers, raise :class:`~mmlab.errors.SchemaError`
        naming ``device``.

        >>> Clock.from_mapping({"offset_s": 2.0, "drift_ppm": 50.0, "rmse_s": 0.01})
        Clock(offset_s=2.0, drift_ppm=50.0, jitter_s=0.0)
        >>> Clock.from_mapping({"offset": 2.0}, "wrist")
        Traceback (most recent call last):
        ...
        mmlab.errors.SchemaError: clock of device 'wrist': unknown key 'offset' (expected offset_s, drift_ppm, jitter_s)
        """
        where = "clock" if device is None else f"clock of device {device!r}"
        if isinstance(value, Clock):
            return value
        if isinstance(value, Mapping):
            unknown = [k for k in value
                       if k not in ("offset_s", "drift_ppm", "jitter_s") + FIT_DIAGNOSTICS]
            if unknown:
                raise SchemaError(f"{where}: unknown key {unknown[0]!r} "
                                  "(expected offset_s, drift_ppm, jitter_s)")
            kw = {k: v for k, v in value.items() if k not in FIT_DIAGNOSTICS}
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            kw = {"offset_s": value[0], "drift_ppm": value[1]}
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            kw = {"offset_s": value}
        else:
            raise SchemaError(f"{where}: expected a mapping {{offset_s, drift_ppm, jitter_s}}, "
                              f"an (offset_s, drift_ppm) pair or an offset, got {value!r}")
        obj = cls.__new__(cls)
        for key in ("offset_s", "drift_ppm", "jitter_s"):
            object.__setattr__(obj, key, kw.get(key, 0.0))
        obj.__post_init__(where)
        return obj

    @property
    def scale(self) -> float:
        """Device seconds per reference second, ``1 + drift_ppm * 1e-6``."""
        return 1.0 + self.drift_ppm * 1e-6

    def to_device(self, t_ref):
        """Device time(s) of reference time(s) ``t_ref`` (a float for a scalar)."""
        if np.ndim(t_ref):
            return self.offset_s + self.scale * np.asarray(t_ref, dtype=float)
        return self.offset_s + self.scale * float(t_ref)

    def to_reference(self, t_dev):
        """Reference time(s) of device time(s) ``t_dev`` (a float for a scalar)."""
        if np.ndim(t_dev):
            return (np.asarray(t_dev, dtype=float) - self.offset_s) / self.scale
        return (float(t_dev) - self.offset_s) / self.scale

    def truth(self) -> dict:
        """The ``Recording.meta["clock_truth"]`` entry of this clock."""
        return {"offset_s": self.offset_s, "drift_ppm": self.drift_ppm, "jitter_s": self.jitter_s}


REFERENCE_CLOCK = Clock()


# --------------------------------------------------------------------------- Stream
@dataclass(eq=False)
class Stream:
    """Samples from one device, along the first axis.

    Parameters
    ----------
    name: stream name, unique within a recording (e.g. ``"chest_ecg"``).
    data: array of shape ``(n_samples,)``, ``(n_samples, n_channels)`` or
        ``(n_samples, ...)`` (e.g. image frames ``(n, height, width)``). 1-D data is
        stored as a single channel ``(n, 1)``.
    modality: what was measured (see :data:`MODALITIES`).
    rate: sampling rate in Hz, or ``None`` for an irregular stream, which then needs
        ``times``.
    start: time of the first sample in seconds on the device's clock (regular streams).
    times: for irregular streams, strictly increasing sample times in seconds on the
        device's clock; ``start`` is then ``times[0]``.
    channels: one name per channel (defaults to the stream name, or ``ch0``, ``ch1``...).
    units: one unit per channel, or one string for all.
    device: name of the device whose clock ``start``/``times`` are on.
    meta: free-form metadata (kept through save/load; must be JSON-serialisable).
    """

    name: str
    data: np.ndarray
    modality: str
    rate: float | None = None
    start: float = 0.0
    times: np.ndarray | None = None
    channels: list[str] | None = None
    units: list[str] | str | None = None
    device: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.name, "stream")
        where = f"stream {self.name!r}"
        data = np.asarray(self.data)
        if data.ndim == 0:
            raise SchemaError(f"{where}: data is a scalar, expected samples along axis 0")
        if data.ndim == 1:
            data = data[:, None]
        if data.dtype == object or not (
            np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_
        ):
            raise SchemaError(f"{where}: data must be numeric, got dtype {data.dtype}")
        self.data = data
        if not isinstance(self.modality, str) or not self.modality:
            raise SchemaError(f"{where}: modality must be a non-empty string")
        if self.rate is None:
            if self.times is None:
                raise SchemaError(f"{where}: give a sampling rate or explicit timestamps")
            times = np.asarray(self.times, dtype=np.float64).reshape(-1)
            if len(times) != len(data):
                raise SchemaError(
                    f"{where}: {len(times)} timestamps for {len(data)} samples"
                )
            if not np.all(np.isfinite(times)):
                raise SchemaError(f"{where}: timestamps contain NaN or inf")
            if len(times) > 1 and np.any(np.diff(times) <= 0):
                bad = int(np.argmax(np.diff(times) <= 0))
                raise SchemaError(
                    f"{where}: timestamps are not strictly increasing "
                    f"(sample {bad + 1} at {times[bad + 1]!r} s after {times[bad]!r} s)"
                )
            self.times = times
            self.start = float(times[0]) if len(times) else float(self.start)
        else:
            if self.times is not None:
                raise SchemaError(f"{where}: give either a rate or timestamps, not both")
            self.rate = check_rate(self.rate, where, error=SchemaError)
        if not math.isfinite(float(self.start)):
            raise SchemaError(f"{where}: start time must be finite, got {self.start!r}")
        self.start = float(self.start)
        n_ch = self.n_channels
        if self.channels is None:
            self.channels = [self.name] if n_ch == 1 else [f"ch{i}" for i in range(n_ch)]
        self.channels = [str(c) for c in self.channels]
        if len(self.channels) != n_ch:
            raise SchemaError(f"{where}: {len(self.channels)} channel names for {n_ch} channels")
        if len(set(self.channels)) != len(self.channels):
            raise SchemaError(f"{where}: channel names are not unique: {self.channels}")
        if self.units is None:
            self.units = [""] * n_ch
        elif isinstance(self.units, str):
            self.units = [self.units] * n_ch
        self.units = [str(u) for u in self.units]
        if len(self.units) != n_ch:
            raise SchemaError(f"{where}: {len(self.units)} units for {n_ch} channels")
        self.device = str(self.device or "")
        self.meta = dict(self.meta or {})

    # -- shape and time -------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels: the second axis for 2-D data, 1 for image-like stacks."""
        return int(self.data.shape[1]) if self.data.ndim == 2 else 1

    @property
    def is_regular(self) -> bool:
        return self.rate is not None

    @property
    def duration(self) -> float:
        """Seconds covered: n/rate for regular streams, last minus first time otherwise."""
        if self.rate is not None:
            return self.n_samples / self.rate
        return float(self.times[-1] - self.times[0]) if self.n_samples > 1 else 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration

    def timestamps(self) -> np.ndarray:
        """Sample times in seconds on the device clock."""
        if self.rate is None:
            return self.times
        return self.start + np.arange(self.n_samples) / self.rate

    def channel(self, name: str) -> np.ndarray:
        """The samples of one channel by name."""
        try:
            i = self.channels.index(name)
        except ValueError:
            raise SchemaError(
                f"stream {self.name!r} has no channel {name!r}; channels: {self.channels}"
            ) from None
        return self.data[:, i]

    def slice(self, t_start: float, t_end: float) -> "Stream":
        """The samples with ``t_start <= t < t_end`` (device-clock seconds), as a new Stream."""
        t = self.timestamps()
        i0, i1 = np.searchsorted(t, [t_start, t_end], side="left")
        if self.rate is None:
            return self.replace(data=self.data[i0:i1], times=t[i0:i1])
        return self.replace(data=self.data[i0:i1], start=self.start + i0 / self.rate)

    def replace(self, **changes: Any) -> "Stream":
        """A copy with some fields changed (like :func:`dataclasses.replace`)."""
        fields = dict(
            name=self.name, data=self.data, modality=self.modality, rate=self.rate,
            start=self.start, times=self.times, channels=list(self.channels),
            units=list(self.units), device=self.device, meta=dict(self.meta),
        )
        fields.update(changes)
        if "data" in changes and "channels" not in changes:
            n = np.asarray(changes["data"])
            n_ch = n.shape[1] if n.ndim == 2 else 1
            if n_ch != len(fields["channels"]):
                fields["channels"] = None
                fields["units"] = None
        return Stream(**fields)

    def to_frame(self) -> pd.DataFrame:
        """Samples as a DataFrame indexed by device time (2-D streams only)."""
        if self.data.ndim != 2:
            raise SchemaError(f"stream {self.name!r}: {self.data.ndim}-D data has no table form")
        return pd.DataFrame(self.data, columns=self.channels,
                            index=pd.Index(self.timestamps(), name="time"))

    def equals(self, other: "Stream") -> bool:
        """Exact equality of data (dtype and values, NaN == NaN), timing and metadata."""
        if not isinstance(other, Stream):
            return False
        same_times = (
            (self.times is None and other.times is None)
            or (self.times is not None and other.times is not None
                and np.array_equal(self.times, other.times))
        )
        return (
            self.name == other.name and self.modality == other.modality
            and self.rate == other.rate and self.start == other.start and same_times
            and self.channels == other.channels and self.units == other.units
            and self.device == other.device and _jsonable(self.meta) == _jsonable(other.meta)
            and self.data.dtype == other.data.dtype and self.data.shape == other.data.shape
            and np.array_equal(self.data, other.data, equal_nan=self.data.dtype.kind in "fc")
        )

    def __repr__(self) -> str:
        timing = f"{self.rate:g} Hz" if self.rate is not None else "irregular"
        return (f"Stream({self.name!r}, {self.modality}, {timing}, {self.n_samples} samples, "
                f"{self.duration:.1f} s, channels={self.channels})")

    def sidecar(self) -> dict:
        """The JSON description of this stream (without the samples)."""
        return _jsonable({
            "name": self.name, "modality": self.modality, "SamplingFrequency": self.rate,
            "StartTime": self.start, "Columns": self.channels, "Units": self.units,
            "Device": self.device, "dtype": str(self.data.dtype), "shape": list(self.data.shape),
            "irregular": self.rate is None, "meta": self.meta,
        })


# ---------------------------------------------------------------------- annotations
def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def make_annotations(rows: Iterable[Mapping[str, Any]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """Validate and normalise an annotations table.

    Columns: ``onset`` (s, reference clock), ``duration`` (s, >= 0), ``kind``
    (``"phase"``, ``"label"``, ``"utterance"``, ``"event"``...), ``label`` and ``text``
    (strings, may be empty); extra columns (e.g. ``speaker``) are kept. Rows are sorted by
    onset (stable, so equal onsets keep their order).
    """
    df = pd.DataFrame(rows if rows is not None else [], copy=True)
    for col in ANNOTATION_COLUMNS:
        if col not in df:
            df[col] = 0.0 if col == "duration" else ("" if col != "onset" else np.nan)
    if len(df):
        onset = pd.to_numeric(df["onset"], errors="coerce")
        duration = pd.to_numeric(df["duration"], errors="coerce")
        bad = ~np.isfinite(onset.to_numpy(dtype=float))
        if bad.any():
            i = int(np.argmax(bad))
            raise SchemaError(f"annotation {i}: onset {_plain(df['onset'].iloc[i])!r} is not a finite number")
        badd = ~(np.isfinite(duration.to_numpy(dtype=float)) & (duration.to_numpy(dtype=float) >= 0))
        if badd.any():
            i = int(np.argmax(badd))
            raise SchemaError(f"annotation {i}: duration {_plain(df['duration'].iloc[i])!r} must be a number >= 0")
        df["onset"] = onset.astype(float)
        df["duration"] = duration.astype(float)
    else:
        df["onset"] = df["onset"].astype(float)
        df["duration"] = df["duration"].astype(float)
    for col in ("kind", "label", "text"):
        df[col] = df[col].fillna("").astype(str)
    extra = [c for c in df.columns if c not in ANNOTATION_COLUMNS]
    df = df[list(ANNOTATION_COLUMNS) + extra]
    return df.sort_values("onset", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- Recording
@dataclass(eq=False)
class Recording:
    """One subject's session: streams, annotations and subject metadata.

    ``annotations`` is a DataFrame (see :func:`make_annotations`) on the reference clock;
    ``t0`` is the reference clock's origin as unix seconds, if known; ``meta`` holds
    subject metadata and, for synthetic data, ground truth (``clock_truth``, ``dropouts``).
    """

    subject: str
    streams: dict[str, Stream] = field(default_factory=dict)
    annotations: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    t0: float | None = None

    def __post_init__(self) -> None:
        _check_name(str(self.subject), "subject")
        self.subject = str(self.subject)
        if isinstance(self.streams, (list, tuple)):
            streams = {}
            for s in self.streams:
                if s.name in streams:
                    raise SchemaError(f"recording {self.subject!r}: two streams named {s.name!r}")
                streams[s.name] = s
            self.streams = streams
        for key, s in self.streams.items():
            if not isinstance(s, Stream):
                raise SchemaError(f"recording {self.subject!r}: stream {key!r} is not a Stream")
            if key != s.name:
                raise SchemaError(f"recording {self.subject!r}: stream stored as {key!r} is named {s.name!r}")
        self.annotations = make_annotations(self.annotations)
        self.meta = dict(self.meta or {})

    def __getitem__(self, name: str) -> Stream:
        try:
            return self.streams[name]
        except KeyError:
            raise SchemaError(
                f"recording {self.subject!r} has no stream {name!r}; streams: {sorted(self.streams)}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.streams

    def add_stream(self, stream: Stream) -> None:
        if stream.name in self.streams:
            raise SchemaError(f"recording {self.subject!r} already has a stream {stream.name!r}")
        self.streams[stream.name] = stream

    def add_annotations(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> None:
        self.annotations = make_annotations(pd.concat(
            [self.annotations, make_annotations(rows)], ignore_index=True))

    def by_modality(self, modality: str) -> list[Stream]:
        return [s for s in self.streams.values() if s.modality == modality]

    def phases(self, kind: str = "phase") -> pd.DataFrame:
        """The annotations of one kind (default: protocol phases)."""
        return self.annotations[self.annotations["kind"] == kind].reset_index(drop=True)

    def label_at(self, t: np.ndarray | float, kind: str = "phase", default: str = "") -> np.ndarray:
        """The label of the ``kind`` annotation covering each reference time ``t``."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = np.full(t.shape, default, dtype=object)
        rows = self.phases(kind)
        for onset, end, label in zip(rows["onset"].to_numpy(),
                                     (rows["onset"] + rows["duration"]).to_numpy(), rows["label"]):
            out[(t >= onset) & (t < end)] = label
        return out

    @property
    def duration(self) -> float:
        """Seconds spanned by all streams: latest end minus earliest start.

        Streams may sit on different device clocks; for a synthetic recording with clock
        offsets this is therefore approximate (by the offsets), which is fine for display.
        """
        if not self.streams:
            return 0.0
        return (max(s.end for s in self.streams.values())
                - min(s.start for s in self.streams.values()))

    def equals(self, other: "Recording") -> bool:
        return (
            isinstance(other, Recording) and self.subject == other.subject
            and self.t0 == other.t0 and _jsonable(self.meta) == _jsonable(other.meta)
            and sorted(self.streams) == sorted(other.streams)
            and all(self.streams[k].equals(other.streams[k]) for k in self.streams)
            and _frames_equal(self.annotations, other.annotations)
        )

    def __repr__(self) -> str:
        return (f"Recording({self.subject!r}, streams={list(self.streams)}, "
                f"{len(self.annotations)} annotations, {self.duration:.0f} s)")

    # -- persistence ----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write this recording as ``folder/sub-<subject>/`` (see the module docstring)."""
        sub = Path(folder) / f"sub-{self.subject}"
        sub.mkdir(parents=True, exist_ok=True)
        prefix = f"sub-{self.subject}"
        files = []
        for s in self.streams.values():
            files.append(_save_stream(s, sub, prefix))
        _write_tsv(self.annotations, sub / f"{prefix}_events.tsv")
        (sub / f"{prefix}_recording.json").write_text(json.dumps(_jsonable({
            "subject": self.subject, "t0": self.t0, "meta": self.meta, "streams": files,
        }), indent=1))
        return sub

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False) -> "Recording":
        """Read a recording written by :meth:`save` from its ``sub-<id>`` folder.

        ``mmap=True`` memory-maps the ``.npy`` signals read-only instead of reading them:
        opening is instant and pages are read when touched (for recordings larger than
        memory); the files must then stay in place while the arrays are used.
        """
        sub = Path(folder)
        found = sorted(sub.glob("sub-*_recording.json"))
        if not found:
            raise DataFormatError(f"{sub}: no sub-*_recording.json, not a saved mmlab recording")
        info = _read_json(found[0])
        prefix = found[0].name[: -len("_recording.json")]
        streams = [_load_stream(sub, prefix, name, mmap) for name in info.get("streams", [])]
        events = sub / f"{prefix}_events.tsv"
        if not events.is_file():  # save() always writes one, if only a header
            raise DataFormatError(f"{events}: file is missing; a saved recording always has "
                                  "its annotations table (possibly empty)")
        ann = _read_events(events)
        return cls(subject=info["subject"], streams=streams, annotations=ann,
                   meta=info.get("meta", {}), t0=info.get("t0"))


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                      check_dtype=False, check_exact=True)
        return True
    except AssertionError:
        return False


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.17g")


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                           dtype={"kind": str, "label": str, "text": str, "participant_id": str})
    except Exception as exc:  # pandas raises many types for a broken file
        raise DataFormatError(f"{path}: not a readable TSV table ({exc})") from exc


def _read_events(path: Path) -> pd.DataFrame:
    """An ``events.tsv`` as an annotations table; a file without the annotation columns
    (or with values that are not annotations) is a DataFormatError naming the file, so
    annotations never vanish silently."""
    table = _read_tsv(path)
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise DataFormatError(
            f"{path}: not an annotations table: columns {', '.join(missing)} are missing "
            f"(found {', '.join(map(str, table.columns)) or 'none'}; expected "
            f"{', '.join(ANNOTATION_COLUMNS)})"
        )
    try:
        return make_annotations(table)
    except SchemaError as exc:
        raise DataFormatError(f"{path}: {exc}") from exc


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc


def _save_stream(s: Stream, folder: Path, prefix: str) -> str:
    side = s.sidecar()
    stem = folder / f"{prefix}_{s.name}"
    integer_rate = s.rate is not None and float(s.rate).is_integer()
    wav_subtypes = {"float32": "FLOAT", "float64": "DOUBLE", "int16": "PCM_16", "int32": "PCM_32"}
    if (s.modality == "audio" and integer_rate and s.data.ndim == 2
            and str(s.data.dtype) in wav_subtypes and s.n_channels <= 8):
        import soundfile as sf

        side["file"] = stem.name + ".wav"
        sf.write(stem.with_suffix(".wav"), s.data, int(s.rate), subtype=wav_subtypes[str(s.data.dtype)])
    elif s.data.ndim > 2 or s.times is None:
        side["file"] = stem.name + ".npy"
        np.save(stem.with_suffix(".npy"), s.data, allow_pickle=False)
        if s.times is not None:
            np.save(folder / f"{stem.name}_times.npy", s.times, allow_pickle=False)
            side["times_file"] = f"{stem.name}_times.npy"
    else:
        side["file"] = stem.name + ".parquet"
        cols = {"time": s.times, **{f"c{i}": s.data[:, i] for i in range(s.n_channels)}}
        pd.DataFrame(cols).to_parquet(stem.with_suffix(".parquet"), index=False)
    stem.with_suffix(".json").write_text(json.dumps(side, indent=1))
    return s.name


def _load_stream(folder: Path, prefix: str, name: str, mmap: bool = False) -> Stream:
    side_path = folder / f"{prefix}_{name}.json"
    side = _read_json(side_path)
    path = folder / side.get("file", "")
    if not path.is_file():
        raise DataFormatError(f"{side_path}: data file {side.get('file')!r} is missing")
    times = None
    try:
        if path.suffix == ".wav":
            import soundfile as sf

            data, rate = sf.read(path, dtype=side["dtype"], always_2d=True)
            if rate != side["SamplingFrequency"]:
                raise DataFormatError(f"{path}: WAV rate {rate} Hz but sidecar says {side['SamplingFrequency']} Hz")
        elif path.suffix == ".npy":
            data = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
            if side.get("times_file"):
                times = np.load(folder / side["times_file"], allow_pickle=False)
        else:
            table = pd.read_parquet(path)
            if side.get("irregular"):
                times = table.pop("time").to_numpy()
            data = table.to_numpy()
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read stream {name!r} ({exc})") from exc
    if list(data.shape) != list(side["shape"]) or str(data.dtype) != side["dtype"]:
        raise DataFormatError(
            f"{path}: stream {name!r} has shape {list(data.shape)} {data.dtype}, sidecar says "
            f"{side['shape']} {side['dtype']} (truncated or edited file?)"
        )
    return Stream(
        name=side["name"], data=data, modality=side["modality"],
        rate=side["SamplingFrequency"], start=side["StartTime"], times=times,
        channels=side["Columns"], units=side["Units"], device=side.get("Device", ""),
        meta=side.get("meta", {}),
    )


# ----------------------------------------------------------------------------- Cohort
@dataclass(eq=False)
class Cohort:
    """Recordings of several subjects plus a participants table.

    ``participants`` has one row per subject with ``participant_id`` as its first column
    (e.g. ``sex``, ``age``, site); ``meta`` holds dataset-level information such as the
    scenario name, ``label_names`` and the generator's knobs.
    """

    recordings: list[Recording] = field(default_factory=list)
    participants: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recordings = list(self.recordings)
        ids = [r.subject for r in self.recordings]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise SchemaError(f"cohort: duplicate subjects {sorted(dup)}")
        self.participants = _participants_table(self.participants, ids)
        self.meta = dict(self.meta or {})

    @property
    def subjects(self) -> list[str]:
        return [r.subject for r in self.recordings]

    def __len__(self) -> int:
        return len(self.recordings)

    def __iter__(self) -> Iterator[Recording]:
        return iter(self.recordings)

    def __getitem__(self, key: int | str) -> Recording:
        if isinstance(key, str):
            for r in self.recordings:
                if r.subject == key:
                    return r
            raise SchemaError(f"cohort has no subject {key!r}; subjects: {self.subjects}")
        return self.recordings[key]

    def equals(self, other: "Cohort") -> bool:
        return (
            isinstance(other, Cohort) and _jsonable(self.meta) == _jsonable(other.meta)
            and _frames_equal(self.participants, other.participants)
            and len(self) == len(other)
            and all(a.equals(b) for a, b in zip(self.recordings, other.recordings))
        )

    def __repr__(self) -> str:
        name = self.meta.get("scenario") or self.meta.get("name") or "cohort"
        return f"Cohort({name!r}, {len(self)} subjects: {self.subjects[:5]}{'...' if len(self) > 5 else ''})"

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the cohort in the BIDS-style layout of the module docstring.

        Parameters
        ----------
        folder : str or Path
            The cohort folder. It must not exist yet or be empty, unless ``overwrite``.
        overwrite : bool, default False
            Replace an existing saved mmlab cohort at ``folder`` (its old subjects are
            removed, so none is left behind). A folder that is not an mmlab cohort is
            never deleted.

        Returns
        -------
        Path
            ``folder``, ready for :meth:`load`.

        Raises
        ------
        DatasetError
            ``folder`` is a file, is not empty (without ``overwrite``), is not an mmlab
            cohort (with ``overwrite``), or the disk is too full for the rest of the cohort.

        Examples
        --------
        >>> import tempfile
        >>> cohort = Cohort([Recording("01"), Recording("02")])
        >>> folder = cohort.save(Path(tempfile.mkdtemp()) / "demo")
        >>> sorted(p.name for p in folder.iterdir())
        ['dataset_description.json', 'participants.tsv', 'sub-01', 'sub-02']
        >>> Cohort([Recording("01")]).save(folder, overwrite=True) == folder
        True
        >>> Cohort.load(folder).subjects
        ['01']
        """
        writer = CohortWriter(folder, meta=self.meta, subjects=self.subjects, overwrite=overwrite)
        for r in self.recordings:
            writer.add(r)
        return writer.close(self.participants)

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False, allow_incomplete: bool = False) -> "Cohort":
        """Read a cohort written by :meth:`save` or :class:`CohortWriter`.

        Parameters
        ----------
        folder : str or Path
            A folder written by :meth:`save` (it has a ``dataset_description.json``).
        mmap : bool, default False
            Memory-map the ``.npy`` signals read-only (see :meth:`Recording.load`).
        allow_incomplete : bool, default False
            A cohort whose writing was interrupted (or is still running) is marked
            ``"complete": false`` in its description and is refused by default. With
            ``True``, the subjects written so far are loaded (``meta["complete"]`` is
            then ``False``).

        Returns
        -------
        Cohort
            Equal (:meth:`equals`) to the cohort that was saved.

        Raises
        ------
        DataFormatError
            The folder is not a saved mmlab cohort, is incomplete, or a file in it is
            malformed (the message names the file).

        Examples
        --------
        >>> import tempfile
        >>> cohort = Cohort([Recording("01", annotations=[{"onset": 0.0, "duration": 60.0,
        ...                                                "kind": "phase", "label": "rest"}])])
        >>> back = Cohort.load(cohort.save(Path(tempfile.mkdtemp()) / "demo"))
        >>> back.equals(cohort)
        True
        >>> back[0].phases()["label"].tolist()
        ['rest']
        """
        root = Path(folder)
        desc_path = root / "dataset_description.json"
        if not desc_path.is_file():
            raise DataFormatError(f"{root}: no dataset_description.json, not a saved mmlab cohort")
        desc = _read_json(desc_path)
        if desc.get("Format") != FORMAT_NAME:
            raise DataFormatError(f"{desc_path}: Format is {desc.get('Format')!r}, expected {FORMAT_NAME!r}")
        listed = [str(sid) for sid in desc.get("subjects", [])]
        complete = desc.get("complete", True) is not False
        if not complete:
            done = [sid for sid in listed if (root / f"sub-{sid}" / f"sub-{sid}_recording.json").is_file()]
            if not allow_incomplete:
                raise DataFormatError(
                    f"{root}: the cohort is incomplete ({len(done)} of {len(listed)} subjects "
                    "written; its writing was interrupted or is still running). Write it again "
                    "(mmlab data make ... --overwrite), or load the finished subjects with "
                    "Cohort.load(..., allow_incomplete=True)")
            listed = done
        recs = []
        for sid in listed:
            sub = root / f"sub-{sid}"
            if not sub.is_dir():
                raise DataFormatError(f"{root}: subject {sid!r} is listed but sub-{sid}/ is missing")
            recs.append(Recording.load(sub, mmap=mmap))
        part = _read_tsv(root / "participants.tsv") if (root / "participants.tsv").exists() else None
        meta = desc.get("meta", {})
        if not complete:
            meta = {**meta, "complete": False}
            if part is not None:
                part = part[part["participant_id"].astype(str).isin(listed)]
                if set(part["participant_id"].astype(str)) != set(listed):
                    part = None
        return cls(recordings=recs, participants=part, meta=meta)


def _participants_table(participants: pd.DataFrame | None, ids: list[str]) -> pd.DataFrame:
    """The participants table with ``participant_id`` (str) first, covering every subject."""
    if participants is None:
        participants = pd.DataFrame({"participant_id": ids})
    p = participants.copy()
    if "participant_id" not in p:
        raise SchemaError("cohort: participants table needs a 'participant_id' column")
    p["participant_id"] = p["participant_id"].astype(str)
    missing = set(ids) - set(p["participant_id"])
    if missing:
        raise SchemaError(f"cohort: subjects {sorted(missing)} are not in the participants table")
    return p[["participant_id"] + [c for c in p if c != "participant_id"]].reset_index(drop=True)


def _disk_free(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (a function, so tests can replace it)."""
    import shutil

    return int(shutil.disk_usage(path).free)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _prepare_folder(root: Path, overwrite: bool) -> None:
    """Make ``root`` an empty folder; replace an old mmlab cohort only when ``overwrite``."""
    import shutil

    if str(root) in ("", "."):
        raise DatasetError("cohort folder is empty or '.'; give a new folder name")
    for parent in [root, *root.parents]:
        if parent.exists() and not parent.is_dir():
            raise DatasetError(f"cannot write a cohort to {root}: {parent} is a file, not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise DatasetError(
                f"{root} already exists and is not empty; choose a new folder, or replace "
                "the cohort in it with overwrite=True (mmlab data make --overwrite)")
        desc = root / "dataset_description.json"
        try:
            is_cohort = desc.is_file() and json.loads(desc.read_text()).get("Format") == FORMAT_NAME
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            is_cohort = False
        if not is_cohort:
            raise DatasetError(f"{root} is not a saved mmlab cohort (no mmlab "
                               "dataset_description.json); refusing to delete it")
        shutil.rmtree(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the cohort folder {root}: {exc.strerror or exc}") from exc


class CohortWriter:
    """Write a cohort to disk one subject at a time (for cohorts larger than memory).

    The folder gets its ``dataset_description.json`` first, marked ``"complete": false``,
    then one ``sub-<id>/`` folder per :meth:`add`, then ``participants.tsv`` and the final
    description at :meth:`close`. An interrupted writer leaves a folder that
    :meth:`Cohort.load` refuses unless ``allow_incomplete=True``. After each subject the
    writer checks that the disk has room for the remaining subjects (at the mean size so
    far) and stops with a :class:`~mmlab.errors.DatasetError` if not.

    Parameters
    ----------
    folder : str or Path
        The cohort folder (see :meth:`Cohort.save` for ``overwrite``).
    meta : dict, optional
        Dataset-level metadata (``Cohort.meta``).
    subjects : list of str, optional
        The subjects that will be written, if known (for progress and the disk check).
    overwrite : bool, default False
        Replace an existing saved mmlab cohort at ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "big"
    >>> with CohortWriter(folder, meta={"name": "demo"}, subjects=["01", "02"]) as writer:
    ...     _ = writer.add(Recording("01"), {"age": 30})
    ...     _ = writer.add(Recording("02"), {"age": 41})
    >>> Cohort.load(folder).participants["age"].tolist()
    [30, 41]
    """

    def __init__(self, folder: str | Path, meta: Mapping[str, Any] | None = None,
                 subjects: Iterable[str] | None = None, overwrite: bool = False) -> None:
        self.root = Path(folder)
        self.meta = dict(meta or {})
        self.planned = None if subjects is None else [str(s) for s in subjects]
        self.written: list[str] = []
        self.rows: list[dict] = []
        self.bytes_written = 0
        self.closed = False
        _prepare_folder(self.root, overwrite)
        self._write_description(complete=False)

    def _write_description(self, complete: bool) -> None:
        subjects = self.written if complete or self.planned is None else self.planned
        (self.root / "dataset_description.json").write_text(json.dumps(_jsonable({
            "Name": self.meta.get("name", self.meta.get("scenario", "mmlab cohort")),
            "Format": FORMAT_NAME, "FormatVersion": FORMAT_VERSION, "complete": complete,
            "subjects": subjects, "meta": self.meta,
        }), indent=1))

    def add(self, recording: Recording, participant: Mapping[str, Any] | None = None) -> Path:
        """Write one subject's recording (and remember its participants row)."""
        if self.closed:
            raise SchemaError(f"cohort writer for {self.root} is closed")
        if recording.subject in self.written:
            raise SchemaError(f"cohort: duplicate subjects ['{recording.subject}']")
        sub = recording.save(self.root)
        self.written.append(recording.subject)
        self.rows.append({"participant_id": recording.subject, **dict(participant or {})})
        self.bytes_written += _folder_bytes(sub)
        if self.planned is not None:
            left = len(self.planned) - len(self.written)
            need = self.bytes_written / len(self.written) * left
            free = _disk_free(self.root)
            if left > 0 and need > free:
                raise DatasetError(
                    f"not enough disk space for {self.root}: the remaining {left} subjects need "
                    f"about {need / 1e9:.2f} GB, {free / 1e9:.2f} GB are free; "
                    f"{len(self.written)} of {len(self.planned)} subjects were written and the folder is marked incomplete")
        return sub

    def close(self, participants: pd.DataFrame | None = None) -> Path:
        """Write ``participants.tsv`` (default: the rows given to :meth:`add`) and mark the
        cohort complete. Returns the folder."""
        table = _participants_table(pd.DataFrame(self.rows) if participants is None else participants,
                                    self.written)
        _write_tsv(table, self.root / "participants.tsv")
        self._write_description(complete=True)
        self.closed = True
        return self.root

    def __enter__(self) -> "CohortWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.closed:
            self.close()
