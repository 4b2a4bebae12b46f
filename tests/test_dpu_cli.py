"""`dpupose dpu ...` and `dpupose zoo export`: output, JSON, plot; bad input exits 2 and writes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from doc_keys import table_keys

from dpupose import cli
from dpupose.dpu.config import load_config
from dpupose.dpu.graph import extract_layers
from dpupose.model import build_model
from dpupose.model.export import export_onnx
from dpupose.model.pose import ModelConfig


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def pose_onnx(tmp_path_factory):
    model = build_model(ModelConfig(input_size=64)).dpu_part
    path = tmp_path_factory.mktemp("pose") / "pose_dpu.onnx"
    return export_onnx(model, torch.zeros(1, 3, 64, 64), path, ["image"], ["logits"])


def test_fingerprint(capsys):
    assert run(capsys, "dpu", "fingerprint", "--config", "u96v2-b1600-pynq")[1] == "0x101000016010404\n"
    rc, out, _ = run(capsys, "dpu", "fingerprint", "--decode", "0x101000016010404")
    assert rc == 0 and "B1600" in out and "channel_augmentation True" in " ".join(out.split())
    for bad in ("", "zz"):  # an empty word is a bad word, not "no --decode"
        rc, _, err = run(capsys, "dpu", "fingerprint", "--decode", bad)
        assert rc == 2 and f"--decode: {bad!r} is not a number" in err


def test_group_without_subcommand_prints_its_help(capsys):
    rc, out, _ = run(capsys, "dpu")
    assert rc == 2 and "fingerprint" in out and "compare" in out


def test_estimate_text_and_json(capsys, pose_onnx):
    rc, out, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--config", "u96v2-b1600-pynq", "--per-layer")
    assert rc == 0 and "predicted" in out and "DepthToSpace" in out
    rc, out, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--arch", "B1600", "--freq-mhz", "200", "--json")
    d = json.loads(out)
    assert (
        rc == 0
        and d["predicted"]
        and d["latency_ms"] > 0
        and d["fps"] == pytest.approx(1000 / d["latency_ms"], rel=1e-3)
    )
    rc, out, _ = run(
        capsys,
        "dpu",
        "estimate",
        str(pose_onnx),
        "--arch",
        "B4096",
        "--freq-mhz",
        "300",
        "--cores",
        "2",
        "--board",
        "zcu104",
        "--json",
    )
    assert rc == 0 and json.loads(out)["fps"] > d["fps"]


def test_a_stdout_without_unicode_gets_escapes_not_a_traceback(capsys, pose_onnx):
    """--per-layer cuts long node names with an ellipsis; on an ASCII stdout (PYTHONIOENCODING, a legacy locale)
    it is written as an escape, and the rest of the table is the same as on a UTF-8 one."""
    argv = ["dpu", "estimate", str(pose_onnx), "--config", "u96v2-b1600-pynq", "--per-layer"]
    rc, utf8, _ = run(capsys, *argv)
    assert rc == 0 and "\u2026" in utf8
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "dpupose", *argv], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert proc.stdout.decode("ascii") == utf8.replace("\u2026", "\\u2026")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "B9999"], "unknown DPU ARCH 'B9999'"),
        (["--config", "u96v2-b2304-dsphigh"], "does not fit the Avnet Ultra96-V2: DSP 438 > 360"),
        (["--config", "u96v2-b1600-pynq", "--arch", "B512"], "exactly one of"),
        (["--config", "u96v2-b1600-pynq", "--board", "zedboard"], "unknown board 'zedboard'"),
    ],
)
def test_estimate_bad_configuration(capsys, pose_onnx, args, message):
    rc, out, err = run(capsys, "dpu", "estimate", str(pose_onnx), *args)
    assert rc == 2 and out == "" and message in err and err.startswith("dpupose: error:")


def test_estimate_bad_model(capsys, tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_text("hello")
    rc, _, err = run(capsys, "dpu", "estimate", str(bad), "--config", "u96v2-b1600-pynq")
    assert rc == 2 and "not an ONNX model" in err


def test_compare_json_and_plot(capsys, pose_onnx, tmp_path):
    png = tmp_path / "cmp.png"
    rc, out, _ = run(
        capsys,
        "dpu",
        "compare",
        "--board",
        "ultra96v2",
        "--model",
        str(pose_onnx),
        "--json",
        "--plot",
        str(png),
    )
    rows = {r["config"]: r for r in json.loads(out)}
    assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"u96v2-b1600-pynq", "u96v2-b2304-avnet", "u96v2-b2304-dsphigh"} <= set(rows)
    for r in rows.values():
        assert {"config", "fits", "dsp", "bram", "lut", "fps", "fingerprint", "predicted"} <= set(r)
        assert r["predicted"] is True and r["estimated"] == ["lut", "ff"]
        assert r["fingerprint"].startswith("0x1010000")
    assert rows["u96v2-b1600-pynq"]["default"] and rows["u96v2-b1600-pynq"]["fingerprint"] == "0x101000016010404"
    assert not rows["u96v2-b2304-dsphigh"]["fits"] and rows["u96v2-b2304-dsphigh"]["limiting"] == "DSP"
    assert rows["u96v2-b2304-avnet"]["fps"] > rows["u96v2-b1152"]["fps"] > rows["u96v2-b512"]["fps"]
    rc, out, _ = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--sweep")
    assert rc == 0 and "b4096-dsphigh-ramlow-x1-200mhz" in out and "predicted" in out
    assert "LUT (est.)" in out and "LUT and FF are estimates" in out


def test_compare_says_which_ops_its_fps_leaves_out(capsys, pose_onnx, tmp_path):
    """The whole model (softmax + DSNT after the DPU part): the FPS covers the DPU part, and says so."""
    whole = export_onnx(build_model(ModelConfig(input_size=64)), torch.zeros(1, 3, 64, 64), tmp_path / "whole.onnx",
                        ["image"], ["coords", "heatmaps"])  # fmt: skip
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(whole), "--json")
    rows = json.loads(out)
    assert rc == 0 and all("Softmax" in r["not_estimated"] for r in rows)
    assert "note: not estimated" in err and "Softmax" in err
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--json")
    assert rc == 0 and all(r["not_estimated"] == [] for r in json.loads(out)) and "not estimated" not in err
    # estimate --per-layer names each op it left out, with the reason, as its JSON does.
    rc, out, _ = run(capsys, "dpu", "estimate", str(whole), "--config", "u96v2-b1600-pynq", "--per-layer")
    tail = out.split("not estimated (they run on the CPU):")[1].splitlines()
    softmax = [line for line in tail if " Softmax " in line]
    assert rc == 0 and softmax and softmax[0].rstrip().endswith("not a DPU op")
    assert any(line.rstrip().endswith("after a CPU op") for line in tail)


def test_compare_refuses_bad_model_and_writes_nothing(capsys, tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    png = tmp_path / "cmp.png"
    rc, _, err = run(capsys, "dpu", "compare", "--model", str(bad), "--plot", str(png))
    assert rc == 2 and "not an ONNX model" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"]


def test_files_writes_three_files_and_refuses_a_config_that_does_not_fit(capsys, tmp_path):
    rc, out, _ = run(capsys, "dpu", "files", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "a"))
    assert rc == 0 and sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "arch.json",
        "dpu_conf.vh",
        "prj_config",
    ]
    rc, out, _ = run(capsys, "dpu", "files", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "a"))
    assert out.count("unchanged") == 3
    rc, _, err = run(capsys, "dpu", "files", "--config", "u96v2-b2304-dsphigh", "--out", str(tmp_path / "b"))
    assert rc == 2 and "does not fit" in err and not (tmp_path / "b").exists()
    # Written, but with the risk that makes `hw build` ask for --i-know.
    rc, _, err = run(capsys, "dpu", "files", "--config", "u96v2-b1600-300mhz", "--out", str(tmp_path / "c"))
    assert rc == 0 and err.startswith("dpupose: warning: power: 300/600 MHz is above the 200 MHz known safe")


@pytest.mark.parametrize("failing", ["dpu_conf.vh", "prj_config", "arch.json"])
def test_a_set_that_cannot_be_written_whole_leaves_the_earlier_set(capsys, tmp_path, monkeypatch, failing):
    """The three files were written one by one: a full disk at the last left dpu_conf.vh and prj_config of
    one configuration beside the arch.json of another, a set that `hw build` and vai_c would take as one.
    A sync that fails for any of them (NFS reports a full disk only then) must come before the first rename."""
    import errno

    from dpupose import fsio

    out = tmp_path / "a"
    assert run(capsys, "dpu", "files", "--config", "u96v2-b1600-pynq", "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = fsio._fsync

    def fsync(path, shown):  # this file's data does not reach the disk: full (as NFS says at fsync)
        if str(shown).endswith(failing):
            raise OSError(errno.ENOSPC, "No space left on device", str(shown))
        real(path, shown)

    monkeypatch.setattr(fsio, "_fsync", fsync)
    rc, _, err = run(capsys, "dpu", "files", "--config", "u96v2-b512", "--out", str(out))
    assert rc == 2 and err.startswith(f"dpupose: error: No space left on device for {out / failing} (")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary left either


def test_outputs_that_are_not_ours_are_kept(capsys, pose_onnx, tmp_path):
    # dpu files: a hand-written arch.json of the same name stays, and nothing else is written.
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "arch.json").write_text('{"fingerprint": "0x1"}\n')
    rc, _, err = run(capsys, "dpu", "files", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "a"))
    assert rc == 2 and "arch.json exists and was not generated by dpupose" in err
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["arch.json"]
    assert (tmp_path / "a" / "arch.json").read_text() == '{"fingerprint": "0x1"}\n'
    # The overlay's own arch.json (as the DPU's build writes it: no space, upper case) is not ours either.
    (tmp_path / "a" / "arch.json").write_text('{"fingerprint":"0x101000016010404"}')
    rc, _, err = run(capsys, "dpu", "files", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "a"))
    assert rc == 2 and "arch.json exists and was not generated by dpupose (not in the form dpupose writes)" in err
    # dpu compare --plot: the format follows the name; a name that is no plot is refused before any work.
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    rc, _, err = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--plot", str(notes))
    assert rc == 2 and "name the plot file .png, .svg or .pdf" in err and notes.read_text() == "mine"
    svg = tmp_path / "cmp.svg"
    assert run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--plot", str(svg))[0] == 0
    assert b"<svg" in svg.read_bytes()[:500]
    # zoo export: an existing file is replaced only with --force, as for `dpupose export`.
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_text("mine")
    rc, _, err = run(capsys, "zoo", "export", "mobilenet_v1", "--out", str(onnx_file), "--input-size", "32")
    assert rc == 2 and f"error: --out {onnx_file} exists; pass --force" in err and onnx_file.read_text() == "mine"
    args = ("zoo", "export", "mobilenet_v1", "--out", str(onnx_file), "--input-size", "32", "--force")
    assert run(capsys, *args)[:2] == (0, f"{onnx_file}: mobilenet_v1, input 1x3x32x32, random weights\n")
    assert onnx_file.stat().st_size > 1000


def test_fit_command(capsys):
    rc, out, _ = run(capsys, "dpu", "fit", "--config", "u96v2-b2304-dsphigh")
    assert rc == 1 and "does NOT fit" in out
    # LUT and FF have no formula (PG338's tables): the output says they are estimates, DSP/BRAM are not.
    rows = {line.split()[0] for line in out.splitlines()[2:7]}
    assert rows == {"LUT*", "FF*", "BRAM36", "URAM", "DSP"} and "* LUT and FF are estimates" in out
    rc, out, _ = run(capsys, "dpu", "fit", "--config", "u96v2-b1600-pynq", "--json")
    assert rc == 0 and json.loads(out)["total"]["dsp"] == 326 and json.loads(out)["estimated"] == ["lut", "ff"]


def test_fit_json_is_strict_json_when_the_board_lacks_a_resource(capsys, tmp_path):
    # URAM banks on the ZU3EG, which has no URAM: no finite percentage, and no bare Infinity in the JSON.
    cfg = tmp_path / "uram.toml"
    cfg.write_text('arch = "B1600"\nclock_mhz = 200\nuram_wgt_banks = 11\nuram_bias_banks = 1\n')
    rc, out, _ = run(capsys, "dpu", "fit", "--config", str(cfg), "--json")
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert rc == 1 and d["utilization_pct"]["uram"] is None and "the ZU3EG has none" in d["reasons"][0]
    assert d["utilization_pct"]["dsp"] == pytest.approx(100 * 326 / 360, abs=0.05)


def test_fit_flags_a_clock_the_platform_cannot_make(capsys, tmp_path):
    cfg = tmp_path / "c250.toml"
    cfg.write_text('arch = "B1600"\nclock_mhz = 250\n')  # not in the Ultra96-V2 clock table
    rc, out, _ = run(capsys, "dpu", "fit", "--config", str(cfg), "--json")
    risks = json.loads(out)["risks"]
    assert any(r.startswith("platform-clock:") and "250 MHz or 500 MHz" in r for r in risks)
    rc, out, _ = run(capsys, "dpu", "fit", "--config", "u96v2-b1600-pynq", "--json")
    assert not any(r.startswith("platform-clock") for r in json.loads(out)["risks"])


@pytest.mark.parametrize(
    ("network", "kinds"),
    [
        ("mobilenet_v1", {"conv": 14, "dwconv": 13, "gap": 1, "fc": 1}),
        ("mobilenet_v2", {"conv": 35, "dwconv": 17, "eltwise": 10, "gap": 1, "fc": 1}),
        ("resnet50", {"conv": 53, "eltwise": 16, "pool": 1, "gap": 1, "fc": 1}),
    ],
)
def test_zoo_export_builds_the_standard_architectures(capsys, tmp_path, network, kinds):
    out = tmp_path / f"{network}.onnx"
    rc, text, _ = run(capsys, "zoo", "export", network, "--out", str(out), "--input-size", "64")
    assert rc == 0 and "random weights" in text
    graph = extract_layers(out, load_config("u96v2-b1600-pynq"))
    counts: dict[str, int] = {}
    for layer in graph.layers:
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
    assert counts == kinds
    assert graph.layers[-1].output == (1, 1000, 1, 1)


def test_zoo_mobilenet_v1_is_the_paper_s_table_and_its_convs_are_followed_by_relu(tmp_path):
    """MobileNetV1 (Howard et al. 2017, Table 1) at 224 x 224: its MACs summed by hand from the table's output sizes
    (112, 56, 28, 14, 7: stride 2 at the first conv and the 2nd, 4th, 6th and 12th depthwise blocks) are 568.7 M,
    the paper's 569 M; the layer kinds alone (test above) did not see a stride moved or dropped."""
    import onnx

    from dpupose.dpu import zoo
    from dpupose.model.complexity import count_macs

    macs = 112 * 112 * 32 * 27  # the first 3 x 3 conv, 3 -> 32, stride 2
    blocks = [(112, 32, 64), (56, 64, 128), (56, 128, 128), (28, 128, 256), (28, 256, 256), (14, 256, 512)]
    blocks += [(14, 512, 512)] * 5 + [(7, 512, 1024), (7, 1024, 1024)]  # (output side, cin, cout)
    for side, cin, cout in blocks:
        macs += side * side * cin * 9 + side * side * cin * cout  # depthwise 3 x 3, then pointwise
    macs += 1024 * 1000  # the classifier
    assert macs == 568_740_352
    assert count_macs(zoo.build("mobilenet_v1"), (3, 224, 224)) == macs
    # Every conv of MobileNetV1 and ResNet-50 is followed by BatchNorm and ReLU (ResNet's third 1 x 1 conv of a
    # bottleneck by the ReLU after the sum): 27 and 1 + 16 x 3 ReLUs.
    for name, relus in (("mobilenet_v1", 27), ("resnet50", 49)):
        path = zoo.export(name, tmp_path / f"{name}.onnx", 32)
        assert [n.op_type for n in onnx.load(str(path)).graph.node].count("Relu") == relus, name


def test_zoo_weights_are_seeded_and_an_unknown_network_is_named():
    from dpupose.dpu import zoo
    from dpupose.errors import UsageError

    torch.manual_seed(123)
    first = zoo.build("mobilenet_v1").state_dict()
    second = zoo.build("mobilenet_v1").state_dict()  # after the first one's draws: the same weights
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(UsageError) as exc:
        zoo.build("vgg16")
    assert str(exc.value) == "unknown network 'vgg16'; choose one of mobilenet_v2, mobilenet_v1, resnet50, pose_dpu"


def test_zoo_export_bad_input_size(capsys, tmp_path):
    rc, _, err = run(capsys, "zoo", "export", "resnet50", "--out", str(tmp_path / "r.onnx"), "--input-size", "50")
    assert rc == 2 and "--input-size must be a multiple of 32 (the network's stride), got 50: use 32 or 64" in err
    assert not list(tmp_path.iterdir())


def test_estimate_unknown_op_is_refused_unless_allowed(capsys, tmp_path):
    import onnx
    from dpu_onnx import custom_op

    path = tmp_path / "custom.onnx"
    onnx.save(custom_op(16, 8), str(path))
    rc, out, err = run(capsys, "dpu", "estimate", str(path), "--config", "u96v2-b1600-pynq")
    assert rc == 2 and out == "" and "FancyNorm" in err
    rc, out, err = run(capsys, "dpu", "estimate", str(path), "--config", "u96v2-b1600-pynq", "--allow-unknown")
    assert rc == 0 and "predicted" in out and "warning" in err and "FancyNorm" in err


def test_compare_unknown_op_is_refused_unless_allowed_as_its_message_says(capsys, tmp_path):
    """The refusal says `re-run with --allow-unknown`: dpu compare (make compare MODEL=...) takes it too."""
    import onnx
    from dpu_onnx import custom_op

    path = tmp_path / "custom.onnx"
    onnx.save(custom_op(16, 8), str(path))
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(path), "--json")
    assert rc == 2 and out == "" and "FancyNorm" in err and "--allow-unknown" in err
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(path), "--json", "--allow-unknown")
    rows = json.loads(out)
    assert rc == 0 and rows and all(r["unknown_ops"] == ["FancyNorm"] for r in rows)
    assert "warning" in err and "FancyNorm" in err
    # The unknown op is costed: the conv alone predicts more FPS on every configuration.
    from dpu_onnx import conv

    onnx.save(conv(16, 16, 8, 1, relu6=False), str(tmp_path / "conv.onnx"))
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(tmp_path / "conv.onnx"), "--json")
    alone = {r["config"]: r["fps"] for r in json.loads(out)}
    assert rc == 0 and "warning" not in err and all(r["fps"] < alone[r["config"]] for r in rows)


def test_a_first_plot_shows_no_library_notes(pose_onnx, tmp_path):
    # Matplotlib's first run in a fresh cache logs "generated new fontManager" at INFO, which the command's
    # root logger at INFO would show among its own lines; --verbose lets it through.
    png = tmp_path / "cmp.png"
    cmd = [sys.executable, "-m", "dpupose", "dpu", "compare", "--model", str(pose_onnx), "--plot", str(png)]
    for verbose, shown in ((False, False), (True, True)):
        env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / f"mpl-{verbose}")}  # an empty cache: built anew
        r = subprocess.run(cmd[:3] + ["-v"] * verbose + cmd[3:], capture_output=True, text=True, env=env)
        assert r.returncode == 0 and png.exists(), r.stderr[-2000:]
        assert ("generated new fontManager" in r.stderr) is shown, r.stderr[-2000:]


def test_compare_warns_once_per_channel_limit_of_a_conv_the_split_runs_on_the_cpu(capsys, tmp_path):
    """A 2600-channel conv is over 256 x ICP where ICP is 8 or 10 (2048, 2560), not where it is 12 (3072): each
    limit it exceeds is said once on stderr (those estimates leave it out), and the JSON rows of those
    configurations list it."""
    import onnx
    from split_models import conv_limit_model

    path = tmp_path / "wide.onnx"
    onnx.save(conv_limit_model(k=1, cout=2600), str(path))
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(path), "--json")
    rows = json.loads(out)
    assert rc == 0
    for r in rows:
        limit = 256 * load_config(r["config"]).icp
        line = f"1 conv layer(s) have more than 256 x ICP = {limit} channels, which `dpupose split` runs on the CPU: "
        expected = (
            [line + "this estimate leaves them and everything after them out, first: mid"] if limit < 2600 else []
        )
        assert r["too_wide"] == expected, r["config"]
    limits = sorted({256 * load_config(r["config"]).icp for r in rows if 256 * load_config(r["config"]).icp < 2600})
    assert limits and [line for line in err.splitlines() if "256 x ICP" in line] == [
        f"dpupose: warning: 1 conv layer(s) have more than 256 x ICP = {n} channels, which `dpupose split` runs on "
        "the CPU: this estimate leaves them and everything after them out, first: mid"
        for n in limits
    ]


def test_the_json_keys_are_those_dpu_configurations_md_lists(capsys, pose_onnx):
    """Its tables of the --json keys of dpu estimate, compare, fit and calibrate, against what each prints."""
    doc = "dpu-configurations.md"
    est = run(
        capsys, "dpu", "estimate", str(pose_onnx), "--arch", "B1600", "--freq-mhz", "200", "--json", "--per-layer"
    )
    assert list(json.loads(est[1])) == table_keys(doc, "`dpu estimate --json`, one object:")
    rows = json.loads(run(capsys, "dpu", "compare", "--board", "ultra96v2", "--model", str(pose_onnx), "--json")[1])
    assert rows and all(list(r) == table_keys(doc, "`dpu compare --json`, a list of rows") for r in rows)
    fit = json.loads(run(capsys, "dpu", "fit", "--config", "u96v2-b1600-pynq", "--json")[1])
    assert list(fit) == table_keys(doc, "`dpu fit --json` (exit 1")
    cal = json.loads(run(capsys, "dpu", "calibrate", "--json")[1])
    assert list(cal) == table_keys(doc, "`dpu calibrate --json`, one object:")
    # the nested keys the tables name
    layer = json.loads(est[1])["layers"][0]
    assert list(layer) == [
        "name",
        "op",
        "kind",
        "output",
        "macs",
        "compute_ms",
        "memory_ms",
        "overhead_ms",
        "time_ms",
        "bound",
    ]
    assert all(
        list(fit[k]) == ["lut", "ff", "bram36", "uram", "dsp"] for k in ("dpu", "total", "available", "utilization_pct")
    )
    assert list(cal["constants"]) == ["layer_overhead_cycles", "ddr_efficiency", "host_ms"]


def test_estimate_s_ad_hoc_defaults_refusals_and_ignore_fit(capsys, pose_onnx):
    # --arch alone: 200 MHz, one core, as the help says, the same figures as with both spelled out
    rc, out, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--arch", "B1600", "--json")
    d = json.loads(out)
    assert rc == 0 and (d["config"], d["clock_mhz"], d["cores"]) == ("b1600-200mhz", 200, 1)
    spelled = run(capsys, "dpu", "estimate", str(pose_onnx), "--arch", "B1600", "--freq-mhz", "200", "--cores", "1",
                  "--json")  # fmt: skip
    assert json.loads(spelled[1]) == d
    # a --config file sets its own clock and cores
    for option in ("--freq-mhz", "--cores"):
        rc, out, err = run(capsys, "dpu", "estimate", str(pose_onnx), "--config", "u96v2-b1600-pynq", option, "2")
        assert (rc, out) == (2, "")
        assert err == "dpupose: error: --freq-mhz and --cores go with --arch; a --config file sets its own\n"
    # a configuration that does not fit is estimated with --ignore-fit, and the JSON says it does not fit
    rc, out, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--config", "u96v2-b2304-dsphigh", "--ignore-fit",
                     "--json")  # fmt: skip
    assert rc == 0 and json.loads(out)["fits"] is False and json.loads(out)["config"] == "u96v2-b2304-dsphigh"


def test_estimate_s_text_gives_the_time_by_kind_largest_first_and_counts_what_it_left_out(capsys, pose_onnx, tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    # conv0 (1x1) -> Softmax (the CPU) -> convs a and b: a DPU layer, three ops left out
    w = [numpy_helper.from_array(np.zeros((16, 16, 1, 1), np.float32), n) for n in ("w0", "wa", "wb")]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["s"], name="conv0", kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["s"], ["t"], name="softmax", axis=1),
        helper.make_node("Conv", ["t", "wa"], ["u"], name="a", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["u", "wb"], ["y"], name="b", kernel_shape=[1, 1]),
    ]
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 16, 8, 8]) for n in ("x", "y")]
    model = helper.make_model(
        helper.make_graph(nodes, "g", vi[:1], vi[1:], w), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.save(model, str(tmp_path / "m.onnx"))
    rc, out, _ = run(capsys, "dpu", "estimate", str(tmp_path / "m.onnx"), "--config", "u96v2-b1600-pynq")
    assert rc == 0 and "  not estimated (3 ops, not DPU ops or after one): Conv, Softmax\n" in out
    # the pose network's DPU part: each kind's time (the JSON's, to 3 decimals), the largest first
    rc, out, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--config", "u96v2-b1600-pynq")
    line = next(x for x in out.splitlines() if x.startswith("  time by layer kind: "))
    shown = [(k, float(v.removesuffix(" ms"))) for k, v in (p.split(" ", 1) for p in line[22:].split(", "))]
    rc, js, _ = run(capsys, "dpu", "estimate", str(pose_onnx), "--config", "u96v2-b1600-pynq", "--json")
    by_kind = json.loads(js)["time_by_kind_ms"]
    assert len(shown) == len(by_kind) >= 3 and {k: pytest.approx(v, abs=1e-3) for k, v in by_kind.items()} == dict(
        shown
    )
    assert [v for _, v in shown] == sorted((v for _, v in shown), reverse=True)


def test_a_long_layer_name_is_cut_to_the_column_from_its_start():
    from dpupose.commands.dpu import _tail

    assert _tail("a" * 40, 40) == "a" * 40  # fits: as it is
    assert _tail("abc" + "d" * 38, 40) == "…c" + "d" * 38  # 41 characters: its last 39 after the mark
    assert len(_tail("x" * 100, 40)) == 40


def test_a_fingerprint_is_decoded_from_hex_or_decimal(capsys):
    hexed = run(capsys, "dpu", "fingerprint", "--decode", "0x101000016010404")
    assert run(capsys, "dpu", "fingerprint", "--decode", str(0x101000016010404)) == hexed and hexed[0] == 0


def test_compare_of_a_board_no_configuration_is_shipped_for_says_to_sweep(capsys, pose_onnx):
    rc, out, err = run(capsys, "dpu", "compare", "--board", "zcu104", "--model", str(pose_onnx))
    assert (rc, out) == (2, "")
    assert err == (
        "dpupose: error: no shipped configuration is meant for zcu104; compare the grid with --sweep "
        "(make compare BOARD=zcu104 COMPARE_ARGS=--sweep)\n"
    )


def test_compare_refuses_a_plot_name_before_any_work(capsys, pose_onnx, tmp_path):
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--plot", str(tmp_path / "p.jpg"))
    assert (rc, out) == (2, "") and "name the plot file .png, .svg or .pdf" in err
    from dpupose.dpu.compare import plot_format

    assert [plot_format(f"p.{s}") for s in ("PNG", "Svg", "pdf")] == ["png", "svg", "pdf"]


def test_compare_s_rows_and_table_shipped_first_by_dsp_then_the_grid(pose_onnx):
    from dpupose.dpu.board import load_board
    from dpupose.dpu.compare import compare, format_table
    from dpupose.dpu.config import list_configs

    u96 = load_board("ultra96v2")
    plain = compare(pose_onnx, u96)
    assert sorted(r.config for r in plain) == sorted(list_configs()) and all(r.shipped for r in plain)
    rows = compare(pose_onnx, u96, sweep=True)
    shipped = [r for r in rows if r.shipped]
    assert rows[: len(shipped)] == shipped and len(shipped) == len(plain)
    for group in (shipped, rows[len(shipped) :]):
        assert [(r.dsp, r.config) for r in group] == sorted((r.dsp, r.config) for r in group)
    # the Ultra96-V2's ZU3EG has no URAM: no grid point puts banks there, and the small ones fit
    assert all(r.uram == 0 for r in rows) and any(r.fits and not r.shipped for r in rows)
    for r in rows:
        assert r.fps == pytest.approx(1000 / r.latency_ms, rel=2e-3)
        # two cores: more throughput than one frame at a time (one core: the same)
        assert (r.throughput_fps > r.fps) if r.cores == 2 else (r.throughput_fps == r.fps)
    table = format_table(rows).splitlines()
    (default,) = [line for line in table if line.startswith("u96v2-b1600-pynq ")]
    assert default.split()[:3] == ["u96v2-b1600-pynq", "(default)", "B1600"]
    (x2,) = [line for line in table if line.startswith("b4096-dsphigh-ramlow-x2-200mhz ")]
    assert x2.split()[1] == "B4096x2"
    (risky,) = [line for line in table if line.startswith("u96v2-b1600-300mhz ")]
    assert risky.endswith("  power; tight")  # each risk's first word


def test_compare_sweeps_a_board_with_uram_into_its_uram():
    from dpupose.dpu.board import load_board
    from dpupose.dpu.compare import sweep_configs

    grid = sweep_configs(load_board("zcu104"))
    assert grid and all((c.uram_wgt_banks, c.uram_bias_banks) == (c.arch.ocp + 1, 1) for c in grid)
    assert all(c.uram_wgt_banks == 0 for c in sweep_configs(load_board("ultra96v2")))


def test_fit_text_gives_a_dash_for_a_resource_the_board_lacks(capsys, tmp_path):
    cfg = tmp_path / "uram.toml"
    cfg.write_text('arch = "B1600"\nclock_mhz = 200\nuram_wgt_banks = 11\nuram_bias_banks = 1\n')
    rc, out, _ = run(capsys, "dpu", "fit", "--config", str(cfg))
    (uram,) = [line for line in out.splitlines() if line.startswith("URAM ")]
    assert rc == 1 and uram.split()[-2:] == ["0", "-"]


def test_dpu_list_names_the_hw_folder_it_read(capsys, tmp_path, monkeypatch):
    # With $DPUPOSE_HW_DIR naming a copy of hw/ (holding a configuration of one's own), the listing says
    # that folder, not the package's hw/dpu/configs it did not read.
    import shutil

    from dpupose.dpu.paths import HW_DIR_ENV, packaged_hw_dir

    monkeypatch.delenv(HW_DIR_ENV, raising=False)
    rc, out, _ = run(capsys, "dpu", "list")
    assert rc == 0 and "DPU configurations (hw/dpu/configs):\n" in out and "Boards (hw/boards):\n" in out
    mine = tmp_path / "myhw"
    shutil.copytree(packaged_hw_dir(), mine)
    (mine / "dpu" / "configs" / "my-b1152.toml").write_text('arch = "B1152"\nclock_mhz = 200\nram_usage = "high"\n')
    monkeypatch.setenv(HW_DIR_ENV, str(mine))
    rc, out, _ = run(capsys, "dpu", "list")
    assert rc == 0 and f"DPU configurations ({mine}/dpu/configs):\n  my-b1152 " in out
    assert f"Boards ({mine}/boards):\n" in out


def test_compare_adds_configurations_of_one_s_own_as_fit_and_estimate_see_them(capsys, pose_onnx, tmp_path):
    """--config adds a .toml of one's own to the shipped rows: its row is what `dpu fit` and `dpu estimate` say
    of it (another path through the code), and a file named like a shipped configuration is told apart."""
    from dpupose.dpu.config import list_configs
    from dpupose.dpu.paths import configs_dir

    mine = tmp_path / "b1152-ramhigh.toml"
    mine.write_text('arch = "B1152"\nclock_mhz = 200\nram_usage = "high"\n')
    (tmp_path / "slow").mkdir()
    twin = tmp_path / "slow" / "u96v2-b512.toml"  # named like a shipped one, at 150 MHz
    twin.write_text((configs_dir() / "u96v2-b512.toml").read_text().replace("clock_mhz = 200", "clock_mhz = 150"))
    argv = ["dpu", "compare", "--model", str(pose_onnx), "--config", str(mine), "--config", str(twin)]
    rc, out, _ = run(capsys, *argv, "--config", "u96v2-b512", "--json")  # a shipped name: already there
    rows = json.loads(out)
    assert rc == 0 and len(rows) == len(list_configs()) + 2
    assert sorted(r["config"] for r in rows if r["path"] is None) == sorted(list_configs())
    by_path = {r["path"]: r for r in rows if r["path"] is not None}
    assert set(by_path) == {str(mine), str(twin)}
    for path, row in by_path.items():
        assert row["config"] == Path(path).stem and not row["shipped"] and not row["default"]
        rc, out, _ = run(capsys, "dpu", "fit", "--config", path, "--board", "ultra96v2", "--json")
        fit = json.loads(out)
        assert rc == 0 and (row["fits"], row["limiting"], row["reasons"], row["risks"]) == (
            fit["fits"], fit["limiting"], fit["reasons"], fit["risks"]
        )  # fmt: skip
        total = fit["total"]
        assert (row["dsp"], row["bram"], row["lut"], row["ff"], row["uram"]) == (
            total["dsp"], total["bram36"], total["lut"], total["ff"], total["uram"]
        )  # fmt: skip
        assert row["utilization_pct"] == fit["utilization_pct"]
        est = json.loads(run(capsys, "dpu", "estimate", str(pose_onnx), "--config", path, "--json")[1])
        assert row["fps"] == round(est["fps"], 1) and row["latency_ms"] == round(est["latency_ms"], 3)
        assert row["fingerprint"] == run(capsys, "dpu", "fingerprint", "--config", path)[1].strip()
    # the twin is told apart from the shipped u96v2-b512: its own row, slower at 150 MHz
    (shipped_b512,) = [r for r in rows if r["config"] == "u96v2-b512" and r["shipped"]]
    assert by_path[str(twin)]["fps"] < shipped_b512["fps"]
    rc, out, _ = run(capsys, *argv)
    names = [line.split("  ")[0] for line in out.splitlines()]
    assert rc == 0 and {"u96v2-b512", str(twin), str(mine)} <= set(names)


def test_compare_keeps_one_file_given_twice_once_and_a_copy_of_the_default_is_not_the_default(
    capsys, pose_onnx, tmp_path, monkeypatch
):
    """The same .toml given twice (by two spellings of its path) is one row; a copy of the board's default
    configuration given by path is a row of its own, not marked the default: the shipped file is."""
    from dpupose.dpu.paths import configs_dir

    copy = tmp_path / "u96v2-b1600-pynq.toml"
    copy.write_text((configs_dir() / "u96v2-b1600-pynq.toml").read_text())
    monkeypatch.chdir(tmp_path)
    argv = ["dpu", "compare", "--model", str(pose_onnx), "--config", str(copy), "--config", "./u96v2-b1600-pynq.toml"]
    rc, out, _ = run(capsys, *argv, "--json")
    rows = json.loads(out)
    assert rc == 0 and [r["path"] for r in rows if r["path"] is not None] == [str(copy)]
    (default,) = [r for r in rows if r["default"]]
    (mine,) = [r for r in rows if r["path"] == str(copy)]
    assert (default["config"], default["path"], default["shipped"]) == ("u96v2-b1600-pynq", None, True)
    assert mine["fps"] == default["fps"] and not mine["default"]  # the same configuration, read from the copy
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out.count("(default)") == 1 and f"\n{copy}  " in out


def test_compare_puts_the_configurations_given_before_the_grid_as_their_kind(pose_onnx, tmp_path):
    """On a board no configuration is shipped for, a shipped name given is a shipped row (marked and labelled
    as one), and it and a file given by path come before the grid, by DSP; the grid follows."""
    from dpupose.dpu.compare import compare

    mine = tmp_path / "b4096.toml"
    mine.write_text('arch = "B4096"\nclock_mhz = 200\nboard = "kv260"\n')
    rows = compare(pose_onnx, "kv260", sweep=True, given=["u96v2-b512", str(mine)])
    named = [(r.config, r.shipped, r.path) for r in rows[:2]]
    assert named == [("u96v2-b512", True, None), ("b4096", False, str(mine))]
    assert len(rows) > 2 and all(not r.shipped and r.path is None for r in rows[2:])


def test_compare_refuses_a_configuration_path_that_is_not_there_in_one_line(capsys, pose_onnx, tmp_path):
    png = tmp_path / "p.png"
    missing = tmp_path / "nothere.toml"
    argv = ["dpu", "compare", "--model", str(pose_onnx), "--config", str(missing), "--plot", str(png)]
    rc, out, err = run(capsys, *argv)
    assert (rc, out) == (2, "") and err.count("\n") == 1 and not png.exists()
    assert err.startswith(f"dpupose: error: {missing}: no such file; give the path of a configuration .toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('arch = "B1152"\n')
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--config", str(bad))
    assert (rc, out) == (2, "") and err.count("\n") == 1 and f"{bad}: clock_mhz is required" in err


def test_compare_warns_of_a_configuration_meant_for_another_board(capsys, pose_onnx, tmp_path):
    other = tmp_path / "zcu.toml"
    other.write_text('arch = "B512"\nclock_mhz = 200\nboard = "zcu104"\n')
    rc, out, err = run(capsys, "dpu", "compare", "--model", str(pose_onnx), "--config", str(other), "--json")
    assert rc == 0 and [r["path"] for r in json.loads(out) if r["path"]] == [str(other)]
    assert f"dpupose: warning: {other} is meant for zcu104; it is compared on ultra96v2" in err


def test_compare_plot_labels_of_nearly_the_same_point_do_not_overlap(pose_onnx, tmp_path, monkeypatch):
    """Two configurations of nearly the same DSP count and FPS: the second label is moved off the first (the
    labels were drawn at one fixed offset, one over the other); labels far apart keep that offset."""
    from dpupose.dpu import compare as cmp

    def disjoint(boxes):
        return not any(cmp._overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])

    texts = ["u96v2-b1152", "my/u96v2-b1152.toml", "u96v2-b2304-dsphigh"]
    anchors = [(200.0, 150.0), (200.5, 150.2), (300.0, 60.0)]
    offsets = cmp.label_offsets(anchors, texts, [True, True, False])
    assert offsets[0] == (6.0, 4.0) and offsets[2] == (6.0, -12.0)  # nothing in their way: the usual places
    assert offsets[1] != (6.0, 4.0)
    assert disjoint([cmp.label_box(a, o, t, cmp.LABEL_FONTSIZE) for a, o, t in zip(anchors, offsets, texts)])
    # plot() places its labels so: a file of one's own alike the shipped u96v2-b1152 lands on its point
    twin = tmp_path / "my" / "u96v2-b1152.toml"
    twin.parent.mkdir()
    twin.write_text((cmp.configs_dir() / "u96v2-b1152.toml").read_text())
    rows = cmp.compare(pose_onnx, "ultra96v2", given=[str(twin)])
    seen = []
    place = cmp.label_offsets

    def recording(anchors, texts, fits, fontsize):
        out = place(anchors, texts, fits, fontsize)
        seen.append([cmp.label_box(a, o, t, fontsize) for a, o, t in zip(anchors, out, texts)])
        return out

    monkeypatch.setattr(cmp, "label_offsets", recording)
    import matplotlib.pyplot as plt

    extents = []  # each label as matplotlib drew it, read before plot() closes its figure
    close = plt.close

    def closing(fig):
        renderer = fig.canvas.get_renderer()
        extents.append([t.get_window_extent(renderer) for t in fig.axes[0].texts])
        close(fig)

    monkeypatch.setattr(plt, "close", closing)
    cmp.plot(rows, tmp_path / "p.png", "t", 360)
    (boxes,) = seen
    assert len(boxes) == len(rows) and disjoint(boxes)
    # and as matplotlib draws them (label_box only estimates a text's size): no two labels drawn overlap, nor
    # the DSP line's
    (drawn,) = extents
    assert len(drawn) == len(rows) + 1
    assert not any(a.overlaps(b) for i, a in enumerate(drawn) for b in drawn[i + 1 :])


def test_label_offsets_keep_labels_apart_each_a_line_from_the_next_free_place():
    """label_offsets' rules in numbers: labels side by side keep the usual place; the second on a point goes a
    line (1.25 em + 1 pt) down, then up, until a free place, however many share it; a long label's width counts."""
    from dpupose.dpu import compare as cmp

    line = 1.25 * cmp.LABEL_FONTSIZE + 1
    # the same height, far apart: neither moves (only boxes overlapping in both axes are in each other's way)
    assert cmp.label_offsets([(100.0, 100.0), (400.0, 100.0)], ["a", "b"], [True, True]) == [(6.0, 4.0)] * 2
    # on one point: the second a line down, the third a line up, the fourth two down, ...
    offsets = cmp.label_offsets([(100.0, 100.0)] * 7, [f"config-{i}" for i in range(7)], [True] * 7)
    assert offsets == [(6.0, 4.0 + k * line) for k in (0, -1, 1, -2, 2, -3, 3)]
    # 60 pt apart at one height: a 30-character label (about 115 pt at 8 pt) reaches the next one's place
    long = ["x" * 30, "y" * 30]
    assert cmp.label_offsets([(100.0, 100.0), (160.0, 100.0)], long, [True, True])[1] != (6.0, 4.0)


def test_compare_plot_draws_each_label_inside_the_box_its_placement_assumed(pose_onnx, tmp_path, monkeypatch):
    """The places are worked out in points from the points' positions on the canvas: each label as drawn (the
    renderer's own extent) starts where its box does and lies inside it, so boxes kept apart are labels apart."""
    import matplotlib.figure

    from dpupose.dpu import compare as cmp

    twin = tmp_path / "u96v2-b1152.toml"
    twin.write_text((cmp.configs_dir() / "u96v2-b1152.toml").read_text())
    rows = cmp.compare(pose_onnx, "ultra96v2", given=[str(twin)])
    seen, figures = [], []
    place, save = cmp.label_offsets, matplotlib.figure.Figure.savefig

    def recording(anchors, texts, fits, fontsize):
        out = place(anchors, texts, fits, fontsize)
        seen.append([cmp.label_box(a, o, t, fontsize) for a, o, t in zip(anchors, out, texts)])
        return out

    def saving(fig, *args, **kwargs):
        out = save(fig, *args, **kwargs)  # then each label's extent as the renderer drew it, in pixels
        renderer = fig.canvas.get_renderer()
        figures.append((fig.dpi, [t.get_window_extent(renderer) for t in fig.axes[0].texts]))
        return out

    monkeypatch.setattr(cmp, "label_offsets", recording)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saving)
    cmp.plot(rows, tmp_path / "p.png", "t", 360)
    (boxes,), ((dpi, texts),) = seen, figures
    drawn = texts[-len(boxes) :]  # the labels are the last texts drawn (the DSP line's comes before them)
    assert len(boxes) == len(rows) and len(texts) == len(rows) + 1
    points = 72 / dpi
    for extent, (left, bottom, right, top) in zip(drawn, boxes):
        assert extent.x0 * points == pytest.approx(left, abs=1.5)
        assert extent.y0 * points == pytest.approx(bottom, abs=1.5)
        assert extent.x1 * points <= right + 0.5 and extent.y1 * points <= top + 0.5


def test_an_output_folder_given_as_the_onnx_model_names_the_file_to_give(tmp_path, monkeypatch, capsys):
    """A pipeline step's folder given where an ONNX file goes (split build/q, dpu compare --model PLAN) was
    'build/q: is a folder; give an ONNX file': the folder's own file is named (a quantize folder's model_qdq.onnx
    to split, its two models to compare; a plan's DPU subgraph files), and a run folder's checkpoint is named
    with the quantize command that makes ONNX of it. Another folder keeps the plain line; nothing is written."""
    monkeypatch.chdir(tmp_path)
    for folder, files in (("q", ("summary.json", "model_qdq.onnx")), ("plan", ("plan.json", "dpu0.onnx", "cpu0.onnx")),
                          ("run", ("last.pt", "best.pt")), ("other", ("a.txt",))):  # fmt: skip
        Path(folder).mkdir()
        for f in files:
            Path(folder, f).write_text("x")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    split = {
        "q": "q is a `dpupose quantize` folder: give its q/model_qdq.onnx",
        "plan": "plan is a split plan folder, split already: split the model_qdq.onnx written by `dpupose quantize`",
        "run": "run is a folder holding a checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint "
        "run/best.pt --out DIR`, and split DIR/model_qdq.onnx",
        "other": "other: is a folder; give the model_qdq.onnx written by `dpupose quantize`",
    }
    compare = {
        "q": "q is a `dpupose quantize` folder: give one of its models, q/model_fp32.onnx (the whole model, float) "
        "or q/dpu_part_qdq.onnx (the DPU part, quantized)",
        "plan": "plan is a split plan folder: give one of its DPU subgraph files (plan/dpu0.onnx)",
        "run": "run is a folder holding a checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint "
        "run/best.pt --out DIR`, which writes DIR/model_fp32.onnx and DIR/model_qdq.onnx",
        "other": "other: is a folder; give an ONNX file",
    }
    for folder in split:
        rc, _, err = run(capsys, "split", folder, "--out", "out")
        assert (rc, err) == (2, f"dpupose: error: {split[folder]}\n")
        for argv in (("dpu", "compare", "--model", folder), ("dpu", "estimate", folder, "--config", "u96v2-b512")):
            rc, _, err = run(capsys, *argv)
            assert (rc, err) == (2, f"dpupose: error: {compare[folder]}\n")
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_compare_plot_stopped_while_drawing_leaves_no_figure_open(pose_onnx, tmp_path, monkeypatch):
    """Ctrl-C as plot() laid out its labels (or at any point of the drawing before the write): pyplot keeps every
    figure not closed, and plot closed its figure only around the write, so each stop left one open in the
    caller's process (a notebook's: pyplot's 'More than 20 figures' warning). The earlier plot is kept whole."""
    import matplotlib.pyplot as plt

    from dpupose.dpu import compare as cmp

    rows = cmp.compare(pose_onnx, "ultra96v2")
    out = tmp_path / "cmp.png"
    out.write_bytes(b"the earlier plot")
    before = plt.get_fignums()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmp, "label_offsets", stopped)
    with pytest.raises(KeyboardInterrupt):
        cmp.plot(rows, out, "title", 1000.0)
    assert plt.get_fignums() == before
    assert out.read_bytes() == b"the earlier plot" and os.listdir(tmp_path) == ["cmp.png"]
