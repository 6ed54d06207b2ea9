"""The bad-input matrix (issue 17): every public entry point that takes a signal, the same cases.

Each case (flat, all-NaN, partly NaN, inf, empty, too short, clipped, wrong rate, integer
dtype, wrong orientation, pure noise, and a few more) is fed to each entry point, and the
outcome must be exactly the one in ``tests/test_bad_input.expected.tsv``: an error of a
given type whose message contains a fragment (``SignalError: ...``), or a result described
by the entry point's summary (``0 peaks``, ``NaN quality=constant``, ...). Nothing may be a
confident number made up from a bad signal.

``python tests/test_bad_input.py`` prints the case x entry point -> outcome matrix as a
markdown table (``--write`` rewrites the expected table from the current outcomes, to be
reviewed in the diff).
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmlab.errors import MMLabError

EXPECTED = Path(__file__).with_suffix(".expected.tsv")


# --------------------------------------------------------------------------- good signals
def _ecg():
    from mmlab.synth.physio import simulate_ecg

    return simulate_ecg(duration=30.0, fs=250.0, heart_rate=70.0, seed=1)[0], 250.0


def _rr():
    from mmlab.synth.physio import simulate_ecg

    beats = simulate_ecg(duration=150.0, fs=100.0, heart_rate=70.0, seed=2)[1]
    return np.diff(beats), None


def _eda():
    from mmlab.synth.physio import simulate_eda

    return simulate_eda(duration=90.0, fs=8.0, scr_per_min=4.0, seed=3)[0], 8.0


def _resp():
    from mmlab.synth.physio import simulate_resp

    return simulate_resp(duration=60.0, fs=25.0, seed=4)[0], 25.0


def _eeg():
    rng = np.random.default_rng(5)
    t = np.arange(int(8 * 160)) / 160.0
    x = 10e-6 * np.sin(2 * np.pi * 10 * t)[:, None] + 5e-6 * rng.standard_normal((len(t), 4))
    return x, 160.0


def _audio():
    t = np.arange(8000) / 16000.0
    return 0.3 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) / 1.5, 16000.0


def _vibration():
    rng = np.random.default_rng(6)
    t = np.arange(8000) / 4000.0
    return np.sin(2 * np.pi * 50 * t) + 0.3 * rng.standard_normal(len(t)), 4000.0


BASES = {"ecg": _ecg, "rr": _rr, "eda": _eda, "resp": _resp, "eeg": _eeg, "audio": _audio,
         "vibration": _vibration}


# --------------------------------------------------------------------------- the cases
def _noise(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise at the modality's plausible scale (no physiological content)."""
    if kind == "rr":
        return 0.8 + 0.3 * rng.standard_normal(x.shape).clip(-2, 2)
    if kind == "eda":
        return 5.0 + 0.05 * rng.standard_normal(x.shape)
    if kind == "eeg":
        return 10e-6 * rng.standard_normal(x.shape)
    if kind == "audio":
        return 0.1 * rng.standard_normal(x.shape).clip(-5, 5)
    return rng.standard_normal(x.shape) * np.nanstd(x)


def _block(x: np.ndarray, value: float, frac: float = 0.2) -> np.ndarray:
    y = np.array(x, dtype=float)
    n = len(y)
    y[int(0.4 * n): int(0.4 * n) + max(int(frac * n), 1)] = value
    return y


def _int(kind: str, x: np.ndarray) -> np.ndarray:
    """The same signal as integer codes of a recorder (ADC counts, PCM, milliseconds)."""
    scale = {"ecg": 1000.0, "rr": 1000.0, "eda": 1000.0, "resp": 1000.0, "eeg": 1e7,
             "audio": 32767.0, "vibration": 1000.0}[kind]
    return np.round(np.asarray(x) * scale).astype(np.int16 if kind != "rr" else np.int64)


def _clip(x: np.ndarray) -> np.ndarray:
    return np.minimum(x, np.percentile(x, 80, axis=0))


CASES = {
    "flat": lambda k, x, fs, r: (np.full_like(np.asarray(x, dtype=float), float(np.median(x))), fs),
    "all NaN": lambda k, x, fs, r: (np.full_like(np.asarray(x, dtype=float), np.nan), fs),
    "partly NaN": lambda k, x, fs, r: (_block(x, np.nan), fs),
    "inf": lambda k, x, fs, r: (_block(x, np.inf, 0.0), fs),
    "empty": lambda k, x, fs, r: (np.asarray(x)[:0], fs),
    "too short": lambda k, x, fs, r: (np.asarray(x)[: (5 if fs is None else max(int(0.5 * fs), 3))], fs),
    "clipped": lambda k, x, fs, r: (_clip(np.asarray(x)), fs),
    "wrong rate": lambda k, x, fs, r: (x, None if fs is None else fs / 1000.0),
    "integer dtype": lambda k, x, fs, r: (_int(k, x), fs),
    "wrong orientation": lambda k, x, fs, r: (np.asarray(x).T if np.ndim(x) == 2 else np.asarray(x)[None, :], fs),
    "pure noise": lambda k, x, fs, r: (_noise(k, np.asarray(x), r), fs),
    # our own
    "x1000 units": lambda k, x, fs, r: (np.asarray(x, dtype=float) * 1000.0, fs),
    "negative offset": lambda k, x, fs, r: (np.asarray(x, dtype=float) - 10.0 * np.nanmax(np.abs(x)), fs),
    "lead-off 1e-6 noise": lambda k, x, fs, r: (1e-6 * r.standard_normal(np.shape(x)), fs),
    "strings": lambda k, x, fs, r: (np.asarray(x).astype(str), fs),
}


# --------------------------------------------------------------------------- entry points
def _n(a) -> str:
    return f"{len(a)}"


def _num(v, fmt="{:.3g}") -> str:
    return "NaN" if not np.isfinite(v) else fmt.format(v)


def _detect_r_peaks(x, fs):
    from mmlab.bio import ecg

    return f"{_n(ecg.detect_r_peaks(x, fs))} peaks"


def _hrv_time(x, fs):
    from mmlab.bio import ecg

    h = ecg.hrv_time(x)
    return f"hr {_num(h['hr_mean'], '{:.0f}')} bpm, n {h['n_intervals']}"


def _hrv_frequency(x, fs):
    from mmlab.bio import ecg

    f = ecg.hrv_frequency(x)
    return f"lf/hf {_num(f['lf_hf'], '{:.2f}')}, quality={f['quality']}"


def _ecg_quality(x, fs):
    from mmlab.bio import ecg

    return f"sqi {_num(ecg.quality(x, fs), '{:.2f}')}"


def _detect_scr(x, fs):
    from mmlab.bio import eda

    scr = eda.detect_scr(x, fs)
    return f"{len(scr)} SCRs ({int(scr['clipped'].sum())} clipped, amplitude NaN)"


def _eda_process(x, fs):
    from mmlab.bio import eda

    s = eda.process(x, fs).summary()
    return f"{_num(s['scr_count'], '{:.0f}')} SCRs, clipped {s['clipped_frac']:.0%}"


def _window_features(kind):
    def run(x, fs):
        from mmlab import features as F
        from mmlab.recording import Recording, Stream

        s = Stream(kind, x, kind, rate=fs)
        t = F.window_features(Recording("S1", [s]), 20.0, 10.0)
        feat = {"ecg": "hr_mean", "eda": "scr_count"}[kind]
        ok = t[f"{kind}__q_ok"].astype(bool)
        v = t[f"{kind}__{feat}"]
        return f"q_ok {int(ok.sum())}/{len(t)}, {feat} NaN {int(v.isna().sum())}/{len(t)}"
    return run


def _resp_rate(x, fs):
    from mmlab.bio import resp

    troughs, _ = resp.detect_breaths(x, fs)
    return f"{_num(resp.breathing_rate(troughs, fs), '{:.0f}')} /min"


def _check_eeg(x, fs):
    from mmlab.bio import eeg

    return "ok {}x{}".format(*eeg.check_eeg(x, fs)[0].shape)


def _to_raw(x, fs):
    from mmlab.bio import eeg

    raw = eeg.to_raw(x, fs, montage=None)
    return f"Raw {len(raw.ch_names)} ch x {raw.n_times}"


def _band_power(x, fs):
    from mmlab.bio import eeg

    x = np.asarray(x)
    p, _ = eeg.band_power(x.T if x.ndim == 2 else x, fs, relative=True)
    return f"alpha rel {_num(float(np.mean(p[..., 2])), '{:.2f}')}"


def _peak_level(x, fs):
    from mmlab import voice

    return f"{_num(voice.peak_level_db(x, fs), '{:.0f}')} dBFS"


def _mfcc(x, fs):
    from mmlab import voice

    m = voice.mfcc(x, fs)
    return f"finite {np.isfinite(m).all()}"


def _resample(x, fs):
    from mmlab.align import resample
    from mmlab.recording import Stream

    s = resample(Stream("x", x, "ecg", rate=fs), fs / 2)
    return f"{s.n_samples} samples, NaN {int(np.isnan(s.data).sum())}"


def _vib_features(x, fs):
    from mmlab import sensors

    t = sensors.windowed_features(x, fs, window_s=0.5)
    return "quality " + ",".join(sorted(set(t["quality"])))


def _vib_spectrum(x, fs):
    from mmlab import sensors

    f, p = sensors.spectrum(x, fs)
    return f"peak {_num(float(f[np.argmax(p)]), '{:.0f}')} Hz"


#: entry point -> (modality of its input, call returning a short summary)
ENTRIES = {
    "ecg.detect_r_peaks": ("ecg", _detect_r_peaks),
    "ecg.quality": ("ecg", _ecg_quality),
    "ecg.hrv_time": ("rr", _hrv_time),
    "ecg.hrv_frequency": ("rr", _hrv_frequency),
    "eda.detect_scr": ("eda", _detect_scr),
    "eda.process": ("eda", _eda_process),
    "window_features[ecg]": ("ecg", _window_features("ecg")),
    "window_features[eda]": ("eda", _window_features("eda")),
    "resp.breathing_rate": ("resp", _resp_rate),
    "eeg.check_eeg": ("eeg", _check_eeg),
    "eeg.to_raw": ("eeg", _to_raw),
    "eeg.band_power": ("eeg", _band_power),
    "voice.peak_level_db": ("audio", _peak_level),
    "voice.mfcc": ("audio", _mfcc),
    "align.resample": ("ecg", _resample),
    "sensors.windowed_features": ("vibration", _vib_features),
    "sensors.spectrum": ("vibration", _vib_spectrum),
}

_BASE_CACHE: dict = {}


def make_case(case: str, kind: str):
    if kind not in _BASE_CACHE:
        _BASE_CACHE[kind] = BASES[kind]()
    x, fs = _BASE_CACHE[kind]
    return CASES[case](kind, np.array(x, copy=True), fs, np.random.default_rng(17))


def outcome(entry: str, case: str) -> str:
    """What ``entry`` does with ``case``: ``"<ErrorType>: <message>"`` or its summary."""
    kind, call = ENTRIES[entry]
    x, fs = make_case(case, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(x, fs)
        except MMLabError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a library error is an outcome to report
            return f"UNHANDLED {type(exc).__name__}: {exc}"


def load_expected() -> list[dict]:
    with EXPECTED.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def matches(actual: str, expected: str) -> bool:
    """An error matches when its type is the same and the expected fragment is in its
    message; a summary must be equal."""
    if ": " in expected and expected.split(": ", 1)[0].endswith("Error"):
        etype, frag = expected.split(": ", 1)
        return actual.startswith(etype + ": ") and frag in actual
    return actual == expected


# --------------------------------------------------------------------------- the test
_ROWS = load_expected() if EXPECTED.exists() else []


def test_the_table_covers_every_case_and_entry_point():
    assert {(r["entry"], r["case"]) for r in _ROWS} == {(e, c) for e in ENTRIES for c in CASES}


@pytest.mark.parametrize("row", _ROWS, ids=[f"{r['entry']}|{r['case']}" for r in _ROWS])
def test_bad_input_outcome(row):
    actual = outcome(row["entry"], row["case"])
    assert not actual.startswith("UNHANDLED"), actual
    assert matches(actual, row["expected"]), f"expected {row['expected']!r}, got {actual!r}"


# ------------------------------------------------ the window_features repros
def _eda_table(x, fs):
    from mmlab import features as F
    from mmlab.recording import Recording, Stream

    return F.window_features(Recording("S1", [Stream("eda", x, "eda", rate=fs)]), 60.0, 10.0)


def test_window_features_of_eda_noise_count_no_scrs():
    fs = 8.0
    x = 5.0 + 0.05 * np.random.default_rng(0).standard_normal(int(120 * fs))
    t = _eda_table(x, fs)
    assert (t["eda__scr_count"] == 0).all()            # was 46 per window with q_ok = 1


def test_window_features_of_clipped_eda_are_nan_and_flagged():
    from mmlab.synth.physio import simulate_eda

    fs = 8.0
    x, _ = simulate_eda(duration=180.0, fs=fs, scr_per_min=4.0, seed=3)
    clipped = np.minimum(x, np.percentile(x, 80))
    t = _eda_table(clipped, fs)
    cut = t["eda__q_clipped"] > 0.01
    assert cut.any()
    assert t.loc[cut, "eda__scr_count"].isna().all() and t.loc[cut, "eda__scr_amp_mean"].isna().all()
    assert not t.loc[cut, "eda__q_ok"].any()
    good = _eda_table(x, fs)
    assert good["eda__q_ok"].all() and good["eda__scr_count"].notna().all()


# --------------------------------------------------------------------------- the matrix
def _short(text: str, width: int = 60) -> str:
    """A table cell: the error type and the message without the name of the input."""
    if ": " in text and text.split(": ", 1)[0].endswith("Error"):
        etype, msg = text.split(": ", 1)
        head = msg.split(": ", 1)
        if len(head) == 2 and " is " not in head[0] and not any(c.isdigit() for c in head[0]):
            msg = head[1]        # drop the name of the input ("EEG: ", "hrv_time: ")
        text = f"{etype}: {msg}"
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str]) -> int:
    rows = []
    for entry in ENTRIES:
        for case in CASES:
            rows.append({"entry": entry, "case": case, "actual": outcome(entry, case)})
    if "--write" in argv:
        old = {(r["entry"], r["case"]): r["expected"] for r in _ROWS}
        with EXPECTED.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(["entry", "case", "expected"])
            for r in rows:
                exp = old.get((r["entry"], r["case"]))
                if exp is None or not matches(r["actual"], exp):
                    a = r["actual"]
                    if ": " in a and a.split(": ", 1)[0].endswith("Error"):
                        etype, msg = a.split(": ", 1)
                        exp = f"{etype}: {msg[:70]}"
                    else:
                        exp = a
                w.writerow([r["entry"], r["case"], exp])
    expected = {(r["entry"], r["case"]): r["expected"] for r in load_expected()} if EXPECTED.exists() else {}
    cases = list(CASES)
    print("| entry point | " + " | ".join(cases) + " |")
    print("|---|" + "---|" * len(cases))
    bad = 0
    for entry in ENTRIES:
        cells = []
        for case in cases:
            r = next(x for x in rows if x["entry"] == entry and x["case"] == case)
            ok = matches(r["actual"], expected.get((entry, case), "\0"))
            bad += not ok
            cells.append(_short(r["actual"]) + ("" if ok else " **(≠ expected)**"))
        print(f"| `{entry}` | " + " | ".join(cells) + " |")
    print(f"\n{len(rows)} outcomes, {bad} differ from {EXPECTED.name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
