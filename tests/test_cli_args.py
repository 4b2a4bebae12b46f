"""Out-of-range numeric options are refused on one line, naming the option, before anything is written."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import png_claiming_size

from dpupose.cli import main
from dpupose.commands.argtypes import float_above, float_in, int_at_least, nonnegative_float

PLAN = "models/dpupose-synth/split"
CKPT = "models/dpupose-synth/model.pt"

# (command line with {out} for a folder that must not appear, option, message part)
CASES = [
    ("train --data synthetic --epochs 1 --out {out} --batch-size 0", "--batch-size", "must be at least 1, got 0"),
    ("train --data synthetic --epochs 1 --out {out} --lr -1", "--lr", "must be greater than 0, got -1"),
    ("train --data synthetic --epochs 1 --out {out} --lr nan", "--lr", "expected a finite number"),
    ("train --data synthetic --epochs 1 --out {out} --workers -1", "--workers", "must be at least 0, got -1"),
    ("train --data synthetic --epochs 1 --out {out} --threads 0", "--threads", "must be at least 1, got 0"),
    ("train --data synthetic --epochs 1 --out {out} --checkpoint-minutes 0", "--checkpoint-minutes", "greater than 0"),
    ("train --data synthetic --epochs 0 --out {out}", "--epochs", "must be at least 1, got 0"),
    ("train --data synthetic --epochs 1 --out {out} --width 0", "--width", "greater than 0"),
    ("train --data synthetic --epochs two --out {out}", "--epochs", "expected an integer, got 'two'"),
    ("train --data synthetic --epochs 1 --out {out} --device gpu", "--device", "expected auto, cpu, cuda or cuda:N"),
    (f"eval --checkpoint {CKPT} --data synthetic --device cuda:-1", "--device", "expected auto, cpu, cuda or cuda:N"),
    ("data synth --out {out} --seed -1", "--seed", "must be at least 0, got -1"),
    (f"eval --checkpoint {CKPT} --data synthetic --batch-size 0", "--batch-size", "at least 1"),
    (f"quantize --checkpoint {CKPT} --out {{out}} --batch-size 0", "--batch-size", "at least 1"),
    (f"quantize --checkpoint {CKPT} --out {{out}} --summary-samples 0", "--summary-samples", "at least 1"),
    (f"bench --plan {PLAN} --threads 0 --out {{out}}", "--threads", "at least 1"),
    (f"bench --plan {PLAN} --fps-frames 1 --out {{out}}", "--fps-frames", "must be at least 2, got 1"),
    ("deploy-check build/none --tolerance -1 --json {out}", "--tolerance", "at least 0"),
    ("deploy-check build/none --num 0 --json {out}", "--num", "at least 1"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --min-confidence 2", "--min-confidence", "between 0 and 1"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --camera-retries -1", "--camera-retries", "at least 0"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --camera-retry-delay -0.5", "--camera-retry-delay", "at least 0"),
    ("data synth --out {out} --workers 0", "--workers", "at least 1"),
    ("data synth --out {out} --image-size 32", "--image-size", "must be at least 64, got 32"),
    ("dpu estimate {out} --arch B1600 --cores 0", "--cores", "at least 1"),
    ("zoo export mobilenet_v2 --out {out} --input-size 0", "--input-size", "at least 1"),
    # Too large for the libraries they go to (each was an overflow or allocation traceback), or for the machine.
    ("train --data synthetic --epochs 1 --out {out} --seed 99999999999999999999", "--seed", "at most 2147483647"),
    ("train --data synthetic --epochs 1 --out {out} --threads 99999999999", "--threads", "at most 1024, got"),
    ("train --data synthetic --epochs 1 --out {out} --workers 5000", "--workers", "at most 1024, got 5000"),
    ("train --data synthetic --epochs 1 --out {out} --lr 1e300", "--lr", "must be at most 1, got 1e300"),
    ("train --data synthetic --epochs 1 --out {out} --width 100", "--width", "must be at most 4, got 100"),
    ("train --data synthetic --epochs 1 --out {out} --input-size 100000", "--input-size", "at most 2048"),
    (f"quantize --checkpoint {CKPT} --out {{out}} --seed 2147483648", "--seed", "at most 2147483647"),
    ("data synth --out {out} --image-size 100000", "--image-size", "must be at most 4096, got 100000"),
    ("data synth --out {out} --workers 99999999999999999999", "--workers", "at most 1024"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --threads 99999999999", "--threads", "at most 1024"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --dpu-jobs 1000", "--dpu-jobs", "at most 16, got 1000"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --max-frames 1e20", "--max-frames", "expected an integer"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --max-frames 99999999999999999999", "--max-frames", "at most"),
    (f"run --plan {PLAN} --source x.jpg --out {{out}} --camera-retry-delay 1e300", "--camera-retry-delay", "at most"),
    (f"bench --plan {PLAN} --threads 99999999999 --out {{out}}", "--threads", "at most 1024"),
    ("zoo export resnet50 --out {out} --input-size 100000", "--input-size", "must be at most 2048, got 100000"),
]


def refused(argv: list[str], capsys) -> str:
    """The command line is refused with exit status 2 and one line on stderr (no usage block, no
    traceback); returns that line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(("line", "option", "message"), CASES, ids=[c[0].split()[0] + " " + c[1] for c in CASES])
def test_out_of_range_option_is_one_line_error(tmp_path, capsys, line, option, message):
    out = tmp_path / "out"
    err = refused(line.format(out=out).split(), capsys)
    assert f"argument {option}: " in err and message in err
    assert "--help" in err  # says where the usage is
    assert not out.exists()


def test_unknown_command_and_missing_argument_are_one_line(capsys):
    for line, part in (("bogus", "invalid choice: 'bogus'"), ("train --data synthetic --out x", "--epochs")):
        assert part in refused(line.split(), capsys)


def test_a_path_starting_with_a_dash_is_answered_with_how_to_give_it(capsys):
    # argparse reads -x as an option: "expected one argument" or "arguments are required: model", for a value given.
    err = refused(["data", "synth", "--out", "-x"], capsys)
    assert "argument --out: expected one argument; a value starting with '-' is written --out=VALUE" in err
    err = refused(["run", "--plan", "-p", "--source", "a"], capsys)
    assert "is written --plan=VALUE (or ./VALUE for a path)" in err
    err = refused(["split", "-x.onnx", "--out", "s"], capsys)
    assert "required: model; if -x.onnx is one, write it after -- (or as ./-x.onnx for a path)" in err
    # No such hint where no word starts with a dash, or only a named option is missing.
    assert "write it after" not in refused(["split", "--out", "s"], capsys)
    assert "write it after" not in refused(["split", "m.onnx", "--bogus"], capsys)
    # A word of two dashes is a mistyped option, not a path: the missing model is said alone.
    assert refused(["split", "--bogus", "--out", "s"], capsys) == (
        "dpupose split: error: the following arguments are required: model (see `dpupose split --help`)\n"
    )


def test_an_unknown_option_is_answered_with_the_subcommands_help_not_the_command_list(capsys):
    # argparse's top parser reports the words no subcommand took, with its own prog: `dpupose --help` lists the
    # commands, not the options the user was looking for (`sdcard stage` takes the image as IMAGE, not --image).
    assert refused(["sdcard", "stage", "--image", "x.img", "--overlay", "o", "--model", "m"], capsys) == (
        "dpupose sdcard stage: error: unrecognized arguments: --image (see `dpupose sdcard stage --help`)\n"
    )
    assert refused(["run", "--plan", "p", "--source", "s", "extra"], capsys) == (
        "dpupose run: error: unrecognized arguments: extra (see `dpupose run --help`)\n"
    )
    # Before any subcommand: the command list is the help to see.
    assert refused(["--bogus"], capsys) == "dpupose: error: unrecognized arguments: --bogus (see `dpupose --help`)\n"


def test_range_types_accept_their_bounds_and_refuse_just_outside():
    """Each refusal is the one line argparse puts after the option's name: which bound, and the value given."""
    assert int_at_least(2)("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be at least 2, got 1$"):
        int_at_least(2)("1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer, got '1\.5'$"):
        int_at_least(0)("1.5")  # not an integer
    assert float_above(0.0)("1e-9") == 1e-9
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be greater than 0, got 0$"):
        float_above(0.0)("0")
    assert float_in(0.0, 1.0)("0") == 0.0 and float_in(0.0, 1.0)("1") == 1.0
    for bad in ("1.0001", "-0.0001"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^must be between 0 and 1, got {bad}$"):
            float_in(0.0, 1.0)(bad)
    for bad in ("inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^expected a finite number, got '{bad}'$"):
            float_in(0.0, 1.0)(bad)
    assert nonnegative_float("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a finite number, got '-inf'$"):
        nonnegative_float("-inf")
    assert int_at_least(0)(str(2**31 - 1)) == 2**31 - 1  # the largest C int
    with pytest.raises(argparse.ArgumentTypeError, match="at most 2147483647"):
        int_at_least(0)(str(2**31))
    assert int_at_least(1, 16)("16") == 16 and float_above(0.0, 1.0)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match="at most 16, got 17"):
        int_at_least(1, 16)("17")


@pytest.fixture
def paths(tmp_path):
    """A file and a folder the user already has; neither may be touched."""
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("keep")
    return tmp_path


# (command line; {file}, {folder} are the user's; option, message part)
OUTPUT_CASES = [
    ("train --data synthetic --epochs 1 --out {file}", "--out", "is a file, not a folder; give a folder"),
    ("data synth --out {file}", "--out", "is a file, not a folder; give a folder"),
    (f"run --plan {PLAN} --source x.jpg --out {{file}}", "--out", "is a file, not a folder; give a folder"),
    (f"quantize --checkpoint {CKPT} --out {{file}}", "--out", "is a file, not a folder; give a folder"),
    ("split x.onnx --out {file}", "--out", "is a file, not a folder; give a folder"),
    ("dpu files --config u96v2-b1600-pynq --out {file}", "--out", "is a file, not a folder; give a folder"),
    ("hw build --config u96v2-b1600-pynq --out {file}", "--out", "is a file, not a folder; give a folder"),
    ("deploy-check build/none --dump {file}", "--dump", "is a file, not a folder; give a folder"),
    (f"bench --plan {PLAN} --work {{file}}", "--work", "is a file, not a folder; give a folder"),
    (f"export --checkpoint {CKPT} --out {{folder}} --force", "--out", "is a folder; give a file name"),
    ("zoo export mobilenet_v2 --out {folder}", "--out", "is a folder; give a file name"),
    (f"bench --plan {PLAN} --out {{folder}}", "--out", "is a folder; give a file name"),
    ("deploy-check build/none --json {folder}", "--json", "is a folder; give a file name"),
    ("dpu compare --model x.onnx --plot {folder}", "--plot", "is a folder; give a file name"),
    ("sdcard stage x.img --overlay o --model m --out {folder}", "--out", "is a folder; give a file name"),
    ("deploy-check build/none --json {file}/report.json", "--json", "is a file, so"),
    # a file further up than the parent: each folder above is looked at until one is there
    (f"bench --plan {PLAN} --out {{file}}/runs/bench.json", "--out", "notes.txt is a file, so"),
    ("split x.onnx --out {file}/runs/split", "--out", "notes.txt is a file, so"),
    ("data synth --out {file}/data", "--out", "notes.txt is a file, so"),
]


@pytest.mark.parametrize(
    ("line", "option", "message"), OUTPUT_CASES, ids=[" ".join(c[0].split()[:2]) + " " + c[1] for c in OUTPUT_CASES]
)
def test_output_of_the_wrong_kind_is_refused_and_nothing_is_touched(paths, capsys, line, option, message):
    before = sorted((p.relative_to(paths), p.read_text() if p.is_file() else None) for p in paths.rglob("*"))
    err = refused(line.format(file=paths / "notes.txt", folder=paths / "folder").split(), capsys)
    assert f"argument {option}: " in err and message in err
    after = sorted((p.relative_to(paths), p.read_text() if p.is_file() else None) for p in paths.rglob("*"))
    assert after == before


FILE_OPTIONS = [
    (f"bench --plan {PLAN} --out {{path}}", "--out"),
    ("deploy-check build/none --json {path}", "--json"),
    (f"export --checkpoint {CKPT} --out {{path}} --force", "--out"),
    ("zoo export mobilenet_v2 --out {path}", "--out"),
    ("dpu compare --model x.onnx --plot {path}", "--plot"),
    ("sdcard stage x.img --overlay o --model m --out {path}", "--out"),
]


@pytest.mark.parametrize(("line", "option"), FILE_OPTIONS, ids=[" ".join(c[0].split()[:2]) for c in FILE_OPTIONS])
def test_an_output_file_that_is_a_device_or_a_fifo_is_refused_as_such(tmp_path, capsys, line, option):
    """bench --out /dev/null was refused as 'not an earlier `dpupose bench` result; choose another --out (or move
    the file)', and the options without that check wrote a file and renamed it over the FIFO (as root, over
    /dev/null): each is refused as the command line is read, for what it is."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    given = [(str(fifo), "a FIFO")]
    if line.startswith(("bench", "deploy-check")):  # these two refused /dev/null before: a regression is safe
        given.append(("/dev/null", "a device"))  # (the others, run as root, would replace /dev/null by a file)
    for path, kind in given:
        err = refused(line.format(path=path).split(), capsys)
        assert f"argument {option}: {path} is {kind}, not a file, and the output would take its place; give a " in err
        assert "move the file" not in err
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and os.listdir(tmp_path) == ["pipe"]


@pytest.mark.parametrize(("line", "option"), FILE_OPTIONS, ids=[" ".join(c[0].split()[:2]) for c in FILE_OPTIONS])
def test_an_output_file_named_with_a_trailing_slash_is_refused(tmp_path, capsys, line, option):
    """A file option given a name ending in '/' (a folder, not there yet) wrote a file of that name without the
    slash (`export --out models/mine/` a file models/mine): it is refused as a folder's name, nothing made."""
    given = f"{tmp_path / 'mine'}/"
    err = refused(line.format(path=given).split(), capsys)
    assert f"argument {option}: {given} ends in '/', as a folder does; give a file name" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("line", ["split x.onnx --out {path}", "deploy-check build/none --dump {path}"])
def test_an_output_folder_that_is_a_fifo_is_refused_as_such(tmp_path, capsys, line):
    """A FIFO given where a folder is written was refused as 'is a file; give a folder': it is named for what
    it is, as the file options name it, and left as it was."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    err = refused(line.format(path=fifo).split(), capsys)
    option = line.split()[-2]
    assert f"argument {option}: {fifo} is a FIFO, not a folder; give a folder" in err
    err = refused(line.format(path=fifo / "inside").split(), capsys)
    assert f"argument {option}: {fifo} is a FIFO, so {fifo / 'inside'} cannot be made" in err
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and os.listdir(tmp_path) == ["pipe"]


@pytest.mark.parametrize(
    "line",
    ["data synth --out {long}", "bench --out {long}/bench.json", "dpu files --config u96v2-b1600-pynq --out {long}"],
)
def test_an_output_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys, line):
    # The name's length error came from the option's check, outside the CLI's error handling: a traceback.
    long = str(tmp_path / ("n" * 300))  # longer than any Linux file system's 255-byte names
    err = refused(line.format(long=long).split(), capsys)
    assert f"argument --out: cannot use {long}" in err and "File name too long; give a shorter path" in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_below_a_folder_this_user_may_not_search_is_not_told_to_be_shorter(tmp_path, capsys, monkeypatch):
    """Every OSError of an output's look-up was told 'give a shorter or other path', written for a name too long;
    one refused for permission (a folder above it this user may not search, as a non-root user meets it) is told
    what fits. Root searches every folder, so the look-up's refusal is made by a stand-in."""
    import errno

    out = tmp_path / "locked" / "run"
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    err = refused(["data", "synth", "--out", str(out)], capsys)
    assert (
        f"argument --out: cannot use {out}: Permission denied; give a path this user may reach, or ask for access to "
        "the folders above it (see `dpupose data synth --help`)"
    ) in err
    assert "shorter" not in err
    assert list(tmp_path.iterdir()) == []


def test_deploy_check_json_replaces_only_an_earlier_report(paths, capsys):
    # Before the model is read: a plan.json given as --json was overwritten with the report.
    plan = paths / "plan.json"
    plan.write_text('{"version": 1, "generated_by": "dpupose split"}')
    assert main(["deploy-check", str(paths / "none"), "--json", str(plan)]) == 2
    assert "is not an earlier `dpupose deploy-check` report" in capsys.readouterr().err
    assert plan.read_text() == '{"version": 1, "generated_by": "dpupose split"}'
    # An earlier report may be replaced: the command goes on to the (missing) model.
    report = paths / "report.json"
    report.write_text('{"tolerance_lsb": 0, "first_divergent": null, "layers": []}')
    assert main(["deploy-check", str(paths / "none"), "--json", str(report)]) == 2
    assert "none not found; give a QDQ ONNX file" in capsys.readouterr().err
    # A JSON file with one of the report's keys (another tool's list of layers) is not one.
    other = paths / "layers.json"
    other.write_text('{"layers": ["conv1", "conv2"]}')
    assert main(["deploy-check", str(paths / "none"), "--json", str(other)]) == 2
    assert "is not an earlier `dpupose deploy-check` report" in capsys.readouterr().err
    assert other.read_text() == '{"layers": ["conv1", "conv2"]}'


def test_data_synth_does_not_replace_a_folder_it_did_not_make(paths, capsys, monkeypatch):
    assert main(["data", "synth", "--out", str(paths / "folder"), "--num-train", "1", "--num-valid", "1"]) == 2
    assert "is not a synthetic data root" in capsys.readouterr().err
    assert [p.name for p in (paths / "folder").iterdir()] == ["a.txt"]
    # an earlier synthetic root, or an empty folder, is replaced
    (paths / "empty").mkdir()
    for name in ("empty", "empty"):
        assert main(["data", "synth", "--out", str(paths / name), "--num-train", "1", "--num-valid", "1"]) == 0
        assert sorted(p.name for p in (paths / name).iterdir()) == ["annot", "images", "synthetic.json"]
    assert not [p.name for p in paths.iterdir() if p.name.startswith(".")]  # no temporary or old copies left
    # ... but not one that also holds something of the user's
    (paths / "empty" / "README.md").write_text("my notes")
    assert main(["data", "synth", "--out", str(paths / "empty"), "--num-train", "1", "--num-valid", "1"]) == 2
    assert "also holds README.md" in capsys.readouterr().err
    assert (paths / "empty" / "README.md").read_text() == "my notes"
    (paths / "empty" / "README.md").unlink()
    # ... nor one whose images/ or annot/ hold something the generator did not write
    for extra in ("images/photo.jpg", "annot/mine/notes.txt"):
        (paths / "empty" / extra).parent.mkdir(exist_ok=True)
        (paths / "empty" / extra).write_text("mine")
        assert main(["data", "synth", "--out", str(paths / "empty"), "--num-train", "1", "--num-valid", "1"]) == 2
        folder, name = extra.split("/")[:2]
        assert f"{folder}/ also holds {name}" in capsys.readouterr().err
        assert (paths / "empty" / extra).read_text() == "mine"
        (paths / "empty" / extra).unlink()
        if folder == "annot":
            (paths / "empty" / "annot" / "mine").rmdir()
    # A folder that cannot be made is named as given, not as the temporary folder beside it.
    assert main(["data", "synth", "--out", "/proc/dpupose-test", "--num-train", "1", "--num-valid", "1"]) == 2
    err = capsys.readouterr().err
    assert "/proc/dpupose-test" in err and ".tmp" not in err
    # "." is the folder the shell stands in: refused before any image is rendered
    monkeypatch.chdir(paths / "empty")  # and back to the folder the run started in after the test
    assert main(["data", "synth", "--out", ".", "--num-train", "1", "--num-valid", "1"]) == 2
    assert "is the current folder or holds it" in capsys.readouterr().err


def test_data_check_reads_every_image(synth_root, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    assert main(["data", "check", "--data-root", str(root)]) == 0
    records = json.loads((root / "annot" / "valid.json").read_text())
    (root / "images" / records[0]["image"]).write_bytes(b"not a jpeg")
    # over OpenCV's size limit, which it raises for (was a cv2.error traceback)
    (root / "images" / records[2]["image"]).write_bytes(png_claiming_size(40000, 40000))
    records[1]["image"] = "../../outside.jpg"
    (root / "annot" / "valid.json").write_text(json.dumps(records))
    capsys.readouterr()
    assert main(["data", "check", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert (
        f"2 undecodable (first: {records[0]['image']})" in out and "1 outside images/ (first: ../../outside.jpg)" in out
    )
    assert "train: 24 records" in out and "0 missing, 0 undecodable, 0 outside images/" in out
    # Images that are symlinks into a cache elsewhere (git-annex, DVC) are inside images/.
    cache = tmp_path / "cache"
    cache.mkdir()
    first = json.loads((root / "annot" / "train.json").read_text())[0]["image"]
    (root / "images" / first).rename(cache / "blob")
    (root / "images" / first).symlink_to(cache / "blob")
    capsys.readouterr()
    assert main(["data", "check", "--data-root", str(root)]) == 1  # the valid split's problems remain
    train_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("train:"))
    assert "0 missing, 0 undecodable, 0 outside images/" in train_line
    # A root that is not a folder leaves nothing to check: a command not carried out (exit 2, as every other
    # command says it), not a check that failed (exit 1, which it was, on stdout without dpupose: error:).
    assert main(["data", "check", "--data-root", str(root / "synthetic.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"dpupose: error: data root {root / 'synthetic.json'} is a file, not a folder; give the folder holding "
        "images/ and annot/\n"
    )  # once, not for each split
    assert main(["data", "check", "--data-root", str(root / "nothing")]) == 2
    assert capsys.readouterr() == (
        "",
        f"dpupose: error: data root {root / 'nothing'} does not exist; give the folder holding images/ and annot/\n",
    )
    # A root with validation records only (what `data synth --num-train 0` makes, to evaluate or run on) is
    # fine; one with none in either split is not.
    valid_only = tmp_path / "valid-only"
    (valid_only / "annot").mkdir(parents=True)
    shutil.copytree(synth_root / "images", valid_only / "images")
    shutil.copy(synth_root / "annot" / "valid.json", valid_only / "annot" / "valid.json")
    assert main(["data", "check", "--data-root", str(valid_only)]) == 0
    assert "train: no records" in capsys.readouterr().out
    (valid_only / "annot" / "valid.json").write_text("[]")
    assert main(["data", "check", "--data-root", str(valid_only)]) == 1


def _parsers(parser: argparse.ArgumentParser, prog: str = "dpupose"):
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prog} {name}")


def test_every_numeric_option_has_a_range():
    """A bare type=int/float takes 0 or -1 and fails later with a traceback (or not at all)."""
    from dpupose.cli import build_parser

    bare = [
        f"{prog} {action.option_strings[0]}"
        for prog, parser in _parsers(build_parser())
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert bare == []


def test_every_option_with_a_default_names_it_in_its_help():
    """`dpupose CMD --help` is where a user looks first: an option that has a default says which."""
    from dpupose.cli import build_parser

    def shown(value):
        return f"{value:g}" if isinstance(value, float) else str(value)

    silent = [
        f"{prog} {action.option_strings[0]} (default {action.default!r}): {action.help}"
        for prog, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings
        and action.default is not None
        and not isinstance(action.default, bool)  # flags
        and action.default is not argparse.SUPPRESS
        and action.help is not argparse.SUPPRESS
        and not ("default" in (action.help or "") and shown(action.default) in action.help)
    ]
    assert silent == []


def test_a_path_the_file_system_refuses_is_one_line(capsys, monkeypatch):
    # /proc takes no new folders, whoever asks (root included): the OSError no check foresaw.
    assert main(["dpu", "files", "--config", "u96v2-b1600-pynq", "--out", "/proc/dpupose-test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: cannot use /proc/dpupose-test: ") and err.count("\n") == 1, err
    # A rename's two paths are both named.
    from dpupose.cli import os_error_line

    line = os_error_line(PermissionError(13, "Permission denied", "a.tmp", None, "b"))
    assert line.startswith("cannot use a.tmp -> b: Permission denied")


def test_an_unwritable_output_fails_before_the_work(capsys, monkeypatch):
    # quantize calibrates and bench measures for minutes before writing: /proc takes nothing, say so first.
    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr("dpupose.quant.data.open_calibration_set", no_work)
    monkeypatch.setattr("dpupose.eval.bench.run_bench", no_work)
    for line, path in [
        (f"quantize --checkpoint {CKPT} --out /proc/dpupose-q", "/proc/dpupose-q"),
        (f"bench --plan {PLAN} --out /proc/dpupose-bench.json", "/proc/dpupose-bench.json"),
        (f"bench --plan {PLAN} --work /proc/dpupose-work", "/proc/dpupose-work/probe"),
    ]:
        assert main(line.split()) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dpupose: error: cannot use {path}: ") and err.count("\n") == 1, err
    assert main(f"quantize --checkpoint {CKPT} --out /proc/dpupose-q --target DPUCZDX8G_ISA1_B1600".split()) == 2
    assert "--engine native does not use it" in capsys.readouterr().err


MISSING_MODULE = "import sys; sys.modules.update(dict.fromkeys(sys.argv[1].split(','))); from dpupose.cli import main; sys.exit(main(sys.argv[2:]))"  # noqa: E501


@pytest.mark.parametrize(
    ("missing", "line", "names"),
    [
        ("torch", "train --data synthetic --epochs 1 --out {out}", "dpupose train needs PyTorch (module torch)"),
        ("torch,onnx", f"quantize --checkpoint {CKPT} --out {{out}}", "dpupose quantize needs"),
        ("cv2", "data synth --out {out} --num-train 0 --num-valid 1", "dpupose data synth needs OpenCV (module cv2)"),
        ("cv2", f"run --plan {PLAN} --source {PLAN} --backend cpu --out {{out}}", "dpupose run needs OpenCV"),
    ],
)
def test_a_command_without_its_host_package_says_what_to_install(tmp_path, missing, line, names):
    """A base install (`pip install dpupose`: the board's packages) has no torch, onnx or OpenCV: a command that
    needs one says on one line what to install, not a ModuleNotFoundError traceback, and writes nothing."""
    out = tmp_path / "out"
    argv = [sys.executable, "-c", MISSING_MODULE, missing, *line.format(out=out).split()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"dpupose: error: {names}") and proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'dpupose[host]'" in proc.stderr
    assert ("pip install opencv-python-headless" in proc.stderr) == (missing == "cv2")
    assert not out.exists()


def test_a_missing_module_that_no_extra_provides_keeps_its_traceback(monkeypatch):
    """Only the host packages are named: another missing module is a broken installation, shown as it is."""

    def needs(module):
        def run(args):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

        return run

    monkeypatch.setattr("dpupose.commands.deploy.run", needs("yaml"))
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        main(["deploy", "--host", "pynq", "--overlay", "o", "--model", "m"])
    monkeypatch.setattr("dpupose.commands.deploy.run", needs("scipy"))
    assert main(["deploy", "--host", "pynq", "--overlay", "o", "--model", "m"]) == 2


def test_eval_refuses_a_quantized_folder_it_would_ignore(tmp_path, capsys):
    assert (
        main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--data", "synthetic", "--quantized", str(tmp_path)]) == 2
    )
    assert "--quantized is for the int8 engines: pass --engine int8-emulated" in capsys.readouterr().err


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_partial_folder(tmp_path):
    """`kill`/`timeout` during data synth (a pool of worker processes): one line, exit 143, and the half-filled
    temporary folder is removed, not left beside the output (the spawned workers keep the default action)."""
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "dpupose", "data", "synth", "--out", str(out), "--num-train", "3000",
           "--num-valid", "10", "--image-size", "64", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") and any(p.rglob("*.jpg")) for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "data synth ended before it wrote an image"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip() == "dpupose: terminated"
    assert os.listdir(tmp_path) == []


def test_ctrl_c_at_a_terminal_stops_data_synth_and_its_workers(tmp_path):
    """Ctrl-C at a terminal signals the whole foreground process group, the rendering processes too, which
    at the start are importing their modules (seconds): one line, exit 130, no traceback of a worker or of
    the pool, and nothing left beside the output."""
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "dpupose", "data", "synth", "--out", str(out), "--num-train", "3000",
           "--num-valid", "10", "--image-size", "64", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def as_at_a_terminal() -> None:  # a group of its own, with Python's own SIGINT handler
        os.setpgrp()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=as_at_a_terminal
    )
    deadline = time.monotonic() + 120
    # The temporary folder is being filled: the workers are about to start.
    while not any(p.name.endswith(".tmp") and (p / "images").is_dir() for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "data synth ended before it started"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == "dpupose: interrupted"
    assert os.listdir(tmp_path) == []


def test_the_rendering_processes_end_with_a_killed_data_synth(tmp_path):
    """kill -9 (or the OOM killer) of data synth left its two rendering processes behind for good: each
    finished its chunk into the abandoned folder, then waited forever to hand over the result."""
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "dpupose", "data", "synth", "--out", str(out), "--num-train", "3000",
           "--num-valid", "10", "--image-size", "64", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") and any(p.rglob("*.jpg")) for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "data synth ended before it wrote an image"
        time.sleep(0.05)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    workers = [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while alive := [pid for pid in workers if Path(f"/proc/{pid}").exists() and _not_a_zombie(pid)]:
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"rendering processes {alive} outlived data synth by a minute")
        time.sleep(0.1)


def _not_a_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone meanwhile
        return False


def test_a_forked_child_dies_of_sigterm_while_the_parent_unwinds():
    """A child forked while a command runs (a DataLoader worker, a fork-started pool) inherits the SIGTERM
    handler: it must die of the signal as it would have, not unwind the parent's code in the child."""
    from dpupose import cli
    from dpupose.errors import Terminated

    previous = cli._raise_on_sigterm()
    try:
        pid = os.fork()
        if pid == 0:  # the child: only the signal may end it; unwinding reaches os._exit(7)
            try:
                time.sleep(60)
            finally:
                os._exit(7)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        with pytest.raises(Terminated):  # and in the parent it still unwinds
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        cli.restore_signals(previous)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_every_argument_says_what_it_is():
    """Every option and positional of every command has a help text in `dpupose CMD --help`."""
    from dpupose.cli import build_parser

    silent = [
        f"{prog} {action.option_strings[0] if action.option_strings else action.dest}"
        for prog, parser in _parsers(build_parser())
        for action in parser._actions
        if not action.help and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]
    assert silent == []


def test_every_command_s_help_says_what_it_does():
    """`dpupose hw status --help` (any command's own help) starts with what the command does, as its group's
    --help lists it: exit statuses that scripts rely on (data check, dpu fit, hw status) are said there."""
    from dpupose.cli import build_parser

    parsers = dict(_parsers(build_parser()))
    silent = [prog for prog, parser in parsers.items() if not parser.description]
    assert silent == []
    shown = {prog: " ".join(parser.format_help().split()) for prog, parser in parsers.items()}
    assert "exit 1 if a published file is missing" in shown["dpupose hw status"]
    assert "(exit 1 if not)" in shown["dpupose dpu fit"]
    # A command with a description of its own keeps it: its one-line help is the shorter text.
    own = parsers["dpupose deploy-check"].description
    assert own.startswith("Run a DPU-subgraph QDQ file (or a `dpupose quantize`")


_SIGNAL_WHILE_THE_PARSER_IS_BUILT = """
import os, signal, sys, time
from dpupose import cli
real = cli.build_parser
def build_parser():  # the signal comes while the commands' modules are imported, as Ctrl-C at start does
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(10)
    return real()
cli.build_parser = build_parser
sys.exit(cli.main(["dpu", "list"]))
"""


def signalled(script: str, signum: str) -> subprocess.CompletedProcess:
    """`script` run with SIGINT at its default (as at a terminal, not ignored); it signals itself with `signum`."""
    return subprocess.run(
        [sys.executable, "-c", script, signum],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.parametrize(("signum", "rc", "line"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_while_the_commands_load_is_one_line(signum, rc, line):
    """Ctrl-C or SIGTERM in a command's first few hundred milliseconds, while the parser imports every command's
    module, ended in a KeyboardInterrupt traceback (SIGINT) or a death by the signal with no word (SIGTERM)."""
    proc = signalled(_SIGNAL_WHILE_THE_PARSER_IS_BUILT, signum)
    assert (proc.returncode, proc.stderr) == (rc, f"dpupose: {line}\n")


_CTRL_C_WHILE_THE_CLI_IS_IMPORTED = """
import runpy, sys
class Interrupting:  # Ctrl-C while `python -m dpupose` imports dpupose.cli
    def find_spec(self, name, path=None, target=None):
        if name == "dpupose.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupting())
runpy.run_module("dpupose", run_name="__main__")
"""


def test_ctrl_c_while_python_m_dpupose_starts_is_one_line():
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_THE_CLI_IS_IMPORTED], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (130, "dpupose: interrupted\n")


_SIGNAL_WHILE_THE_CLI_IS_IMPORTED = """
import os, runpy, signal, sys, time
class Signalling:  # the signal comes while `python -m dpupose` imports dpupose.cli
    def find_spec(self, name, path=None, target=None):
        if name == "dpupose.cli":
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
            time.sleep(10)
sys.meta_path.insert(0, Signalling())
runpy.run_module("dpupose", run_name="__main__")
"""

_SIGNAL_AS_MAIN_STARTS = """
import os, runpy, signal, sys, time
from dpupose import cli
def signalled():  # the signal comes as main() is entered, before it has set its handler
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(10)
cli._raise_on_sigterm = signalled
runpy.run_module("dpupose", run_name="__main__")
"""


@pytest.mark.parametrize("script", [_SIGNAL_WHILE_THE_CLI_IS_IMPORTED, _SIGNAL_AS_MAIN_STARTS], ids=["import", "main"])
@pytest.mark.parametrize(("signum", "rc", "line"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_while_python_m_dpupose_starts_is_one_line(script, signum, rc, line):
    """SIGTERM while `python -m dpupose` imported dpupose.cli (60 ms or more) killed it with no word, and Ctrl-C
    or SIGTERM as main() was entered, before its handler and its try, ended in a KeyboardInterrupt traceback."""
    proc = signalled(script, signum)
    assert (proc.returncode, proc.stderr) == (rc, f"dpupose: {line}\n")


_SIGNAL_WHILE_AN_EXTENSION_INITIALISES = """
import os, signal, sys, time
import dpupose.commands.dpu as dpu
def extension_init(lost):  # an extension module's init, as numpy's and onnxruntime's fail on a signal in them
    failed = None
    try:
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        time.sleep(10)
    except BaseException as exc:
        failed = exc
    if lost:  # numpy: PyCapsule_Import's own ImportError takes the signal's place, then numpy's wraps that
        raise ImportError("Importing the numpy C-extensions failed")
    raise ImportError("initialization failed") from failed  # onnxruntime's pybind11 module
def run(args):
    extension_init(sys.argv[2] == "lost")
dpu.cmd_list = run
if sys.argv[3] == "demo":
    from dpupose import demo
    demo.run = run
    sys.exit(demo.main([]))
from dpupose import cli
sys.exit(cli.main(["dpu", "list"]))
"""


@pytest.mark.parametrize("prog", ["dpupose", "demo"])
@pytest.mark.parametrize(
    ("signum", "chain", "rc", "line"),
    [
        (s, chain, rc, line)
        for s, rc, line in (("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated"))
        for chain in ("kept", "lost")
    ],
)
def test_a_signal_while_an_extension_module_initialises_is_one_line(signum, chain, rc, line, prog):
    """Ctrl-C or SIGTERM while `dpupose run` imported numpy or onnxruntime (half a second in, on a board longer)
    ended in an ImportError traceback: 'initialization failed' (onnxruntime), or numpy's 'Importing the numpy
    C-extensions failed ... a bad install', whose chain no longer holds the signal's exception. The handlers
    main() sets record what they raised; Python's own handler for Ctrl-C is put back after."""
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WHILE_AN_EXTENSION_INITIALISES, signum, chain, prog],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert (proc.returncode, proc.stderr) == (rc, f"dpupose: {line}\n")  # the demo's too


def test_ctrl_c_while_torch_loads_prints_only_the_interrupted_line():
    """Ctrl-C or SIGTERM while a command imported torch (a second or two) left torch's loggers without their
    level: its exit hook printed 'INFO torch._subclasses.fake_tensor: FakeTensor cache stats:' and two more
    lines under `dpupose: interrupted`."""
    code = """
import logging, sys
import dpupose.commands.dpu as dpu
def run(args):  # what an interrupted `import torch` leaves: its exit hook logging at INFO, no level set yet
    assert "torch" not in sys.modules
    logging.getLogger("torch._subclasses.fake_tensor").info("FakeTensor cache stats:")
    raise KeyboardInterrupt
dpu.cmd_list = run
from dpupose import cli
sys.exit(cli.main(["dpu", "list"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "dpupose: interrupted\n")


_SIGTERM_AS_PYTHON_M_DPUPOSE_EXITS = """
import atexit, os, runpy, signal, time
from dpupose import cli
cli.main = lambda: 0  # the command ran and returned
def late():  # SIGTERM as the interpreter shuts down (an exit hook, a thread being joined)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
atexit.register(late)
runpy.run_module("dpupose", run_name="__main__")
"""


def test_sigterm_after_python_m_dpupose_s_command_ended_is_not_swallowed():
    """__main__'s SIGTERM handler stayed set after main() returned: a SIGTERM in the interpreter's shutdown
    raised Terminated in an exit hook, printed as an 'ignored' traceback, and the process exited 0."""
    proc = subprocess.run(
        [sys.executable, "-c", _SIGTERM_AS_PYTHON_M_DPUPOSE_EXITS], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stderr) == (-signal.SIGTERM, "")


def test_data_check_fails_a_split_without_an_annotated_joint(synth_root, tmp_path, capsys):
    """train refuses a root whose validation records have no annotated joint: data check said it was fine."""
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    path = root / "annot" / "valid.json"
    records = json.loads(path.read_text())
    records[3]["joints_vis"] = [0] * 16
    path.write_text(json.dumps(records))
    assert main(["data", "check", "--data-root", str(root)]) == 0  # one such record is reported, and fine
    assert f"1 without an annotated joint (first: {records[3]['image']})" in capsys.readouterr().out
    for r in records:
        r["joints"] = [[-1, -1]] * 16  # unannotated as the converters write it
    path.write_text(json.dumps(records))
    capsys.readouterr()
    assert main(["data", "check", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"12 without an annotated joint (first: {records[0]['image']})" in out
    assert "valid: no record has an annotated joint, so `dpupose train` and `dpupose eval` refuse it" in out
    assert "train: no record" not in out


def test_data_check_reports_joints_outside_their_image(tmp_path, capsys):
    """A phone photo whose EXIF orientation turns it (read upright, as dpupose run shows it) annotated in its
    stored pixels: every check passed, and training learnt joints where the picture has none."""
    import cv2
    import numpy as np
    from media import jpeg_with_orientation

    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    stored = np.full((40, 80, 3), 128, np.uint8)  # 80 wide as stored, 40 wide when read (orientation 6)
    (root / "images" / "turned.jpg").write_bytes(jpeg_with_orientation(stored, 6))
    cv2.imwrite(str(root / "images" / "plain.jpg"), stored)
    joints = [[70.0 + 1, 20.0 + 1]] * 16  # MPII's 1-based pixels of the stored picture
    record = {"image": "turned.jpg", "center": [41, 21], "scale": 0.2, "joints": joints, "joints_vis": [1] * 16}
    (root / "annot").mkdir()
    (root / "annot" / "valid.json").write_text(json.dumps([record, {**record, "image": "plain.jpg"}]))
    assert main(["data", "check", "--data-root", str(root)]) == 0  # not an error on its own
    out = capsys.readouterr().out
    assert "valid: records with an annotated joint more than 2 px outside their image: 1 (first: turned.jpg)" in out
    assert "EXIF orientation" in out


def test_eval_says_where_the_head_sizes_of_the_records_it_evaluated_came_from(synth_root, tmp_path, capsys):
    """eval --num-samples N on MPII said where the head sizes of every validation record came from, not of
    the N it scored."""
    from quant_helpers import sane_model, save_checkpoint

    root = tmp_path / "mpii"
    shutil.copytree(synth_root / "images", root / "images")
    records = json.loads((synth_root / "annot" / "valid.json").read_text())
    for r in records[2:]:
        del r["head_box"]  # the rest take the neck-head distance
    (root / "annot").mkdir()
    (root / "annot" / "valid.json").write_text(json.dumps(records))
    ckpt = save_checkpoint(sane_model(), tmp_path / "tiny.pt")
    common = ["eval", "--checkpoint", str(ckpt), "--data", "mpii", "--data-root", str(root), "--num-samples", "2"]
    assert main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_samples"] == 2 and out["head_size_sources"] == {"head_box": 2}
    assert out["head_size_source"] == "head_box 2"
    assert main(common) == 0
    assert "validation; head sizes: 2 from the records' head_box\n" in capsys.readouterr().out
    assert main([*common, "--decode", "local", "--flip"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"{ckpt} on mpii validation, local decoding, flip-averaged; head sizes: 2 from the records' head_box"
    )


def test_a_joint_is_off_its_image_only_past_the_margin():
    """The image's pixel area spans -0.5 to width - 0.5 (0-based pixel centres), and a joint may lie 2 px past
    it: in a 40 x 30 image, x from -2.5 to 41.5 and y from -2.5 to 31.5 are on it; unannotated joints are not
    looked at."""
    from types import SimpleNamespace

    import numpy as np

    from dpupose.commands.data import _joint_off_image

    def off(x, y, visible=True):
        joints = np.zeros((16, 2))
        joints[5] = (x, y)
        shown = np.zeros(16, bool)
        shown[5] = visible
        return _joint_off_image(SimpleNamespace(joints=joints, visible=shown), 40, 30)

    for x, y in ((41.5, 0), (-2.5, 0), (0, 31.5), (0, -2.5), (41.5, 31.5)):
        assert not off(x, y), (x, y)
    for x, y in ((41.51, 0), (-2.51, 0), (0, 31.51), (0, -2.51)):
        assert off(x, y), (x, y)
    assert not off(500, -500, visible=False)


def test_data_check_fails_an_image_in_a_folder_beside_images(synth_root, tmp_path, capsys):
    """A record naming ../images-extra/NAME is outside images/ although its path starts with .../images; that
    alone is a problem (exit 1)."""
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    records = json.loads((root / "annot" / "valid.json").read_text())
    (root / "images-extra").mkdir()
    shutil.copy(root / "images" / records[0]["image"], root / "images-extra" / "a.jpg")
    records[0]["image"] = "../images-extra/a.jpg"
    (root / "annot" / "valid.json").write_text(json.dumps(records))
    assert main(["data", "check", "--data-root", str(root)]) == 1
    assert "0 missing, 0 undecodable, 1 outside images/ (first: ../images-extra/a.jpg)" in capsys.readouterr().out


def test_a_group_without_its_subcommand_prints_that_group_s_help(capsys):
    assert main(["data"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: dpupose data [-h] ACTION ...") and "synth" in out and "check" in out


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(monkeypatch, capsys):
    """`dpupose zoo export ... | head`: the reader gone, the command ends with 141 (as a shell reports SIGPIPE)
    and no traceback or error line."""

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("dpupose.commands.zoo.cmd_export", closed)
    assert main(["zoo", "export", "mobilenet_v2", "--out", "x.onnx"]) == 141
    assert capsys.readouterr().err == ""


def test_os_error_lines_without_a_path_and_a_device_index_of_other_digits():
    from dpupose.cli import os_error_line
    from dpupose.commands.argtypes import device_spec

    assert os_error_line(OSError(30, "Read-only file system")) == "Read-only file system"
    assert device_spec("cuda:07") == "cuda:7"
    for text in ("cuda:\u00b2", "cuda:\u0663"):  # a superscript two and an Arabic-Indic three: digits to str
        with pytest.raises(argparse.ArgumentTypeError, match="expected auto, cpu, cuda or cuda:N"):
            device_spec(text)


def test_data_synth_of_no_images_is_refused(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--num-train", "0", "--num-valid", "0"]) == 2
    assert "ask for at least one image: --num-train and --num-valid are both 0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_verbose_keeps_the_traceback_of_a_missing_host_package(monkeypatch):
    """--verbose shows what failed to import, and from where, instead of the one line."""

    def needs_scipy(args):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr("dpupose.commands.deploy.run", needs_scipy)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        main(["--verbose", "deploy", "--host", "pynq", "--overlay", "o", "--model", "m"])


@pytest.mark.parametrize(
    "command", [["eval", "--checkpoint", "x.pt", "--data", "synthetic", "--engine", "int8-emulated"], ["bench"]]
)
def test_a_quantized_folder_of_the_wrong_kind_is_named_with_the_folder_to_give(tmp_path, capsys, command):
    # The readers looked inside it for dpu_part_qdq.onnx or model_fp32.onnx: a file inside a quantize folder was
    # answered with 'model_qdq.onnx/dpu_part_qdq.onnx not found', a plan folder with its missing file.
    q = tmp_path / "q"
    q.mkdir()
    (q / "summary.json").write_text("{}")
    (q / "model_qdq.onnx").write_bytes(b"x")
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "plan.json").write_text("{}")
    (tmp_path / "loose.onnx").write_bytes(b"x")
    prog = f"dpupose {command[0]}: error: argument --quantized: "
    help_ = f" (see `dpupose {command[0]} --help`)\n"
    cases = {
        q / "model_qdq.onnx": f"{q / 'model_qdq.onnx'} is a file; give the `dpupose quantize` folder (here the one "
        f"holding it, {q})",
        tmp_path / "loose.onnx": f"{tmp_path / 'loose.onnx'} is a file; give a folder written by `dpupose quantize`",
        tmp_path / "split": f"{tmp_path / 'split'} is a split plan folder, not a `dpupose quantize` folder: give the "
        "folder `dpupose quantize` wrote (the plan's model_qdq.onnx came from it)",
        tmp_path / "none": f"{tmp_path / 'none'} does not exist; give a folder written by `dpupose quantize`",
        # no folder of any kind: a FIFO was read as one, 'cannot read its summary.json (Not a directory)' (eval) once
        # the run had set up; a link that leads nowhere was said not to exist, though it is there
        tmp_path / "fifo": f"{tmp_path / 'fifo'} is a FIFO, not a folder; give a folder written by `dpupose quantize`",
        tmp_path / "gone": f"{tmp_path / 'gone'} is a symbolic link that leads nowhere (to moved-away), not a folder; "
        "give a folder written by `dpupose quantize`",
    }
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "gone").symlink_to("moved-away")
    for given, message in cases.items():
        assert refused([*command, "--quantized", str(given)], capsys) == prog + message + help_


@pytest.mark.parametrize("fails_at", ["write", "flush"])
def test_stdout_on_a_full_disk_is_named(tmp_path, monkeypatch, capsys, fails_at):
    """`dpupose dpu list > FILE` (a table, or any --json) on a full disk said 'No space left on device: free
    some space, or write elsewhere', naming nothing: a write's error names no file. It names the file stdout
    goes to; what is still buffered when the command ends is flushed then, and fails the same way."""
    import errno

    from dpupose import cli

    out = tmp_path / "list.txt"
    out.touch()
    fd = os.open(out, os.O_WRONLY)

    class FullDisk:  # a file stdout is redirected to, on a disk that is full
        def write(self, text):
            if fails_at == "write":
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(text)

        def flush(self):
            if fails_at == "flush":
                raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return fd

    try:
        monkeypatch.setattr(sys, "stdout", FullDisk())
        rc = cli.main(["dpu", "list"])
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"dpupose: error: No space left on device for {out} (")
    assert err.count("\n") == 1
    assert type(sys.stdout) is FullDisk  # the command's wrapper is gone with the command
    # stdout on /dev/full: a device, whose disk's free space (the root file system's) means nothing
    assert cli.os_error_line(OSError(errno.ENOSPC, "No space left on device", "/dev/full")) == (
        "No space left on device for /dev/full: free some space on that file system, or write elsewhere"
    )


def test_a_closed_stdout_is_no_traceback(monkeypatch, capsys):
    """With stdout closed (`dpupose dpu list >&-`) Python has no sys.stdout and print() writes nothing; the
    wrapper that names stdout's file on a full disk wrapped None, so the first print (and the flush at the end)
    stopped the command with an AttributeError traceback. It runs as without the wrapper: nothing printed,
    exit 0."""
    from dpupose import cli

    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["dpu", "list"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_that_cannot_be_written_ends_on_the_command_s_line_and_status(tmp_path):
    """With stdout buffered (a file or pipe, PYTHONUNBUFFERED unset), what a command printed was kept in the
    buffer after stdout failed, and Python's own flush at exit failed on it again: `dpupose dpu list >
    /dev/full` said its full-disk line, then 'Exception ignored in: <_io.TextIOWrapper ...>' and exited 120,
    and so did a closed pipe (`| true`: 141 expected, silently), a command that failed after printing (its
    own error first), and --help. Each ends on its own line and exit status."""
    sw = str(Path(__file__).resolve().parents[1] / "sw")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"PYTHONPATH": sw}
    failing = (  # a command that prints, then fails on a bad input
        "import sys\nfrom dpupose import cli\nfrom dpupose.commands import dpu\nfrom dpupose.errors import UsageError\n"
        "def failing(args):\n    print('a table')\n    raise UsageError('the real error')\n"
        "dpu.cmd_list = failing\nsys.exit(cli.main(['dpu', 'list']))\n"
    )
    listing = [sys.executable, "-m", "dpupose", "dpu", "list"]
    full = "dpupose: error: No space left on device for /dev/full: free some space on that file system, or write "
    full += "elsewhere\n"
    for argv, stdout, expected in (
        (listing, "full", (2, full)),
        (listing, "closed pipe", (141, "")),
        ([sys.executable, "-c", failing], "full", (2, "dpupose: error: the real error\n")),
        ([sys.executable, "-c", failing], "closed pipe", (2, "dpupose: error: the real error\n")),
        ([sys.executable, "-m", "dpupose", "dpu", "--help"], "full", (0, "")),  # argparse drops the error itself
        ([sys.executable, "-m", "dpupose", "dpu"], "closed pipe", (2, "")),  # a group's help
    ):
        if stdout == "full":
            with open("/dev/full", "w") as out:
                r = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
        else:
            read, write = os.pipe()
            os.close(read)  # no reader: a write fails with EPIPE (Python ignores SIGPIPE)
            try:
                r = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
            finally:
                os.close(write)
        assert (r.returncode, r.stderr) == expected, (argv[-1][:20], stdout)


def test_stdout_s_errors_name_a_file_only_where_stdout_is_one(tmp_path):
    """NamedStdout names the file stdout goes to in an error that names none: not a pipe's 'pipe:[123]' (no file
    to free space for), and not over a file an error already names (a stream that writes elsewhere)."""
    import errno

    from dpupose.cli import NamedStdout

    class Failing:
        def __init__(self, fd, exc):
            self.fd, self.exc = fd, exc

        def write(self, text):
            raise self.exc

        def flush(self):
            raise self.exc

        def fileno(self):
            return self.fd

    out = tmp_path / "out.txt"
    out.touch()
    fd = os.open(out, os.O_WRONLY)
    read_end, write_end = os.pipe()
    try:
        full = OSError(errno.ENOSPC, "No space left on device")
        with pytest.raises(OSError) as info:
            NamedStdout(Failing(fd, full)).write("x")
        assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(out))
        with pytest.raises(OSError) as info:
            NamedStdout(Failing(write_end, full)).flush()
        assert info.value is full and info.value.filename is None
        named = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.txt"))
        with pytest.raises(OSError) as info:
            NamedStdout(Failing(fd, named)).write("x")
        assert info.value is named
    finally:
        for f in (fd, read_end, write_end):
            os.close(f)


def test_data_synth_writes_the_set_of_its_seed_and_image_size_and_says_how_many(tmp_path, capsys):
    """The set --seed and --image-size ask for, the same files the generator writes for that spec, and the
    counts said the right way round."""
    import cv2

    from dpupose.data.synthetic import SynthSpec, generate

    out = tmp_path / "s"
    argv = ["data", "synth", "--out", str(out), "--num-train", "2", "--num-valid", "1", "--seed", "3"]
    assert main([*argv, "--image-size", "64", "--workers", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 2 training and 1 validation images to {out}"
    meta = json.loads((out / "synthetic.json").read_text())
    assert (meta["seed"], meta["num_train"], meta["num_valid"], meta["image_size"]) == (3, 2, 1, 64)
    reference = generate(tmp_path / "ref", SynthSpec(seed=3, num_train=2, num_valid=1, image_size=64), workers=1)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(p.name for p in (reference / "images").iterdir()) and len(names) == 3
    for name in names:
        assert cv2.imread(str(out / "images" / name)).shape == (64, 64, 3)
        assert (out / "images" / name).read_bytes() == (reference / "images" / name).read_bytes()
    for split in ("train", "valid"):
        assert (out / "annot" / f"{split}.json").read_text() == (reference / "annot" / f"{split}.json").read_text()
    other = generate(tmp_path / "seed0", SynthSpec(seed=0, num_train=0, num_valid=1, image_size=64), workers=1)
    assert (other / "images" / "valid_000000.jpg").read_bytes() != (out / "images" / "valid_000000.jpg").read_bytes()


def test_data_check_says_what_a_split_without_records_is_needed_for_and_fails_an_unreadable_one(
    synth_root, tmp_path, capsys
):
    for kept, lacking, command in (("valid", "train", "train"), ("train", "valid", "eval")):
        root = tmp_path / f"{kept}-only"
        (root / "annot").mkdir(parents=True)
        shutil.copytree(synth_root / "images", root / "images")
        shutil.copy(synth_root / "annot" / f"{kept}.json", root / "annot")
        assert main(["data", "check", "--data-root", str(root)]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{lacking}:")]
        assert line.startswith(f"{lacking}: no records ({root} has neither annot/{lacking}.json")
        assert line.endswith(f"; `dpupose {command}` needs them")
    # A split whose annotations cannot be read is a problem (exit 1), said on its line; the other split is checked.
    (tmp_path / "valid-only" / "annot" / "train.json").write_text("[{not json")
    assert main(["data", "check", "--data-root", str(tmp_path / "valid-only")]) == 1
    lines = capsys.readouterr().out.splitlines()
    train_line = next(x for x in lines if x.startswith("train: "))
    assert "annot/train.json" in train_line and "no records" not in train_line
    assert any(x.startswith("valid: 12 records") for x in lines)


def test_data_check_counts_a_folder_at_an_image_s_name_as_missing_and_names_the_image_to_write(
    synth_root, tmp_path, capsys
):
    """As train and eval's image check (check_images) counts them, and with its hint for a name written from the
    root (images/a.jpg)."""
    from dpupose.data.dataset import check_images
    from dpupose.data.mpii import load_split
    from dpupose.errors import DataError

    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    records = json.loads((root / "annot" / "valid.json").read_text())
    first = records[0]["image"]
    records[0]["image"] = f"images/{first}"
    (root / "images" / records[1]["image"]).unlink()
    (root / "images" / records[1]["image"]).mkdir()
    (root / "annot" / "valid.json").write_text(json.dumps(records))
    assert main(["data", "check", "--data-root", str(root)]) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("valid:")]
    hint = (
        f"; {root / 'images' / first} is there: image names are read inside images/, so drop the folders before "
        f"the file name from the records' 'image' (images/{first} -> {first})"
    )
    assert f"; 2 missing (first: images/{first}), 0 undecodable, 0 outside images/" in line and line.endswith(hint)
    with pytest.raises(DataError, match=r"^2 of 12 annotated images are missing") as exc:
        check_images(load_split(root, "valid"), root / "images")
    assert str(exc.value).endswith(hint)


@pytest.mark.parametrize(
    "command",
    [
        ["quantize", "--out", "q"],
        ["eval", "--data", "synthetic"],
        ["export", "--out", "m.pt"],
        ["train", "--data", "synthetic", "--out", "t", "--epochs", "1", "--init"],
    ],
)
def test_a_missing_checkpoint_is_named_by_its_option_with_what_to_give(tmp_path, monkeypatch, capsys, command):
    # It was 'checkpoint nope.pt not found': no option named (train takes two checkpoints, --init and --resume's)
    # and nothing said of what a checkpoint is or where one comes from.
    monkeypatch.chdir(tmp_path)
    option = "--init" if command[-1] == "--init" else "--checkpoint"
    argv = [*command, "nope.pt"] if option == "--init" else [*command, "--checkpoint", "nope.pt"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {option} nope.pt not found: give a checkpoint written by `dpupose train` or "
        "`dpupose export` (e.g. runs/NAME/best.pt)\n"
    )
    assert os.listdir(tmp_path) == []  # nor the --out it would have made


def test_a_missing_overlay_or_model_folder_is_named_by_its_option_with_what_to_give(tmp_path, monkeypatch, capsys):
    # They were 'overlay folder ov does not exist', 'model folder m does not exist' (no way forward) and 'model
    # folder m is empty: compile the model first', though the board runs a split plan, compiled or not.
    monkeypatch.chdir(tmp_path)
    overlay = tmp_path / "ov"
    overlay.mkdir()
    for name in ("dpu.bit", "dpu.hwh", "dpu.xclbin"):
        (overlay / name).touch()
    (tmp_path / "empty").mkdir()
    split = "give the split plan folder `dpupose split MODEL --out DIR` wrote"
    cases = {
        (
            "nope",
            "m",
        ): "--overlay nope does not exist: give the folder `make hw DPU=<config>` writes (build/hw/<config>)",
        ("ov", "m"): f"--model m does not exist: {split}",
        ("ov", "empty"): f"--model empty is empty: {split}",
    }
    for (ov, model), said in cases.items():
        assert main(["deploy", "--host", "pynq", "--overlay", ov, "--model", model]) == 2
        assert capsys.readouterr().err == f"dpupose: error: {said}\n"
    # The image, which stage reads first: said what to give too (it was 'image pynq.img does not exist').
    assert main(["sdcard", "stage", "pynq.img", "--out", "out.img", "--overlay", "ov", "--model", "m"]) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: image pynq.img does not exist: give the PYNQ image for the Ultra96-V2 "
        "(.img, .img.xz or .zip)\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["empty", "ov"]


def test_a_file_that_is_no_onnx_is_said_so_in_words_not_by_protobufs_exception(tmp_path, monkeypatch, capsys):
    # It was 'junk.onnx: not an ONNX model (DecodeError)', the name of an exception type the user never met.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.onnx").write_bytes(bytes(range(256)) * 2)
    not_parsed = "junk.onnx: not an ONNX model (it does not parse as one: damaged, or another kind of file)"
    assert main(["split", "junk.onnx", "--out", "s"]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {not_parsed}; give the model_qdq.onnx written by `dpupose quantize`\n"
    )
    assert main(["dpu", "estimate", "junk.onnx", "--config", "u96v2-b1600-pynq"]) == 2
    assert capsys.readouterr().err == f"dpupose: error: {not_parsed}; give an ONNX file\n"
    assert main(["dpu", "estimate", "nope.onnx", "--config", "u96v2-b1600-pynq"]) == 2
    assert capsys.readouterr().err == "dpupose: error: nope.onnx: no such file; give an ONNX file\n"
    assert os.listdir(tmp_path) == ["junk.onnx"]


def test_a_configuration_file_that_is_not_there_is_answered_with_what_config_takes(tmp_path, monkeypatch, capsys):
    # It was 'none.toml: no such file', though --config takes a shipped configuration's name as well.
    from dpupose.dpu.config import list_configs

    monkeypatch.chdir(tmp_path)
    assert main(["dpu", "fit", "--config", "none.toml"]) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: none.toml: no such file; give the path of a configuration .toml, or a shipped "
        f"configuration's name: {', '.join(list_configs())}\n"
    )
    # A link to nothing (or back to itself) was 'dangling.toml: no such file', with no way forward.
    (tmp_path / "dangling.toml").symlink_to("gone.toml")
    (tmp_path / "loop.toml").symlink_to("loop.toml")
    for name, target in (("dangling.toml", "gone.toml"), ("loop.toml", "loop.toml")):
        assert main(["dpu", "fit", "--config", name]) == 2
        assert capsys.readouterr().err == (
            f"dpupose: error: {name}: a symbolic link that leads nowhere (to {target}); give the path of a "
            f"configuration .toml, or a shipped configuration's name: {', '.join(list_configs())}\n"
        )


def test_a_symlink_loop_given_as_a_path_is_one_line(tmp_path, capsys):
    # Path.resolve() raises RuntimeError('Symlink loop from ...') for it before Python 3.13 (an OSError after).
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    out = tmp_path / "slim.pt"
    assert main(["export", "--checkpoint", str(loop), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"dpupose: error: {loop}: too many levels of symbolic links (a link on that path leads back to itself): "
        "fix or remove that link\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


def test_verbose_keeps_the_traceback_of_a_symlink_loop(tmp_path):
    """--verbose shows where the loop was met (pathlib's RuntimeError before Python 3.13, an OSError after), as it
    does for any other file system refusal, instead of the one line."""
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises((RuntimeError, OSError), match="[Ss]ymlink loop|Too many levels of symbolic links"):
        main(["--verbose", "export", "--checkpoint", str(loop), "--out", str(tmp_path / "slim.pt")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


@pytest.mark.parametrize("line", [c[0] for c in OUTPUT_CASES if c[0].split()[-1] in ("{file}", "{folder}", "--force")])
def test_an_output_path_through_a_symlink_loop_is_refused_before_the_work(tmp_path, capsys, line):
    """exists() is False for such a link: quantize did its half minute of work, then the rename into place failed
    naming its own temporary; export stopped with a RuntimeError's traceback (pathlib's 'Symlink loop')."""
    (tmp_path / "loop").symlink_to("loop")
    for path in (tmp_path / "loop", tmp_path / "loop" / "inside"):
        argv = [str(path) if word in ("{file}", "{folder}") else word for word in line.split()]
        option = argv[argv.index(str(path)) - 1]
        err = refused(argv, capsys)
        assert f"argument {option}: {path}: too many levels of symbolic links (a link on that path leads back" in err
    assert os.listdir(tmp_path) == ["loop"]


@pytest.mark.parametrize("line", [c[0] for c in OUTPUT_CASES if c[0].split()[-1] in ("{file}", "{folder}", "--force")])
def test_an_empty_output_path_is_refused_not_taken_for_the_current_folder(tmp_path, capsys, monkeypatch, line):
    """Path('') is '.': `--out "$OUT"` with OUT unset wrote the outputs into the current folder."""
    monkeypatch.chdir(tmp_path)
    argv = ["" if word in ("{file}", "{folder}") else word for word in line.split()]
    option = argv[argv.index("") - 1]
    err = refused(argv, capsys)
    what = "a file name" if "give a file name" in dict((c[0], c[2]) for c in OUTPUT_CASES)[line] else "a folder"
    tail = ", or . for the current folder" if what == "a folder" else ""  # '.' is no file name
    empty = "the path is empty (a shell variable that is not set gives one)"
    assert f"argument {option}: {empty}; give {what}{tail} (see" in err
    assert os.listdir(tmp_path) == []


# Input options given "" ({}), as `--config "$CONFIG"` with CONFIG unset gives: each line is complete otherwise.
EMPTY_INPUT_CASES = [
    "data check --data-root {}",
    "eval --checkpoint c.pt --data synthetic --data-root {}",
    "train --data synthetic --epochs 1 --out o --data-root {}",
    "quantize --checkpoint c.pt --out o --data-root {}",
    "quantize --checkpoint c.pt --out o --target {}",
    "deploy-check m.onnx --data-root {}",
    "bench --data-root {}",
    "bench --config {}",
    "split m.onnx --out o --config {}",
    "dpu fingerprint --config {}",
    "dpu fit --config {}",
    "dpu fit --config u96v2-b1152 --board {}",
    "dpu files --config u96v2-b1152 --out o --board {}",
    "dpu estimate m.onnx --config {}",
    "dpu estimate m.onnx --config u96v2-b1152 --board {}",
    "dpu compare --model m.onnx --board {}",
    "hw check --config {}",
    "hw commands --config u96v2-b1152 --board {}",
    "hw build --config u96v2-b1152 --trd {}",
    "hw status --config u96v2-b1152 --board-repo {}",
    "sdcard flash p.img --device card.img --bmap {}",
    "sdcard stage p.img --overlay o --model m --out n.img --wheel {}",
    "sdcard stage p.img --overlay {} --model m --out n.img",
    "sdcard stage p.img --overlay o --model {} --out n.img",
    "deploy --host pynq --overlay o --model m --wheel {}",
    "deploy --host pynq --overlay {} --model m",
    "run --plan p --source s --overlay {}",
    "sdcard flash p.img --device {}",
    "sdcard verify p.img --device {}",
    "deploy --host {} --overlay o --model m",
    "deploy --host pynq --user {} --overlay o --model m",
    "split m.onnx --out o --cpu-from {}",
    "split m.onnx --out o --xmodel {}",
    "dpu estimate m.onnx --arch {}",
    "deploy-check m.onnx --against {}",
    "bench --quantized {}",
    "eval --checkpoint c.pt --data synthetic --engine int8-ort --quantized {}",
]


@pytest.mark.parametrize("line", EMPTY_INPUT_CASES)
def test_an_empty_input_value_is_refused_naming_the_option(tmp_path, capsys, monkeypatch, line):
    """'' was taken as the option not given (the configuration's board, the wheel built from the source, the
    block map beside the image, no --target) or as the current folder (Path('') is '.': `data check` checked
    it and exited 0)."""
    monkeypatch.chdir(tmp_path)
    argv = ["" if word == "{}" else word for word in line.split()]
    option = argv[argv.index("") - 1]
    err = refused(argv, capsys)
    assert f"error: argument {option}: the value is empty (a shell variable that is not set gives one); give " in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("eval --checkpoint {} --data synthetic", "--checkpoint"),
        ("export --checkpoint {} --out m.pt", "--checkpoint"),
        ("quantize --checkpoint {} --out q", "--checkpoint"),
        ("bench --checkpoint {}", "--checkpoint"),
        ("bench --plan {}", "--plan"),
        ("train --data synthetic --epochs 1 --out t --init {}", "--init"),
        ("run --plan {} --source s --out o", "--plan/--model"),
        ("run --model {} --source s --out o", "--plan/--model"),
        ("split {} --out s", "model"),
        ("deploy-check {}", "model"),
        ("dpu estimate {}", "MODEL.onnx"),
        ("dpu compare --model {}", "--model"),
        ("sdcard flash {} --device card.img", "image"),
        ("sdcard verify {} --device card.img", "image"),
        ("sdcard stage {} --overlay o --model m --out n.img", "image"),
        ("sdcard ls {}", "image"),
    ],
)
def test_an_empty_model_checkpoint_or_plan_is_refused_naming_it(tmp_path, capsys, monkeypatch, line, name):
    """'' as the checkpoint, the plan or the model (`--checkpoint "$CKPT"` with CKPT unset) was taken as the
    current folder: '--checkpoint . is a folder', 'no split plan at plan.json', '.: is a folder', naming a
    folder the user never gave."""
    monkeypatch.chdir(tmp_path)
    argv = ["" if word == "{}" else word for word in line.split()]
    err = refused(argv, capsys)
    assert f"error: argument {name}: the value is empty (a shell variable that is not set gives one); give " in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("eval --checkpoint {} --data synthetic", "a checkpoint (.pt)"),
        ("dpu fit --config {}", "a shipped configuration name or a .toml path"),
        ("dpu compare --model m.onnx --board {}", "a board record name (`dpupose dpu list` names them)"),
        ("sdcard flash p.img --device card.img --bmap {}", "a block map file (.bmap), or --no-bmaptool"),
        ("deploy --host pynq --overlay o --model m --wheel {}", "a dpupose wheel (.whl)"),
        ("hw build --config u96v2-b1152 --trd {}", "the DPU TRD archive or its folder"),
        # config_name and board_name in each command that takes them, and the inputs aaab4ef checked
        ("hw check --config {}", "a shipped configuration name or a .toml path"),
        ("split m.onnx --out o --config {}", "a shipped configuration name or a .toml path"),
        ("bench --config {}", "a shipped configuration name or a .toml path"),
        ("dpu estimate m.onnx --config {}", "a shipped configuration name or a .toml path"),
        ("hw commands --config u96v2-b1152 --board {}", "a board record name (`dpupose dpu list` names them)"),
        ("dpu files --config u96v2-b1152 --out o --board {}", "a board record name (`dpupose dpu list` names them)"),
        ("split m.onnx --out o --cpu-from {}", "a node name (`dpupose split --nodes` lists them)"),
        ("split m.onnx --out o --xmodel {}", "the compiled .xmodel"),
        ("sdcard flash p.img --device {}", "the card (/dev/sdX, /dev/mmcblkN) or an image file"),
        ("sdcard verify p.img --device {}", "the card (/dev/sdX, /dev/mmcblkN) or an image file"),
        ("sdcard flash {} --device card.img", "the PYNQ image (.img, .img.xz or .zip)"),
        ("deploy --host {} --overlay o --model m", "the board's host name or address"),
        ("deploy --host pynq --user {} --overlay o --model m", "the login on the board (xilinx)"),
        ("dpu estimate m.onnx --arch {}", "an ARCH, B512 ... B4096"),
        ("deploy-check m.onnx --against {}", "torch, ort or a folder of dumped tensors"),
        ("bench --quantized {}", "a folder written by `dpupose quantize`"),
    ],
)
def test_an_empty_input_value_says_what_to_give_for_that_option(tmp_path, capsys, monkeypatch, line, what):
    """The refusal ends with what the option takes, which differs by option (the tests above pin the common
    part only)."""
    monkeypatch.chdir(tmp_path)
    argv = ["" if word == "{}" else word for word in line.split()]
    err = refused(argv, capsys)
    assert f"the value is empty (a shell variable that is not set gives one); give {what} (see `dpupose " in err


@pytest.mark.parametrize("line", ["dpu fit", "dpu fit --board ultra96v2", "dpu files --out o"])
def test_dpu_fit_and_files_require_config(tmp_path, capsys, monkeypatch, line):
    """--config has no default in fit and files (one helper declares it for both)."""
    monkeypatch.chdir(tmp_path)
    assert "the following arguments are required: --config" in refused(line.split(), capsys)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("line", "written"),
    [
        ("dpu files --config u96v2-b1152 --out {}", ["arch.json", "dpu_conf.vh", "prj_config"]),
        ("data synth --num-train 1 --num-valid 1 --out {}", ["annot", "images", "synthetic.json"]),
    ],
)
def test_an_output_folder_given_as_a_link_that_leads_nowhere_yet_is_made_where_it_leads(
    tmp_path, capsys, line, written
):
    """architecture.md: an output given as a link stays one, and what it leads to is written. `dpu files`
    refused such a link with 'cannot use LINK: File exists', where `data synth`, split and quantize wrote through
    it; the folder is made where the link leads (folders above it too), as by every command."""
    link = tmp_path / "out"
    link.symlink_to(os.path.join("elsewhere", "out"))
    argv = [str(link) if word == "{}" else word for word in line.split()]
    assert main(argv) == 0, capsys.readouterr().err
    assert os.readlink(link) == os.path.join("elsewhere", "out")
    assert sorted(os.listdir(tmp_path / "elsewhere" / "out")) == written
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "out"]


@pytest.mark.parametrize(
    ("err", "forward"),
    [
        ("EPERM", "give a path this user may reach, or ask for access to the folders above it"),
        ("EIO", "give another path"),
    ],
)
def test_an_output_look_up_refused_otherwise_is_told_what_fits_its_errno(tmp_path, capsys, monkeypatch, err, forward):
    """_refused's way forward by errno: EPERM is a refusal for permission as EACCES is (a security module's, a
    FUSE mount's), told to reach another path or ask for access; any other errno (a disk's I/O error) is told
    to give another path, not a shorter one, which fits only ENAMETOOLONG."""
    import errno

    code = getattr(errno, err)
    out = tmp_path / "odd" / "run"
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "odd")):
            raise OSError(code, os.strerror(code), str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    err_text = refused(["data", "synth", "--out", str(out)], capsys)
    assert f"argument --out: cannot use {out}: {os.strerror(code)}; {forward} (see `dpupose data synth --help`)" in (
        err_text
    )
    assert "shorter" not in err_text
    assert list(tmp_path.iterdir()) == []
