"""Two processes writing the same output at once: both succeed and the output is one of theirs, whole,
or the second is refused naming the first; never a mixed folder, a half-written cache or a traceback.

The races are made certain, not left to timing: each child process waits, before the rename that puts its
output in place (or before it starts its work), for the other to get that far too (a few seconds at most,
after which it goes on alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dpupose

SW = str(Path(dpupose.__file__).resolve().parents[1])

# Child prelude: os.replace into `TARGET` (the output folder) waits for the other process to arrive there.
RENDEZVOUS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    TARGET, HERE, THERE = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    _replace = os.replace

    def replace(src, dst, **kw):
        if os.path.abspath(os.fspath(dst)) == TARGET:
            HERE.touch()
            end = time.monotonic() + 3
            while not THERE.exists() and time.monotonic() < end:
                time.sleep(0.01)
        return _replace(src, dst, **kw)

    os.replace = replace
    """
)


def run_two(tmp_path: Path, target: Path, code: str, cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Start two children running RENDEZVOUS + `code` at once; their results once both have ended."""
    env = {**os.environ, "PYTHONPATH": SW + os.pathsep + os.environ.get("PYTHONPATH", "")}
    a, b = tmp_path / "arrived-a", tmp_path / "arrived-b"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RENDEZVOUS + code, str(target.absolute()), str(here), str(there)],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for here, there in ((a, b), (b, a))
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


def test_two_data_synth_into_one_missing_folder_both_succeed_with_a_whole_root(tmp_path):
    out = tmp_path / "synth"
    code = (
        "from dpupose.cli import main\n"
        "sys.exit(main(['data', 'synth', '--out', TARGET, '--num-train', '2', '--num-valid', '1', '--workers', '1']))\n"
    )
    results = run_two(tmp_path, out, code)
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    train = json.loads((out / "annot" / "train.json").read_text())
    valid = json.loads((out / "annot" / "valid.json").read_text())
    assert len(train) == 2 and len(valid) == 1
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted({r["image"] for r in train + valid})
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".synth"))
    assert left == []  # no temporary or moved-aside folder stays
