"""`dpupose run` as the board runs it, on a tiny DPU -> CPU -> DPU -> CPU plan: no torch, no onnx package,
Python 3.10 syntax (tests/boardsafe.py). The shipped plan runs the same way, and under a real Python 3.10,
in test_board_runtime.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tinyplan
from boardsafe import check_parses_as_310, run_torch_free
from tinyplan import make_overlay


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("board")
    tinyplan.write_split_plan(root / "plan", xmodel=True)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (36, 48, 3), dtype=np.uint8))
    return {"root": root, "plan": root / "plan", "images": images, "overlay": make_overlay(root / "overlay")}


BACKENDS = ["cpu", "vart"]
if importlib.util.find_spec("dpupose.runtime.emulator") is not None:
    BACKENDS.append("emulate")


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_works_without_torch_and_parses_as_python_310(setup: dict[str, Path], backend: str) -> None:
    args = ["run", "--plan", str(setup["plan"]), "--backend", backend, "--source", str(setup["images"]), "--pipeline"]
    extra = None
    if backend == "vart":
        args += ["--overlay", str(setup["overlay"])]
        extra = str(tinyplan.FAKES)
    modules, out = run_torch_free(args, setup["root"], backend, extra, xrt=backend == "vart")
    assert len((out / "keypoints.jsonl").read_text().splitlines()) == 3
    expected = {"dpupose.cli", "dpupose.commands.run", "dpupose.split.plan", "dpupose.runtime.executor"}
    expected |= {"dpupose.runtime.pipeline", "dpupose.runtime.sources", "dpupose.data.transforms"}
    if backend == "vart":
        expected.add("dpupose.runtime.vart_runner")
        board = json.loads((setup["root"] / "vart.board.json").read_text())
        assert [c[0] for c in board["calls"]].count("DpuOverlay") == 1 and board["unwaited"] == []
    assert expected <= set(modules)
    check_parses_as_310(modules)
