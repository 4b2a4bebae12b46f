"""Argument types for numeric options that have a valid range, for output paths, and for input values.

Used as `type=` in `add_argument`, so a value out of range, an output file that is a folder (or the other way
round), or an empty value of an input option (`given`, `given_path`: `--config "$CONFIG"` with CONFIG unset)
is refused while the command line is read, with the option's name, before anything is loaded or written.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
from collections.abc import Callable
from pathlib import Path

from dpupose.fsio import not_a_folder, special_kind, what_is_at


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


# The largest count any integer option takes: libraries get counts, seeds and sizes as C ints (a larger
# one ended in an overflow traceback from torch, ONNX Runtime or multiprocessing).
INT_MAX = 2**31 - 1
MAX_THREADS = 1024  # threads or processes: more would only exhaust the machine


def _ranged(kind: type, ok: Callable[[float], bool], wanted: str, high: float | None = None) -> Callable[[str], float]:
    """A parser of `kind` values for which `ok` holds; otherwise "must be <wanted>, got <text>" (or "must be
    at most <high>" above `high`)."""

    def parse(text: str):
        value = _number(text, kind)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(
                f"must be at most {high if kind is int else format(high, 'g')}, got {text}"
            )
        return value

    parse.__name__ = "integer" if kind is int else "number"  # argparse names the type in its messages
    return parse


def int_at_least(low: int, high: int = INT_MAX) -> Callable[[str], int]:
    return _ranged(int, lambda v: v >= low, f"at least {low}", high)


def float_at_least(low: float, high: float | None = None) -> Callable[[str], float]:
    return _ranged(float, lambda v: v >= low, f"at least {low:g}", high)


def float_above(low: float, high: float | None = None) -> Callable[[str], float]:
    return _ranged(float, lambda v: v > low, f"greater than {low:g}", high)


def float_in(low: float, high: float) -> Callable[[str], float]:
    return _ranged(float, lambda v: low <= v <= high, f"between {low:g} and {high:g}")


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)
thread_count = int_at_least(1, MAX_THREADS)
positive_float = float_above(0.0)
nonnegative_float = float_at_least(0.0)


def device_spec(text: str) -> str:
    """--device: auto, cpu, cuda or cuda:N (whether the machine has that GPU is checked when it is used)."""
    index = text[5:] if text.startswith("cuda:") else None
    if text in ("auto", "cpu", "cuda") or (index is not None and index.isascii() and index.isdigit()):
        return text if index is None else f"cuda:{int(index)}"
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N (N = 0, 1, ...), got {text!r}")


def _check_parents(path: Path) -> None:
    for parent in path.parents:  # nearest first; missing folders are made when the output is written
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is {what_is_at(parent)}, so {path} cannot be made")
            return


def _refused(text: str, exc: OSError) -> argparse.ArgumentTypeError:
    """A path the file system will not even look up (a name too long, a folder above it this user may not
    search): argparse passes on only its own error, so an OSError here was a traceback. The way forward fits
    the reason: 'shorter' only where the name is too long."""
    if exc.errno == errno.ENAMETOOLONG:
        forward = "give a shorter path"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        forward = "give a path this user may reach, or ask for access to the folders above it"
    else:
        forward = "give another path"
    return argparse.ArgumentTypeError(f"cannot use {text}: {exc.strerror or exc}; {forward}")


def _not_empty(text: str, what: str) -> None:
    """An empty path names nothing (mkdir, open: 'No such file or directory'), but Path('') is '.': an output
    given as "$OUT" with OUT unset was written into the current folder."""
    if not text:
        raise argparse.ArgumentTypeError(
            f"the path is empty (a shell variable that is not set gives one); give {what}, or . for the current folder"
            if what == "a folder"
            else f"the path is empty (a shell variable that is not set gives one); give {what}"
        )


def given(what: str) -> Callable[[str], str]:
    """An input option's value, which must not be empty: `--config "$CONFIG"` with CONFIG unset gave '', which
    the command took as the option not given (its default configuration, board, wheel or block map) or, as a path,
    as the current folder (Path('') is '.'), some of them with exit status 0. `what` says what to give."""

    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(
                f"the value is empty (a shell variable that is not set gives one); give {what}"
            )
        return text

    parse.__name__ = "value"
    return parse


# The --config and --board of dpu, hw, split and bench: one wording of what to give for each.
config_name = given("a shipped configuration name or a .toml path")
board_name = given("a board record name (`dpupose dpu list` names them)")


def given_path(what: str) -> Callable[[str], Path]:
    """given(), as a Path."""
    check = given(what)

    def parse(text: str) -> Path:
        return Path(check(text))

    parse.__name__ = "path"
    return parse


def _not_a_loop(path: Path) -> None:
    """A link that leads back to itself (or a chain of too many) is no output: exists() says False of it, and the
    command did its work (quantize: half a minute) before the last rename into place failed, naming its own
    temporary."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise argparse.ArgumentTypeError(
                f"{path}: too many levels of symbolic links (a link on that path leads back to itself): fix or "
                "remove that link"
            ) from None


def output_file(text: str) -> Path:
    """A file to write: not an existing folder or other non-regular file (a device, a FIFO: the output
    would be renamed into its place, `/dev/null` as root replaced by a file), and not under a file; not ''."""
    _not_empty(text, "a file name")
    if text.endswith(("/", os.sep)):  # Path() drops the separator: the output was written as a file of that name
        raise argparse.ArgumentTypeError(f"{text} ends in '{text[-1]}', as a folder does; give a file name")
    path = Path(text)
    try:
        _not_a_loop(path)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
        if path.exists() and not path.is_file():
            raise argparse.ArgumentTypeError(
                f"{text} is {special_kind(path)}, not a file, and the output would take its place; give a file name"
            )
        _check_parents(path)
    except OSError as exc:
        raise _refused(text, exc) from None
    return path


def output_dir(text: str) -> Path:
    """A folder to write into: not an existing file, and not under a file; not ''."""
    _not_empty(text, "a folder")
    path = Path(text)
    try:
        _not_a_loop(path)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is {what_is_at(path)}, not a folder; give a folder")
        _check_parents(path)
    except OSError as exc:
        raise _refused(text, exc) from None
    return path


_quantize_folder_given = given("a folder written by `dpupose quantize`")


def quantize_folder(text: str) -> Path:
    """A `dpupose quantize` folder to read (--quantized): what a newcomer gives in its place is named with the
    folder to give, where the reader would look inside it for dpu_part_qdq.onnx ('model_qdq.onnx/dpu_part_qdq.onnx
    not found') or model_fp32.onnx: one of its files, a split plan's folder, a path that is not there or is no
    folder (a FIFO, a link that leads nowhere: fsio.not_a_folder); not ''
    (taken for the current folder: '. holds no model_qdq.onnx')."""
    path = Path(_quantize_folder_given(text))
    try:
        if path.is_file():
            raise argparse.ArgumentTypeError(
                f"{text} is a file; give the `dpupose quantize` folder (here the one holding it, {path.parent})"
                if (path.parent / "summary.json").is_file()
                else f"{text} is a file; give a folder written by `dpupose quantize`"
            )
        if (path / "plan.json").is_file():
            raise argparse.ArgumentTypeError(
                f"{text} is a split plan folder, not a `dpupose quantize` folder: give the folder `dpupose quantize` "
                "wrote (the plan's model_qdq.onnx came from it)"
            )
        ckpt = next((path / f for f in ("best.pt", "model.pt", "last.pt") if (path / f).is_file()), None)
        if ckpt is not None and not (path / "summary.json").exists():
            # a training run's folder (or a model card's): 'runs/x/dpu_part_qdq.onnx not found' named no next step
            raise argparse.ArgumentTypeError(
                f"{text} holds a checkpoint, not a `dpupose quantize` folder: quantize it first, `dpupose quantize "
                f"--checkpoint {ckpt} --out DIR`, and give DIR, or give --checkpoint {ckpt} without --quantized"
            )
        if not path.is_dir():
            # A FIFO or device was 'cannot read its summary.json (Not a directory)' once the run had set up, a link
            # that leads nowhere 'does not exist': each is named, as a data root's is.
            why = not_a_folder(path)
            raise argparse.ArgumentTypeError(f"{text} {why}; give a folder written by `dpupose quantize`")
    except OSError as exc:
        raise _refused(text, exc) from None
    return path


def payload_options(p: argparse.ArgumentParser) -> None:
    """--overlay and --model: what `dpupose sdcard stage` and `dpupose deploy` put onto the board."""
    p.add_argument(
        "--overlay",
        type=given("the overlay folder"),
        required=True,
        help="overlay folder with dpu.bit, dpu.hwh, dpu.xclbin [arch.json] (`make hw` writes build/hw/<config>)",
    )
    p.add_argument(
        "--model",
        type=given("the split plan folder"),
        required=True,
        help="split plan folder (`dpupose split --out`), with the compiled .xmodel for vart if there is one",
    )
