"""Split plan schema: round trip, strict reading, clear errors, atomic writes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import tinyplan

from dpupose.errors import ModelFileError
from dpupose.fsio import sha256_file
from dpupose.split.plan import PLAN_FILE, PLAN_VERSION, load_plan, plan_from_dict, save_plan


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    tinyplan.write_split_plan(folder)
    return folder


@pytest.fixture()
def data(plan_dir: Path) -> dict:
    return json.loads((plan_dir / PLAN_FILE).read_text())


def test_round_trip_keeps_every_field(plan_dir: Path, data: dict) -> None:
    plan = load_plan(plan_dir)
    assert plan.to_dict() == data
    assert plan.root == plan_dir
    assert [sg.name for sg in plan.subgraphs] == ["dpu0", "cpu0", "dpu1", "head"]
    assert plan.subgraphs[0].inputs[0].shape == (1, 32, 32, 3) and plan.subgraphs[0].inputs[0].fix_point == 5
    assert plan.fingerprint_int() == 0x101000016010404
    assert plan.subgraphs[1].reason.startswith("Sigmoid")
    assert load_plan(plan_dir / PLAN_FILE) == plan  # the file itself works as well as its folder


def test_written_file_starts_with_version_and_generator(data: dict) -> None:
    assert list(data)[:2] == ["version", "generated_by"]
    assert data["version"] == PLAN_VERSION


def _error(data: dict, plan_dir: Path) -> str:
    with pytest.raises(ModelFileError) as e:
        plan_from_dict(data, "plan.json", plan_dir)
    return str(e.value)


def test_unknown_field_is_named(plan_dir: Path, data: dict) -> None:
    data["subgraphs"][2]["priority"] = 3
    msg = _error(data, plan_dir)
    assert "unknown field(s) priority in subgraphs[2]" in msg and "dpupose split" in msg


def test_missing_field_is_named(plan_dir: Path, data: dict) -> None:
    del data["subgraphs"][0]["outputs"][0]["fix_point"]
    assert "subgraphs[0].outputs[0] lacks field(s) fix_point" in _error(data, plan_dir)


def test_newer_version_says_what_to_do(plan_dir: Path, data: dict) -> None:
    data["version"] = PLAN_VERSION + 1
    msg = _error(data, plan_dir)
    assert f"plan version {PLAN_VERSION + 1} is newer" in msg and "re-split" in msg


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(fingerprint="B1600"), "is not a fingerprint"),
        (lambda d: d["input"].update(shape=[1, 3, 64, 64]), "wrong input size"),
        (lambda d: d["model"].update(input_size=64), "wrong input size"),
        (lambda d: d["subgraphs"][0].update(device="gpu"), "subgraphs[0].device is 'gpu'"),
        (lambda d: d["subgraphs"][0]["inputs"][0].update(dtype="float32"), "must be int8"),
        (lambda d: d["subgraphs"][0]["inputs"][0].update(fix_point=None), "must be an integer for an int8"),
        (lambda d: d["subgraphs"][1]["inputs"][0].update(shape=[1, 8, 15, 16]), "tensor 'feat' has shape"),
        (lambda d: d["subgraphs"].reverse(), "execution order"),
        (lambda d: d["subgraphs"][1].update(name="dpu0"), "appear more than once"),
        (lambda d: d["outputs"].update(coords="nowhere"), "outputs.coords 'nowhere' is produced by no subgraph"),
        (  # the two outputs' names swapped by hand: refused on load, not a crash when drawing
            lambda d: d["outputs"].update(coords="heatmaps", heatmaps="coords"),
            "outputs.coords 'heatmaps' has shape [1, 16, 8, 8], not (1, 16, 2)",
        ),
        (  # 16 joints but not (x, y) pairs: the joints' count alone was checked
            lambda d: next(t for t in d["subgraphs"][3]["outputs"] if t["name"] == "coords").update(shape=[1, 16, 3]),
            "outputs.coords 'coords' has shape [1, 16, 3], not (1, 16, 2)",
        ),
        (lambda d: d["subgraphs"][0]["inputs"][0].update(layout="NCH"), "does not name the 4 axes"),
        (lambda d: d["subgraphs"][1].update(xmodel="x.xmodel"), "only for DPU subgraphs"),
        # each check below was once dropped without a test noticing (a mutation audit)
        (lambda d: d["subgraphs"][1].update(xmodel_subgraph="subgraph_x"), "subgraphs[1].xmodel is only for DPU"),
        (lambda d: d["subgraphs"][0].update(file=""), "subgraphs[0].file must be a non-empty string"),
        (lambda d: d["subgraphs"][0]["inputs"][0].update(shape=[1, 32, 0, 3]), "must be a list of positive integers"),
        (lambda d: d["subgraphs"][0]["inputs"][0].update(layout="NHHC"), "'NHHC' does not name the 4 axes"),
        (lambda d: d["subgraphs"][2].update(inputs=[]), "subgraphs[2].inputs must be a non-empty list of tensors"),
        (  # an NCHW tensor of a DPU subgraph: VART exchanges NHWC
            lambda d: d["subgraphs"][0]["inputs"][0].update(shape=[1, 3, 32, 32], layout="NCHW"),
            "tensor 'image' of a DPU subgraph must be NHWC (is NCHW)",
        ),
        (
            lambda d: d["subgraphs"][1]["inputs"][0].update(dtype="int8", fix_point=4),
            "tensor 'feat' of a CPU subgraph must be float32 (is int8)",
        ),
        (lambda d: d.update(version=0), "plan version 0 is not valid"),
        (lambda d: d["model"].update(input_size=0), "model.input_size must be positive"),
        (lambda d: d["input"].update(dtype="float16"), "input.layout must be NCHW with dtype float32"),
        (lambda d: d.update(metadata=["predicted"]), "plan.metadata must be a JSON object"),
        (lambda d: d["subgraphs"][0].update(file="/elsewhere/dpu0.onnx"), "must be a path inside the plan folder"),
    ],
)
def test_bad_plans_are_refused_with_the_field(plan_dir: Path, data: dict, edit, expected: str) -> None:
    edit(data)
    if "inside the plan folder" in expected:  # checked with the files, on loading
        (plan_dir / "bad").mkdir(exist_ok=True)
        (plan_dir / "bad" / PLAN_FILE).write_text(json.dumps(data))
        with pytest.raises(ModelFileError) as e:
            load_plan(plan_dir / "bad")
        assert expected in str(e.value)
        return
    assert expected in _error(data, plan_dir)


def test_a_4d_tensor_of_other_axis_letters_is_compared_as_it_is(plan_dir: Path, data: dict) -> None:
    # only a 4-D NCHW or NHWC layout is reordered to compare shapes; cpu0's input written NCDE, (1, 8, 16, 16)
    # as dpu0's NHWC output (1, 16, 16, 8) is in NCHW order, loads (it was a ValueError of str.index)
    data["subgraphs"][1]["inputs"][0]["layout"] = "NCDE"
    plan = plan_from_dict(data, "plan.json", plan_dir)
    assert plan.subgraph("cpu0").inputs[0].layout == "NCDE"
    data["subgraphs"][1]["inputs"][0]["shape"] = [1, 16, 16, 8]
    assert "tensor 'feat' has shape [1, 16, 16, 8] (NHWC) from subgraph 'dpu0'" in _error(data, plan_dir)


def test_heatmaps_a_dpu_subgraph_outputs_are_checked_in_nchw_order(plan_dir: Path, data: dict) -> None:
    # a model output may be a DPU subgraph's int8 NHWC tensor (the runtime dequantizes it): dpu1's logits,
    # [1, 8, 8, 16] NHWC, are 16 joints of 8 x 8 and load; dpu0's feat, [1, 16, 16, 8] NHWC, is 8 channels of
    # 16 x 16, whose second axis, 16 in NHWC order, was taken for the joints
    data["outputs"]["heatmaps"] = "logits"
    plan = plan_from_dict(data, "plan.json", plan_dir)
    assert plan.outputs.heatmaps == "logits" and plan.subgraph("dpu1").outputs[0].shape == (1, 8, 8, 16)
    assert plan.to_dict()["version"] == 1
    data["outputs"]["heatmaps"] = "feat"
    assert "outputs.heatmaps 'feat' has shape [1, 8, 16, 16], not (1, 16, H, W)" in _error(data, plan_dir)


def test_missing_subgraph_file(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path)
    (tmp_path / "dpu1.onnx").unlink()
    with pytest.raises(ModelFileError, match=r"subgraph 'dpu1' needs .*dpu1.onnx, which is missing"):
        load_plan(tmp_path)


def test_file_from_another_split_is_detected_by_sha256(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    data["subgraphs"][0]["sha256"] = sha256_file(tmp_path / "dpu0.onnx")
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    load_plan(tmp_path)
    other = tmp_path / "other"
    tinyplan.write_split_plan(other, seed=1)  # same shapes, different weights
    (tmp_path / "dpu0.onnx").write_bytes((other / "dpu0.onnx").read_bytes())
    with pytest.raises(ModelFileError, match="different splits or model versions"):
        load_plan(tmp_path)


def test_a_sha256_written_in_capitals_is_the_same_digest(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    data["subgraphs"][0]["sha256"] = sha256_file(tmp_path / "dpu0.onnx").upper()
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    assert load_plan(tmp_path).subgraphs[0].sha256 == data["subgraphs"][0]["sha256"]


def test_an_xmodel_sha256_is_checked_against_its_xmodel_on_load(tmp_path: Path) -> None:
    """xmodel_sha256 (split --xmodel) is the digest of the subgraph's xmodel: another file under that name is
    refused on load, naming the subgraph; a plan without it (split before it was recorded) loads whatever the
    xmodel is, and a missing xmodel is still the vart backend's to refuse (the cpu backend does not need it)."""
    tinyplan.write_split_plan(tmp_path, xmodel=True)
    xmodel = tmp_path / "tiny.xmodel"
    recorded = xmodel.read_bytes()
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    assert all("xmodel_sha256" not in sg for sg in data["subgraphs"])
    tinyplan.write_xmodel(xmodel, int(tinyplan.FINGERPRINT, 0), fp_shift=1)  # another compile, the same name
    load_plan(tmp_path)  # nothing recorded: nothing to tell it by
    data["subgraphs"][0]["xmodel_sha256"] = hashlib.sha256(recorded).hexdigest().upper()  # capitals: the same
    data["subgraphs"][2]["xmodel_sha256"] = hashlib.sha256(recorded).hexdigest()
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(tmp_path / PLAN_FILE))}: {re.escape(str(xmodel))} "
                       r"is not the \.xmodel subgraph 'dpu0' was split with \(sha256 differs.*split the model again "
                       r"the same way with --xmodel the \.xmodel to use"):  # fmt: skip
        load_plan(tmp_path)
    xmodel.write_bytes(recorded)
    plan = load_plan(tmp_path)
    assert plan.to_dict() == data  # kept as written, beside xmodel
    digest = hashlib.sha256(recorded).hexdigest()
    assert [sg.xmodel_sha256 for sg in plan.subgraphs] == [digest.upper(), None, digest, None]
    xmodel.unlink()
    load_plan(tmp_path)
    xmodel.mkdir()  # no file at its name, as none: the vart backend's to refuse, not a hash of a folder
    assert load_plan(tmp_path).to_dict() == data


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["subgraphs"][1].update(xmodel_sha256="0" * 64), "subgraphs[1].xmodel_sha256 is given without"),
        (lambda d: d["subgraphs"][0].update(xmodel_sha256="0" * 63), f"is '{'0' * 63}', not a sha256"),
        (lambda d: d["subgraphs"][0].update(xmodel_sha256="g" * 64), "not a sha256 (64 hexadecimal digits)"),
        (lambda d: d["subgraphs"][0].update(xmodel_sha256="0" * 63 + "g"), "not a sha256 (64 hexadecimal digits)"),
        (lambda d: d["subgraphs"][0].update(xmodel_sha256=64), "subgraphs[0].xmodel_sha256 must be a non-empty string"),
    ],
)
def test_an_xmodel_sha256_of_the_wrong_kind_or_place_is_refused(tmp_path: Path, edit, expected: str) -> None:
    tinyplan.write_split_plan(tmp_path, xmodel=True)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    edit(data)
    assert expected in _error(data, tmp_path)


def test_save_refuses_a_plan_whose_files_are_not_in_the_folder(tmp_path: Path) -> None:
    plan = tinyplan.write_split_plan(tmp_path / "plan")
    with pytest.raises(ModelFileError, match=r"subgraph 'dpu0' needs .*dpu0\.onnx, which is missing"):
        save_plan(plan, tmp_path / "empty")
    assert not (tmp_path / "empty" / PLAN_FILE).exists()
    assert save_plan(plan, tmp_path / "empty", check_paths=False) == tmp_path / "empty" / PLAN_FILE


def test_paths_must_stay_inside_the_plan_folder(plan_dir: Path, data: dict) -> None:
    data["subgraphs"][0]["file"] = "../elsewhere/dpu0.onnx"
    (plan_dir / "bad").mkdir(exist_ok=True)
    (plan_dir / "bad" / PLAN_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="inside the plan folder"):
        load_plan(plan_dir / "bad")


def test_not_a_plan(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no split plan"):
        load_plan(tmp_path)
    (tmp_path / PLAN_FILE).write_text("{ truncated")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_plan(tmp_path)
    (tmp_path / "dpu0.onnx").write_bytes(b"\x08\x07onnx")  # a subgraph file given in place of the folder
    with pytest.raises(ModelFileError, match=r"dpu0\.onnx is not a split plan: pass the folder"):
        load_plan(tmp_path / "dpu0.onnx")


def test_a_folder_whose_plan_is_one_level_down_names_it(tmp_path: Path) -> None:
    # A model card's folder (models/dpupose-synth, its plan in split/) given as --plan: the plan is named.
    card = tmp_path / "card"
    for name in ("split", "split-b2304", "notes"):
        (card / name).mkdir(parents=True)
    for name in ("split", "split-b2304"):
        (card / name / PLAN_FILE).write_text("{}")
    (card / "notes" / "x.json").write_text("{}")
    with pytest.raises(ModelFileError) as e:
        load_plan(card)
    assert str(e.value) == (
        f"no split plan at {card / PLAN_FILE}: pass the split plan folder inside it, {card / 'split'} or "
        f"{card / 'split-b2304'}"
    )


def test_a_quantize_folder_or_a_training_run_given_as_the_plan_is_named_with_the_steps_before_it(
    tmp_path: Path, capsys
) -> None:
    # `make run PLAN=build/q` (the quantize folder, one step short) was told only that no plan.json is there.
    q = tmp_path / "q"
    q.mkdir()
    (q / "model_qdq.onnx").write_bytes(b"onnx")
    with pytest.raises(ModelFileError) as e:
        load_plan(q)
    assert str(e.value) == (
        f"no split plan at {q / PLAN_FILE}: {q} is a `dpupose quantize` folder; split it first, `dpupose split "
        f"{q / 'model_qdq.onnx'} --out DIR --optimize`, and pass DIR"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"weights")
    with pytest.raises(ModelFileError) as e:
        load_plan(run)
    assert str(e.value) == (
        f"no split plan at {run / PLAN_FILE}: {run} is a training run; quantize and split it first, `dpupose "
        f"quantize --checkpoint {run / 'best.pt'} --out Q` and `dpupose split Q/model_qdq.onnx --out DIR "
        "--optimize`, and pass DIR"
    )
    # From the command line, before anything is written.
    from dpupose.cli import main

    out = tmp_path / "out"
    assert main(["run", "--plan", str(q), "--source", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"dpupose: error: no split plan at {q / PLAN_FILE}: {q} is a `dpupose")
    assert not out.exists()


def test_save_is_atomic_and_refuses_invalid_plans(tmp_path: Path) -> None:
    plan = tinyplan.write_split_plan(tmp_path)
    before = (tmp_path / PLAN_FILE).read_text()
    broken = dataclasses.replace(plan, subgraphs=plan.subgraphs[1:])
    with pytest.raises(ModelFileError, match="neither the plan input nor an earlier subgraph"):
        save_plan(broken, tmp_path)
    assert (tmp_path / PLAN_FILE).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_metadata_figure_that_is_not_a_number_is_saved_as_null(tmp_path: Path) -> None:
    """A prediction of infinite FPS (a subgraph costed at 0 ms) in the metadata: plan.json stays JSON, and the
    plan loads back with it."""
    plan = tinyplan.write_split_plan(tmp_path)
    odd = dataclasses.replace(plan, metadata={"predicted": {"fps": float("inf"), "cpu_ms": float("nan"), "n": 2}})
    save_plan(odd, tmp_path)
    text = (tmp_path / PLAN_FILE).read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["metadata"] == {"predicted": {"fps": None, "cpu_ms": None, "n": 2}}
    assert load_plan(tmp_path).metadata == doc["metadata"]


def test_a_damaged_subgraph_file_is_named_when_the_plan_has_no_sha256(tmp_path: Path) -> None:
    from dpupose.runtime.backends import RunnerFactory

    tinyplan.write_split_plan(tmp_path)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    for sg in data["subgraphs"]:
        sg.pop("sha256", None)  # a hand-made plan: nothing to catch the damage on load
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    dpu = tmp_path / data["subgraphs"][0]["file"]
    dpu.write_bytes(dpu.read_bytes()[:200])
    plan = load_plan(tmp_path)
    with pytest.raises(ModelFileError, match=rf"subgraph 'dpu0' \({dpu}\) cannot be loaded: .*re-split"):
        RunnerFactory(plan, "emulate", exact=True).create_all()


def test_split_from_is_the_recorded_sha256_of_the_source(plan_dir: Path, data: dict, tmp_path: Path) -> None:
    """bench --plan's CPU rows and the cached split of eval and bench take a model as the plan's source only
    while its sha256 is the one plan.json records."""
    import hashlib

    source = tmp_path / "model_qdq.onnx"
    source.write_bytes(b"the source model")
    data["model"]["sha256"] = hashlib.sha256(b"the source model").hexdigest().upper()  # hex case is no difference
    plan = plan_from_dict(data, "test", root=plan_dir)
    assert plan.split_from(source) and plan.split_from(str(source))
    source.write_bytes(b"another model quantized into its folder")
    assert not plan.split_from(source)
    assert not plan.split_from(tmp_path / "missing.onnx") and not plan.split_from(tmp_path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [  # each check below was dropped without a test noticing (a mutation audit of the plan writer)
        (lambda d: d.update(version=True), "field version is missing or not an integer"),  # JSON true, not 1
        (lambda d: d["subgraphs"][1]["inputs"][0].update(layout="N1HW"), "'N1HW' does not name the 4 axes"),
        (lambda d: d["input"].update(layout="NHWC"), "input.layout must be NCHW with dtype float32"),
        (  # coords (1, 16, 2) has the joints in its second axis too: its rank is what tells it from heatmaps
            lambda d: d["outputs"].update(heatmaps="coords"),
            "outputs.heatmaps 'coords' has shape [1, 16, 2], not (1, 16, H, W)",
        ),
    ],
)
def test_more_bad_plans_are_refused_with_the_field(plan_dir: Path, data: dict, edit, expected: str) -> None:
    edit(data)
    assert expected in _error(data, plan_dir)


def test_a_null_metadata_is_no_metadata(plan_dir: Path, data: dict) -> None:
    data["metadata"] = None  # an optional field written as null, as generated_by may be
    assert plan_from_dict(data, "plan.json", plan_dir).metadata == {}


@pytest.mark.parametrize("value", [[], "", 0, False])
def test_a_metadata_of_another_kind_is_refused_even_when_empty(plan_dir: Path, data: dict, value) -> None:
    # an empty list or string, 0 or false is as much not an object as ["predicted"] is: a hand edit gone wrong
    data["metadata"] = value
    assert "plan.metadata must be a JSON object" in _error(data, plan_dir)


def test_a_plan_file_named_in_capitals_is_read(plan_dir: Path, tmp_path: Path) -> None:
    # the file itself may be given in place of its folder; its suffix is compared whatever its case
    for sub in ("dpu0.onnx", "dpu1.onnx", "cpu0.onnx", "head.onnx"):
        (tmp_path / sub).write_bytes((plan_dir / sub).read_bytes())
    (tmp_path / "PLAN.JSON").write_text((plan_dir / PLAN_FILE).read_text())
    plan = load_plan(tmp_path / "PLAN.JSON")
    assert plan.root == tmp_path and [sg.name for sg in plan.subgraphs] == ["dpu0", "cpu0", "dpu1", "head"]


def test_recorded_files_are_the_names_a_plan_gives_read_leniently(plan_dir: Path, data: dict, tmp_path: Path) -> None:
    """What replacing a plan folder may delete: the subgraph files and xmodels plan.json names (strings only),
    and ([], None) for a plan.json that cannot be read as one, never an exception."""
    from dpupose.split.plan import recorded_files

    data["subgraphs"][0]["xmodel"] = "model.xmodel"
    data["subgraphs"][1]["file"] = 5  # a damaged entry: not a name
    data["subgraphs"][2]["xmodel"] = None
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    assert recorded_files(tmp_path) == (["dpu0.onnx", "model.xmodel", "dpu1.onnx", "head.onnx"], data["generated_by"])
    for damaged in ("{ truncated", "[1, 2]", '{"generated_by": "x"}', '{"subgraphs": [1]}', '{"subgraphs": 3}'):
        (tmp_path / PLAN_FILE).write_text(damaged)
        assert recorded_files(tmp_path) == ([], None), damaged
    assert recorded_files(tmp_path / "missing") == ([], None)


# --- each test below kills changes a mutation audit of plan_schema made without a test noticing --------------


def test_a_plan_reads_a_file_once_and_hands_its_bytes_over_once(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path)
    plan = load_plan(tmp_path)
    first = plan.read_file("dpu1.onnx")
    assert first == (tmp_path / "dpu1.onnx").read_bytes()
    (tmp_path / "dpu1.onnx").unlink()  # kept: not read again
    assert plan.read_file("dpu1.onnx") is first
    assert plan.take_file("dpu1.onnx") is first and plan.take_file("dpu1.onnx") is None  # forgotten once taken
    assert plan.take_file("head.onnx") is None  # never read
    with pytest.raises(FileNotFoundError):
        plan.read_file("dpu1.onnx")
    assert plan.path("dpu1.onnx") == tmp_path / "dpu1.onnx"
    assert dataclasses.replace(plan, root=None).path("cpu/x.onnx") == Path("cpu/x.onnx")  # no folder: as written
    assert plan.subgraph("cpu0") is plan.subgraphs[1]
    with pytest.raises(KeyError, match="nowhere"):
        plan.subgraph("nowhere")


def test_a_plan_without_a_generator_or_metadata_is_written_without_those_fields(plan_dir: Path, data: dict) -> None:
    plan = dataclasses.replace(plan_from_dict(data, "plan.json", plan_dir), generated_by=None, metadata={})
    written = plan.to_dict()
    assert list(written) == ["version", "fingerprint", "dpu_config", "model", "input", "outputs", "subgraphs"]
    assert plan_from_dict(written, "plan.json", plan_dir) == plan


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0x101000016010404", 0x101000016010404),
        (" 0x101000016010404 ", 0x101000016010404),
        ("72339069383803908", 0x101000016010404),  # decimal, as a string
        (0x101000016010404, 0x101000016010404),
        (2**64 - 1, 2**64 - 1),
        ("0", 0),
    ],
)
def test_fingerprints_are_read_in_hex_or_decimal(value, expected: int) -> None:
    from dpupose.split.plan import parse_fingerprint

    assert parse_fingerprint(value, "plan.json fingerprint") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, 'plan.json fingerprint: fingerprint must be a hex string like "0x101000016010404"'),
        (1.0, 'plan.json fingerprint: fingerprint must be a hex string like "0x101000016010404"'),
        (None, 'plan.json fingerprint: fingerprint must be a hex string like "0x101000016010404"'),
        (2**64, "plan.json fingerprint: fingerprint 18446744073709551616 is not a 64-bit number"),
        ("0x10000000000000000", "plan.json fingerprint: fingerprint '0x10000000000000000' is not a 64-bit number"),
        (-1, "plan.json fingerprint: fingerprint -1 is not a 64-bit number"),
        ("-0x1", "plan.json fingerprint: fingerprint '-0x1' is not a 64-bit number"),
        ("B1600", "plan.json fingerprint: 'B1600' is not a fingerprint (expected \"0x...\")"),
    ],
)
def test_fingerprints_that_are_no_64_bit_number_are_refused(value, message: str) -> None:
    from dpupose.split.plan import parse_fingerprint

    with pytest.raises(ModelFileError) as e:
        parse_fingerprint(value, "plan.json fingerprint")
    assert str(e.value) == message
