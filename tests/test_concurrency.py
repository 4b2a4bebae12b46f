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


def test_two_processes_needing_one_synthetic_cache_make_it_once_and_keep_it(tmp_path):
    """Two commands that both find the synthetic data cache missing (two trainings started together): the
    second waits for the first and uses its root; it does not generate its own and put it in place of the
    folder the first was given (a training reads its images for hours)."""
    cache = tmp_path / "data"
    target = cache / "synthetic-valid-s0-n2-v{version}"
    code = (
        "import json\n"
        "from dpupose.data.sources import synthetic_root\n"
        f"root = synthetic_root('valid', 2, cache=Path({str(cache)!r}))\n"
        "print(json.dumps([str(root), os.stat(root).st_ino]))\n"
    )
    from dpupose.data.synthetic import SynthSpec

    target = Path(str(target).format(version=SynthSpec().version))
    results = run_two(tmp_path, target, code)
    for r in results:
        assert r.returncode == 0, r.stderr
    given = [json.loads(r.stdout) for r in results]
    assert given[0] == given[1] == [str(target), os.stat(target).st_ino]
    assert sum("generating synthetic" in r.stderr for r in results) == 1
    assert len(json.loads((target / "annot" / "valid.json").read_text())) == 2


# A stand-in for the quantizer: writes a dpupose quantize folder's files and notes each call.
FAKE_QUANTIZE = textwrap.dedent(
    """
    import dpupose.quant.pipeline as pipeline
    from dpupose.fsio import atomic_dir

    def quantize(cfg):
        os.makedirs(os.path.dirname(TARGET), exist_ok=True)
        with open(os.path.join(os.path.dirname(TARGET), "calls"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        with atomic_dir(cfg.out) as tmp:
            (tmp / "summary.json").write_text("{}")
            (tmp / "model_qdq.onnx").write_bytes(b"model of " + str(os.getpid()).encode())

    pipeline.quantize = quantize
    """
)


def assert_made_once(results: list, target: Path, calls: Path) -> None:
    """Both processes succeeded and were given the same folder (one inode), which the stand-in quantizer
    made once (one line in `calls`)."""
    for r in results:
        assert r.returncode == 0, r.stderr
    assert results[0].stdout == results[1].stdout == f"{target} {os.stat(target).st_ino}\n"
    assert len(calls.read_text().split()) == 1


def test_two_evals_needing_one_quantization_cache_quantize_once(tmp_path):
    """`dpupose eval --engine int8-emulated` twice at once with the cache empty: one quantizes, the other
    waits for it and uses its folder."""
    from dpupose import __version__
    from dpupose.fsio import sha256_file

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"a checkpoint")
    cache = tmp_path / "quantized"
    target = cache / f"{sha256_file(ckpt)[:16]}-synthetic-v{__version__}"
    code = FAKE_QUANTIZE + (
        "from dpupose.quant.engines import cached_quantization\n"
        f"out = cached_quantization({str(ckpt)!r}, 'synthetic', None, cache=Path({str(cache)!r}))\n"
        "print(out, os.stat(out).st_ino)\n"
    )
    assert_made_once(run_two(tmp_path, target, code), target, cache / "calls")


def test_two_demos_needing_one_quantization_cache_quantize_once(tmp_path):
    """The cache of bench and make demo (build/cache/quantized/): the same as eval's."""
    from dataclasses import asdict

    from dpupose import __version__
    from dpupose.eval.prepare import QuantSettings, _key
    from dpupose.fsio import sha256_file

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"a checkpoint")
    cache = tmp_path / "cache"
    key = _key(sha256_file(ckpt), json.dumps(asdict(QuantSettings()), sort_keys=True), __version__)
    target = cache / "quantized" / f"model-{key}"
    code = FAKE_QUANTIZE.replace('os.path.dirname(TARGET), "calls"', 'os.path.dirname(TARGET), "..", "calls"') + (
        "from dpupose.eval.prepare import quantized\n"
        f"out = quantized(Path({str(ckpt)!r}), cache=Path({str(cache)!r}))\n"
        "print(out, os.stat(out).st_ino)\n"
    )
    assert_made_once(run_two(tmp_path, target, code), target, cache / "calls")


def test_a_second_demo_into_one_folder_is_refused_naming_the_first(tmp_path):
    """Two `make demo`s in one checkout: the second would mix its images and report with the first's. It
    stops at once with one line naming the first; the first goes on."""
    out = tmp_path / "demo"
    # The first demo holds its --out: it stops, once the second has ended, at its first step.
    first = textwrap.dedent(
        """
        import dpupose.demo as demo
        from dpupose.errors import UsageError

        def model(args):
            HERE.touch()
            end = time.monotonic() + 60
            while not THERE.exists() and time.monotonic() < end:
                time.sleep(0.01)
            raise UsageError("the first demo stops here")

        demo._model = model
        sys.exit(demo.main(["--out", TARGET]))
        """
    )
    second = (
        "end = time.monotonic() + 60\n"
        "while not HERE.exists() and time.monotonic() < end:\n"  # the first holds the folder
        "    time.sleep(0.01)\n"
        "import dpupose.demo as demo\n"
        "code = demo.main(['--out', TARGET, '--num-images', '1', '--num-samples', '1', '--fps-frames', '2'])\n"
        "THERE.touch()\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": SW + os.pathsep + os.environ.get("PYTHONPATH", "")}
    held, done = tmp_path / "held", tmp_path / "done"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RENDEZVOUS + code, str(out), str(held), str(done)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for code in (first, second)
    ]
    (a_out, a_err), (b_out, b_err) = (p.communicate(timeout=300) for p in procs)
    assert "the first demo stops here" in a_err
    assert procs[1].returncode == 2, b_err
    assert b_err.strip() == (
        f"dpupose: error: --out {out} is in use by another `python -m dpupose.demo` (process {procs[0].pid}): "
        "wait for it to end, or choose another --out"
    )
    # Nothing of the second's; and the first, refused before it wrote anything, took away the folder it made.
    assert not out.exists()
