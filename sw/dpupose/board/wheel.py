"""This package as a wheel for the board, and the board setup script that installs it.

The wheel is built with `pip wheel --no-deps` (with the installed setuptools when it can build
pyproject.toml, MIN_SETUPTOOLS or later, so no network is needed; else pip fetches one) from a clean
copy of the repository's pyproject.toml, README.md, LICENSE and sw/dpupose/: built in place, setuptools
would reuse build/lib (a module deleted from the source would ship) and leave build/ and egg-info behind
in the checkout. Its base requirements are what the board installs (numpy, onnxruntime, ...); torch and
the other host tools may only appear behind the `host` extra.
"""

from __future__ import annotations

import email.message
import email.parser
import importlib.metadata
import importlib.resources
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import dpupose
from dpupose.board.tools import run_tool
from dpupose.errors import ArtifactError, ToolFailed, UsageError
from dpupose.fsio import not_a_file

HOST_ONLY = ("torch", "torchvision")  # never on the board (PYNQ 3.0.1, aarch64, Python 3.10)
# pyproject.toml's [build-system] requires: its SPDX `license = "..."` string fails validation before 77.
MIN_SETUPTOOLS = 77
# A dpupose wheel's file name (PEP 427: name-version[-build]-python-abi-platform.whl); pip refuses others.
WHEEL_NAME = re.compile(r"dpupose-[A-Za-z0-9_.+!]+(-[0-9][A-Za-z0-9_.]*)?(-[A-Za-z0-9_.]+){3}\.whl")


def project_root() -> Path | None:
    """The source tree this package runs from (an editable install), or None."""
    here = Path(dpupose.__file__).resolve().parent
    for candidate in here.parents:
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and re.search(r'(?m)^name\s*=\s*"dpupose"', pyproject.read_text()):
            return candidate
    return None


def wheel_argv(root: Path, outdir: Path, *, isolation: bool, python: str = sys.executable) -> list[str]:
    argv = [python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(outdir)]
    if not isolation:
        argv.append("--no-build-isolation")
    return [*argv, str(root)]


def wheel_name(version: str = dpupose.__version__) -> str:
    return f"dpupose-{version}-py3-none-any.whl"


def build_wheel(outdir: Path, root: Path | None = None) -> Path:
    """Build the dpupose wheel into outdir and check its requirements; returns the wheel's path."""
    root = root or project_root()
    if root is None:
        raise UsageError("cannot build the dpupose wheel: this installation has no source tree; pass --wheel FILE")
    isolation = not _setuptools_can_build()
    with tempfile.TemporaryDirectory(prefix="dpupose-wheel-") as scratch:
        src = _clean_copy(root, Path(scratch) / "src")
        try:
            run_tool(wheel_argv(src, outdir, isolation=isolation))
        except ToolFailed as exc:
            raise ArtifactError(f"building the dpupose wheel failed: {exc}") from None
    wheels = sorted(outdir.glob("dpupose-*.whl"))
    if len(wheels) != 1:
        raise ArtifactError(f"pip wheel made {len(wheels)} dpupose wheels in {outdir}, expected one")
    check_wheel(wheels[0])
    return wheels[0]


def _setuptools_can_build() -> bool:
    """Whether the installed setuptools can build pyproject.toml without pip's build isolation: an older
    one (Debian 12 and Ubuntu 24.04 ship 66 and 68, a Python 3.11 venv gets 65) stops with "`project.license`
    must be valid exactly by one definition", and --no-build-isolation does not check the requirement."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major = re.match(r"\d+", version)
    return major is not None and int(major.group()) >= MIN_SETUPTOOLS


def _clean_copy(root: Path, dst: Path) -> Path:
    """What the wheel is built from: pyproject.toml, README.md, LICENSE and the package, without caches."""
    dst.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(root / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    try:
        shutil.copytree(root / "sw" / "dpupose", dst / "sw" / "dpupose", ignore=ignore, copy_function=_copy_or_stop)
    except _CopyFailed as failed:
        raise failed.error from None
    except shutil.Error as exc:  # not a file's copy (a folder's): the first of its list, on one line
        src, target, why = exc.args[0][0]
        raise ArtifactError(f"cannot copy {src} to {target} to build the wheel: {why}") from None
    return dst


class _CopyFailed(Exception):
    """A file's copy failed: not an OSError, so that copytree stops at once instead of collecting it."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _copy_or_stop(src: str, dst: str) -> object:
    """shutil.copy2 for copytree, stopping it at the first file that cannot be copied (a full TMPDIR): copytree
    goes on through every other file and then raises shutil.Error with the list of them all (one message of
    hundreds of kilobytes, each error as text, the full disk no longer an errno)."""
    try:
        return shutil.copy2(src, dst)
    except OSError as exc:
        raise _CopyFailed(exc) from None


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    return _metadata(wheel).get_all("Requires-Dist") or []


def _metadata(wheel: Path) -> email.message.Message:
    """A wheel's METADATA, parsed; ArtifactError where there is none that can be read."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
            if not names:
                raise ArtifactError(f"{wheel} is not a wheel (it has no .dist-info/METADATA)")
            meta = email.parser.Parser().parsestr(zf.read(names[0]).decode())
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:  # not a zip, or a damaged one
        raise ArtifactError(f"{wheel} is not a wheel ({exc})") from None
    except NotImplementedError as exc:  # a compression method zipfile does not read (a damaged header's)
        raise ArtifactError(f"{wheel} is not a wheel ({exc}: its METADATA cannot be read)") from None
    except RuntimeError as exc:  # an encrypted METADATA ("password required"), which pip does not read either
        raise ArtifactError(f"{wheel} is not a wheel ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{wheel} is not a wheel (its METADATA is not UTF-8: {exc})") from None
    return meta


def _canonical(name: str) -> str:
    """A project name as pip compares them (PEP 503: case, and runs of -, _ and . alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~\[(;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


# PEP 508: a requirement starts with the project's name, then (after blanks) extras, a version, a URL, a marker
# or nothing.
_REQ_NAME = re.compile(r"\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:$|[\[(<>=!~;@])")


def requirement_error(req: str) -> str | None:
    """Why pip would not read `req`, a Requires-Dist line, as a requirement (None if it would). pip parses each
    with packaging's Requirement and refuses the wheel's install when one does not parse, so that is the check
    where packaging is installed (it is imported here only, as the board's Python runs this module too); else
    the name part is checked, which catches a line that is no requirement at all."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return (
            None
            if _REQ_NAME.match(req)
            else "it is not a project name followed by extras, a version, a URL, a marker or nothing"
        )
    try:
        Requirement(req)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    return None


# PEP 440's version syntax (its appendix's pattern, as packaging reads it), for where packaging is not installed.
_PEP440 = re.compile(
    r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "pre": "rc", "preview": "rc", "rc": "rc"}


def version_key(text: str) -> object | None:
    """What pip compares a version by (PEP 440: 1.0 is 1.0.0, 1.0RC1 is 1.0rc1, 1.0-1 is 1.0.post1), None for
    text that is no version. packaging's Version where it is installed, as pip's own; else the same reading
    of PEP 440's syntax here (the board's Python may lack packaging; dpupose does not require it)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        pass
    else:
        try:
            return Version(text)
        except InvalidVersion:
            return None
    m = _PEP440.fullmatch(text.strip())
    if m is None:
        return None
    release = tuple(int(part) for part in m["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = (_PRE[m["pre_l"].lower()], int(m["pre_n"] or 0)) if m["pre_l"] else None
    post = m["post_n1"] or m["post_n2"] or ("0" if m["post_l"] else None)
    local = m["local"] and tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"[-_.]", m["local"]))
    dev = int(m["dev_n"] or 0) if m["dev_l"] else None
    return (int(m["epoch"] or 0), release, pre, None if post is None else int(post), dev, local or None)


def wheel_file(wheel: Path) -> Path:
    """The wheel to check and copy for `--wheel WHEEL`: WHEEL, or, where WHEEL is a symbolic link under another
    name (`ln -s dpupose-0.1.0-py3-none-any.whl latest.whl`), the file it leads to, whose name pip reads and the
    board gets. A link whose own name is a wheel's, or whose file's is not, is taken as it is (check_wheel
    names it)."""
    if WHEEL_NAME.fullmatch(wheel.name) or not wheel.is_symlink():
        return wheel
    real = Path(os.path.realpath(wheel))
    return real if WHEEL_NAME.fullmatch(real.name) else wheel


def check_wheel(wheel: Path) -> None:
    """ArtifactError unless the wheel is dpupose's and its base requirements (what a plain install pulls
    in on the board) include nothing host-only: torch, nor anything the project lists under its `host`
    or `dev` extras."""
    if not wheel.is_file():
        what = not_a_file(wheel, "does not exist")
        raise ArtifactError(f"wheel {wheel} {what} (leave --wheel out to build one from this checkout)")
    if not WHEEL_NAME.fullmatch(wheel.name):
        # pip takes no other name; and the name goes into the board's shell command lines
        raise ArtifactError(
            f"{wheel.name!r} is not a dpupose wheel's name (dpupose-VERSION-py3-none-any.whl, as pip wheel names "
            "it): give the wheel under its own name, or a symbolic link to it"
        )
    # pip refuses a wheel whose METADATA names another project or version than its file name ("Wheel has
    # unexpected file name"): the board's first-boot install would fail, after the card was written.
    meta = _metadata(wheel)
    name, version = meta.get("Name"), meta.get("Version")
    file_version = wheel.name.split("-")[1]
    if name is None or _canonical(name.strip()) != "dpupose":
        raise ArtifactError(
            f"{wheel} is not dpupose's wheel: its METADATA names {'no project' if name is None else repr(name)} "
            "(pip would refuse it on the board): give a wheel built from dpupose, or leave --wheel out"
        )
    if version is None:
        raise ArtifactError(
            f"{wheel} is not a wheel pip installs: its METADATA gives version none where its file name gives "
            f"{file_version!r}: give the wheel pip wheel wrote, or leave --wheel out"
        )
    for where, text in (("file name", file_version), ("METADATA", version.strip())):
        if version_key(text) is None:
            raise ArtifactError(
                f"{wheel} is not a wheel pip installs: its {where} gives version {text!r}, which is no version "
                "pip reads (PEP 440, such as 1.0, 1.0.post1, 2.0rc1): give the wheel pip wheel wrote, or leave "
                "--wheel out"
            )
    if version_key(version.strip()) != version_key(file_version):  # 1.0 and 1.0.0 are one version to pip
        raise ArtifactError(
            f"{wheel} is not a wheel pip installs: its METADATA gives version {version!r} where its file name "
            f"gives {file_version!r}: give the wheel pip wheel wrote, or leave --wheel out"
        )
    base: set[str] = set()
    host_only = set(HOST_ONLY)
    for req in meta.get_all("Requires-Dist") or []:
        why = requirement_error(req)
        if why is not None:
            raise ArtifactError(
                f"{wheel} is not a wheel pip installs: its METADATA requires {req.strip()!r}, which is no requirement "
                f"({why}): fix it in pyproject.toml and build the wheel again, or leave --wheel out"
            )
        marker = req.partition(";")[2]  # extra == "host", or written without the blanks
        if re.search(r"""\bextra\s*==\s*["'](host|dev)["']""", marker):
            host_only.add(_name(req))
        elif not re.search(r"\bextra\s*==", marker):
            base.add(_name(req))
    wrong = sorted(base & host_only)
    if wrong:
        raise ArtifactError(
            f"{wheel.name} requires {', '.join(wrong)} without an extra, but the board runs without them: "
            "move them to the host extra in pyproject.toml"
        )


def setup_script() -> Path:
    """scripts/board_setup.sh as shipped inside the package."""
    path = Path(str(importlib.resources.files("dpupose") / "resources" / "board" / "board_setup.sh"))
    if not path.is_file():
        raise ArtifactError(f"the board setup script is missing from the package ({path}): reinstall dpupose")
    return path
