"""A newcomer's wrong file where an ONNX model is wanted: the checkpoint itself (before `dpupose quantize`), or
a split plan's folder or plan.json (deploy-check takes one of its DPU subgraph files). Each is one line that
says what to give instead, exit status 2, and nothing written."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from dpupose.cli import main
from dpupose.formats import not_onnx

PLAN = {
    "version": 1,
    "fingerprint": "0x101000016010404",
    "subgraphs": [
        {"name": "dpu0", "device": "dpu", "file": "dpu0.onnx"},
        {"name": "cpu0", "device": "cpu", "file": "cpu0.onnx"},
        {"name": "dpu1", "device": "dpu", "file": "dpu1.onnx"},
    ],
}


@pytest.fixture
def files(tmp_path):
    torch.save({"format": "dpupose-checkpoint/1", "model": {"w": torch.zeros(2)}}, tmp_path / "best.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    plan = tmp_path / "split"
    plan.mkdir()
    (plan / "plan.json").write_text(json.dumps(PLAN))
    return tmp_path


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dpupose: error: ") and err.count("\n") == 1, err
    return err


def test_what_a_file_that_is_not_onnx_is(files, tmp_path):
    assert not_onnx(files / "best.pt") == "checkpoint"  # torch.save's zip
    assert not_onnx(files / "old.pth") == "checkpoint"  # its pickle before torch 1.6
    assert not_onnx(files / "split" / "plan.json") == "plan"
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("pynq.img", b"\0" * 512)
    other_json = tmp_path / "summary.json"
    other_json.write_text('{"format": "dpupose-quantize-summary/1"}')
    garbage = tmp_path / "x.onnx"
    garbage.write_bytes(b"hello")
    assert [not_onnx(p) for p in (other_zip, other_json, garbage, tmp_path / "none")] == [None] * 4


@pytest.mark.parametrize("name", ["best.pt", "old.pth"])
def test_a_checkpoint_given_to_split_says_to_quantize_it_first(files, capsys, name):
    ckpt = files / name
    err = one_line_error(capsys, ["split", str(ckpt), "--out", str(files / "out")])
    assert f"{ckpt} is a PyTorch checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint {ckpt}" in err
    assert "split DIR/model_qdq.onnx" in err
    assert not (files / "out").exists()


def test_a_plan_given_to_split_is_named_as_a_plan(files, capsys):
    plan = files / "split" / "plan.json"
    err = one_line_error(capsys, ["split", str(plan), "--out", str(files / "out")])
    assert f"{plan} is a split plan, not a model: split the model_qdq.onnx" in err
    assert not (files / "out").exists()


def test_a_checkpoint_given_to_the_dpu_model_says_where_its_onnx_comes_from(files, capsys):
    ckpt = files / "best.pt"
    estimate = ["dpu", "estimate", str(ckpt), "--config", "u96v2-b1600-pynq"]
    for argv in (estimate, ["dpu", "compare", "--model", str(ckpt)]):
        err = one_line_error(capsys, argv)
        assert f"{ckpt} is a PyTorch checkpoint, not ONNX: export the network to ONNX" in err
        assert "writes DIR/model_fp32.onnx and DIR/model_qdq.onnx" in err


def test_deploy_check_of_a_plan_names_its_dpu_subgraph_files(files, capsys):
    folder = files / "split"
    want = f"deploy-check takes one DPU subgraph file: {folder / 'dpu0.onnx'} or {folder / 'dpu1.onnx'}\n"
    err = one_line_error(capsys, ["deploy-check", str(folder), "--json", str(files / "r.json")])
    assert err == f"dpupose: error: {folder} is a split plan folder; {want}"
    err = one_line_error(capsys, ["deploy-check", str(folder / "plan.json")])
    assert err == f"dpupose: error: {folder / 'plan.json'} is a split plan; {want}"
    assert not (files / "r.json").exists()
    # the folder above it (a model card's, models/dpupose-synth, holds its plan in split/) was answered
    # "<folder>/dpu_part_qdq.onnx not found; give a QDQ ONNX file or a `dpupose quantize` output folder"
    err = one_line_error(capsys, ["deploy-check", str(files)])
    assert err == f"dpupose: error: {folder} is a split plan folder; {want}"


def test_deploy_check_of_a_checkpoint_says_to_quantize_it_first(files, capsys):
    ckpt = files / "best.pt"
    err = one_line_error(capsys, ["deploy-check", str(ckpt)])
    assert f"{ckpt} is a PyTorch checkpoint, not ONNX: quantize it first" in err and "and check DIR" in err


def test_what_a_file_is_by_its_marks_alone(tmp_path):
    # a checkpoint's zip names data.pkl at its top or in its folder, a pickle starts with protocol 2 to 5 (torch.save
    # writes 2, pickle.dumps up to 5), and a plan.json has both the subgraphs and the fingerprint
    import pickle

    top = tmp_path / "top.pt"
    with zipfile.ZipFile(top, "w") as zf:
        zf.writestr("data.pkl", pickle.dumps({}))
    paths = {}
    for protocol in (2, 5):
        paths[protocol] = tmp_path / f"p{protocol}.pth"
        paths[protocol].write_bytes(pickle.dumps({"w": [0.0]}, protocol=protocol))
    not_a_plan = tmp_path / "subgraphs.json"
    not_a_plan.write_text(json.dumps({k: v for k, v in PLAN.items() if k != "fingerprint"}))
    named = tmp_path / "named.zip"
    with zipfile.ZipFile(named, "w") as zf:
        zf.writestr("my_data.pkl", b"")
    later = tmp_path / "p6.bin"
    later.write_bytes(b"\x80\x06" + pickle.dumps({}, protocol=5)[2:])  # a protocol no Python writes yet
    assert [not_onnx(p) for p in (top, paths[2], paths[5])] == ["checkpoint"] * 3
    assert [not_onnx(p) for p in (not_a_plan, named, later)] == [None] * 3


def test_a_file_starting_with_a_brace_that_is_no_json_is_nothing_named(tmp_path):
    # read only after the file failed to load as ONNX: a broken JSON or one that is not UTF-8 is not named, no error
    broken = tmp_path / "broken.onnx"
    broken.write_text('{"subgraphs": [], "fingerprint": ')
    latin = tmp_path / "latin.onnx"
    latin.write_bytes(b'{"subgraphs": "caf\xe9", "fingerprint": 1}')
    assert [not_onnx(broken), not_onnx(latin)] == [None, None]


def test_a_newer_format_is_a_higher_number_of_the_same_marker_and_its_refusal_names_this_version():
    from dpupose import __version__
    from dpupose.board.manifest import parse_manifest
    from dpupose.errors import ArtifactError
    from dpupose.formats import newer_format

    ours = "dpupose-staged/9"
    assert [newer_format(v, ours) for v in ("dpupose-staged/10", "dpupose-staged/09", "dpupose-staged/011")] == [
        True,
        False,
        True,
    ]  # numbers, not strings: "10" < "9" and "011" < "9" as text
    for value in ("dpupose-staged/10x", "dpupose-staged/10 ", "xdpupose-staged/10", "dpupose-staged/", 10, None):
        assert not newer_format(value, ours), value  # not the marker: damaged, not newer
    with pytest.raises(ArtifactError) as exc:
        parse_manifest('{"format": "dpupose-staged/2", "generated_by": "dpupose 9.0.0"}', "card.img")
    assert str(exc.value).startswith(
        f"the manifest in card.img is format dpupose-staged/2, written by dpupose 9.0.0; this dpupose ({__version__}) "
        "reads dpupose-staged/1: "
    )


def test_a_fifo_a_device_or_a_dangling_link_given_as_a_model_is_named_for_what_it_is(tmp_path, capsys):
    """split, dpu estimate and split --xmodel said 'no such file' (or 'does not exist') of a FIFO, /dev/null or a
    link to nothing, which the user sees there."""
    import os

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "gone").symlink_to("nothing/here")
    (tmp_path / "loop").symlink_to("loop")
    kinds = [
        (tmp_path / "pipe", "is a FIFO"),
        ("/dev/null", "is a device"),
        (tmp_path / "gone", "is a symbolic link that leads nowhere (to nothing/here)"),
        (tmp_path / "loop", "is a symbolic link that leads nowhere (to loop)"),
        (tmp_path / "absent", "no such file"),
    ]
    out = tmp_path / "out"
    for path, what in kinds:
        err = one_line_error(capsys, ["split", str(path), "--out", str(out)])
        assert err == f"dpupose: error: {path}: {what}; give the model_qdq.onnx written by `dpupose quantize`\n"
        err = one_line_error(capsys, ["dpu", "estimate", str(path), "--config", "u96v2-b1600-pynq"])
        assert err == f"dpupose: error: {path}: {what}; give an ONNX file\n"
    assert not out.exists()


def test_a_fifo_a_device_or_a_dangling_link_given_as_a_checkpoint_or_subgraph_is_named_for_what_it_is(tmp_path, capsys):
    """The checkpoint readers (eval, export, quantize, bench, train --init, the demo: check_checkpoint_path) and
    deploy-check said 'not found' of a FIFO, /dev/null or a link to nothing, and sdcard 'does not exist' of an image
    that is a link to nothing, where split and dpu estimate name what is there."""
    import os

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "gone").symlink_to("nothing/here")
    nowhere = "is a symbolic link that leads nowhere (to nothing/here)"
    kinds = [(tmp_path / "pipe", "is a FIFO"), ("/dev/null", "is a device"), (tmp_path / "gone", nowhere)]
    kinds.append((tmp_path / "absent", None))
    slim = tmp_path / "slim.pt"
    for path, what in kinds:
        err = one_line_error(capsys, ["export", "--checkpoint", str(path), "--out", str(slim)])
        assert err == (
            f"dpupose: error: --checkpoint {path} {what or 'not found'}: give a checkpoint written by `dpupose train` "
            "or `dpupose export` (e.g. runs/NAME/best.pt)\n"
        )
        err = one_line_error(capsys, ["deploy-check", str(path)])
        assert err == (
            f"dpupose: error: {path} {what or 'not found'}; give a QDQ ONNX file or a `dpupose quantize` output "
            "folder\n"
        )
    for path, what in ((tmp_path / "gone", nowhere), (tmp_path / "absent", "does not exist")):
        err = one_line_error(capsys, ["sdcard", "ls", str(path)])
        assert err.startswith(f"dpupose: error: image {path} {what}: give the PYNQ image for the Ultra96-V2 ")
    assert not slim.exists()


def test_a_fifo_at_an_earlier_result_s_record_is_not_waited_on(tmp_path, hang_guard):
    """Whether --out holds an earlier result was read from its record whole (quantize's summary.json, a plan
    folder's plan.json for split and bench, train's config.json and, on --resume, history.jsonl): a FIFO there
    waited for a writer for ever. They are read as read_own_json reads, a regular file only."""
    import os

    from dpupose.errors import UsageError
    from dpupose.quant.pipeline import _check_out
    from dpupose.split.plan import recorded_files
    from dpupose.train import _check_new_run_folder, _repair_history

    for name in ("summary.json", "plan.json", "config.json", "history.jsonl"):
        (tmp_path / name.split(".")[0]).mkdir()
        os.mkfifo(tmp_path / name.split(".")[0] / name)
    with hang_guard(30, "waited on a FIFO"):
        _check_out(tmp_path / "summary")  # nothing but the record's name there: replaceable, as an empty folder
        assert recorded_files(tmp_path / "plan") == ([], None)
        with pytest.raises(UsageError, match="config.json that `dpupose train` did not write"):
            _check_new_run_folder(tmp_path / "config")
        with pytest.raises(UsageError, match="is a FIFO, not a file, and the output would take its place"):
            _repair_history(tmp_path / "history", {"history": [{"epoch": 1}]})
    assert all((tmp_path / n.split(".")[0] / n).is_fifo() for n in ("plan.json", "config.json", "history.jsonl"))


def test_a_quantize_summary_whose_files_is_no_list_lists_no_file_to_replace(tmp_path):
    """quantize replaces an earlier --out only where it holds nothing but summary.json and the files its "files"
    list names; a "files" of another shape (a JSON object, whose keys iterate as names) is no list of files, so
    a user's model.pt beside it stops the command, as it does where summary.json lists nothing."""
    import json

    from dpupose.errors import UsageError
    from dpupose.quant.pipeline import _check_out

    out = tmp_path / "q"
    out.mkdir()
    (out / "model.pt").write_text("mine")
    for files in ({"model.pt": "sha256"}, "model.pt", None):
        (out / "summary.json").write_text(json.dumps({"files": files}))
        with pytest.raises(UsageError, match=r"but also holds model\.pt, which replacing it would delete"):
            _check_out(out)
    (out / "summary.json").write_text(json.dumps({"files": ["model.pt"]}))  # listed: an earlier result's own
    _check_out(out)
    assert (out / "model.pt").read_text() == "mine"


def test_a_fifo_at_a_quantized_folder_s_summary_is_not_waited_on(tmp_path, hang_guard):
    """eval's and the int8 engines' --quantized read its summary.json whole (whether it was quantized from
    --checkpoint; which engine made a folder without dpu_part_qdq.onnx): a FIFO there waited for a writer for
    ever. eval refuses it, naming what is there; the engines pass it over, as read_own_json does."""
    import os
    import re
    from types import SimpleNamespace

    from dpupose.commands.eval import _check_quantized_matches
    from dpupose.errors import ModelFileError, UsageError
    from dpupose.quant.engines import int8_predictor

    os.mkfifo(tmp_path / "summary.json")
    with hang_guard(30, "waited on a FIFO"):
        with pytest.raises(
            UsageError,
            match=rf"^--quantized {re.escape(str(tmp_path))}: its summary\.json is a FIFO, so whether the folder "
            r"was quantized from --checkpoint cannot be told; quantize --checkpoint again",
        ):
            _check_quantized_matches(tmp_path, SimpleNamespace(config=SimpleNamespace(to_dict=dict)))
        with pytest.raises(ModelFileError, match=r"dpu_part_qdq\.onnx not found; --quantized must be a `dpupose "):
            int8_predictor(tmp_path, "int8-emulated")
    assert (tmp_path / "summary.json").is_fifo()


def test_a_dangling_link_at_a_quantized_folder_s_summary_is_named_not_taken_for_none(tmp_path):
    """A symbolic link that leads nowhere at --quantized's summary.json was taken for a folder copied without one,
    and eval's checks that the folder was quantized from --checkpoint skipped in silence: it is named, as a FIFO
    there is; a folder with nothing at that name still skips them."""
    from types import SimpleNamespace

    from dpupose.commands.eval import _check_quantized_matches
    from dpupose.errors import UsageError

    model = SimpleNamespace(config=SimpleNamespace(to_dict=dict))
    _check_quantized_matches(tmp_path, model)  # none: nothing to compare with
    (tmp_path / "summary.json").symlink_to("../elsewhere/summary.json")
    with pytest.raises(UsageError) as info:
        _check_quantized_matches(tmp_path, model)
    assert str(info.value) == (
        f"--quantized {tmp_path}: its summary.json is a symbolic link that leads nowhere (to "
        "../elsewhere/summary.json), so whether the folder was quantized from --checkpoint cannot be told; "
        "quantize --checkpoint again with `dpupose quantize`, or copy the folder whole again"
    )


def test_a_fifo_at_a_plan_folder_s_plan_json_is_named(tmp_path, capsys):
    """A FIFO at --plan's plan.json, or given as the plan file, was 'no split plan at ...', of a name the user can
    see there; it is named for what it is, and not opened."""
    import os

    from dpupose.cli import main

    os.mkfifo(tmp_path / "plan.json")
    out = tmp_path.parent / f"{tmp_path.name}-out"
    for given in (tmp_path, tmp_path / "plan.json"):
        rc = main(["run", "--plan", str(given), "--backend", "cpu", "--source", str(tmp_path), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and err == (
            f"dpupose: error: {tmp_path / 'plan.json'} is a FIFO, not a split plan: pass the folder written by "
            "`dpupose split` (it holds a plan.json file)\n"
        )
    assert (tmp_path / "plan.json").is_fifo() and not os.path.exists(out)


def test_a_dangling_link_at_a_plan_or_its_plan_json_is_named(tmp_path, capsys):
    """A symbolic link that leads nowhere given as --plan (a plan on a disk not mounted), or at a plan folder's
    plan.json, was 'no split plan at ...', of a name the user sees there, where every other input names such a
    link (fsio.dangling_link): it is named so, with its target."""
    import os

    from dpupose.cli import main

    (tmp_path / "gone").symlink_to("nothing/here")
    folder = tmp_path / "plan"
    folder.mkdir()
    (folder / "plan.json").symlink_to("../elsewhere/plan.json")
    out = tmp_path / "out"
    for given, link, target in (
        (tmp_path / "gone", tmp_path / "gone", "nothing/here"),
        (folder, folder / "plan.json", "../elsewhere/plan.json"),
    ):
        rc = main(["run", "--plan", str(given), "--backend", "cpu", "--source", str(tmp_path), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and err == (
            f"dpupose: error: {link} is a symbolic link that leads nowhere (to {target}), not a split plan: pass the "
            "folder written by `dpupose split` (it holds a plan.json file)\n"
        )
    assert not os.path.exists(out)


def test_a_run_folder_given_as_a_quantize_folder_or_subgraph_says_to_quantize_it_first(tmp_path, capsys):
    """A training run's folder where a `dpupose quantize` folder or DPU subgraph goes (eval --quantized runs/x,
    bench --quantized runs/x, deploy-check runs/x) was 'runs/x/dpu_part_qdq.onnx not found; ... must be a
    `dpupose quantize` output folder' or 'holds no model_qdq.onnx', naming no next step: the checkpoint in it is
    named with the quantize command. A model card's folder with its plan one level down still names the plan's
    DPU subgraph to deploy-check."""
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    for name in ("last.pt", "best.pt"):
        (run / name).write_bytes(b"weights")
    before = sorted(tmp_path.rglob("*"))
    quantize = f"`dpupose quantize --checkpoint {run / 'best.pt'} --out DIR`"
    for argv in (["eval", "--checkpoint", str(run / "best.pt"), "--data", "synthetic", "--engine", "int8-ort",
                  "--quantized", str(run)], ["bench", "--quantized", str(run)]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"dpupose {argv[0]}: error: argument --quantized: {run} holds a checkpoint, not a `dpupose quantize` "
            f"folder: quantize it first, {quantize}, and give DIR, or give --checkpoint {run / 'best.pt'} without "
            f"--quantized (see `dpupose {argv[0]} --help`)"
        )
    err = one_line_error(capsys, ["deploy-check", str(run)])
    want = f"{run} holds a checkpoint, not a DPU subgraph: quantize it first, {quantize}, and check DIR"
    assert err == f"dpupose: error: {want}\n"
    card = tmp_path / "models" / "mine"
    (card / "split").mkdir(parents=True)
    (card / "model.pt").write_bytes(b"weights")
    (card / "split" / "plan.json").write_text(json.dumps(PLAN))
    err = one_line_error(capsys, ["deploy-check", str(card)])
    assert f"{card / 'split'} is a split plan folder; deploy-check takes one DPU subgraph file" in err
    assert sorted(p for p in tmp_path.rglob("*") if "models" not in p.parts) == before  # nothing written
