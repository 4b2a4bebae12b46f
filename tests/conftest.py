"""Shared fixtures: tiny synthetic data roots and MPII annotation fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dpupose.data.synthetic import SynthSpec, generate


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data root: 24 training and 12 validation scenes."""
    root = tmp_path_factory.mktemp("synth") / "root"
    return generate(root, SynthSpec(seed=7, num_train=24, num_valid=12, image_size=128), workers=1)


def write_mpii_json(root: Path, records: list[dict], split: str = "valid") -> Path:
    (root / "annot").mkdir(parents=True, exist_ok=True)
    path = root / "annot" / f"{split}.json"
    path.write_text(json.dumps(records))
    return path


def mat_struct(**fields: object) -> np.ndarray:
    """A 1x1 MATLAB struct for scipy.io.savemat."""
    arr = np.empty((1, 1), dtype=[(k, "O") for k in fields])
    for k, v in fields.items():
        arr[0, 0][k] = v
    return arr


def mat_struct_array(items: list[dict]) -> np.ndarray:
    keys = list(items[0])
    arr = np.empty((1, len(items)), dtype=[(k, "O") for k in keys])
    for i, item in enumerate(items):
        for k in keys:
            arr[0, i][k] = item[k]
    return arr
