"""`dpupose run` as the board runs it: no torch, no onnx package, Python 3.10 syntax.

Each run is a subprocess whose import system refuses `torch` and `onnx` (a meta-path finder raising
ImportError) and records every dpupose module imported; those modules must then parse as Python 3.10.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tinyplan
from tinyplan import make_overlay

WRAPPER = r"""
import importlib.abc, json, os, sys

BLOCKED = {"torch", "onnx"}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked: the board has none)")
        return None


seen = set()


class Trace(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dpupose" or name.startswith("dpupose."):
            seen.add(name)
        return None


assert not any(m.partition(".")[0] in BLOCKED for m in sys.modules)
sys.meta_path[:0] = [Block(), Trace()]
try:
    from dpupose.cli import main

    rc = main(sys.argv[1:])
finally:
    with open(os.environ["TRACE_OUT"], "w") as f:
        json.dump(sorted(seen), f)
sys.exit(rc)
"""


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


def run_torch_free(
    args: list[str], root: Path, name: str, extra_path: str | None = None, xrt: bool = False
) -> tuple[list[str], Path]:
    """`dpupose` in a subprocess; xrt: in PYNQ's XRT environment (XILINX_XRT, from xrt_setup.sh)."""
    trace = root / f"{name}.trace.json"
    env = dict(os.environ, TRACE_OUT=str(trace), FAKEBOARD_LOG=str(root / f"{name}.board.json"))
    env.pop("DPUPOSE_BACKEND", None)
    env.pop("XILINX_XRT", None)
    if xrt:
        env["XILINX_XRT"] = "/usr"
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    out = root / name
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args, "--out", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "blocked" not in proc.stderr
    return json.loads(trace.read_text()), out


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
    for name in modules:
        origin = importlib.util.find_spec(name).origin
        assert origin and origin.endswith(".py"), name
        ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin, feature_version=(3, 10))


def test_the_blocker_blocks(setup: dict[str, Path]) -> None:
    """The wrapper really refuses torch: a command that needs it fails (so the test above can fail)."""
    trace = setup["root"] / "blocked.trace.json"
    env = dict(os.environ, TRACE_OUT=str(trace))
    code = WRAPPER.replace("rc = main(sys.argv[1:])", "import torch\n    rc = 0")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked: the board has none" in proc.stderr
