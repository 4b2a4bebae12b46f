"""The wheel build's pieces without pip: its command line and the copy it is built from (run_tool stood in
for), the setuptools check, and check_wheel's reading of a wheel's requirements."""

from __future__ import annotations

import errno
import importlib.metadata
import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from dpupose.board import wheel as wheelmod
from dpupose.errors import ArtifactError, UsageError


def write_wheel(path: Path, requires: list[str], *, metadata: bytes | None = None) -> Path:
    lines = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("dpupose/__init__.py", "")
        version = path.name.split("-")[1]  # as pip checks it: the METADATA's is the file name's
        meta = (
            metadata if metadata is not None else f"Metadata-Version: 2.4\nName: dpupose\nVersion: {version}\n{lines}"
        )
        zf.writestr("dpupose-1.0.dist-info/METADATA", meta if isinstance(meta, bytes) else meta.encode())
    return path


def fake_root(tmp_path: Path) -> Path:
    """A source tree: what the wheel is built from, and caches, build output and tests beside it."""
    root = tmp_path / "repo"
    files = {
        "pyproject.toml": '[project]\nname = "dpupose"\n',
        "README.md": "readme",
        "LICENSE": "licence",
        "sw/dpupose/__init__.py": "",
        "sw/dpupose/sub/m.py": "X = 1\n",
        "sw/dpupose/__pycache__/__init__.cpython-312.pyc": "",
        "sw/dpupose/sub/stale.pyc": "",
        "sw/dpupose/old.egg-info/PKG-INFO": "",
        "sw/dpupose.egg-info/PKG-INFO": "",
        "build/lib/dpupose/removed.py": "",
        "tests/test_x.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


class FakePip:
    """run_tool standing in for `pip wheel`: records the command line and the files of the folder it builds
    from, and writes `wheel` (by default a wheel requiring numpy) into the -w folder."""

    def __init__(self, requires: tuple[str, ...] = ("numpy",)) -> None:
        self.requires = requires
        self.argv: list[str] = []
        self.files: set[str] = set()

    def __call__(self, argv: list[str], **kw: object) -> None:
        self.argv = list(argv)
        src = Path(argv[-1])
        self.files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
        outdir = Path(argv[argv.index("-w") + 1])
        outdir.mkdir(parents=True, exist_ok=True)  # as pip does
        write_wheel(outdir / "dpupose-1.0-py3-none-any.whl", list(self.requires))


@pytest.fixture
def new_setuptools(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "80.9.0" if name == "setuptools" else "0")


def test_pip_builds_without_dependencies_from_a_clean_copy_of_the_sources(tmp_path, monkeypatch, new_setuptools):
    root = fake_root(tmp_path)
    pip = FakePip()
    monkeypatch.setattr(wheelmod, "run_tool", pip)
    out = tmp_path / "out"
    out.mkdir()
    assert wheelmod.build_wheel(out, root=root) == out / "dpupose-1.0-py3-none-any.whl"
    src = Path(pip.argv[-1])
    assert pip.argv == [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                        "--no-build-isolation", str(src)]  # fmt: skip
    assert src.name == "src" and src.parent.name.startswith("dpupose-wheel-") and not src.exists()  # removed
    assert pip.files == {"pyproject.toml", "README.md", "LICENSE", "sw/dpupose/__init__.py", "sw/dpupose/sub/m.py"}


def test_a_wheel_pip_builds_is_checked_and_must_be_the_only_one(tmp_path, monkeypatch, new_setuptools):
    root = fake_root(tmp_path)
    monkeypatch.setattr(wheelmod, "run_tool", FakePip(requires=("numpy", "torch>=2")))
    with pytest.raises(ArtifactError, match="^dpupose-1.0-py3-none-any.whl requires torch without an extra"):
        wheelmod.build_wheel(tmp_path / "a", root=root)
    monkeypatch.setattr(wheelmod, "run_tool", FakePip())
    old = tmp_path / "b"
    old.mkdir()
    write_wheel(old / "dpupose-0.9-py3-none-any.whl", ["numpy"])  # an earlier build left in the folder
    with pytest.raises(ArtifactError) as e:
        wheelmod.build_wheel(old, root=root)
    assert str(e.value) == f"pip wheel made 2 dpupose wheels in {old}, expected one"


def test_an_installation_without_a_source_tree_is_told_to_pass_a_wheel(tmp_path, monkeypatch):
    monkeypatch.setattr(wheelmod, "project_root", lambda: None)
    monkeypatch.setattr(wheelmod, "run_tool", lambda *a, **kw: pytest.fail("pip was run"))
    with pytest.raises(UsageError) as e:
        wheelmod.build_wheel(tmp_path)
    assert str(e.value) == "cannot build the dpupose wheel: this installation has no source tree; pass --wheel FILE"


def test_the_source_tree_is_the_folder_of_dpupose_s_own_pyproject(tmp_path, monkeypatch):
    # dpupose installed in a virtual environment inside another project's folder: that project is not built
    import dpupose

    outer = tmp_path / "outer"
    package = outer / "other" / ".venv" / "site-packages" / "dpupose"
    package.mkdir(parents=True)
    (outer / "other" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    monkeypatch.setattr(dpupose, "__file__", str(package / "__init__.py"))
    assert wheelmod.project_root() is None
    (outer / "pyproject.toml").write_text('[project]\nname = "dpupose"\nversion = "1"\n')
    assert wheelmod.project_root() == outer


@pytest.mark.parametrize(
    ("found", "version", "can_build"),
    [
        (True, "77", True),
        (True, "80.9.0", True),
        (True, "76.99.1", False),
        (True, "unknown", False),  # no leading number: not known to be new enough
        (True, None, False),  # importable without metadata
        (False, "80.9.0", False),  # metadata of a setuptools that cannot be imported
    ],
)
def test_the_installed_setuptools_is_used_only_when_known_to_be_77_or_later(monkeypatch, found, version, can_build):
    def version_of(name: str) -> str:
        if version is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return version

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: real(name) if found else None)
    monkeypatch.setattr(importlib.metadata, "version", version_of)
    assert wheelmod._setuptools_can_build() is can_build


def test_a_folder_that_cannot_be_copied_for_the_wheel_is_one_line(tmp_path, monkeypatch):
    root = fake_root(tmp_path)
    real = shutil.copystat

    def copystat(src, dst, **kw):
        if Path(src) == root / "sw" / "dpupose" / "sub":
            raise OSError(errno.EPERM, "Operation not permitted")
        return real(src, dst, **kw)

    monkeypatch.setattr(shutil, "copystat", copystat)
    with pytest.raises(ArtifactError) as e:
        wheelmod._clean_copy(root, tmp_path / "copy")
    assert str(e.value) == (
        f"cannot copy {root / 'sw' / 'dpupose' / 'sub'} to {tmp_path / 'copy' / 'sw' / 'dpupose' / 'sub'} to build "
        "the wheel: [Errno 1] Operation not permitted"
    )


@pytest.mark.parametrize(
    ("requires", "wrong"),
    [
        (["Torch>=2"], "torch"),  # names compare whatever their case
        (["torch[cuda]>=2"], "torch"),  # and without their extras
        (["opencv_python_headless", 'opencv-python-headless; extra == "host"'], "opencv-python-headless"),
        (["pytest", 'pytest>=8; extra == "dev"'], "pytest"),  # the dev extra's too
        (["scipy", "matplotlib", 'matplotlib; extra == "host"', "scipy; extra == 'host'"], "matplotlib, scipy"),
        # the host extra written without blanks (it was taken as no extra of the host's, and scipy let through)
        (["scipy", 'scipy; extra=="host"', "onnx", "onnx; extra =='dev'"], "onnx, scipy"),
        (['scipy; extra=="board"', 'scipy; extra == "host"', 'pytest; python_version < "3.11" and extra=="dev"'], None),
        (['torch>=2; extra=="host"', 'scipy; extra == "board"', 'scipy; extra == "host"'], None),
        (['numpy<2; platform_machine == "aarch64" and extra == "board"', 'numpy; extra == "host"'], None),
        ([], None),  # no Requires-Dist at all
    ],
)
def test_check_wheel_refuses_base_requirements_of_the_host_only(tmp_path, requires, wrong):
    wheel = write_wheel(tmp_path / "dpupose-1.0-py3-none-any.whl", requires)
    assert wheelmod.wheel_requirements(wheel) == requires
    if wrong is None:
        wheelmod.check_wheel(wheel)
        return
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(wheel)
    assert str(e.value) == (
        f"{wheel.name} requires {wrong} without an extra, but the board runs without them: move them to the host "
        "extra in pyproject.toml"
    )


@pytest.mark.parametrize(
    "name", ["dpupose-1.0-py3-none-any.whl.bak", "dpupose-1.0-py3-none-any.whl.whl2", "dpupose-1.0-py3-any.whl"]
)
def test_a_name_with_a_wheel_name_at_its_start_is_no_wheel_name(tmp_path, name):
    wheel = write_wheel(tmp_path / name, ["numpy"])
    with pytest.raises(ArtifactError, match=f"^'{name}' is not a dpupose wheel's name"):
        wheelmod.check_wheel(wheel)


def test_the_setup_script_missing_from_the_package_is_named(tmp_path, monkeypatch):
    import importlib.resources

    assert wheelmod.setup_script().read_text().startswith("#!")
    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(ArtifactError) as e:
        wheelmod.setup_script()
    assert str(e.value) == (
        f"the board setup script is missing from the package ({tmp_path / 'resources/board/board_setup.sh'}): "
        "reinstall dpupose"
    )


def test_a_zip_without_metadata_or_with_damaged_metadata_is_said_to_be_no_wheel(tmp_path):
    # A zip without METADATA was 'is not a wheel ()' (an exception is always true, its StopIteration's text empty),
    # METADATA not in UTF-8 a UnicodeDecodeError's traceback and damaged compressed data a zlib.error's.
    bare = tmp_path / "dpupose-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bare, "w") as zf:
        zf.writestr("dpupose/__init__.py", "")
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(bare)
    assert str(e.value) == f"{bare} is not a wheel (it has no .dist-info/METADATA)"
    latin = write_wheel(tmp_path / "dpupose-2.0-py3-none-any.whl", [], metadata=b"Name: dpupose\nAuthor: Andr\xe9\n")
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(latin)
    assert str(e.value).startswith(f"{latin} is not a wheel (its METADATA is not UTF-8: 'utf-8' codec can't decode")
    damaged = tmp_path / "dpupose-3.0-py3-none-any.whl"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dpupose-3.0.dist-info/METADATA", "Requires-Dist: numpy\n" * 200)
    data = bytearray(damaged.read_bytes())
    at = data.index(b"METADATA") + len("METADATA")  # the local header's name, then the compressed bytes
    data[at + 5 : at + 25] = bytes(b ^ 0xFF for b in data[at + 5 : at + 25])
    damaged.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(damaged)
    assert str(e.value).startswith(f"{damaged} is not a wheel (")
    text = tmp_path / "dpupose-4.0-py3-none-any.whl"
    text.write_text("not a zip")
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(text)
    assert str(e.value) == f"{text} is not a wheel (File is not a zip file)"


@pytest.mark.parametrize(("flag_bits", "method", "said"), [(0, 99, "compression method"), (1, 0, "encrypted")])
def test_a_wheel_whose_metadata_zipfile_cannot_read_is_said_to_be_no_wheel(tmp_path, flag_bits, method, said):
    # A METADATA of a compression method zipfile does not read (a damaged header's, AES's 99) was a
    # NotImplementedError's traceback, an encrypted one a RuntimeError's (a password required).
    wheel = write_wheel(tmp_path / "dpupose-1.0-py3-none-any.whl", ["numpy"])
    data = bytearray(wheel.read_bytes())
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # each entry's local and directory headers
        at = data.find(header)
        while at >= 0:
            data[at + flags_at] |= flag_bits
            data[at + flags_at + 2 : at + flags_at + 4] = method.to_bytes(2, "little")
            at = data.find(header, at + 4)
    wheel.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(wheel)
    assert str(e.value).startswith(f"{wheel} is not a wheel (") and said in str(e.value)


@pytest.mark.parametrize(
    ("metadata", "refusal"),
    [
        (b"Name: other\nVersion: 1.0\n", "is not dpupose's wheel: its METADATA names 'other' (pip would refuse it on"),
        (b"Version: 1.0\n", "is not dpupose's wheel: its METADATA names no project (pip would refuse it on"),
        (b"", "is not dpupose's wheel: its METADATA names no project"),
        (
            b"Name: dpupose\nVersion: 2.0\n",
            "is not a wheel pip installs: its METADATA gives version '2.0' where its file",
        ),
        (b"Name: dpupose\n", "is not a wheel pip installs: its METADATA gives version none where its file name gives"),
        (b"Name: DPUpose\nVersion: 1.0\n", None),  # pip compares names whatever their case
    ],
)
def test_a_wheel_whose_metadata_names_another_project_or_version_is_refused(tmp_path, metadata, refusal):
    """pip refuses a wheel whose METADATA's name or version is not its file name's ('Wheel has unexpected file
    name'); check_wheel let one through, and the board's first-boot install failed after the card was written."""
    wheel = write_wheel(tmp_path / "dpupose-1.0-py3-none-any.whl", [], metadata=metadata)
    if refusal is None:
        wheelmod.check_wheel(wheel)
        return
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(wheel)
    assert str(e.value).startswith(f"{wheel} {refusal}")


@pytest.mark.parametrize("packaging", [True, False], ids=["packaging", "without-packaging"])
@pytest.mark.parametrize(
    ("requires", "bad"),
    [
        (["numpy>=1.21", "(((("], "(((("),
        (["a b"], "a b"),
        (["-numpy"], "-numpy"),
        (["onnxruntime>=1.10", "numpy<2; "], "numpy<2;"),
        (
            ["numpy>=1.21", "onnxruntime (>=1.10)", "tomli>=1.1; python_version < '3.11'", "x[y,z]@ https://e/x.whl"],
            None,
        ),
        # A URL after the bare name (PEP 508's `name @ url`) and blanks before the name: pip reads both.
        (["x @ https://e/x.whl", " numpy"], None),
    ],
)
def test_a_requires_dist_line_pip_cannot_read_is_refused(tmp_path, monkeypatch, packaging, requires, bad):
    """pip parses every Requires-Dist line and refuses to install a wheel with one it cannot read; check_wheel
    let `Requires-Dist: ((((` through, and the board's first-boot install failed after the card was written.
    Without packaging (which the board's Python may lack; dpupose does not require it) the name part is checked."""
    if not packaging:
        monkeypatch.setitem(sys.modules, "packaging.requirements", None)  # import fails
    elif importlib.util.find_spec("packaging") is None:
        pytest.skip("needs packaging")
    if bad == "numpy<2;" and not packaging:
        bad = None  # a name and a version: the name check passes it
    wheel = write_wheel(tmp_path / "dpupose-1.0-py3-none-any.whl", requires)
    if bad is None:
        wheelmod.check_wheel(wheel)
        return
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(wheel)
    assert str(e.value).startswith(f"{wheel} is not a wheel pip installs: its METADATA requires {bad!r}, which is no ")
    assert str(e.value).endswith(": fix it in pyproject.toml and build the wheel again, or leave --wheel out")
    assert "\n" not in str(e.value)  # packaging's own message spans three lines (the text and a ^ under it)


@pytest.mark.parametrize("packaging", [True, False], ids=["packaging", "without-packaging"])
@pytest.mark.parametrize(
    ("file_version", "metadata_version", "refusal"),
    [
        ("1.0", "1.0.0", None),  # pip compares versions as PEP 440 reads them, not as text
        ("1.0.0.post0", "1.0.post0", None),
        ("1.0RC1", "1.0rc1", None),
        ("1.0.post1", "1.0-1", None),
        ("2.0.dev0", "2.0dev", None),
        ("1.0.post0", "1.0.post", None),  # a post label without its number is post 0, not no post release
        ("1.0", "1.0rev", "its METADATA gives version '1.0rev' where its file name gives '1.0'"),
        ("1.0", "1.0.1", "its METADATA gives version '1.0.1' where its file name gives '1.0'"),
        ("1.0rc1", "1.0", "its METADATA gives version '1.0' where its file name gives '1.0rc1'"),
        ("1.0", "one", "its METADATA gives version 'one', which is no version pip reads (PEP 440"),
        ("one", "one", "its file name gives version 'one', which is no version pip reads (PEP 440"),
    ],
)
def test_a_wheel_s_versions_are_compared_as_pip_compares_them(
    tmp_path, monkeypatch, packaging, file_version, metadata_version, refusal
):
    """check_wheel compared the METADATA's version with the file name's as text: a wheel pip installs (1.0
    named, 1.0.0 inside) was refused; a version pip cannot read at all passed where both were the same text."""
    if not packaging:
        monkeypatch.setitem(sys.modules, "packaging.version", None)  # import fails, as on a board without it
    elif importlib.util.find_spec("packaging") is None:
        pytest.skip("needs packaging")
    metadata = f"Metadata-Version: 2.4\nName: dpupose\nVersion: {metadata_version}\n".encode()
    wheel = write_wheel(tmp_path / f"dpupose-{file_version}-py3-none-any.whl", [], metadata=metadata)
    if refusal is None:
        wheelmod.check_wheel(wheel)
        return
    with pytest.raises(ArtifactError) as e:
        wheelmod.check_wheel(wheel)
    assert str(e.value).startswith(f"{wheel} is not a wheel pip installs: {refusal}")
    assert str(e.value).endswith(": give the wheel pip wheel wrote, or leave --wheel out")


VERSIONS = [
    *("1.0", "1.0.0", "1", "0", "0.0", "v1.0", "1!1.0", "2.0", "1.0.1", "1.0.post0", "1.0post0", "1.0-0"),
    *("1.0.0.post0", "1.0-1", "1.0r1", "1.0rev1", "1.0.post1", "1.0RC1", "1.0rc1", "1.0c1", "1.0-rc.1", "1.0pre1"),
    *("1.0preview1", "1.0rc2", "1.0.b1", "1.0beta1", "1.0a", "1.0alpha0", "1.0_a_1", "1.0a1.post2.dev3"),
    *("1.0.dev", "1.0dev0", "1.0.DEV0", "1.0+local.1", "1.0+LOCAL-01", "1.0+local.01", " 1.0 "),
    *("1.0.post", "1.0rev", "1.0-r", "1.0.post.dev0"),
    *("abc", "1.0-", "1..0", "", "1.0+", "1.0.post1-1", "1.0.x", "-1.0"),
]


def test_the_version_reading_without_packaging_is_packaging_s(monkeypatch):
    """Where packaging is missing (the board may lack it) version_key reads PEP 440 itself: the same versions
    valid, and the same pairs equal, as packaging's Version (which pip uses)."""
    if importlib.util.find_spec("packaging") is None:
        pytest.skip("needs packaging")
    from packaging.version import InvalidVersion, Version

    def packaging_key(text):
        try:
            return Version(text)
        except InvalidVersion:
            return None

    monkeypatch.setitem(sys.modules, "packaging.version", None)
    ours = {v: wheelmod.version_key(v) for v in VERSIONS}
    theirs = {v: packaging_key(v) for v in VERSIONS}
    assert {v for v in VERSIONS if ours[v] is None} == {v for v in VERSIONS if theirs[v] is None}
    valid = [v for v in VERSIONS if theirs[v] is not None]
    assert [(a, b) for a in valid for b in valid if ours[a] == ours[b]] == [
        (a, b) for a in valid for b in valid if theirs[a] == theirs[b]
    ]
