"""A synthetic EEG with a known answer: lateralised motor-imagery desynchronisation (chapter 14_eeg).

:func:`simulate_motor_imagery` plants the effect every motor-imagery decoder looks for:
imagining one hand lowers the mu rhythm (9-13 Hz) over the *opposite* motor cortex (C3
for the right hand, C4 for the left). It returns an ``mne.io.Raw`` annotated like the
real eegmmidb runs (``left_fist``, ``right_fist``, ``rest``), so the chapter's pipeline
(:mod:`mmlab.bio.eeg`) runs unchanged on real or synthetic data. :data:`SIM_CHANNELS`
lists its montage.
"""

from __future__ import annotations

import numpy as np

from mmlab.errors import SignalError
from mmlab.io.eeg import standard_montage_name
from mmlab.validate import check_rate

__all__ = ["SIM_CHANNELS", "simulate_motor_imagery"]


#: Channels of the synthetic montage: a 10-20 / 10-10 subset around the motor cortex.
SIM_CHANNELS = ("Fz", "F3", "F4", "FC3", "FCz", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
                "CP3", "CPz", "CP4", "P3", "Pz", "P4", "O1", "O2")


def simulate_motor_imagery(n_trials: int = 40, rate: float = 160.0, erd: float = 0.5, seed: int = 0,
                           trial_s: float = 4.0, rest_s: float = 4.0):
    """A synthetic EEG with planted lateralised mu desynchronisation, as an ``mne.io.Raw``.

    Introduced in chapter 14_eeg as the known answer for the decoders of
    :mod:`mmlab.bio.eeg`. Two mu-rhythm sources (narrow-band 9-13 Hz noise, about 10 µV)
    sit under C3 (left motor cortex) and C4 (right), an occipital alpha source under O1/O2, each spread over the scalp by a
    Gaussian fall-off with distance; every channel adds its own 1/f background and a common
    drift. Trials alternate ``left_fist``/``right_fist`` (shuffled, balanced) with
    ``rest`` in between, annotated like eegmmidb. Imagining one hand lowers the mu
    amplitude of the *opposite* hemisphere by ``erd`` (0.5: to half) from 0.5 s after the
    cue to its end (event-related desynchronisation). Volts; montage positions set.
    """
    import mne
    from scipy import signal as sps

    fs = check_rate(rate, "simulate_motor_imagery")
    if 13.0 >= fs / 2:
        raise SignalError(f"simulated EEG sampled at {fs:g} Hz cannot carry 13 Hz (the mu band): "
                          f"the Nyquist frequency is {fs / 2:g} Hz; wrong sampling rate?")
    if not 0 <= erd < 1:
        raise SignalError(f"simulate_motor_imagery: erd must be in [0, 1), got {erd!r}")
    rng = np.random.default_rng(seed)
    n_trials = int(n_trials)
    labels = rng.permutation(np.repeat(["left_fist", "right_fist"], [n_trials - n_trials // 2, n_trials // 2]))
    period = trial_s + rest_s
    total = rest_s + n_trials * period
    n = int(round(total * fs))
    t = np.arange(n) / fs

    def narrow(lo, hi):
        sos = sps.butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
        z = sps.sosfiltfilt(sos, rng.standard_normal(n))
        return z / z.std()

    gain = {"C3": np.ones(n), "C4": np.ones(n)}
    onsets = rest_s + np.arange(n_trials) * period
    ramp = 0.25  # s, smooth onset/offset of the desynchronisation
    for onset, lab in zip(onsets, labels):
        side = "C4" if lab == "left_fist" else "C3"  # contralateral
        a, b = onset + 0.5, onset + trial_s
        w = np.clip(np.minimum((t - a) / ramp, (b - t) / ramp), 0.0, 1.0)
        gain[side] = gain[side] * (1 - erd * w)
    mu_amp, alpha_amp = 10e-6, 8e-6
    sources = {"C3": mu_amp * gain["C3"] * narrow(9.0, 13.0),
               "C4": mu_amp * gain["C4"] * narrow(9.0, 13.0),
               "Oz": alpha_amp * narrow(8.5, 11.5)}
    montage = mne.channels.make_standard_montage(standard_montage_name())
    pos = montage.get_positions()["ch_pos"]
    xyz = np.array([pos[c] for c in SIM_CHANNELS])
    data = np.zeros((len(SIM_CHANNELS), n))
    for src, sig in sources.items():
        d = np.linalg.norm(xyz - pos[src], axis=1)
        data += np.exp(-(d ** 2) / (2 * 0.03 ** 2))[:, None] * sig[None, :]
    f = np.fft.rfftfreq(n, 1 / fs)
    shape = 1.0 / np.sqrt(np.maximum(f, 1.0))  # 1/f power
    for i in range(len(SIM_CHANNELS)):
        spec = np.fft.rfft(rng.standard_normal(n)) * shape
        z = np.fft.irfft(spec, n)
        data[i] += 4e-6 * z / z.std()
    data += 2e-6 * np.cumsum(rng.standard_normal(n)) / np.sqrt(fs * 60)  # slow common drift
    info = mne.create_info(list(SIM_CHANNELS), fs, ch_types="eeg")
    raw = mne.io.RawArray(data, info, verbose="ERROR")
    raw.set_montage(montage, verbose="ERROR")
    rest_onsets = np.concatenate([[0.0], onsets + trial_s])[:n_trials]
    raw.set_annotations(mne.Annotations(
        np.concatenate([onsets, rest_onsets]),
        np.concatenate([np.full(n_trials, trial_s), np.full(n_trials, rest_s)]),
        list(labels) + ["rest"] * n_trials))
    return raw
