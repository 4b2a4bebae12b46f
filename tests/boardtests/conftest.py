"""Fixtures for the SD card and deployment tests: the image, overlay and model folders, a real wheel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from boardtests.helpers import DATA, FINGERPRINT, MISSING, build_image, run, xmodel_bytes


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> Path:
    if MISSING:
        pytest.skip(f"needs {', '.join(MISSING)}")
    folder = tmp_path_factory.mktemp("image")
    passwd = "root:x:0:0:root:/root:/bin/bash\nxilinx:x:1000:1000:xilinx:/home/xilinx:/bin/bash\n"
    return build_image(folder / "pynq.img", {"etc/passwd": passwd, "etc/hostname": "pynq\n"})


@pytest.fixture
def image(base_image: Path, tmp_path: Path) -> Path:
    """A private copy of the base image (sparse)."""
    dest = tmp_path / "pynq.img"
    run("cp", "--sparse=always", str(base_image), str(dest))
    return dest


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    folder = tmp_path / "overlay"
    folder.mkdir()
    (folder / "dpu.bit").write_bytes(os.urandom(300_000))
    (folder / "dpu.hwh").write_text("<HWH>dpu</HWH>\n" * 200)
    (folder / "dpu.xclbin").write_bytes(os.urandom(200_000))
    (folder / "arch.json").write_text(json.dumps({"fingerprint": FINGERPRINT}))
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "cpu").mkdir(parents=True)

    def tensor(name: str, shape: list[int], layout: str, dtype: str, fix_point: int | None) -> dict:
        return {"name": name, "shape": shape, "layout": layout, "dtype": dtype, "fix_point": fix_point}

    subgraphs = [
        {"name": "dpu0", "device": "dpu", "file": "dpu0.onnx", "xmodel": "dpu_part.xmodel",
         "inputs": [tensor("image", [1, 64, 64, 3], "NHWC", "int8", 5)],
         "outputs": [tensor("features", [1, 8, 8, 16], "NHWC", "int8", 4)]},
        {"name": "cpu0", "device": "cpu", "file": "cpu/head part.onnx",
         "inputs": [tensor("features", [1, 16, 8, 8], "NCHW", "float32", None)],
         "outputs": [tensor("heatmaps", [1, 16, 16, 16], "NCHW", "float32", None),
                     tensor("coords", [1, 16, 2], "NCD", "float32", None)]},
    ]  # fmt: skip
    plan = {
        "version": 1,
        "generated_by": "dpupose split",
        "fingerprint": FINGERPRINT,
        "dpu_config": "u96v2-b1600-pynq",
        "model": {"name": "tiny", "input_size": 64, "sha256": "0" * 64},
        "input": {"name": "image", "shape": [1, 3, 64, 64], "layout": "NCHW", "dtype": "float32",
                  "preprocessing": "imagenet"},
        "outputs": {"coords": "coords", "heatmaps": "heatmaps"},
        "subgraphs": subgraphs,
    }  # fmt: skip
    (folder / "plan.json").write_text(json.dumps(plan))  # a plan as `dpupose run` reads it (no file sha256s)
    (folder / "dpu_part.xmodel").write_bytes(xmodel_bytes("tiny", 150_000))  # one XIR would read
    (folder / "dpu0.onnx").write_bytes(os.urandom(20_000))
    (folder / "cpu" / "head part.onnx").write_bytes(os.urandom(50_000))  # a space in the name
    return folder


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A real wheel of this package, built once per session."""
    from dpupose.board.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def lsblk_fixture():
    def load(name: str) -> str:
        return (DATA / "lsblk" / name).read_text()

    return load


@pytest.fixture
def cli(monkeypatch):
    """Run `dpupose` in-process with only this area's commands registered; returns the exit code."""
    import dpupose.cli

    monkeypatch.setattr(dpupose.cli, "COMMAND_MODULES", ("sdcard", "deploy"))
    return dpupose.cli.main


@pytest.fixture(scope="session")
def base_xz(base_image: Path) -> bytes:
    """The base image, xz-compressed (once per session: compression is the slow part)."""
    import lzma

    return lzma.compress(base_image.read_bytes(), preset=0)
