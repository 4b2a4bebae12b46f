"""`dpupose bench` and `make demo` end to end on a quickly quantized small network (64 px input)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from doc_keys import listed_keys
from quant_helpers import TINY, sane_model, save_checkpoint

from dpupose.cli import main
from dpupose.data.sources import load_data
from dpupose.errors import CheckpointError, UsageError
from dpupose.eval.bench import ROWS, BenchOptions, format_table, resolve_inputs, run_bench, study_network_note
from dpupose.eval.evaluate import iter_batches
from dpupose.eval.metrics import MetricAccumulator
from dpupose.model.checkpoint import check_checkpoint_path
from dpupose.model.complexity import count_macs
from dpupose.model.export import export_onnx
from dpupose.quant.pipeline import QuantizeConfig, quantize
from dpupose.split.a53 import REFERENCE, graph_counts
from dpupose.split.partition import SplitOptions, split_model
from dpupose.split.plan import load_plan

N = 6


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, synth_root):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tmp = tmp_path_factory.mktemp("bench")
        ckpt = save_checkpoint(sane_model(), tmp / "tiny.pt")
        qdir = tmp / "q"
        quantize(QuantizeConfig(ckpt, qdir, data_root=synth_root, num_calib=8, batch_size=4, summary_samples=1))
    finally:
        torch.set_num_threads(threads)
    return {"ckpt": ckpt, "q": qdir, "tmp": tmp}


@pytest.fixture(scope="module")
def result(quantized, synth_root):
    tmp = quantized["tmp"]
    plan = split_model(SplitOptions(quantized["q"] / "model_qdq.onnx", "u96v2-b1600-pynq", tmp / "plan")).folder
    opts = BenchOptions(
        plan=plan, num_samples=N, fps_frames=4, data_root=synth_root, num_calib=4, threads=1, work=tmp / "work"
    )
    return run_bench(opts)


def test_rows_and_json_fields(result):
    rows = [r.to_json() for r in result.rows]
    assert [r["row"] for r in rows] == list(ROWS)
    documented = listed_keys("benchmarks.md", "| `--json` | print a list of rows:", " (rows it skipped")
    for r in rows:
        assert list(r) == documented
        assert r["samples"] == N
        assert r["host_fps"] > 0 and r["host_fps_sequential"] > 0 and r["host_bound_fps"] > 0
        assert r["predicted_board_fps"] > 0 and "predicted" in r["predicted_note"]
        assert "measured" in r["host_note"]
    # Split rows are pipelined DPU + CPU on the board; the whole-model CPU rows are one stage.
    split_fp32, cpu_int8, cpu_fp32 = rows[1], rows[2], rows[3]
    assert split_fp32["predicted_board_fps"] > cpu_int8["predicted_board_fps"] > cpu_fp32["predicted_board_fps"]
    assert result.info["samples"] == N and result.info["plan"]
    table = format_table(result)
    assert "predicted" in table and "measured" in table and all(row in table for row in ROWS)
    # where PCKh's head sizes came from, as eval says it (the synthetic records carry head boxes)
    assert table.startswith(
        f"dpupose bench: {N} synthetic samples at 64 px (head sizes: {N} from the records' head_box), "
    )
    # The stage times are the pipelined run's, per frame in one worker (a DPU stage has two): said so, since
    # they exceed the sequential time per frame where two DPU jobs share the cores.
    stage_lines = [line for line in table.splitlines() if "slowest host stage" in line]
    assert len(stage_lines) == len(ROWS)
    for line in stage_lines[:2]:
        assert "pipelined run's stage times (ms per frame in one worker, 2 DPU jobs at once)" in line
    for line in stage_lines[2:]:
        assert "(ms per frame in one worker)" in line and "DPU jobs" not in line
    for line, row in zip(stage_lines, result.rows, strict=True):  # each stage as 'NAME MS', not a Python dict
        listed = ", ".join(f"{name} {ms:.3f}" for name, ms in row.host["stages_ms"].items())
        assert line.endswith(f"): {listed}") and "{" not in line
    assert "bound = 1 / max(stage time / workers)" in table
    # This 64 px network is not the study's (224 px, width 1.0): the table says so, with its own size and MACs
    macs = graph_counts(onnx.load(str(result.quantized / "model_fp32.onnx")))["macs"]
    assert result.info["model_macs"] == macs < REFERENCE["macs"] / 10
    assert f"this model (64 px, {macs / 1e9:.2f} GMAC) is another network" in table


def test_the_study_network_note_only_for_another_network():
    assert study_network_note({"input_size": 224, "model_macs": REFERENCE["macs"]}) is None
    assert study_network_note({"input_size": 224}) is None  # no quantized folder: the size is all there is
    assert "this model (192 px)" in study_network_note({"input_size": 192})
    # a width-0.5 network at 224 px: same size, a third of the MACs
    assert "this model (224 px, 0.16 GMAC)" in study_network_note({"input_size": 224, "model_macs": 163_000_000})


def test_cpu_fp32_row_equals_a_direct_evaluation(result, quantized, synth_root):
    """The bench's CPU ONNX FP32 metrics recomputed independently: ONNX Runtime on the same crops."""
    split = load_data("synthetic", "valid", synth_root)
    sess = ort.InferenceSession(str(quantized["q"] / "model_fp32.onnx"), providers=["CPUExecutionProvider"])
    acc = MetricAccumulator(64)
    for images, targets, visible, heads in iter_batches(split.records[:N], split.image_dir, 64, 3):
        coords, heatmaps = sess.run(["coords", "heatmaps"], {"image": images})
        acc.add(coords, heatmaps, targets, visible, heads)
    want = acc.summary()
    got = result.rows[3].metrics
    for key in ("euclidean", "euclidean_px", "jsd", "pckh@0.5", "num_samples"):  # px and PCKh: each sample's head
        assert got[key] == pytest.approx(want[key], rel=1e-5)
    # INT8 differs from FP32 somewhere, but not wildly.
    assert result.rows[1].metrics["euclidean"] != got["euclidean"]
    assert abs(result.rows[1].metrics["euclidean"] - got["euclidean"]) < 0.1


def test_cli_json_and_out_file(quantized, synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --quantized is split into ./build/cache/split
    out = tmp_path / "bench.json"
    argv = ["bench", "--quantized", str(quantized["q"]), "--num-samples", "3", "--fps-frames", "2", "--data-root",
            str(synth_root), "--emulator", "fast", "--json", "--out", str(out), "--threads", "1",
            "--work", str(tmp_path / "work")]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rows] == list(ROWS)
    saved = json.loads(out.read_text())
    assert saved["rows"] == rows and saved["emulator"] == "fast"
    documented = listed_keys("benchmarks.md", "`build/bench/bench.json`), one object:", "; an existing")
    assert list(saved) == [k for k in documented if k != "skipped"]  # skipped: without model_macs only
    assert (tmp_path / "build" / "cache" / "split").is_dir()


def test_an_out_file_that_cannot_be_written_is_named_as_given(tmp_path, capsys, monkeypatch):
    import types

    import dpupose.eval.bench as bench_mod

    monkeypatch.setattr(bench_mod, "run_bench", lambda opts: types.SimpleNamespace(rows=[], info={}))
    out = "/proc/dpupose-bench.json"  # no file can be made there
    assert main(["bench", "--plan", str(tmp_path), "--json", "--out", out, "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert f"cannot use {out}:" in err and ".tmp" not in err  # was /proc/.dpupose-bench.json.tmp


def test_the_plan_finds_its_quantized_model_relative_to_itself(quantized, tmp_path):
    """source_model is relative to the plan folder: found while the two keep their places (moved together),
    and an absolute entry (plans written before) is still followed."""
    q = tmp_path / "a" / "q"
    shutil.copytree(quantized["q"], q)
    plan_dir = split_model(SplitOptions(q / "model_qdq.onnx", "u96v2-b1600-pynq", tmp_path / "a" / "plan")).folder
    meta = json.loads((plan_dir / "plan.json").read_text())["metadata"]
    assert meta["source_model"] == "../q/model_qdq.onnx"
    shutil.move(tmp_path / "a", tmp_path / "b")
    _, found = resolve_inputs(BenchOptions(plan=tmp_path / "b" / "plan"))
    assert found.resolve() == (tmp_path / "b" / "q").resolve()
    data = json.loads((tmp_path / "b" / "plan" / "plan.json").read_text())
    data["metadata"]["source_model"] = str(quantized["q"].resolve() / "model_qdq.onnx")
    (tmp_path / "b" / "plan" / "plan.json").write_text(json.dumps(data))
    _, found = resolve_inputs(BenchOptions(plan=tmp_path / "b" / "plan"))
    assert found.resolve() == quantized["q"].resolve()


def test_a_plan_whose_source_was_quantized_again_gets_no_cpu_rows_of_that_model(quantized, tmp_path):
    """The plan's source folder now holds another model (another --width quantized into the same --out): its
    CPU rows would be another network's beside the plan's split rows. They are skipped, saying why."""
    q = tmp_path / "q"
    shutil.copytree(quantized["q"], q)
    plan_dir = split_model(SplitOptions(q / "model_qdq.onnx", "u96v2-b1600-pynq", tmp_path / "plan")).folder
    assert resolve_inputs(BenchOptions(plan=plan_dir))[1] == plan_dir / ".." / "q"  # its own: found
    m = onnx.load(str(q / "model_qdq.onnx"))
    m.doc_string = "quantized again"  # any other file in its place
    onnx.save(m, str(q / "model_qdq.onnx"))
    plan, found = resolve_inputs(BenchOptions(plan=plan_dir))
    assert found is None
    from dpupose.eval.bench import _no_cpu_rows_reason

    assert _no_cpu_rows_reason(plan) == (
        f"CPU ONNX rows: {q / 'model_qdq.onnx'} is not the model the plan was split from (its sha256 differs "
        "from the plan's: quantized again since?); pass --quantized DIR, the folder the plan was split from"
    )
    (q / "model_qdq.onnx").unlink()
    plan, found = resolve_inputs(BenchOptions(plan=plan_dir))
    assert found is None
    # The source gone (the shipped plan in a fresh checkout, whose source was quantized elsewhere): named as
    # not there, not as a folder without model_fp32.onnx (it has one).
    assert _no_cpu_rows_reason(plan) == (
        f"CPU ONNX rows: the plan's source model {q / 'model_qdq.onnx'} is not there; pass --quantized DIR, a "
        "`dpupose quantize` folder of the checkpoint the plan was split from"
    )


def test_the_cpu_rows_of_a_model_of_ones_own_come_from_its_float_export_beside_it(tmp_path):
    """`--quantized DIR` is a `dpupose quantize` folder, which a network of one's own does not have: the skip
    said only to pass one. Its float export beside the QDQ file as model_fp32.onnx is what the CPU rows take."""
    from split_models import float_model, save

    from dpupose.eval.bench import _no_cpu_rows_reason

    own = tmp_path / "own"
    plan_dir = split_model(SplitOptions(save("none", own / "net_qdq.onnx"), "u96v2-b1600-pynq", tmp_path / "p")).folder
    plan, found = resolve_inputs(BenchOptions(plan=plan_dir))
    assert found is None
    assert _no_cpu_rows_reason(plan) == (
        f"CPU ONNX rows: no model_fp32.onnx beside the plan's source model ({own}); pass --quantized DIR, or for "
        "a network of your own put its float export there under that name"
    )
    float_model(own / "model_fp32.onnx")
    assert resolve_inputs(BenchOptions(plan=plan_dir))[1] == plan_dir / ".." / "own"


def test_bench_writes_only_into_its_work_folder(result, quantized, synth_root, tmp_path, monkeypatch):
    """The plan and quantized folders it reads stay as they were (ONNX Runtime's quantizer writes a file
    beside the model it reads); the variant folders it replaces are only its own."""
    plan = result.plan.root
    # Files of the user's under the names ONNX Runtime gives its scratch model (it removes them after).
    sentinels = [plan / f"{Path(sg.file).stem}-inferred.onnx" for sg in result.plan.subgraphs if not sg.is_dpu]
    sentinels.append(quantized["q"] / "model_fp32-inferred.onnx")
    for f in sentinels:
        f.write_text("mine")
    before = {p: sorted(x.name for x in p.iterdir()) for p in (plan, quantized["q"])}
    work = tmp_path / "work"
    opts = dict(num_samples=2, fps_frames=2, data_root=synth_root, num_calib=2, threads=1, emulator="fast")
    try:
        run_bench(BenchOptions(plan=plan, work=work, **opts))
        assert {p: sorted(x.name for x in p.iterdir()) for p in before} == before
        assert all(f.read_text() == "mine" for f in sentinels)
    finally:
        for f in sentinels:
            f.unlink(missing_ok=True)
    # A plan inside the folder bench writes its variants to is refused, not deleted.
    inside = work / "split-int8-cpu"
    with pytest.raises(UsageError, match=r"is inside .*where bench writes its plan variants"):
        run_bench(BenchOptions(plan=inside, work=work, **opts))
    assert (inside / "plan.json").is_file()
    # ...and so is a --work that is the plan folder, or inside it: the variants would go there.
    for into in (plan, plan / "bench"):
        with pytest.raises(UsageError, match=r"is the plan folder .* or inside it"):
            run_bench(BenchOptions(plan=plan, work=into, **opts))
    assert sorted(x.name for x in plan.iterdir()) == ["cpu0.onnx", "dpu0.onnx", "plan.json"]
    # A file of the user's in a variant folder stops the bench before any sample is loaded.
    (work / "cpu-onnx-fp32" / "notes.txt").write_text("mine")

    def no_samples(*args, **kwargs):
        raise AssertionError("samples were loaded before the folders were checked")

    monkeypatch.setattr("dpupose.eval.bench_measure.load_samples", no_samples)
    with pytest.raises(UsageError, match=r"also holds notes\.txt"):
        run_bench(BenchOptions(plan=plan, work=work, **opts))
    assert (work / "cpu-onnx-fp32" / "notes.txt").read_text() == "mine"
    monkeypatch.undo()
    # An interrupted bench leaves no half-written variant that would stop the next one.
    (work / "cpu-onnx-fp32" / "notes.txt").unlink()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dpupose.quant.ort_int8.quantize_cpu_subgraph", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_bench(BenchOptions(plan=plan, work=work, **opts))
    monkeypatch.undo()
    # More samples asked for than the root's 12 validation records: the count given is the count scored.
    done = run_bench(BenchOptions(plan=plan, work=work, **{**opts, "num_samples": 20}))
    assert done.info["samples"] == 12 and [r.metrics["num_samples"] for r in done.rows] == [12] * 4
    assert format_table(done).startswith("dpupose bench: 12 synthetic samples")


def test_bench_refuses_options_it_would_ignore_and_foreign_outputs(quantized, result, tmp_path, capsys):
    q = str(quantized["q"])
    cases = [
        (["--quantized", q, "--checkpoint", str(quantized["ckpt"])], "not both"),
        (["--plan", str(result.plan.root), "--config", "u96v2-b1600-pynq"], "leave --config out"),
        (["--quantized", q, "--out", str(tmp_path / "notes.json")], "not an earlier `dpupose bench` result"),
    ]
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    for args, message in cases:
        assert main(["bench", *args]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "notes.json").read_text() == '{"mine": 1}'
    # --quantized of another input size than the plan's, before any sample is loaded.
    other = tmp_path / "q96"
    other.mkdir()
    shutil.copyfile(quantized["q"] / "model_fp32.onnx", other / "model_fp32.onnx")
    import onnx

    m = onnx.load(str(other / "model_fp32.onnx"))
    for d in m.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_value = 96
    onnx.save(m, str(other / "model_fp32.onnx"))
    with pytest.raises(UsageError, match="is a 96x96 px model but --plan is for 64 px"):
        resolve_inputs(BenchOptions(plan=result.plan.root, quantized=other))
    # --quantized of another width at the plan's size: its CPU rows would be another network's
    wide = tmp_path / "wide"
    model = sane_model(dataclasses.replace(TINY, width_mult=1.0))
    export_onnx(model, torch.zeros(1, 3, 64, 64), wide / "model_fp32.onnx", ["image"], ["coords", "heatmaps"])
    plan_macs = count_macs(sane_model().dpu_part, (3, 64, 64))  # the plan's network: TINY, all its convs
    with pytest.raises(UsageError) as err:
        resolve_inputs(BenchOptions(plan=result.plan.root, quantized=wide))
    macs = count_macs(model, (3, 64, 64))
    assert f"is another network than --plan {result.plan.root}: {macs / 1e9:.3f} GMAC against the plan's " in str(
        err.value
    ) and f"{plan_macs / 1e9:.3f} (another --width" in str(err.value)
    _, found = resolve_inputs(BenchOptions(plan=result.plan.root, quantized=quantized["q"]))  # its own: taken
    assert found == quantized["q"]


def test_a_missing_data_root_is_reported_before_any_quantization(tmp_path, monkeypatch):
    from dpupose.errors import DataError
    from dpupose.eval import prepare

    def no_quantize(*args, **kwargs):
        raise AssertionError("quantized before the data root was checked")

    monkeypatch.setattr(prepare, "quantized", no_quantize)
    with pytest.raises(DataError, match="--data-root .*nope does not exist; give the data set's root folder"):
        run_bench(BenchOptions(checkpoint=tmp_path / "x.pt", data="mpii", data_root=tmp_path / "nope"))
    with pytest.raises(UsageError, match="MPII data needs --data-root DIR"):
        run_bench(BenchOptions(checkpoint=tmp_path / "x.pt", data="mpii"))
    # what is there where the folder goes is named, as in the other commands' refusals (fsio.what_is_at)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to("file")
    for name, what in (("fifo", "a FIFO"), ("file", "a file"), ("link", "a link to file")):
        with pytest.raises(DataError, match=f"--data-root .*/{name} is {what}, not a folder; give the data set's root"):
            run_bench(BenchOptions(checkpoint=tmp_path / "x.pt", data="mpii", data_root=tmp_path / name))


def test_an_unknown_config_is_refused_before_any_quantization(tmp_path, monkeypatch, capsys):
    """`--config u96v2-b1600` (the shipped name is u96v2-b1600-pynq) was refused by the split, after the
    checkpoint had been quantized into build/cache/ (minutes): now first, with nothing written."""
    from dpupose.cli import main
    from dpupose.dpu.config import list_configs
    from dpupose.eval import prepare

    def no_quantize(*args, **kwargs):
        raise AssertionError("quantized before --config was checked")

    monkeypatch.setattr(prepare, "quantized", no_quantize)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"a checkpoint")
    (tmp_path / "q").mkdir()  # a folder of its own: one holding a checkpoint is answered as a run folder
    for argv in (["--checkpoint", "model.pt"], ["--quantized", str(tmp_path / "q")], []):
        assert main(["bench", *argv, "--config", "u96v2-b1600"]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"dpupose: error: unknown DPU configuration 'u96v2-b1600'; shipped: {', '.join(list_configs())} (or "
            "give a path to a .toml file)\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "q"]  # no build/ (--work, cache) made


def test_a_bench_into_a_work_folder_in_use_is_refused_before_any_quantization(tmp_path, monkeypatch):
    """Its --work was locked only once its inputs were resolved: a second bench quantized (minutes) first."""
    from dpupose.eval import prepare
    from dpupose.fsio import lock_folder

    def no_quantize(*args, **kwargs):
        raise AssertionError("quantized before --work was locked")

    monkeypatch.setattr(prepare, "quantized", no_quantize)
    (tmp_path / "model.pt").write_bytes(b"a checkpoint")
    work = tmp_path / "work"
    work.mkdir()
    refused = pytest.raises(UsageError, match=r"--work .*work is in use by another `dpupose bench` \(process ")
    with lock_folder(work, "dpupose bench", "--work"), refused:
        run_bench(BenchOptions(checkpoint=tmp_path / "model.pt", work=work))


def test_a_refused_bench_or_demo_leaves_no_folder_it_made(tmp_path, monkeypatch, capsys):
    from dpupose import demo

    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--checkpoint", "missing.pt", "--work", "runs/work"]) == 2
    assert "no model to benchmark" in capsys.readouterr().err
    assert demo.main(["--model", "missing.pt", "--out", "runs/demo"]) == 2
    assert capsys.readouterr().err.endswith(
        "dpupose: error: --model missing.pt not found: give a checkpoint written by `dpupose train` or "
        "`dpupose export` (e.g. runs/NAME/best.pt)\n"
    )  # as export says it
    assert os.listdir(tmp_path) == []  # nor runs/, which they made
    (tmp_path / "demo").mkdir()  # a folder that was there stays, without the lock file the demo made
    assert demo.main(["--model", "missing.pt", "--out", "demo"]) == 2
    assert os.listdir(tmp_path / "demo") == []


def test_work_in_the_plan_folder_or_the_plan_in_a_variant_folder_is_refused_through_a_bind_mount(tmp_path, bind_mount):
    """The plan folder and --work compared by real path only: through a bind mount of either elsewhere, --work in
    the plan folder had the variants written among the plan's files, and a plan in a variant folder was replaced."""
    import types

    from dpupose.eval.bench import _check_work_outside
    from dpupose.eval.bench_plans import check_variant_folder

    plan = tmp_path / "plan"
    plan.mkdir()
    bound = bind_mount(plan)
    with pytest.raises(UsageError, match=r"is the plan folder .* or inside it"):
        _check_work_outside(bound / "bench", plan)
    variant = tmp_path / "work" / "split-int8-cpu"
    variant.mkdir(parents=True)
    inside = bind_mount(variant)
    with pytest.raises(UsageError, match=r"is inside .*split-int8-cpu, where bench writes its plan variants"):
        check_variant_folder(variant, types.SimpleNamespace(root=inside))
    _check_work_outside(tmp_path / "work", plan)  # elsewhere: nothing to refuse


def test_the_demo_refuses_an_empty_model_as_every_command_does(tmp_path, monkeypatch, capsys):
    """--model "$M" with M unset was Path('') == '.', which the demo called '--model . is a folder', naming a folder
    the user never gave; it is refused as every command's empty input is (argtypes.given_path)."""
    from dpupose import demo

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        demo.main(["--model", "", "--out", "demo"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(
        "python -m dpupose.demo: error: argument --model: the value is empty (a shell variable that is not set "
        "gives one); give a checkpoint (.pt)"
    )
    assert os.listdir(tmp_path) == []


def test_a_quantize_or_plan_folder_given_as_the_checkpoint_names_what_to_give(tmp_path, monkeypatch, capsys):
    """A later step's folder given as --checkpoint (eval --engine int8-emulated --checkpoint Q, bench --checkpoint
    Q) was 'is a folder; give a checkpoint file (e.g. runs/NAME/best.pt)', not saying that the checkpoint is the
    one summary.json records, nor that the folder goes to --quantized (or a plan's to --plan)."""
    monkeypatch.chdir(tmp_path)
    q, plan = Path("q"), Path("plan")
    q.mkdir()
    (q / "summary.json").write_text(json.dumps({"generated_by": "dpupose quantize", "checkpoint": "runs/a/best.pt"}))
    plan.mkdir()
    (plan / "plan.json").write_text("{}")
    lines = [
        ["eval", "--data", "synthetic", "--engine", "int8-emulated", "--checkpoint", "q"],
        ["bench", "--checkpoint", "q", "--work", "work"],
        ["export", "--checkpoint", "q", "--out", "m.pt"],
        ["quantize", "--checkpoint", "q", "--out", "q2"],
        ["train", "--data", "synthetic", "--epochs", "1", "--out", "run", "--init", "q"],
    ]
    for argv in lines:
        assert main(argv) == 2
        option = "--init" if argv[0] == "train" else "--checkpoint"
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"dpupose: error: {option} q is a folder; give the checkpoint it was quantized from (runs/a/best.pt, as "
            "summary.json records it), not the `dpupose quantize` folder, which `dpupose eval` (with an int8 "
            "--engine) and `dpupose bench` take as --quantized q"
        )
    assert main(["export", "--checkpoint", "plan", "--out", "m.pt"]) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: --checkpoint plan is a folder; give a checkpoint written by `dpupose train` or "
        "`dpupose export`, not a split plan folder, which runs with `dpupose run --plan plan` and `dpupose bench "
        "--plan plan`\n"
    )
    # another program's summary.json names nothing
    (q / "summary.json").write_text('{"generated_by": "other"}')
    assert main(["export", "--checkpoint", "q", "--out", "m.pt"]) == 2
    assert capsys.readouterr().err.endswith("q is a folder; give a checkpoint file (e.g. runs/NAME/best.pt)\n")
    assert sorted(os.listdir(tmp_path)) == ["plan", "q"]


def test_a_checkpoint_folder_or_file_of_another_kind_is_named_and_nothing_is_cached(tmp_path, monkeypatch, capsys):
    # A run folder given as the checkpoint was said not to exist; an ONNX file was refused only after
    # "quantizing ... into build/cache/..." was logged and that cache's folder and lock were made for it.
    from dpupose import demo

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "model_qdq.onnx").write_bytes(b"\x08\x08")
    assert main(["bench", "--checkpoint", "runs/x", "--work", "work"]) == 2
    want = "is a folder; give a checkpoint file (e.g. runs/NAME/best.pt)\n"
    assert capsys.readouterr().err == f"dpupose: error: --checkpoint runs/x {want}"
    assert demo.main(["--model", "runs/x", "--out", "demo"]) == 2
    assert capsys.readouterr().err.endswith(f"dpupose: error: --model runs/x {want}")
    # A folder holding a checkpoint names it (the same wording as every command reading a checkpoint): a run's
    # best.pt before its last.pt, a model card's model.pt, a run stopped before its first validation's last.pt.
    for files, named in ((("last.pt", "best.pt"), "best.pt"), (("model.pt",), "model.pt"), (("last.pt",), "last.pt")):
        run = tmp_path / "runs" / named.removesuffix(".pt")
        run.mkdir()
        for f in files:
            (run / f).write_bytes(b"a checkpoint")
        folder = f"runs/{run.name}"
        want = f"is a folder; give the checkpoint file in it ({folder}/{named})\n"
        assert main(["bench", "--checkpoint", folder, "--work", "work"]) == 2
        assert capsys.readouterr().err == f"dpupose: error: --checkpoint {folder} {want}"
        assert demo.main(["--model", folder, "--out", "demo"]) == 2
        assert capsys.readouterr().err.endswith(f"dpupose: error: --model {folder} {want}")
        with pytest.raises(CheckpointError, match=rf"^checkpoint {folder} {re.escape(want.strip())}$"):
            check_checkpoint_path(folder)
    assert main(["bench", "--checkpoint", "model_qdq.onnx", "--work", "work"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: model_qdq.onnx is an ONNX model, not a checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["model_qdq.onnx", "runs"]  # no build/cache, no work


def test_bench_without_a_model_says_what_to_pass(tmp_path, capsys):
    rc = main(["bench", "--checkpoint", str(tmp_path / "missing.pt")])
    assert rc == 2
    assert "--plan DIR, --quantized DIR or --checkpoint" in capsys.readouterr().err


def test_demo_end_to_end(quantized, tmp_path, monkeypatch):
    from dpupose import demo

    monkeypatch.chdir(tmp_path)  # the demo caches under ./build
    rc = demo.main(["--model", str(quantized["ckpt"]), "--out", "build/demo", "--num-images", "2",
                    "--num-samples", "4", "--fps-frames", "2"])  # fmt: skip
    assert rc == 0
    out = tmp_path / "build" / "demo"
    for name in ("report.md", "report.html", "demo.json", "fps_rows.png", "fps_configs.png", "stages.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    images = sorted((out / "images").glob("sample_*.jpg"))
    assert len(images) == 2
    doc = json.loads((out / "demo.json").read_text())
    assert [r["row"] for r in doc["bench"]["rows"]] == list(ROWS)
    documented = listed_keys("benchmarks.md", "`demo.json` holds the report's figures, one object:", ". A test")
    assert list(doc) == documented
    # what the parentheses name: images', the bench's and a configuration row's keys
    text = " ".join((Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text().split())
    said = text[
        text.index("`demo.json` holds the report's figures") : text.index("compares these keys with a real demo's")
    ]
    assert all(f"`{k}`" in said for k in doc["images"]) and list(doc["bench"]) == ["info", "rows"]
    assert all(f"`{k}`" in said for row in doc["configurations"] for k in row)
    assert "total" in doc["seconds"]
    assert doc["standin_note"] is None
    assert doc["bench"]["info"]["emulator"] == "fast"  # as report.md says the table's accuracy is
    assert doc["plan"].startswith("build") and doc["dpu_config"] == "u96v2-b1600-pynq"  # split here, not shipped
    assert {c["config"] for c in doc["configurations"]} >= {"u96v2-b1600-pynq", "u96v2-b512"}
    md = (out / "report.md").read_text()
    assert "exact" in md and "fast path" in md and "predicted" in md
    cmp = doc["images"]["exact_vs_fast"]
    assert np.isfinite(cmp["max_coord_diff"]) and cmp["max_coord_diff"] >= cmp["mean_coord_diff"] >= 0
    # every value of the DPU subgraphs' outputs, on both frames
    dpu = [t for sg in load_plan(tmp_path / doc["plan"]).subgraphs if sg.is_dpu for t in sg.outputs]
    assert cmp["dpu_values"] == 2 * sum(int(np.prod(t.shape[1:])) for t in dpu) > 0
    assert "fast path" in md and ("give the same DPU outputs" in md or "int8 values (" in md)
    # A second run reuses the cached quantized model and plan.
    cached = sorted(p.name for p in (tmp_path / "build" / "cache" / "quantized").iterdir())
    # (more images than bench samples: as many samples are loaded as either needs)
    assert demo.main(["--model", str(quantized["ckpt"]), "--out", "build/demo", "--num-images", "3",
                      "--num-samples", "2", "--fps-frames", "2"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "build" / "cache" / "quantized").iterdir()) == cached
    doc = json.loads((out / "demo.json").read_text())
    assert doc["images"]["images"] == [f"images/sample_{i:02d}.jpg" for i in range(3)]
    assert doc["bench"]["info"]["samples"] == 2


def test_the_demo_runs_the_shipped_plan_for_the_shipped_model(monkeypatch, tmp_path):
    from dpupose import demo

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert demo.shipped_plan(demo.DEFAULT_MODEL) == demo.SHIPPED_PLAN
    assert demo.shipped_plan(root / "models" / "dpupose-synth" / "model.pt") == demo.SHIPPED_PLAN
    assert demo.shipped_plan(tmp_path / "model.pt") is None


def test_the_demo_leaves_a_shipped_plan_split_from_another_model(monkeypatch, tmp_path):
    """Weights retrained into models/ (another width, say) before the plan was made again: the shipped plan's
    DPU part would have run beside the new model's CPU rows. The plan is used only while it was split from
    the model_qdq.onnx the demo's quantization gives."""
    import hashlib

    from dpupose import demo

    model, plan = tmp_path / "model.pt", tmp_path / "split"
    model.write_bytes(b"weights")
    plan.mkdir()
    qdq = b"the quantized model"
    (plan / "plan.json").write_text(json.dumps({"model": {"sha256": hashlib.sha256(qdq).hexdigest()}}))
    monkeypatch.setattr(demo, "DEFAULT_MODEL", model)
    monkeypatch.setattr(demo, "SHIPPED_PLAN", plan)
    q = tmp_path / "q"
    q.mkdir()
    (q / "model_qdq.onnx").write_bytes(qdq)
    assert demo.shipped_plan(model, q) == plan
    (q / "model_qdq.onnx").write_bytes(b"another model quantized")
    assert demo.shipped_plan(model, q) is None


@pytest.mark.parametrize("recorded", [None, "{}", "[]", '{"model": "m_qdq.onnx"}', "{ not json"])
def test_a_shipped_plan_that_records_no_model_is_not_run(monkeypatch, tmp_path, caplog, recorded):
    """A shipped plan folder without its plan.json (a checkout that left it out) is no plan: not handed back,
    with the quantization or without, and without a warning about retraining. One whose plan.json records no
    model digest (another program's file, a damaged one) is not run either: the demo splits the model itself
    and says why, where it stopped with a KeyError or TypeError traceback."""
    from dpupose import demo

    model, plan = tmp_path / "model.pt", tmp_path / "split"
    model.write_bytes(b"weights")
    plan.mkdir()
    monkeypatch.setattr(demo, "DEFAULT_MODEL", model)
    monkeypatch.setattr(demo, "SHIPPED_PLAN", plan)
    q = tmp_path / "q"
    q.mkdir()
    (q / "model_qdq.onnx").write_bytes(b"the quantized model")
    if recorded is None:
        assert demo.shipped_plan(model) is None and demo.shipped_plan(model, q) is None
        assert caplog.text == ""
        return
    (plan / "plan.json").write_text(recorded)
    assert demo.shipped_plan(model) == plan  # the shipped model's plan, when the caller has no quantization
    assert demo.shipped_plan(model, q) is None
    assert "was not split from the quantization the demo made" in caplog.text


def test_an_installed_package_names_the_shipped_model_as_the_docs_do(monkeypatch, tmp_path, capsys):
    """A wheel carries no model and has no checkout above it: bench names models/dpupose-synth/model.pt and
    says where it comes from, not a path inside the Python installation."""
    from dpupose.dpu import paths
    from dpupose.eval import bench

    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "lib" / "python3.11")
    monkeypatch.chdir(tmp_path)
    assert paths.shipped_model() == Path("models/dpupose-synth/model.pt")
    monkeypatch.setattr(bench, "DEFAULT_CHECKPOINT", paths.shipped_model())
    assert main(["bench", "--out", str(tmp_path / "bench.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "dpupose: error: no model to benchmark: models/dpupose-synth/model.pt does not exist (the shipped model "
        "comes with the repository, not with the installed package: run from a checkout); pass --plan DIR"
    )
    assert os.listdir(tmp_path) == []


def test_the_shipped_model_is_found_from_any_folder(monkeypatch, tmp_path):
    from dpupose.dpu.paths import shipped_model

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert shipped_model() == Path("models/dpupose-synth/model.pt")  # as the docs write it
    monkeypatch.chdir(tmp_path)
    assert shipped_model() == root / "models" / "dpupose-synth" / "model.pt" and shipped_model().is_file()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/full"])
def test_an_out_that_is_a_device_is_refused_without_reading_it(tmp_path, device):
    """bench read an existing --out whole to see whether an earlier bench wrote it: /dev/zero and /dev/full read
    zeros for ever, so `--out /dev/full` took all the memory it could and stopped with a MemoryError traceback
    (here within a 3 GiB address space, so that a regression cannot take the machine's)."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
    argv = [sys.executable, "-m", "dpupose", "bench", "--quantized", str(tmp_path), "--out", device]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=limit, env=env)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"dpupose bench: error: argument --out: {device} is a device, not a file, and the output would take its "
        "place; give a file name (see `dpupose bench --help`)\n",
    )


def test_a_plan_of_another_dpu_is_refused_naming_it_before_any_work(tmp_path):
    """A --plan whose fingerprint is not its configuration's, or whose configuration is unknown, was found only
    after the INT8 CPU variant was calibrated, and the message named that variant's copy under --work
    (work/split-int8-cpu), a folder the user never gave."""
    from dpupose.errors import ConfigError

    shipped = Path(__file__).resolve().parents[1] / "models" / "dpupose-synth" / "split"
    for change, message in (
        ({"fingerprint": "0x1"}, "was split for 0x1, but its configuration 'u96v2-b1600-pynq' is 0x101000016010404"),
        # a plan that records its configuration's options needs no shipped one of its name: drop them
        ({"dpu_config": "nope"}, "was split for DPU configuration 'nope', which is not a shipped one"),
    ):
        plan = tmp_path / "plan"
        shutil.rmtree(plan, ignore_errors=True)
        shutil.copytree(shipped, plan)
        doc = json.loads((plan / "plan.json").read_text())
        if "dpu_config" in change:
            doc["metadata"] = {k: v for k, v in doc["metadata"].items() if k != "dpu_config_options"}
        (plan / "plan.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(ConfigError, match=f"^the split plan in {plan} {message}"):
            resolve_inputs(BenchOptions(plan=plan, work=tmp_path / "work"))
        assert not (tmp_path / "work").exists()


def test_a_plan_the_emulator_cannot_run_is_refused_before_any_work_saying_what_runs_it(tmp_path, capsys):
    """A plan with a DPU op the emulator does not run (a max pool in ceil mode; a model of one's own with a
    Gemm) was found only after the INT8 CPU variant was calibrated, and told to use `--backend cpu`,
    an option bench does not have."""
    from split_models import save

    plan = tmp_path / "plan"
    split_model(SplitOptions(save("pool_ceil", tmp_path / "m.onnx"), "u96v2-b1600-pynq", plan))
    capsys.readouterr()
    assert main(["bench", "--plan", str(plan), "--work", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("dpupose: error: subgraph 'dpu0' of the plan runs on the DPU but not on the emulator (")
    assert (
        "bench measures the split rows with the emulator: `dpupose run --plan PLAN --source SRC --backend cpu`" in err
    )
    # the command it gives is one the parser takes (--source is required: without it, a usage error)
    from dpupose.cli import build_parser

    command = err.split("emulator: `", 1)[1].split("`")[0].split()
    words = {"PLAN": str(plan), "SRC": str(tmp_path / "images")}
    args = build_parser().parse_args([words.get(w, w) for w in command[1:]])
    assert (Path(args.plan), args.source, args.backend) == (plan, words["SRC"], "cpu")
    assert not (tmp_path / "work").exists()


_EARLIER = {"generated_by": "dpupose bench", "rows": [{"row": "an earlier bench's"}]}


@pytest.mark.parametrize(("signum", "rc"), [(2, 130), (15, 143)])
def test_ctrl_c_or_sigterm_leaves_bench_out_the_earlier_or_the_new_whole(tmp_path, monkeypatch, capsys, signum, rc):
    """--out is the earlier result or the new one, whole, with no temporary beside it, wherever the signal comes:
    during the bench, or at each point of the write of --out in turn (signal_sweep): a signal in mkstemp, after
    it made the temporary file, left that file beside --out."""
    from types import SimpleNamespace

    from signal_sweep import signal_sweep

    from dpupose import fsio
    from dpupose.eval import bench

    out = tmp_path / "result.json"
    new = {"generated_by": "dpupose bench", "setting": 1, "rows": [{"row": "the new one"}]}
    result = SimpleNamespace(rows=[SimpleNamespace(to_json=lambda: new["rows"][0])], info={"setting": 1})

    def stopped(opts):
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the bench")

    argv = ["bench", "--json", "--work", str(tmp_path / "work"), "--out", str(out)]
    real_write_json = fsio.write_json
    real_write_json(out, _EARLIER)
    monkeypatch.setattr(bench, "run_bench", stopped)
    assert main(argv) == rc
    assert json.loads(out.read_text()) == _EARLIER and os.listdir(tmp_path) == ["result.json"]

    monkeypatch.setattr(bench, "run_bench", lambda opts: result)
    umask = os.umask(0o022)  # reading it sets it: 0o022, as one left at 0 would not be
    seen = set()
    for point in signal_sweep(signum):

        def write_json(*args, point=point, **kwargs):
            with point.armed():
                return real_write_json(*args, **kwargs)

        real_write_json(out, _EARLIER)
        monkeypatch.setattr(fsio, "write_json", write_json)
        status = main(argv)
        monkeypatch.setattr(fsio, "write_json", real_write_json)
        doc = json.loads(out.read_text())
        assert doc in (_EARLIER, new), point
        assert os.listdir(tmp_path) == ["result.json"], point
        assert status == (rc if point.sent else 0), point
        assert os.umask(0o022) == 0o022, point  # a signal as the file's mode was worked out left the umask 0
        seen.add("new" if doc == new else "earlier")
    os.umask(umask)
    capsys.readouterr()
    assert seen == {"earlier", "new"} and point.n > 20  # signalled before and after the rename


def test_every_dpu_subgraph_is_checked_for_the_emulator_past_a_damaged_one(monkeypatch):
    """The check stopped at the first DPU subgraph whose file did not load for another reason (a damaged file,
    which the runners name later), so a later subgraph the emulator does not run went unchecked."""
    from types import SimpleNamespace

    from dpupose.errors import ModelFileError
    from dpupose.eval import bench
    from dpupose.runtime import qdq_graph

    def load_program(path):
        if path.name == "dpu0.onnx":
            raise ModelFileError(f"{path} is damaged")
        raise qdq_graph.NotEmulated("ConvTranspose at 'up'")

    monkeypatch.setattr(qdq_graph, "load_program", load_program)
    subgraphs = [
        SimpleNamespace(name="dpu0", file="dpu0.onnx", is_dpu=True),
        SimpleNamespace(name="cpu0", file="cpu0.onnx", is_dpu=False),
        SimpleNamespace(name="dpu1", file="dpu1.onnx", is_dpu=True),
    ]
    plan = SimpleNamespace(subgraphs=subgraphs, path=lambda name: Path("plan") / name)
    with pytest.raises(ModelFileError, match=r"^subgraph 'dpu1' of the plan runs on the DPU but not on the emulator"):
        bench._check_emulated(plan)


def test_each_figure_comes_from_its_own_measurement_or_prediction(result):
    """Every field of a row is the figure it names: the host's pipelined and sequential FPS as measured, the
    board FPS as the predictions compute them on their own (predict_plan for the split rows, the A53 model's
    closed form for the whole-model rows), the study's own FPS per row, and 'DPU emulated' only where a DPU
    part was emulated. Swapped or mislabelled, a predicted figure would read as measured, or one row's as another's."""
    from dpupose.eval.bench import STUDY
    from dpupose.split.a53 import default_model
    from dpupose.split.cost import predict_plan

    a53 = default_model()
    variant = load_plan(result.plan.root.parent / "work" / "split-int8-cpu")
    assert variant.generated_by == "dpupose bench"
    for sg, was in zip(variant.subgraphs, result.plan.subgraphs, strict=True):  # the INT8 CPU subgraphs say so
        assert sg.reason == (was.reason if sg.is_dpu else f"{was.reason} (ONNX Runtime static INT8)")
    want_split = {
        ROWS[0]: predict_plan(variant, a53, cpu_int8=True).to_dict(),
        ROWS[1]: predict_plan(result.plan, a53, cpu_int8=False).to_dict(),
    }
    counts = graph_counts(onnx.load(str(result.quantized / "model_fp32.onnx")))
    for row in result.rows:
        j, host = row.to_json(), row.host
        assert host["frames"] == 4  # fps_frames, every one timed
        assert j["host_fps"] == host["pipelined_fps"] and j["host_fps_sequential"] == host["sequential_fps"]
        assert j["host_bound_fps"] == host["bound_fps"]
        assert j["host_pipeline_efficiency"] == pytest.approx(host["pipelined_fps"] / host["bound_fps"])
        # stages_ms are the pipelined run's, whose bound is 1 / max(stage time / workers), DPU stages on two
        per_frame = [ms / (host["dpu_jobs"] if n.startswith("dpu") else 1) for n, ms in host["stages_ms"].items()]
        assert 1e3 / host["bound_fps"] == pytest.approx(max(per_frame), abs=5e-4)
        assert j["host_stages_ms"] == host["stages_ms"] and host["dpu_jobs"] == 2
        assert j["study_fps"] == STUDY[row.row]["fps"]
        if row.row in want_split:
            want = want_split[row.row]
            assert j["host_note"] == "host, measured (DPU emulated with ONNX Runtime's QDQ path)"
            assert j["notes"] == ["accuracy with the exact DPU emulator"]  # the fixture's default emulator
        else:
            ms = a53.compute_s(counts["macs"], counts["element_ops"], counts["nodes"], row.row == ROWS[2]) * 1e3
            want = {"dpu_ms": 0.0, "cpu_ms": ms, "pipelined_fps": 1e3 / ms, "sequential_fps": 1e3 / ms}
            assert j["host_note"] == "host, measured"
            assert j["notes"] == ["ONNX Runtime static INT8" if row.row == ROWS[2] else "float"]
        got = [j[f"predicted_{k}"] for k in ("board_fps", "board_fps_sequential", "dpu_ms", "cpu_ms")]
        assert got == pytest.approx([want[k] for k in ("pipelined_fps", "sequential_fps", "dpu_ms", "cpu_ms")])


def test_the_table_shows_each_row_s_figures_in_their_columns(result):
    """Each number of a row's line read back is the row's figure of that column: host sequential, host
    pipelined, bound and efficiency (in percent) under 'host', the predicted board FPS and the study's FPS last."""
    lines = format_table(result).splitlines()
    for row in result.rows:
        j = row.to_json()
        line = next(x for x in lines if x.startswith(f"{row.row:<26} "))
        accuracy, host, board = line[26:].split("|")
        want = [j["euclidean"], j["euclidean_px"], j["jsd"], j["pckh@0.5"]]
        for shown, value, decimals in zip(accuracy.split(), want, (4, 2, 4, 3), strict=True):
            assert float(shown) == pytest.approx(value, abs=0.51 * 10**-decimals)
        seq, pipel, bound, eff = host.split()
        assert float(seq) == pytest.approx(j["host_fps_sequential"], abs=0.051)
        assert float(pipel) == pytest.approx(j["host_fps"], abs=0.051)
        assert float(bound) == pytest.approx(j["host_bound_fps"], abs=0.051)
        assert eff.endswith("%") and float(eff[:-1]) == pytest.approx(100 * j["host_pipeline_efficiency"], abs=0.51)
        predicted, study = board.split()
        assert float(predicted) == pytest.approx(j["predicted_board_fps"], abs=0.051)
        assert float(study) == j["study_fps"]


def test_the_samples_hand_the_fps_runs_the_crops_the_accuracy_rows_score(synth_root):
    """frames_bgr (what the FPS runs and the demo's images go through) are the scored crops as uint8 BGR:
    the runtime's own pre-processing gives back each image to within half a uint8 step (rounded, not cut)."""
    from dpupose.data.transforms import IMAGENET_STD
    from dpupose.eval.bench_measure import load_samples
    from dpupose.runtime.executor import preprocess

    samples = load_samples("synthetic", synth_root, 3, 64)
    assert len(samples.frames_bgr) == 3
    bound = 0.5 / 255 / min(IMAGENET_STD) + 1e-5
    for frame, image in zip(samples.frames_bgr, samples.images, strict=True):
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert np.abs(preprocess(frame, 64).tensor[0] - image).max() <= bound


def test_fewer_validation_records_than_asked_for_are_measured_with_a_note(synth_root, capsys):
    """A data root of 12 validation scenes and --num-samples 20: the 12 are scored, and the bench says so as
    dpupose eval does, instead of a table of 12 samples under an asked-for 20 with no word."""
    from dpupose.eval.bench_measure import load_samples

    samples = load_samples("synthetic", synth_root, 20, 64)
    assert len(samples.images) == len(samples.frames_bgr) == 12
    assert capsys.readouterr().err == (
        f"dpupose: note: --num-samples 20, but {synth_root} holds 12 validation records: measuring those 12\n"
    )
    load_samples("synthetic", synth_root, 12, 64)
    assert capsys.readouterr().err == ""


def test_the_caching_runner_shares_only_identical_inputs_and_keeps_its_results():
    """Two rows' DPU subgraphs share results only for the same inputs under the same names; a caller changing
    what it got does not change what the next one gets; the oldest of more than `size` inputs is run again."""
    from dpupose.eval.bench_measure import CachingRunner

    calls = []

    class Recording:
        inputs = outputs = ()

        def run(self, feeds):  # each input's name and value: a -> 97, so a = 1 gives 9701
            calls.append(sorted(feeds))
            return {"y": np.array([ord(name) * 100 + int(v[0]) for name, v in sorted(feeds.items())])}

        def close(self):
            calls.append("closed")

    one, two = np.array([1], np.int8), np.array([2], np.int8)
    named = CachingRunner(Recording())
    assert named.run({"a": one, "b": two})["y"].tolist() == [9701, 9802]
    assert named.run({"b": one, "c": two})["y"].tolist() == [9801, 9902]  # the same bytes under other names
    calls.clear()
    cache = CachingRunner(Recording(), size=2)
    assert cache.run({"a": one, "b": two})["y"].tolist() == [9701, 9802]
    assert cache.run({"a": two, "b": one})["y"].tolist() == [9702, 9801]
    got = cache.run({"a": one, "b": two})
    assert got["y"].tolist() == [9701, 9802] and len(calls) == 2  # taken from the cache
    got["y"][0] = 99
    assert cache.run({"a": one, "b": two})["y"].tolist() == [9701, 9802]
    cache.run({"a": one, "b": one})  # a third input: the oldest, (1, 2), makes way (first in, first out)
    assert len(calls) == 3
    cache.run({"a": two, "b": one})
    assert len(calls) == 3
    assert cache.run({"a": one, "b": two})["y"].tolist() == [9701, 9802] and len(calls) == 4
    cache.close()
    assert calls[-1] == "closed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fps_frames": 1}, "--fps-frames at least 2"),
        ({"num_samples": 0}, "--num-samples must be at least 1"),
        ({"emulator": "slow"}, "--emulator must be one of exact, fast"),
    ],
)
def test_bench_options_the_command_line_refuses_are_refused_from_python_too(tmp_path, change, message):
    opts = BenchOptions(checkpoint=tmp_path / "x.pt", work=tmp_path / "work", **change)
    with pytest.raises(UsageError, match=message):
        run_bench(opts)
    assert not (tmp_path / "work").exists()


def test_a_quantized_folder_without_its_qdq_model_is_named(tmp_path):
    from dpupose.errors import ModelFileError

    with pytest.raises(ModelFileError, match=f"^{tmp_path} holds no model_qdq.onnx: pass a folder written by"):
        resolve_inputs(BenchOptions(quantized=tmp_path))


def test_a_plan_anywhere_under_a_variant_folder_is_refused(tmp_path):
    """A plan folder two levels into work/split-int8-cpu would be deleted with the variant it sits in."""
    from types import SimpleNamespace

    from dpupose.eval.bench_plans import check_variant_folder

    variant = tmp_path / "work" / "split-int8-cpu"
    for inside in (variant, variant / "a" / "plan"):
        with pytest.raises(UsageError, match=r"is inside .*split-int8-cpu, where bench writes its plan variants"):
            check_variant_folder(variant, SimpleNamespace(root=inside))
    check_variant_folder(variant, SimpleNamespace(root=tmp_path / "work" / "plan"))  # beside it: fine


def test_a_split_plan_where_bench_writes_a_variant_is_not_replaced(result, tmp_path):
    """A `dpupose split` plan folder holds only the files its plan.json records, as a variant does: only its
    generated_by tells them apart."""
    from dpupose.eval.bench_plans import check_variant_folder

    variant = tmp_path / "work" / "split-int8-cpu"
    shutil.copytree(result.plan.root, variant)
    with pytest.raises(UsageError, match="holds a plan that `dpupose bench` did not write; pass another --work"):
        check_variant_folder(variant)


def test_bench_passes_every_option_on_and_keeps_json_stdout_clean(tmp_path, capsys, monkeypatch):
    """--threads, --num-samples, --fps-frames reach the bench as given; with --json, stdout is the JSON alone
    and the note of the rows skipped goes to stderr."""
    import types

    import dpupose.eval.bench as bench_mod

    seen = []

    def fake(opts):
        seen.append(opts)
        return types.SimpleNamespace(rows=[], info={"skipped": "CPU ONNX rows: no model_fp32.onnx"})

    monkeypatch.setattr(bench_mod, "run_bench", fake)
    argv = ["bench", "--plan", str(tmp_path), "--json", "--work", str(tmp_path / "w"), "--threads", "3",
            "--num-samples", "5", "--fps-frames", "7", "--emulator", "fast"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    assert err == "note: skipped CPU ONNX rows: no model_fp32.onnx\n"
    opts = seen[0]
    assert (opts.threads, opts.num_samples, opts.fps_frames, opts.emulator) == (3, 5, 7, "fast")


def test_a_quantized_model_of_the_plan_s_size_on_one_side_only_is_refused(quantized, result, tmp_path):
    """--quantized with --plan: a model whose height or width alone differs from the plan's (64 x 96 against
    64 px) is another network as much as one of another square size."""
    for sides in ((64, 96), (96, 64)):
        other = tmp_path / f"q{sides[0]}x{sides[1]}"
        other.mkdir()
        m = onnx.load(str(quantized["q"] / "model_fp32.onnx"))
        for d, side in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], sides):
            d.dim_value = side
        onnx.save(m, str(other / "model_fp32.onnx"))
        with pytest.raises(UsageError, match=f"is a {sides[0]}x{sides[1]} px model but --plan is for 64 px"):
            resolve_inputs(BenchOptions(plan=result.plan.root, quantized=other))


def test_a_quantized_folder_of_other_weights_than_the_plan_s_is_refused(quantized, result, synth_root, tmp_path):
    """--quantized with --plan: a folder of the same network (width, size, so the same MACs) quantized from other
    weights gave the CPU rows of another model beside the plan's split rows; it is refused, naming the folder
    the plan was split from. The plan's own checkpoint calibrated again (other fix points) is still taken."""
    other_ckpt = save_checkpoint(sane_model(seed=1), tmp_path / "other.pt")
    other = tmp_path / "q-other"
    again = tmp_path / "q-again"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        quantize(QuantizeConfig(other_ckpt, other, data_root=synth_root, num_calib=8, batch_size=4, summary_samples=1))
        quantize(
            QuantizeConfig(quantized["ckpt"], again, data_root=synth_root, num_calib=4, batch_size=4, summary_samples=1)
        )
    finally:
        torch.set_num_threads(threads)
    plan = result.plan.root
    with pytest.raises(UsageError) as err:
        resolve_inputs(BenchOptions(plan=plan, quantized=other))
    assert str(err.value) == (
        f"--quantized {other} holds other weights than --plan {plan} (quantized from {other_ckpt}; the plan was "
        f"split from {os.path.normpath(quantized['q'] / 'model_qdq.onnx')}, quantized from {quantized['ckpt']}): "
        f"give --quantized {os.path.normpath(quantized['q'])}, or leave --quantized out"
    )
    assert (again / "model_qdq.onnx").read_bytes() != (quantized["q"] / "model_qdq.onnx").read_bytes()
    assert resolve_inputs(BenchOptions(plan=plan, quantized=again))[1] == again


def test_the_demo_times_each_emulator_per_frame(result, monkeypatch, tmp_path):
    """exact_seconds_per_frame is the exact emulator's time and fast_seconds_per_frame the fast path's, each per
    frame: on a clock that only the runners move (1 s per subgraph run exact, 0.25 s fast), two frames through
    n subgraphs give n and n / 4 seconds per frame."""
    from types import SimpleNamespace

    from dpupose import demo
    from dpupose.runtime import backends

    clock = [0.0]

    class Timed(backends.RunnerFactory):
        def __init__(self, *args, exact=True, **kwargs):
            super().__init__(*args, exact=exact, **kwargs)
            self.step = 1.0 if exact else 0.25

        def create_all(self):
            runners = super().create_all()
            for r in runners.values():

                def timed(feeds, run=r.run):
                    clock[0] += self.step
                    return run(feeds)

                r.run = timed
            return runners

    monkeypatch.setattr(backends, "RunnerFactory", Timed)
    monkeypatch.setattr(demo, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (40, 200)]
    got = demo.annotated_images(result.plan.root, frames, tmp_path / "images")
    n = len(result.plan.subgraphs)
    assert (got["exact_seconds_per_frame"], got["fast_seconds_per_frame"]) == (n * 1.0, n * 0.25)
    assert got["images"] == ["images/sample_00.jpg", "images/sample_01.jpg"]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["sample_00.jpg", "sample_01.jpg", "samples.jpg"]
    demo.check_out(tmp_path, num_images=2)  # marked: the next demo into the folder (no demo.json yet) writes over them
    tiles = [cv2.imread(str(tmp_path / "images" / f"sample_0{i}.jpg")) for i in (0, 1)]
    montage = cv2.imread(str(tmp_path / "images" / "samples.jpg"))
    assert tiles[0].shape == tiles[1].shape and montage.shape == (tiles[0].shape[0], 2 * tiles[0].shape[1], 3)
    # side by side, in order: the montage's halves are the two frames (within JPEG's loss)
    for half, tile in zip(np.split(montage.astype(int), 2, axis=1), tiles, strict=True):
        assert np.abs(half - tile).mean() < 4


def test_a_plan_without_a_dpu_subgraph_is_said_to_run_its_split_rows_on_the_cpu(monkeypatch, caplog):
    from types import SimpleNamespace

    from dpupose.eval import bench, bench_plans

    class Stop(Exception):
        pass

    def stop(*args):
        raise Stop

    monkeypatch.setattr(bench_plans, "int8_cpu_plan", stop)
    for devices, warned in ((["cpu"], True), (["dpu", "cpu"], False)):
        caplog.clear()
        plan = SimpleNamespace(root=Path("p"), subgraphs=[SimpleNamespace(is_dpu=d == "dpu") for d in devices])
        with pytest.raises(Stop):
            bench._split_rows(BenchOptions(work=Path("w")), plan, None, [], None)
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        warning = "the plan p has no DPU subgraph: its 'split' rows run every subgraph on the CPU"
        assert said == ([warning] if warned else [])


def test_host_fps_runs_the_fast_path_and_gives_each_run_its_own_figures(result, monkeypatch):
    """The host FPS runs use the fast emulator (the exact one measures numpy, not a DPU), and each figure is
    its own run's: on a clock that only the runners move, 1 s a subgraph in the sequential run (the main
    thread) and 0.25 s in the pipeline's workers, 4 frames through n subgraphs run at 1 / n and 4 / n FPS."""
    import threading
    from types import SimpleNamespace

    from dpupose.eval import bench_measure
    from dpupose.runtime import backends

    made, clock, lock = [], [0.0], threading.Lock()

    class Timed(backends.RunnerFactory):
        def __init__(self, *args, exact=True, **kwargs):
            made.append(exact)
            super().__init__(*args, exact=exact, **kwargs)

        def create(self, sg):
            runner = super().create(sg)

            def timed(feeds, run=runner.run):
                with lock:
                    clock[0] += 1.0 if threading.current_thread() is threading.main_thread() else 0.25
                return run(feeds)

            runner.run = timed
            return runner

    monkeypatch.setattr(backends, "RunnerFactory", Timed)
    monkeypatch.setattr(bench_measure, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    got = bench_measure.host_fps(result.plan, frames, threads=1)
    n = len(result.plan.subgraphs)
    assert made == [False]
    assert got["frames"] == 4
    assert (got["sequential_fps"], got["pipelined_fps"]) == (pytest.approx(1 / n), pytest.approx(4 / n))


def test_host_fps_runs_as_many_dpu_jobs_as_it_reports(result, monkeypatch):
    """host_fps's dpu_jobs is the pipeline's: 1 and 3 (bench asks for the default, 2) run each DPU subgraph
    with that many runners, and the figures say so."""
    from dpupose.eval import bench_measure
    from dpupose.runtime import pipeline

    workers = []

    class Recording(pipeline.Pipeline):
        def new_stats(self):
            workers.append(dict(self.workers))
            return super().new_stats()

    monkeypatch.setattr(pipeline, "Pipeline", Recording)
    frames = [np.zeros((64, 64, 3), np.uint8)] * 2
    dpu = [sg.name for sg in result.plan.subgraphs if sg.is_dpu]
    assert dpu
    for jobs in (1, 3):
        workers.clear()
        got = bench_measure.host_fps(result.plan, frames, threads=1, dpu_jobs=jobs)
        assert got["dpu_jobs"] == jobs and [{name: w[name] for name in dpu} for w in workers] == [
            dict.fromkeys(dpu, jobs)
        ]


def test_the_split_rows_predict_only_the_int8_cpu_variant_at_the_int8_rate(monkeypatch):
    """predict_plan is asked for the INT8 DPU + INT8 CPU row's variant with cpu_int8 and for the plan itself
    (INT8 DPU + FP32 CPU) without: the tiny plan's CPU part has no MACs, so the rows' figures alone cannot
    tell the rates apart."""
    from types import SimpleNamespace

    from dpupose.eval import bench, bench_measure, bench_plans
    from dpupose.runtime import backends, executor
    from dpupose.split import cost

    plan, variant = SimpleNamespace(subgraphs=[], root=Path("p")), SimpleNamespace(subgraphs=[])
    calls = []

    def predict(p, a53, cpu_int8=False):
        calls.append((p, cpu_int8))
        return SimpleNamespace(to_dict=dict)

    monkeypatch.setattr(bench_plans, "int8_cpu_plan", lambda p, out, calib: variant)
    monkeypatch.setattr(bench_measure, "accuracy", lambda ex, samples: ({}, None))
    monkeypatch.setattr(bench_measure, "host_fps", lambda p, frames, threads: {})
    monkeypatch.setattr(backends, "RunnerFactory", lambda *args, **kwargs: None)
    monkeypatch.setattr(executor, "SplitExecutor", lambda p, runners: None)
    monkeypatch.setattr(cost, "predict_plan", predict)
    rows = bench._split_rows(BenchOptions(work=Path("w")), plan, SimpleNamespace(frames_bgr=[]), [], None)
    assert [r.row for r in rows] == list(ROWS[:2])
    assert calls == [(variant, True), (plan, False)]


def test_a_whole_model_plan_is_the_model_alone_and_a_model_without_the_plan_s_outputs_is_named(result, quantized,
                                                                                                tmp_path):  # fmt: skip
    """The CPU ONNX FP32 row's plan: one CPU subgraph, the model file, NCHW float image in and the plan's coords
    and heatmaps out, with none of the split plan's metadata (its predictions and DPU configuration are not this
    plan's); a model lacking those outputs is named with what it lacks."""
    from dpupose.eval.bench_plans import GENERATED_BY, whole_model_plan

    fp32 = quantized["q"] / "model_fp32.onnx"
    plan = whole_model_plan(fp32, tmp_path / "cpu-onnx-fp32", result.plan, "cpu_onnx_fp32")
    (sg,) = plan.subgraphs
    assert (sg.device, sg.file, sg.reason) == ("cpu", "cpu_onnx_fp32.onnx", "the whole model on the CPU")
    assert (tmp_path / "cpu-onnx-fp32" / sg.file).read_bytes() == fp32.read_bytes()
    size = result.plan.input_size
    assert [(t.name, t.shape, t.layout) for t in sg.inputs] == [(result.plan.input.name, (1, 3, size, size), "NCHW")]
    assert [t.name for t in sg.outputs] == [result.plan.outputs.coords, result.plan.outputs.heatmaps]
    assert plan.metadata == {} and "predicted" in result.plan.metadata and plan.generated_by == GENERATED_BY
    m = onnx.load(str(fp32))
    dropped = m.graph.output[0].name  # still computed, no longer an output of the model
    assert dropped in (result.plan.outputs.coords, result.plan.outputs.heatmaps)
    del m.graph.output[0]
    onnx.save(m, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'other.onnx'} lacks outputs \['{dropped}'\]$"):
        whole_model_plan(tmp_path / "other.onnx", tmp_path / "cpu-onnx-other", result.plan, "x")


def test_onnx_runtime_s_quantization_hint_is_hidden_only_while_it_quantizes(caplog):
    """quantize_static's 'Please consider ...' line on the root logger is filtered inside the context alone;
    other records pass, and the filter is gone from the root logger and its handlers after it."""
    import logging

    from dpupose.eval.bench_plans import quiet_ort_quantization

    class Seen(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    root = logging.getLogger()
    handler = Seen()
    root.addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING), quiet_ort_quantization():
            logging.warning("Please consider to run pre-processing before quantization.")
            logging.warning("calibrating")
        assert caplog.messages == handler.messages == ["calibrating"]
        assert not handler.filters and not root.filters
        logging.warning("Please consider this after the quantization")
        assert caplog.messages[-1] == handler.messages[-1] == "Please consider this after the quantization"
    finally:
        root.removeHandler(handler)


def test_the_int8_cpu_variant_names_no_xmodel_it_does_not_hold(tmp_path):
    """The split-int8-cpu variant copied each DPU subgraph's ONNX file but kept its `xmodel` and `xmodel_sha256`
    without copying the .xmodel: its plan named a file its folder did not hold (the vart backend would look for
    it there). Bench emulates the variant's DPU subgraphs from their ONNX files: the variant names no .xmodel."""
    from dpupose.eval.bench_plans import int8_cpu_plan
    from dpupose.fsio import sha256_file

    plan_dir = tmp_path / "plan"
    shutil.copytree(Path(__file__).resolve().parents[1] / "models" / "dpupose-synth" / "split", plan_dir)
    (plan_dir / "dpu0.xmodel").write_bytes(b"a compiled subgraph")  # as split --xmodel records one
    data = json.loads((plan_dir / "plan.json").read_text())
    dpu = next(sg for sg in data["subgraphs"] if sg["device"] == "dpu")
    dpu.update(xmodel="dpu0.xmodel", xmodel_sha256=sha256_file(plan_dir / "dpu0.xmodel"), xmodel_subgraph="subgraph_0")
    (plan_dir / "plan.json").write_text(json.dumps(data))
    plan = load_plan(plan_dir)
    image = np.random.default_rng(0).standard_normal((3, plan.input_size, plan.input_size)).astype(np.float32)
    variant = int8_cpu_plan(plan, tmp_path / "work" / "split-int8-cpu", [image])
    written = json.loads((variant.root / "plan.json").read_text())["subgraphs"]
    assert [sg["name"] for sg in written] == [sg.name for sg in plan.subgraphs]
    for sg in written:
        assert not {"xmodel", "xmodel_sha256", "xmodel_subgraph"} & sg.keys(), sg["name"]
        assert (variant.root / sg["file"]).is_file()
    assert sorted(p.name for p in variant.root.iterdir()) == sorted(["plan.json", *(sg["file"] for sg in written)])
    assert load_plan(plan_dir).subgraphs[0].xmodel == "dpu0.xmodel"  # the plan itself as it was


def test_a_checkpoint_that_is_a_fifo_or_a_dangling_link_is_named_for_what_it_is(tmp_path, capsys):
    """bench's --checkpoint of a FIFO, or of a symbolic link that leads nowhere, was 'no model to benchmark: PATH
    does not exist', of a name the user sees there, where eval's --checkpoint (and every other input) names
    each; a path that is not there is still 'does not exist'."""
    import os

    os.mkfifo(tmp_path / "fifo.pt")
    (tmp_path / "gone.pt").symlink_to("runs/old/best.pt")
    for name, what in (
        ("fifo.pt", "is a FIFO"),
        ("gone.pt", "is a symbolic link that leads nowhere (to runs/old/best.pt)"),
        ("missing.pt", "does not exist"),
    ):
        assert main(["bench", "--checkpoint", str(tmp_path / name), "--work", str(tmp_path / "work")]) == 2
        assert capsys.readouterr().err == (
            f"dpupose: error: no model to benchmark: {tmp_path / name} {what}; pass --plan DIR, --quantized DIR or "
            "--checkpoint PATH\n"
        )
    assert not (tmp_path / "work").exists() and (tmp_path / "fifo.pt").is_fifo()
