"""The demo's report text (dpupose.eval.demo_report), from a minimal results document."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dpupose.eval.demo_report import _markdown


def doc(n_images: int) -> dict:
    return {
        "model": "models/dpupose-synth/model.pt",
        "quantized": "build/q",
        "plan": "build/split",
        "dpu_config": "u96v2-b1600-pynq",
        "images": {
            "images": [f"{i}.jpg" for i in range(n_images)],
            "exact_seconds_per_frame": 0.25,
            "fast_seconds_per_frame": 0.012,
            "exact_vs_fast": {
                "max_coord_diff": 0.0,
                "mean_coord_diff": 0.0,
                "max_at": {"sample": 0, "joint": "r_ankle"},
                "dpu_values": 401408,
                "dpu_values_differing": 0,
                "dpu_max_lsb": 0,
            },
            "montage": "montage.jpg",
        },
        "configurations": [
            {
                "config": "u96v2-b1600-pynq",
                "fits": True,
                "cut": "-",
                "dpu_ms": 8.27,
                "cpu_ms": 3.57,
                "pipelined_fps": 120.9,
            },
            {
                "config": "u96v2-b2304-dsphigh",
                "fits": False,
                "reasons": ["DSP 438 > 360 available"],
                "cut": "-",
                "dpu_ms": 7.25,
                "cpu_ms": 3.57,
                "pipelined_fps": 137.9,
            },
        ],
        "seconds": {"bench": 23.0},
    }


@pytest.mark.parametrize(
    ("n", "said"), [(1, "1 synthetic validation crop through"), (4, "4 synthetic validation crops")]
)
def test_the_sample_count_reads_as_written(n, said):
    plan = SimpleNamespace(
        metadata={"predicted": {"dpu_ms": 8.27, "cpu_ms": 3.57, "pipelined_fps": 120.9, "sequential_fps": 84.6}},
        fingerprint="0x101000016010404",
        subgraphs=[SimpleNamespace(name="dpu0", device="dpu"), SimpleNamespace(name="cpu0", device="cpu")],
    )
    text = _markdown(doc(n), plan, "table", [])
    assert said in text and "(0.25 s per frame on this host)" in text
    assert "| u96v2-b1600-pynq | yes | - | 8.27 | 3.57 | 120.9 | - |" in text
    # A configuration that does not fit says why (the row gave only "no").
    assert "| u96v2-b2304-dsphigh | no: DSP 438 > 360 available | - | 7.25 |" in text


def test_the_exact_vs_fast_comparison_says_how_much_differs_and_where():
    plan = SimpleNamespace(metadata={}, fingerprint="0x1", subgraphs=[])
    d = doc(4)
    same = _markdown(d, plan, "table", [])
    assert (
        "The same frames through the emulator's fast path (ONNX Runtime's QDQ arithmetic, ties rounded up as the "
        "DPU does, 0.012 s per frame) give the same DPU outputs (all 401,408 int8 values) and the same keypoints."
    ) in same
    d["images"]["exact_vs_fast"] = {
        "max_coord_diff": 0.2755,
        "mean_coord_diff": 0.0475,
        "max_at": {"sample": 3, "joint": "l_elbow"},
        "dpu_values": 401408,
        "dpu_values_differing": 183456,
        "dpu_max_lsb": 22,
    }
    text = _markdown(d, plan, "table", [])
    assert (
        "differ in 183,456 of the DPU's 401,408 int8 values (45.70%, by at most 22 LSB), and the keypoints by "
        "0.0475 on average and at most 0.2755 (joint l_elbow of sample 3) in normalized coordinates"
    ) in text


def test_exact_vs_fast_figures():
    import numpy as np

    from dpupose.demo import exact_vs_fast

    a = [SimpleNamespace(index=i, coords=np.zeros((16, 2), np.float32)) for i in range(2)]
    b = [SimpleNamespace(index=i, coords=np.zeros((16, 2), np.float32)) for i in range(2)]
    b[1].coords[14, 0] = 0.5
    b[0].coords[2, 1] = -0.1
    dpu_a = [np.zeros((1, 2, 2, 4), np.int8), np.zeros((1, 2, 2, 4), np.int8)]
    dpu_b = [np.zeros((1, 2, 2, 4), np.int8), np.full((1, 2, 2, 4), -128, np.int8)]
    dpu_b[0][0, 0, 0, 0] = 127
    dpu_b[1][0, 1, 1, :2] = 0
    got = exact_vs_fast(a, b, dpu_a, dpu_b)
    assert got == {
        "max_coord_diff": 0.5,
        "mean_coord_diff": pytest.approx(0.6 / 64),
        "max_at": {"sample": 1, "joint": "l_elbow"},
        "dpu_values": 32,
        "dpu_values_differing": 1 + 14,
        "dpu_max_lsb": 128,  # int8 differences taken in int64: -128 vs 0 is 128 LSB, no wrap-around
    }


def test_an_output_folder_the_file_system_refuses_is_one_line(capsys, small_fs):
    # It ended in an OSError traceback: the demo took only dpupose's own errors.
    from dpupose.demo import main

    assert main(["--out", "/proc/dpupose-demo"]) == 2  # /proc takes no folder, whoever asks
    err = capsys.readouterr().err
    assert err.startswith("demo: error: cannot use /proc/dpupose-demo: ") and err.count("\n") == 1
    read_only = small_fs(64, read_only=True)
    assert main(["--out", str(read_only / "demo")]) == 2
    assert capsys.readouterr().err == (
        f"demo: error: {read_only / 'demo'} is on a read-only file system: write elsewhere, or remount it read-write\n"
    )


@pytest.mark.parametrize(("signum", "rc", "said"), [(2, 130, "demo: interrupted"), (15, 143, "demo: terminated")])
def test_the_demo_stops_on_ctrl_c_or_sigterm_with_one_line(monkeypatch, capsys, tmp_path, signum, rc, said):
    import os
    import signal

    from dpupose import demo

    def interrupted(args):
        os.kill(os.getpid(), signum)  # as the user's Ctrl-C or a `kill` while the demo works
        raise AssertionError("not reached: the signal unwinds the run")

    monkeypatch.setattr(demo, "run", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    assert demo.main(["--out", str(tmp_path / "demo")]) == rc
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_bad_demo_option_is_one_line_and_every_option_is_explained(capsys):
    """`make demo` and `python -m dpupose.demo` answer a bad option as dpupose does: one line, where the help is."""
    from dpupose.demo import main

    with pytest.raises(SystemExit) as stop:
        main(["--num-images", "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("python -m dpupose.demo: error: argument --num-images: must be at least 1, got 0")
    assert "see `python -m dpupose.demo --help`" in err
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for line in ("--out OUT folder of the report and run (default build/demo)", "(default 4)", "(default 16)"):
        assert line in shown
