"""Running dpupose as the board does: no torch, no onnx package, Python 3.10 syntax (torch- and onnx-free).

`run_torch_free` runs `dpupose ARGS` (or the board notebook's code cells) in a subprocess whose import
system refuses `torch` and `onnx` (a meta-path finder raising ImportError) and records every dpupose module
imported; `check_parses_as_310` then parses those modules as Python 3.10. On the host (Python 3.11, torch
installed) that is the nearest thing to the board; `make test-board-py` runs the same tests in a Python 3.10
venv that has neither package, where the blocker changes nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

FAKES = Path(__file__).parent / "fakes"
NOTEBOOK = "notebook"  # run_torch_free(["notebook", path, ...]): the notebook's code cells, not the CLI

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


def notebook(path, out):
    # The code cells in order, as Jupyter runs them; the results go to `out` as `dpupose run` writes them.
    namespace = {}
    with open(path) as f:
        cells = json.load(f)["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), path, "exec"), namespace)
    with open(out, "w") as f:
        json.dump({"backend": namespace["session"].backend, "results": [r.to_json() for r in namespace["results"]]}, f)
    return 0


assert not any(m.partition(".")[0] in BLOCKED for m in sys.modules)
sys.meta_path[:0] = [Block(), Trace()]
try:
    if sys.argv[1] == "notebook":
        rc = notebook(sys.argv[2], sys.argv[sys.argv.index("--out") + 1])
    else:
        from dpupose.cli import main

        rc = main(sys.argv[1:])
finally:
    with open(os.environ["TRACE_OUT"], "w") as f:
        json.dump(sorted(seen), f)
sys.exit(rc)
"""


def run_torch_free(
    args: list[str],
    root: Path,
    name: str,
    extra_path: str | None = None,
    xrt: bool = False,
    env: dict[str, str] | None = None,
) -> tuple[list[str], Path]:
    """`dpupose ARGS --out ROOT/NAME` in a subprocess; xrt: in PYNQ's XRT environment (XILINX_XRT, from
    xrt_setup.sh). Returns the dpupose modules it imported and the output path."""
    trace = root / f"{name}.trace.json"
    base = dict(os.environ)
    base.pop("DPUPOSE_BACKEND", None)
    base.pop("XILINX_XRT", None)
    env = dict(base, **(env or {}), TRACE_OUT=str(trace), FAKEBOARD_LOG=str(root / f"{name}.board.json"))
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


def check_parses_as_310(modules: list[str]) -> None:
    """Every module is a .py file that parses as Python 3.10."""
    for name in modules:
        origin = importlib.util.find_spec(name).origin
        assert origin and origin.endswith(".py"), name
        ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin, feature_version=(3, 10))
