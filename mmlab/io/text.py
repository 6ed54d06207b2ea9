"""Text datasets: MELD utterances and UCI Sentiment Labelled Sentences (chapter 05_data).

Text has no sampled stream, so these readers return a DataFrame with one row per text,
always with the columns ``text``, ``label``, ``source`` and ``split`` (``""`` where the
dataset has no official split), plus the dataset's own columns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import existing_dir, existing_file

# ---------------------------------------------------------------------------- MELD
MELD_EMOTIONS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
MELD_SENTIMENTS = ("neutral", "positive", "negative")
MELD_SPLITS = ("train", "dev", "test")
_MELD_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
_SRT_TIME = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*$")


def fix_c1_controls(text: str) -> str:
    """Replace C1 control characters (U+0080-U+009F) by the Windows-1252 characters they
    were meant to be (U+0092 -> ’, U+0085 -> …, U+0097 -> —); others are left as they are."""
    if not isinstance(text, str) or not any("\x80" <= ch <= "\x9f" for ch in text):
        return text
    out = []
    for ch in text:
        if "\x80" <= ch <= "\x9f":
            try:
                ch = bytes([ord(ch)]).decode("cp1252")
            except UnicodeDecodeError:
                pass  # 0x81, 0x8D, 0x8F, 0x90, 0x9D have no cp1252 meaning
        out.append(ch)
    return "".join(out)


def _srt_seconds(value: str, where: str) -> float:
    m = _SRT_TIME.match(str(value))
    if not m:
        raise DataFormatError(f"{where}: time {value!r} is not HH:MM:SS,mmm")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def load_meld(root: str | Path, splits: Iterable[str] | None = None) -> pd.DataFrame:
    """MELD utterances from ``{train,dev,test}_sent_emo.csv`` under ``root``.

    Columns: text (C1 control characters repaired), label (emotion), sentiment, speaker,
    dialogue_id, utterance_id, season, episode, start_s / end_s (clip times in the
    episode, seconds), split, source (``"meld"``), sr_no. Rows keep file order.
    """
    root = existing_dir(root, "MELD")
    wanted = list(splits) if splits is not None else [s for s in MELD_SPLITS
                                                      if (root / f"{s}_sent_emo.csv").is_file()]
    if not wanted:
        raise DatasetError(f"MELD: no train/dev/test_sent_emo.csv under {root}")
    frames = []
    for split in wanted:
        if split not in MELD_SPLITS:
            raise DatasetError(f"MELD: unknown split {split!r} (known: {', '.join(MELD_SPLITS)})")
        path = existing_file(root / f"{split}_sent_emo.csv", f"MELD {split}")
        frames.append(_read_meld_csv(path, split))
    return pd.concat(frames, ignore_index=True)


def _read_meld_csv(path: Path, split: str) -> pd.DataFrame:
    raw = None
    for encoding in ("utf-8", "cp1252"):
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except Exception as exc:  # ParserError, EmptyDataError ...
            raise DataFormatError(f"{path}: not a readable CSV table ({type(exc).__name__}: {exc})") from exc
    if raw is None:
        raise DataFormatError(f"{path}: neither UTF-8 nor Windows-1252 text")
    missing = [c for c in _MELD_COLUMNS if c not in raw]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; has {list(raw.columns)}")
    out = pd.DataFrame({"text": raw["Utterance"].map(fix_c1_controls)})
    for col, known, name in (("Emotion", MELD_EMOTIONS, "emotion"), ("Sentiment", MELD_SENTIMENTS, "sentiment")):
        values = raw[col].str.strip().str.lower()
        bad = ~values.isin(known)
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataFormatError(f"{path}, row {i + 2}: unknown {name} {raw[col].iloc[i]!r} "
                                  f"(known: {', '.join(known)})")
        out["label" if name == "emotion" else name] = values.to_numpy()
    out["speaker"] = raw["Speaker"].map(fix_c1_controls).str.strip()
    for col, name in (("Dialogue_ID", "dialogue_id"), ("Utterance_ID", "utterance_id"),
                      ("Season", "season"), ("Episode", "episode")):
        if col not in raw:
            continue
        num = pd.to_numeric(raw[col], errors="coerce")
        if num.isna().any():
            i = int(np.argmax(num.isna().to_numpy()))
            raise DataFormatError(f"{path}, row {i + 2}: {col} {raw[col].iloc[i]!r} is not an integer")
        out[name] = num.astype(int).to_numpy()
    for col, name in (("StartTime", "start_s"), ("EndTime", "end_s")):
        if col in raw:
            out[name] = [_srt_seconds(v, f"{path}, row {i + 2}, {col}") for i, v in enumerate(raw[col])]
    out["split"] = split
    out["source"] = "meld"
    if "Sr No." in raw:
        out["sr_no"] = pd.to_numeric(raw["Sr No."], errors="coerce").astype("Int64").to_numpy()
    return out


# ------------------------------------------------------------------- UCI sentiment
UCI_FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}


def load_uci_sentiment(root: str | Path, sources: Iterable[str] | None = None) -> pd.DataFrame:
    """UCI Sentiment Labelled Sentences (Kotzias et al. 2015) from ``root``.

    ``root`` holds ``amazon_cells_labelled.txt``, ``imdb_labelled.txt`` and
    ``yelp_labelled.txt`` (``sentence<TAB>label`` per line, read with quoting off, as some
    sentences contain quotes). Columns: text (surrounding spaces stripped; C1 control
    characters repaired as in :func:`fix_c1_controls`, e.g. ``is\x85was`` -> ``is…was``), label (int, 1
    positive / 0 negative), sentiment (``"positive"``/``"negative"``), source
    (amazon/imdb/yelp), split (``""``: no official split), line (1-based line in its file).
    """
    root = existing_dir(root, "UCI sentiment")
    if (root / "sentiment labelled sentences").is_dir():
        root = root / "sentiment labelled sentences"
    wanted = list(sources) if sources is not None else [s for s, f in UCI_FILES.items()
                                                        if (root / f).is_file()]
    if not wanted:
        raise DatasetError(f"UCI sentiment: none of {list(UCI_FILES.values())} under {root}")
    frames = []
    for src in wanted:
        if src not in UCI_FILES:
            raise DatasetError(f"UCI sentiment: unknown source {src!r} (known: {', '.join(UCI_FILES)})")
        frames.append(_read_uci(existing_file(root / UCI_FILES[src], f"UCI sentiment {src}"), src))
    return pd.concat(frames, ignore_index=True)


def _read_uci(path: Path, source: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, sep="\t", header=None, names=["text", "label"], quoting=3,
                          dtype=str, keep_default_na=False, encoding="utf-8", on_bad_lines="error",
                          skip_blank_lines=False)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc})") from exc
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{path}: a line has more than one tab ({exc}); expected 'sentence<TAB>label'") from exc
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: empty file") from None
    raw = raw[~((raw["text"] == "") & (raw["label"] == ""))]  # blank lines (e.g. a final newline)
    label = raw["label"].str.strip()
    bad = ~label.isin(["0", "1"])
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        line = int(raw.index[i]) + 1
        raise DataFormatError(f"{path}, line {line}: label {raw['label'].iloc[i]!r} is not 0 or 1 "
                              "(missing tab or truncated line?)")
    lab = label.astype(int).to_numpy()
    text = raw["text"].map(fix_c1_controls).str.strip()
    return pd.DataFrame({"text": text.to_numpy(), "label": lab,
                         "sentiment": np.where(lab == 1, "positive", "negative"),
                         "source": source, "split": "", "line": raw.index.to_numpy() + 1})
