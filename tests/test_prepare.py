"""The cached preparation of `dpupose bench` and `make demo` (dpupose.eval.prepare): what is reused, what is
made again, and the stand-in network."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from split_models import save

from dpupose import __version__
from dpupose.dpu.paths import HW_DIR_ENV, hw_dir
from dpupose.eval import prepare
from dpupose.split import partition
from dpupose.split.plan import load_plan

CONFIG = "u96v2-b1600-pynq"


def test_a_cached_quantization_without_its_qdq_model_is_made_again(tmp_path, monkeypatch):
    """The cache holds a quantization only with both its summary.json and its model_qdq.onnx: a folder with the
    summary alone (its model deleted, or a copy that left it out) is quantized again, not handed to split."""
    from dpupose.fsio import sha256_file
    from dpupose.quant import pipeline

    made: list[Path] = []

    def fake_quantize(cfg):
        made.append(Path(cfg.out))
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "summary.json").write_text("{}")
        (Path(cfg.out) / "model_qdq.onnx").write_text("")

    monkeypatch.setattr(pipeline, "quantize", fake_quantize)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"a checkpoint")
    key = prepare._key(sha256_file(ckpt), json.dumps(asdict(prepare.QuantSettings()), sort_keys=True), __version__)
    out = tmp_path / "cache" / "quantized" / f"model-{key}"
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}")  # no model_qdq.onnx beside it
    assert prepare.quantized(ckpt, cache=tmp_path / "cache") == out
    assert made == [out] and (out / "model_qdq.onnx").is_file()
    assert prepare.quantized(ckpt, cache=tmp_path / "cache") == out
    assert made == [out]  # now whole: reused


@pytest.fixture
def qdir(tmp_path):
    folder = tmp_path / "q"
    save("none", folder / "model_qdq.onnx")
    return folder


def record_splits(monkeypatch) -> list[partition.SplitOptions]:
    calls: list[partition.SplitOptions] = []
    real = partition.split_model

    def split_model(opts):
        calls.append(opts)
        return real(opts)

    monkeypatch.setattr(partition, "split_model", split_model)
    return calls


def test_a_split_plan_is_reused_and_an_unoptimized_one_is_kept_apart(qdir, tmp_path, monkeypatch):
    """The optimized and the default cut are two plans: asking for one after the other splits again into a
    folder of its own, and each reads back as what was asked for."""
    calls = record_splits(monkeypatch)
    cache = tmp_path / "cache"
    opt = prepare.split_plan(qdir, CONFIG, optimize=True, cache=cache)
    assert prepare.split_plan(qdir, CONFIG, optimize=True, cache=cache) == opt and len(calls) == 1
    plain = prepare.split_plan(qdir, CONFIG, optimize=False, cache=cache)
    assert len(calls) == 2 and plain != opt
    assert load_plan(opt).metadata["optimized"] is True
    assert load_plan(plain).metadata["optimized"] is False
    assert load_plan(plain).split_from(qdir / "model_qdq.onnx")


def test_a_cached_plan_of_a_configuration_edited_since_is_split_again(qdir, tmp_path, monkeypatch):
    """hw/dpu/configs/<name>.toml edited in place (here another clock, in a copy of hw/ named by
    $DPUPOSE_HW_DIR): the cache folder's name is the same, but the plan in it predicts for the old settings."""
    from dpupose.dpu.config import load_config

    calls = record_splits(monkeypatch)
    cache = tmp_path / "cache"
    first = prepare.split_plan(qdir, CONFIG, cache=cache)
    assert load_plan(first).metadata["dpu_config_options"]["clock_mhz"] == 200
    hw = tmp_path / "hw"
    shutil.copytree(hw_dir(), hw)
    toml = hw / "dpu" / "configs" / f"{CONFIG}.toml"
    toml.write_text(toml.read_text().replace("clock_mhz = 200", "clock_mhz = 300"))
    monkeypatch.setenv(HW_DIR_ENV, str(hw))
    assert load_config(CONFIG).clock_mhz == 300
    again = prepare.split_plan(qdir, CONFIG, cache=cache)
    assert again == first and len(calls) == 2
    assert load_plan(again).metadata["dpu_config_options"] == load_config(CONFIG).to_dict()


def test_a_cached_plan_of_another_model_is_split_again(qdir, tmp_path, monkeypatch):
    """A folder of the same name whose model_qdq.onnx is another model now: its cached plan is not reused."""
    calls = record_splits(monkeypatch)
    cache = tmp_path / "cache"
    folder = prepare.split_plan(qdir, CONFIG, cache=cache)
    save("none", qdir / "model_qdq.onnx", seed=1)
    assert not load_plan(folder).split_from(qdir / "model_qdq.onnx")
    assert prepare.split_plan(qdir, CONFIG, cache=cache) == folder and len(calls) == 2
    assert load_plan(folder).split_from(qdir / "model_qdq.onnx")


def test_torch_threads_are_given_back():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with prepare._torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_standin_is_made_once_in_eval_mode(tmp_path, monkeypatch):
    """The stand-in network is handed over in eval mode (its measured BatchNorm statistics in use, no dropout),
    and a second demo reuses the checkpoint the first made."""
    from dpupose.model.checkpoint import load_checkpoint
    from dpupose.model.pose import ModelConfig

    model = prepare.sane_random_model(ModelConfig(input_size=64, width_mult=0.25))
    assert not any(m.training for m in model.modules())
    path = prepare.standin_checkpoint(tmp_path / "standin.pt", input_size=64)
    loaded, state = load_checkpoint(path)
    assert state["standin"] is True and loaded.config.input_size == 64
    before = path.read_bytes()
    monkeypatch.setattr(prepare, "sane_random_model", lambda *a, **k: pytest.fail("made again"))
    assert prepare.standin_checkpoint(path, input_size=64) == path and path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "file_missing"])
def test_a_damaged_cached_plan_is_split_again(qdir, tmp_path, monkeypatch, damage):
    """A cached plan damaged since (its plan.json cut short, or a subgraph file gone: a full disk, an
    interrupted copy) is not reused, and is made again in its place: split itself refuses a folder holding a
    plan.json it cannot read ("remove the folder yourself, or choose another --out"), advice bench and the
    demo cannot take, since the cache folder is theirs and they have no --out for it."""
    calls = record_splits(monkeypatch)
    cache = tmp_path / "cache"
    folder = prepare.split_plan(qdir, CONFIG, cache=cache)
    if damage == "truncated":
        text = (folder / "plan.json").read_text()
        (folder / "plan.json").write_text(text[: len(text) // 2])
    else:
        (folder / load_plan(folder).subgraphs[0].file).unlink()
    assert prepare.split_plan(qdir, CONFIG, cache=cache) == folder and len(calls) == 2
    assert load_plan(folder).split_from(qdir / "model_qdq.onnx")
    assert all((folder / sg.file).is_file() for sg in load_plan(folder).subgraphs)


def test_a_damaged_cached_plan_killed_while_it_is_removed_is_split_again(qdir, tmp_path, monkeypatch):
    """The damaged cached plan is removed before it is split again; a kill (Ctrl-C, SIGTERM) during that removal
    left the folder without its plan.json but with its other files, which split refuses for good ('exists and is
    not an earlier split plan folder (it has no plan.json)'), so every later bench and make demo stopped there.
    The folder is now moved aside in one rename before it is removed: whatever is left of it is a temporary that
    the next split's clean-up removes, and the next run splits again in its place."""
    calls = record_splits(monkeypatch)
    cache = tmp_path / "cache"
    folder = prepare.split_plan(qdir, CONFIG, cache=cache)
    (folder / "plan.json").write_text("{")
    real_rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):  # plan.json goes first, then the kill
        Path(path, "plan.json").unlink(missing_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare.split_plan(qdir, CONFIG, cache=cache)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert prepare.split_plan(qdir, CONFIG, cache=cache) == folder and len(calls) == 2
    assert load_plan(folder).split_from(qdir / "model_qdq.onnx")
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([folder.name, f".{folder.name}.lock"])
