"""The calibration set (dpupose.quant.data) on a stand-in data loader: which split and how many scenes it asks
for, which samples it draws and the batches it gives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import dpupose.data.sources
import dpupose.eval.evaluate
from dpupose.errors import DataError, UsageError
from dpupose.quant.data import calibration_batches, open_calibration_set

RECORDS = [f"r{i}" for i in range(10)]


@pytest.fixture
def loads(monkeypatch, tmp_path):
    """Each load_data call's (kind, split, data_root, count); the split has RECORDS, images in tmp_path."""
    calls = []

    def load_data(kind, split, data_root, count=None):
        calls.append((kind, split, data_root, count))
        if kind == "mpii" and data_root is None:
            raise UsageError("MPII data needs --data-root DIR")
        return SimpleNamespace(records=list(RECORDS), image_dir=tmp_path)

    monkeypatch.setattr(dpupose.data.sources, "load_data", load_data)
    return calls


def test_the_samples_are_drawn_once_each_in_the_split_s_order_by_the_seed(loads, tmp_path):
    whole = open_calibration_set("mpii", "root", 10)
    assert (whole.records, whole.image_dir) == (RECORDS, tmp_path)  # all ten, none twice, in order
    four = open_calibration_set("mpii", "root", 4, seed=1).records
    assert len(set(four)) == 4 and four == [r for r in RECORDS if r in four]
    assert open_calibration_set("mpii", "root", 4, seed=1).records == four
    assert {tuple(open_calibration_set("mpii", "root", 4, seed=s).records) for s in range(2, 6)} - {tuple(four)}
    with pytest.raises(DataError) as err:
        open_calibration_set("mpii", "root", 11, split="valid", count_option="--num")
    assert str(err.value) == (
        "the mpii valid split has only 10 samples but 11 were asked for calibration; lower --num or use a larger "
        "data set"
    )
    assert loads[-1] == ("mpii", "valid", "root", None)


def test_the_synthetic_set_generated_on_first_use_holds_at_least_256_scenes(loads):
    for n in (3, 10):
        open_calibration_set("synthetic", None, n)
    with pytest.raises(DataError, match="only 10 samples but 300 were asked"):
        open_calibration_set("synthetic", None, 300)
    open_calibration_set("synthetic", "root", 3)  # a root of its own: all it holds, generated once already
    assert [c[3] for c in loads] == [256, 256, 300, None]
    assert {c[1] for c in loads} == {"train"}


def test_a_count_below_1_an_unknown_kind_and_a_missing_root_are_named(loads):
    with pytest.raises(UsageError, match=r"^--num-calib must be at least 1, got 0$"):
        open_calibration_set("synthetic", "root", 0)
    with pytest.raises(UsageError, match=r"^--num must be at least 1, got -2$"):
        list(calibration_batches("synthetic", "root", -2, 8, count_option="--num"))
    with pytest.raises(UsageError, match=r"^unknown calibration data 'coco'; use one of: synthetic, mpii$"):
        open_calibration_set("coco", "root", 2)
    assert loads == []
    with pytest.raises(UsageError) as err:
        open_calibration_set("mpii", None, 2)
    assert type(err.value) is UsageError  # not made a DataError
    assert str(err.value) == "calibration samples (the train split of the mpii data): MPII data needs --data-root DIR"


def test_calibration_batches_are_float32_c_arrays_of_the_batch_size_of_the_seeded_samples(loads, monkeypatch):
    seen = []

    def iter_batches(records, image_dir, input_size, batch_size):
        seen.append(records)
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            images = np.asfortranarray(np.full((len(chunk), 3, input_size, input_size), start, np.float64))
            yield images, None, None, None

    monkeypatch.setattr(dpupose.eval.evaluate, "iter_batches", iter_batches)
    batches = list(calibration_batches("mpii", "root", 7, 5, batch_size=3, seed=2))
    assert [b.shape for b in batches] == [(3, 3, 5, 5), (3, 3, 5, 5), (1, 3, 5, 5)]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    assert [float(b[0, 0, 0, 0]) for b in batches] == [0.0, 3.0, 6.0]
    assert seen == [open_calibration_set("mpii", "root", 7, seed=2).records]
    assert seen != [open_calibration_set("mpii", "root", 7, seed=0).records]
