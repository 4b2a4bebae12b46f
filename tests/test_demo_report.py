"""The demo's report text (dpupose.eval.demo_report), from a minimal results document."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dpupose.errors import UsageError
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

    # frames 10 and 11 (the sample named is the frame's index, not its place in the list)
    a = [SimpleNamespace(index=10 + i, coords=np.zeros((16, 2), np.float32)) for i in range(2)]
    b = [SimpleNamespace(index=10 + i, coords=np.zeros((16, 2), np.float32)) for i in range(2)]
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
        "max_at": {"sample": 11, "joint": "l_elbow"},
        "dpu_values": 32,
        "dpu_values_differing": 1 + 14,
        "dpu_max_lsb": 128,  # int8 differences taken in int64: -128 vs 0 is 128 LSB, no wrap-around
    }


def test_an_output_folder_the_file_system_refuses_is_one_line(capsys, small_fs):
    # It ended in an OSError traceback: the demo took only dpupose's own errors.
    from dpupose.demo import main

    assert main(["--out", "/proc/dpupose-demo"]) == 2  # /proc takes no folder, whoever asks
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: cannot use /proc/dpupose-demo: ") and err.count("\n") == 1
    read_only = small_fs(64, read_only=True)
    assert main(["--out", str(read_only / "demo")]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {read_only / 'demo'} is on a read-only file system: write elsewhere, or remount it "
        "read-write\n"
    )


@pytest.mark.parametrize(("signum", "rc", "said"), [(2, 130, "dpupose: interrupted"), (15, 143, "dpupose: terminated")])
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


STOPPED_WHILE_PARSING = """
import os, sys
from dpupose import demo


def stopped_here(text):
    os.kill(os.getpid(), int(sys.argv[1]))  # as a Ctrl-C or `kill` while the options are read
    raise AssertionError("not reached: the signal unwinds")


def ran(args):
    raise AssertionError("the demo ran")


demo.output_dir, demo.run = stopped_here, ran
sys.exit(demo.main(["--out", sys.argv[2]]))
"""


@pytest.mark.parametrize(("signum", "rc", "said"), [(2, 130, "dpupose: interrupted"), (15, 143, "dpupose: terminated")])
def test_the_demo_stopped_while_it_reads_its_options_says_one_line(tmp_path, signum, rc, said):
    """The demo kept its own copy of cli.main's outer layer, begun only after its options were read: a Ctrl-C
    then was a KeyboardInterrupt traceback and a SIGTERM killed it without a word, where every dpupose command
    says its one line; both now run through cli.run_stoppable. (In a process of its own: the old copy's
    signal would have stopped the tests.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
    argv = [sys.executable, "-c", STOPPED_WHILE_PARSING, str(signum), str(tmp_path / "demo")]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert (proc.returncode, proc.stderr) == (rc, said + "\n")
    assert os.listdir(tmp_path) == []


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


def test_dpu_outputs_that_differ_are_said_to_differ_though_the_keypoints_do_not():
    """'give the same DPU outputs ... and the same keypoints' only when both are the same: int8 values that differ
    under keypoints that do not (or the other way round) are reported as differences."""
    plan = SimpleNamespace(metadata={}, fingerprint="0x1", subgraphs=[])
    for differing, coord in ((7, 0.0), (0, 0.001)):
        d = doc(2)
        d["images"]["exact_vs_fast"].update(
            dpu_values_differing=differing, dpu_max_lsb=1 if differing else 0, max_coord_diff=coord,
            mean_coord_diff=coord / 2,
        )  # fmt: skip
        text = _markdown(d, plan, "table", [])
        assert "give the same DPU outputs" not in text
        assert f"differ in {differing} of the DPU's 401,408 int8 values" in text


def test_the_report_gives_the_plan_s_predicted_figures_each_as_itself():
    plan = SimpleNamespace(
        metadata={"predicted": {"dpu_ms": 8.27, "cpu_ms": 3.57, "pipelined_fps": 120.9, "sequential_fps": 84.6}},
        fingerprint="0x101000016010404",
        subgraphs=[SimpleNamespace(name="dpu0", device="dpu")],
    )
    text = _markdown(doc(1), plan, "table", [])
    assert (
        "- predicted on the Ultra96-V2: DPU 8.27 ms, CPU 3.57 ms per frame -> **120.9 FPS pipelined** (84.6 sequential)"
        in text.splitlines()
    )


def test_the_html_report_renders_tables_code_and_text_escaped():
    from dpupose.eval.demo_report import _html

    markdown = "\n".join(
        ["<!-- made -->", "# A & B", "", "| name | fits |", "|---|---|", "| b<1> | yes |", "", "```", "x < y & z",
         "| not a table |", "```", "- one & two", "> care", "![a plot](p.png)", "plain <b>", "| last | row |"]
    )  # fmt: skip
    page = _html(markdown)
    body = page.split("<body>\n", 1)[1].rsplit("\n</body>", 1)[0]
    assert body.splitlines() == [
        "<!-- made -->",
        "<h1>A &amp; B</h1>",
        "<table>",
        "<tr><th>name</th><th>fits</th></tr>",
        "<tr><td>b&lt;1&gt;</td><td>yes</td></tr>",
        "</table>",
        "<pre>",
        "x &lt; y &amp; z",
        "| not a table |",
        "</pre>",
        "<li>one &amp; two</li>",
        "<blockquote>care</blockquote>",
        '<p><img src="p.png" alt="a plot" style="max-width:100%"></p>',
        "<p>plain &lt;b&gt;</p>",
        "<table>",
        "<tr><th>last</th><th>row</th></tr>",
        "</table>",
    ]


def test_a_code_fence_or_comment_right_after_a_table_row_closes_the_table_first():
    """A fence straight after a row opened <pre> inside <table> (the table closed only at a later plain line), and
    a comment landed inside it too: a table ends at its first line that is not a row, whatever that line is."""
    from dpupose.eval.demo_report import _html

    page = _html("\n".join(["| a |", "|---|", "| 1 |", "```", "x", "```", "| b |", "<!-- c -->", "end"]))
    body = page.split("<body>\n", 1)[1].rsplit("\n</body>", 1)[0]
    assert body.splitlines() == [
        "<table>", "<tr><th>a</th></tr>", "<tr><td>1</td></tr>", "</table>", "<pre>", "x", "</pre>",
        "<table>", "<tr><th>b</th></tr>", "</table>", "<!-- c -->", "<p>end</p>",
    ]  # fmt: skip


def test_the_demo_gives_back_the_sigterm_handler_it_found(monkeypatch, tmp_path):
    import signal

    from dpupose import demo

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        monkeypatch.setattr(demo, "run", lambda args: None)
        assert demo.main(["--out", str(tmp_path / "demo")]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own, as it was
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_report_says_each_part_of_the_document_in_its_place(tmp_path, monkeypatch):
    """report.md line by line from a document with a stand-in note, a configuration with risks, plots and
    timings; report.html is the HTML of that markdown, not of the table alone."""
    from dpupose.eval import demo_report

    plan = SimpleNamespace(
        metadata={}, fingerprint="0x1", subgraphs=[SimpleNamespace(name="dpu0", device="dpu"),
                                                   SimpleNamespace(name="cpu0", device="cpu")],
    )  # fmt: skip
    d = doc(1)
    d["standin_note"] = "a stand-in network: its keypoints are meaningless"
    d["configurations"][0]["risks"] = ["300 MHz is above the board's safe 200", "one more"]
    d["seconds"] = {"model": 0.5, "bench": 23.0, "total": 30.25}
    plots = [("fps_rows.png", "FPS per row"), ("stages.png", "Stage times")]
    lines = demo_report._markdown(d, plan, "the table", plots).splitlines()
    assert lines[:5] == [
        f"<!-- {demo_report.GENERATED} -->",
        "# dpupose demo",
        "",
        "> **Note:** a stand-in network: its keypoints are meaningless",
        "",
    ]
    assert lines[5:7] == [
        "- model: `models/dpupose-synth/model.pt`; quantized: `build/q`",
        "- split plan: `build/split` for `u96v2-b1600-pynq` (0x1), subgraphs: dpu0 (dpu), cpu0 (cpu)",
    ]
    assert (
        "| u96v2-b1600-pynq | yes | - | 8.27 | 3.57 | 120.9 | 300 MHz is above the board's safe 200; one more |"
        in lines
    )
    at = lines.index("## Plots")
    assert lines[at:] == [
        "## Plots", "",
        "![FPS per row](fps_rows.png)", "", "*FPS per row*", "",
        "![Stage times](stages.png)", "", "*Stage times*", "",
        "## Time taken (s)", "", "model 0.5, bench 23.0, total 30.25",
    ]  # fmt: skip
    del d["standin_note"]
    assert not any(line.startswith("> ") for line in demo_report._markdown(d, plan, "t", plots).splitlines())

    monkeypatch.setattr(demo_report, "_plots", lambda out, doc: plots)
    md, page = demo_report.write_report(tmp_path, d, plan, "the table")
    assert (md, page) == (tmp_path / "report.md", tmp_path / "report.html")
    assert page.read_text() == demo_report._html(md.read_text())
    assert "<h2>Time taken (s)</h2>" in page.read_text() and "<pre>\nthe table\n</pre>" in page.read_text()


def test_the_demo_hands_each_step_what_the_one_before_made(tmp_path, monkeypatch, capsys):
    """The demo's steps with each one's work replaced by a recorder: what each is asked for, which DPU
    configurations are compared (the Ultra96-V2's only, though hw/ holds another board's), and what is
    printed at the end (the table, the stand-in note, where the report is)."""
    import json

    from dpupose import demo
    from dpupose.dpu import config as config_mod
    from dpupose.eval import bench, bench_measure, demo_report, prepare
    from dpupose.split import compare
    from dpupose.split import plan as plan_mod

    got: dict = {}
    model, q, plan_dir = tmp_path / "model.pt", tmp_path / "q", tmp_path / "plan"
    plan = SimpleNamespace(input_size=64, dpu_config="u96v2-b1600-pynq")
    frames = [f"frame{i}" for i in range(9)]

    def record(name, value):
        def step(*args, **kwargs):
            got[name] = args
            return value

        return step

    monkeypatch.setattr(demo, "_model", lambda args: (model, "a stand-in network"))
    monkeypatch.setattr(prepare, "quantized", record("quantized", q))
    monkeypatch.setattr(prepare, "split_plan", lambda qdir, config, optimize: got.setdefault("split", (qdir, config,
                        optimize)) and plan_dir)  # fmt: skip
    monkeypatch.setattr(plan_mod, "load_plan", lambda folder: plan if folder == plan_dir else pytest.fail(folder))
    monkeypatch.setattr(bench_measure, "load_samples", record("samples", SimpleNamespace(frames_bgr=frames)))
    monkeypatch.setattr(demo, "annotated_images", record("images", {"images": []}))
    monkeypatch.setattr(bench, "run_bench", record("bench", SimpleNamespace(info={"samples": 3}, rows=[])))
    monkeypatch.setattr(bench, "format_table", lambda result: "THE TABLE")
    boards = {"u96v2-b512": "ultra96v2", "zcu104-b4096": "zcu104", "u96v2-b1600-pynq": "ultra96v2"}
    monkeypatch.setattr(config_mod, "list_configs", lambda: list(boards))
    monkeypatch.setattr(config_mod, "load_config", lambda name: SimpleNamespace(board=boards[name]))
    monkeypatch.setattr(compare, "best_split_per_config", record("configs", [{"config": "u96v2-b512"}]))
    monkeypatch.setattr(demo_report, "write_report", record("report", None))
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--num-images", "5", "--num-samples", "3", "--fps-frames", "7"]
    assert demo.main(argv) == 0
    assert got["quantized"] == (model, prepare.QuantSettings(num_calib=16, summary_samples=1))
    assert got["split"] == (q, "u96v2-b1600-pynq", True)
    assert got["samples"] == ("synthetic", None, 5, 64)  # as many as the images or the bench need
    assert got["images"] == (plan_dir, frames[:5], out / "images")
    (opts,) = got["bench"]
    assert (opts.plan, opts.quantized, opts.num_samples, opts.fps_frames, opts.emulator, opts.work) == (
        plan_dir, q, 3, 7, "fast", out / "bench",
    )  # fmt: skip
    assert got["configs"] == (q / "model_qdq.onnx", ["u96v2-b512", "u96v2-b1600-pynq"])
    doc = json.loads((out / "demo.json").read_text())
    assert got["report"][0] == out and got["report"][3] == "THE TABLE"
    assert doc["standin_note"] == "a stand-in network" and doc["configurations"] == [{"config": "u96v2-b512"}]
    assert (doc["model"], doc["quantized"], doc["plan"], doc["dpu_config"]) == (
        str(model), str(q), str(plan_dir), "u96v2-b1600-pynq",
    )  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == ["THE TABLE", "", "note: a stand-in network"]
    assert printed[4].startswith(f"report: {out}/report.md and {out}/report.html (")


def test_the_demo_takes_the_model_asked_for_else_the_shipped_one_else_a_stand_in(tmp_path, monkeypatch, caplog):
    from argparse import Namespace

    from dpupose import demo
    from dpupose.eval import prepare

    shipped, mine = tmp_path / "shipped.pt", tmp_path / "mine.pt"
    shipped.write_bytes(b"shipped")
    mine.write_bytes(b"mine")
    monkeypatch.setattr(demo, "DEFAULT_MODEL", shipped)
    monkeypatch.setattr(prepare, "standin_checkpoint", lambda path: tmp_path / "standin.pt")
    assert demo._model(Namespace(model=mine)) == (mine, None)
    assert demo._model(Namespace(model=None)) == (shipped, None)
    shipped.unlink()
    path, note = demo._model(Namespace(model=None))
    assert path == tmp_path / "standin.pt"
    assert note.startswith(f"{shipped} is not here (it comes with the repository, not with the installed package)")
    assert "Its keypoints and accuracy are meaningless" in note and note in caplog.text


def _demo_files(folder, mark: bool = True) -> dict[str, bytes]:
    """Files as the demo writes them into `folder`: demo.json, report.md and .html, a Matplotlib plot and two
    annotated images (marked as the demo marks them, unless not `mark`: an earlier version's)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from dpupose.demo import IMAGE_MARK
    from dpupose.eval.demo_report import GENERATED, _html
    from dpupose.runtime.imagefile import write_jpeg

    (folder / "images").mkdir(parents=True)
    (folder / "demo.json").write_text(json.dumps({"generated_by": "python -m dpupose.demo", "rows": []}))
    md = f"<!-- {GENERATED} -->\n# dpupose demo\n"
    (folder / "report.md").write_text(md)
    (folder / "report.html").write_text(_html(md))
    fig = plt.figure()
    fig.savefig(folder / "stages.png", format="png")
    plt.close(fig)
    for name in ("sample_00.jpg", "samples.jpg"):
        write_jpeg(folder / "images" / name, np.zeros((8, 8, 3), np.uint8), comment=IMAGE_MARK if mark else None)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_users_files_at_the_demo_s_names_stop_it_before_any_work(monkeypatch, capsys, tmp_path):
    """`python -m dpupose.demo --out DIR`, DIR a folder of the user's: a report.md, a photo images/sample_00.jpg,
    a demo.json of another program, a link report.html to a file elsewhere, a plot's name were written over
    (through the link: the file it points to) without a word. Such files stop the demo before any work, named,
    and stay as they were; the demo's own files (a demo run again into its folder) do not."""
    import os

    import cv2
    import numpy as np

    from dpupose import demo

    monkeypatch.setattr(demo, "_run", lambda args, out: pytest.fail("the demo ran"))
    out = tmp_path / "mine"
    (out / "images").mkdir(parents=True)
    mine = {"report.md": b"# my report\n", "demo.json": b'{"generated_by": "my script"}', "fps_rows.png": b"png"}
    mine["images/sample_00.jpg"] = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    mine["images/sample_07.jpg"] = b"past --num-images 4: no name the demo writes"
    for name, data in mine.items():
        (out / name).write_bytes(data)
    (tmp_path / "thesis.html").write_text("<p>my thesis</p>")
    (out / "report.html").symlink_to(tmp_path / "thesis.html")
    assert demo.main(["--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --out {out} holds report.md, report.html, demo.json, fps_rows.png and 1 more, which the demo "
        "did not write and would write over: move them elsewhere, or choose another --out\n"
    )
    assert {n: (out / n).read_bytes() for n in mine} == mine
    assert (tmp_path / "thesis.html").read_text() == "<p>my thesis</p>" and (out / "report.html").is_symlink()
    assert sorted(os.listdir(out)) == ["demo.json", "fps_rows.png", "images", "report.html", "report.md"]
    with pytest.raises(UsageError, match=r"holds report\.md, report\.html, demo\.json, fps_rows\.png and 2 more,"):
        demo.check_out(out, num_images=8)  # images/sample_07.jpg too


def test_the_demo_s_own_files_are_told_from_a_user_s(tmp_path):
    """A demo's folder (its files as it writes them) is the demo's to write over; so are an earlier version's
    unmarked images beside that demo's demo.json (a demo that finished), but not without it."""
    from dpupose.demo import check_out

    ours = tmp_path / "demo"
    _demo_files(ours)
    check_out(ours, num_images=4)
    older = tmp_path / "older"
    _demo_files(older, mark=False)
    check_out(older, num_images=4)
    (older / "demo.json").unlink()  # an earlier version's demo stopped before its end: its images tell nothing
    with pytest.raises(UsageError, match=r"holds images/sample_00\.jpg, images/samples\.jpg, which the demo did"):
        check_out(older, num_images=4)


def test_a_link_at_a_name_the_demo_writes_in_a_demo_s_folder_stops_it(tmp_path):
    """A link in a demo's folder at an image's name (beside that demo's demo.json, where any image counts as the
    demo's) to a photo elsewhere, or at the report's name to another demo's report: the demo writes its images
    and report through it, over the file it points to, which benchmarks.md says a link never gets."""
    import cv2
    import numpy as np

    from dpupose.demo import check_out

    ours, other = tmp_path / "demo", tmp_path / "other"
    _demo_files(ours)
    _demo_files(other)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    (ours / "images" / "sample_00.jpg").unlink()
    (ours / "images" / "sample_00.jpg").symlink_to(photo)
    (ours / "report.md").unlink()
    (ours / "report.md").symlink_to(other / "report.md")
    with pytest.raises(UsageError, match=r"holds report\.md, images/sample_00\.jpg, which the demo did not write"):
        check_out(ours, num_images=4)


def test_an_image_is_the_demo_s_by_its_comment_where_the_demo_writes_it_not_by_the_words_anywhere(tmp_path):
    """The demo told its images by IMAGE_MARK's bytes anywhere in their first 4 kB, where `dpupose run` asks
    has_jpeg_comment (a JPEG with the comment where write_jpeg puts it): a photo whose EXIF or comment quotes
    the words, or a file that is no JPEG at all, was the demo's to write over."""
    import cv2
    import numpy as np

    from dpupose.demo import IMAGE_MARK, check_out

    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    photo = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    at = 4 + int.from_bytes(photo[4:6], "big")
    quoted = b"\xff\xfe" + (len(IMAGE_MARK) + 9).to_bytes(2, "big") + b"caption: " + IMAGE_MARK  # a caption quoting it
    (folder / "images" / "sample_00.jpg").write_bytes(photo[:at] + quoted + photo[at:])
    (folder / "images" / "samples.jpg").write_bytes(b"notes: " + IMAGE_MARK)
    with pytest.raises(UsageError, match=r"holds images/sample_00\.jpg, images/samples\.jpg, which the demo did"):
        check_out(folder, num_images=1)


def test_a_jpeg_comment_is_written_after_the_jfif_header_and_changes_no_pixel(tmp_path):
    import cv2
    import numpy as np

    from dpupose.runtime.imagefile import read_bgr, write_jpeg

    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    write_jpeg(tmp_path / "plain.jpg", image)
    write_jpeg(tmp_path / "marked.jpg", image, comment=b"made here")
    plain, marked = (tmp_path / "plain.jpg").read_bytes(), (tmp_path / "marked.jpg").read_bytes()
    assert plain[2:4] == b"\xff\xe0"  # JFIF's APP0, kept first
    at = 4 + int.from_bytes(plain[4:6], "big")
    assert marked == plain[:at] + b"\xff\xfe\x00\x0bmade here" + plain[at:]
    assert np.array_equal(read_bgr(tmp_path / "marked.jpg"), read_bgr(tmp_path / "plain.jpg"))
    assert cv2.imdecode(np.frombuffer(marked, np.uint8), cv2.IMREAD_COLOR).shape == (16, 24, 3)


def test_every_report_file_of_the_users_and_a_fifo_stop_the_demo(tmp_path):
    """Each of the report's six files (stages.png the last) of the user's is named; a named pipe at report.md
    is refused without opening it (reading it would wait for a writer for ever)."""
    import os
    import re
    import threading

    from dpupose.demo import check_out

    for name in ("report.md", "report.html", "demo.json", "fps_rows.png", "fps_configs.png", "stages.png"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_bytes(b"mine")
        with pytest.raises(UsageError, match=rf"holds {re.escape(name)}, which the demo did not write"):
            check_out(folder, num_images=1)
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "report.md")
    raised: list = []

    def check() -> None:
        try:
            check_out(fifo, num_images=1)
        except UsageError as exc:
            raised.append(str(exc))

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # opened for reading: a writer lets it go
        os.close(os.open(fifo / "report.md", os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("check_out opened the named pipe")
    assert raised and raised[0].startswith(f"--out {fifo} holds report.md, which the demo did not write")


def test_a_file_with_the_comment_but_no_jpeg_start_is_not_a_marked_jpeg(tmp_path):
    import numpy as np

    from dpupose.runtime.imagefile import has_jpeg_comment, write_jpeg

    write_jpeg(tmp_path / "marked.jpg", np.zeros((8, 8, 3), np.uint8), comment=b"made here")
    data = (tmp_path / "marked.jpg").read_bytes()
    assert has_jpeg_comment(tmp_path / "marked.jpg", b"made here")
    assert not has_jpeg_comment(tmp_path / "marked.jpg", b"made there")
    (tmp_path / "other").write_bytes(b"GIF" + data[3:])  # the same bytes after a start that is no JPEG's SOI
    assert not has_jpeg_comment(tmp_path / "other", b"made here")
    at = 4 + int.from_bytes(data[4:6], "big")
    (tmp_path / "bare").write_bytes(b"\0\0" + data[at : at + 13])  # the comment at byte 2, where no APP0 is
    assert not has_jpeg_comment(tmp_path / "bare", b"made here")


def test_make_demo_s_errors_are_dpupose_s(tmp_path):
    """`make demo` runs `python -m dpupose.demo`, whose errors said `demo: error: ...` where every command of
    dpupose says `dpupose: error: ...`; a script or a reader looking for dpupose's errors missed them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sw = str(Path(__file__).resolve().parents[1] / "sw")
    env = {**os.environ, "PYTHONPATH": sw + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "dpupose.demo", "--model", "nope.pt", "--out", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "dpupose: error: --model nope.pt not found: give a checkpoint written by `dpupose train` or "
        "`dpupose export` (e.g. runs/NAME/best.pt)\n",
    )
    assert os.listdir(tmp_path) == []


def test_the_demo_without_the_host_packages_says_what_to_install(tmp_path):
    """An install without the host extra (the board's packages: no torch, no onnx) ended the demo with a
    ModuleNotFoundError traceback where every dpupose command says on one line what to install."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sw = str(Path(__file__).resolve().parents[1] / "sw")
    env = {**os.environ, "PYTHONPATH": sw + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; sys.modules.update(torch=None, onnx=None); from dpupose.demo import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--out", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dpupose: error: the demo needs "), done.stderr
    assert "(module torch)" in done.stderr or "(module onnx)" in done.stderr
    fix = "it runs on a PC, not on the board; on a PC, install dpupose with its host extra: pip install 'dpupose[host]'"
    assert done.stderr.endswith(f", which is not installed: {fix}\n")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []  # no --out folder, no lock left


def test_an_earlier_demo_image_kept_under_another_name_outlives_the_next_demo(tmp_path):
    """The demo writes its images (images/samples.jpg, ...) with write_jpeg, which wrote into the file at the
    name: a hard link kept elsewhere to an earlier demo's montage (`ln`, a `cp -al` snapshot) was rewritten
    with the new one. The new image is a new file; the kept name holds the earlier image."""
    import os

    import numpy as np

    from dpupose.demo import IMAGE_MARK, check_out
    from dpupose.runtime.imagefile import read_bgr, write_jpeg

    out = tmp_path / "demo"
    (out / "images").mkdir(parents=True)
    dark, light = np.full((8, 16, 3), 30, np.uint8), np.full((8, 16, 3), 220, np.uint8)
    write_jpeg(out / "images" / "samples.jpg", dark, comment=IMAGE_MARK)
    kept = tmp_path / "kept.jpg"
    os.link(out / "images" / "samples.jpg", kept)
    before = kept.read_bytes()
    check_out(out, num_images=1)  # the demo's own image: the next demo may replace it
    write_jpeg(out / "images" / "samples.jpg", light, comment=IMAGE_MARK)
    assert kept.read_bytes() == before
    assert int(read_bgr(kept).mean()) in range(25, 36) and int(read_bgr(out / "images" / "samples.jpg").mean()) > 200


def test_a_missing_module_no_extra_provides_keeps_its_traceback_in_the_demo(monkeypatch, capsys, tmp_path):
    """As in the CLI: only the host packages are named on one line; another missing module is a broken
    installation, raised as it is (not a KeyError from looking it up among the host packages)."""
    from dpupose import demo

    def needs(module):
        def run(args):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

        return run

    monkeypatch.setattr(demo, "run", needs("yaml"))
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        demo.main(["--out", str(tmp_path / "demo")])
    monkeypatch.setattr(demo, "run", needs("cv2"))
    assert demo.main(["--out", str(tmp_path / "demo")]) == 2
    assert capsys.readouterr().err.startswith("dpupose: error: the demo needs OpenCV (module cv2), which is not")


def test_the_demo_reports_errors_through_the_cli_s_one_reporter(monkeypatch, tmp_path, capsys):
    """The demo kept its own copy of the CLI's error handling, without a symbolic link loop's line (a
    RuntimeError traceback) or a closed stdout's exit status 141; both now go through cli.run_reported."""
    from pathlib import Path

    from dpupose import demo

    loop = tmp_path / "loop"
    loop.symlink_to(loop)

    def loops(args):
        Path(loop).resolve(strict=True)  # RuntimeError('Symlink loop from ...') on Python 3.11

    def closed(args):
        raise BrokenPipeError

    out = ["--out", str(tmp_path / "demo")]
    monkeypatch.setattr(demo, "run", loops)
    assert demo.main(out) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: ") and str(loop) in err and err.count("\n") == 1, err
    monkeypatch.setattr(demo, "run", closed)
    assert demo.main(out) == 141


def test_the_demo_s_images_folder_given_by_a_link_that_leads_nowhere_yet_is_made_where_it_leads(tmp_path):
    """images/ in a demo's folder that is a link to a folder not made yet (kept elsewhere): the images go where it
    leads and the link stays, as every output's (architecture.md); mkdir refused the link with 'File exists'."""
    import os

    import numpy as np

    from dpupose.demo import SHIPPED_PLAN, annotated_images
    from dpupose.split.plan import load_plan

    (tmp_path / "images").symlink_to(os.path.join("kept", "images"))
    size = load_plan(SHIPPED_PLAN).input_size
    made = annotated_images(SHIPPED_PLAN, [np.full((size, size, 3), 90, np.uint8)], tmp_path / "images")
    assert made["images"] == ["images/sample_00.jpg"]
    assert os.readlink(tmp_path / "images") == os.path.join("kept", "images")
    assert sorted(os.listdir(tmp_path / "kept" / "images")) == ["sample_00.jpg", "samples.jpg"]
