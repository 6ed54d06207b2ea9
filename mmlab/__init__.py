"""mmlab: a workbook and toolkit for multimodal data analysis.

The package follows the data flow: recording -> align -> features -> represent ->
fuse -> evaluate -> systems -> deploy. Importing ``mmlab`` is cheap: heavy
libraries (torch, mne, librosa) are imported by the modules that need them.
"""

from __future__ import annotations

import os
import random

from mmlab.errors import (
    DataFormatError,
    DatasetError,
    MMLabError,
    NotebookError,
    SchemaError,
    SignalError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "seed_everything",
    "MMLabError",
    "SchemaError",
    "DataFormatError",
    "DatasetError",
    "SignalError",
    "NotebookError",
]


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and (if it is already imported) PyTorch; return the seed.

    Introduced in chapter 00_welcome. Torch is only seeded when something has imported
    it, so calling this does not pay torch's import time in notebooks that never use it.
    """
    import sys

    import numpy as np

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return seed
