"""The host artifacts that go onto a board: the overlay folder, the compiled model folder, their
fingerprints, and the list of (host file, board path) pairs shared by staging and deployment."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dpupose.board import layout
from dpupose.errors import ArtifactError, FingerprintMismatch, ModelFileError, UsageError
from dpupose.fsio import loads_json, not_a_file, read_own_json

log = logging.getLogger(__name__)


def check_overlay(folder: Path) -> list[Path]:
    """The overlay files to copy (dpu.bit, dpu.hwh, dpu.xclbin and arch.json if present)."""
    if folder.is_file():
        raise UsageError(f"--overlay {folder} is a file: pass the folder that holds dpu.bit, dpu.hwh and dpu.xclbin")
    if not folder.is_dir():
        what = not_a_file(folder, "does not exist")
        raise UsageError(
            f"--overlay {folder} {what}: give the folder `make hw DPU=<config>` writes (build/hw/<config>)"
        )
    missing = [name for name in layout.OVERLAY_FILES if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(
            f"--overlay {folder} lacks {', '.join(missing)}: pynq_dpu needs dpu.bit, dpu.hwh and "
            "dpu.xclbin side by side (rebuild with `make hw`, or copy the missing files there)"
        )
    names = [*layout.OVERLAY_FILES, *(n for n in layout.OVERLAY_OPTIONAL if (folder / n).is_file())]
    return [folder / n for n in names]


def check_model(folder: Path) -> list[Path]:
    """Every file of the compiled model folder (recursively, through linked folders, hidden files
    skipped); it must hold a split plan (`dpupose run` reads one), which must find every file it names."""
    if folder.is_file():
        raise UsageError(f"--model {folder} is a file: pass the split plan folder that holds it")
    if not folder.is_dir():
        what = not_a_file(folder, "does not exist")
        raise UsageError(f"--model {folder} {what}: give the split plan folder `dpupose split MODEL --out DIR` wrote")
    files = sorted(_walk(folder))
    if not files:
        # Not "compile the model first": what the board runs is a split plan; a compiled xmodel is optional.
        raise ArtifactError(
            f"--model {folder} is empty: give the split plan folder `dpupose split MODEL --out DIR` wrote"
        )
    for path in files:
        _check_board_name(path.relative_to(folder).as_posix(), folder)
    if not (folder / layout.PLAN_FILE).is_file():
        raise ArtifactError(_no_plan(folder))
    from dpupose.split.plan import recorded_files  # board-safe: no torch, no onnx

    _check_plan_version(folder)
    have = {p.relative_to(folder).as_posix() for p in files}
    recorded, _ = recorded_files(folder)
    missing = [f for f in recorded if PurePosixPath(f).as_posix() not in have]
    if missing:
        raise ArtifactError(
            f"the split plan in {folder} names {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not in the folder, so the board could not run it: "
            "split again into a new folder, or copy the missing files there"
        )
    _check_plan_loads(folder)
    return files


def _no_plan(folder: Path) -> str:
    """Why a model folder without plan.json is refused, and what to pass: `dpupose run` on the board reads a
    split plan, and nothing else, so the board could not run what was copied."""
    head = f"model folder {folder} has no {layout.PLAN_FILE}, so `dpupose run` on the board could not run it"
    if (folder / "model_qdq.onnx").is_file():  # a `dpupose quantize` folder: the step before the split
        return (
            f"{head}: it is a `dpupose quantize` folder; split it first, `dpupose split {folder / 'model_qdq.onnx'} "
            "--out DIR --optimize`, and pass DIR"
        )
    from dpupose.split.plan import plan_folders_inside  # board-safe: no torch, no onnx

    inside = plan_folders_inside(folder)
    if inside:  # a model card's folder (models/dpupose-synth): its plan is one level down
        return f"{head}: pass {inside}"
    return f"{head}: pass the split plan folder `dpupose split` wrote (the shipped model's: models/dpupose-synth/split)"


def _check_board_name(name: str, folder: Path) -> None:
    """ArtifactError for a file name the board's copy cannot carry: a line break (SHA256SUMS, which
    `sha256sum -c` checks on the board, and debugfs's command file have one line per file), a double quote
    (debugfs quotes with it) or bytes that are not UTF-8 (which neither file can hold), before the wheel is
    built, an image copied or anything sent."""
    odd = [c for c in name if c == '"' or (ord(c) < 32 or ord(c) == 127) or 0xDC80 <= ord(c) <= 0xDCFF]
    if odd:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise ArtifactError(
            f"the model folder {folder} holds a file named {shown!r}, with a line break, other control character, "
            "double quote or bytes that are not UTF-8, which the board's copy cannot name: rename it"
        )


def _check_plan_loads(folder: Path) -> None:
    """The plan reads as `dpupose run` reads it on the board (its fields, each file, a compiled .xmodel too,
    against the sha256 the plan records, and each compiled .xmodel as XIR would parse it): a damaged plan.json, a
    subgraph file or an .xmodel from another split or compile, or an .xmodel that is empty or cut short, is
    refused here, before the card or the board's working deployment is touched, not found out on the board."""
    from dpupose.runtime.vart_runner import check_xmodel_file  # board-safe: VART is imported only to run
    from dpupose.split.plan import load_plan  # board-safe: no torch, no onnx

    try:
        plan = load_plan(folder)
    except ModelFileError as exc:
        raise ArtifactError(f"{exc} (the board could not run this plan)") from None
    # load_plan refused an .xmodel other than the one its plan records (xmodel_sha256); a plan split before that
    # was recorded has none, and `dpupose run --backend vart` on the board refuses one XIR cannot read (empty, cut
    # short, another file under its name) before XIR would abort on it: refused here too, before the card or the
    # board's working deployment is touched, as the command printed for it is vart's.
    for sg in plan.subgraphs:
        if sg.xmodel is not None:
            try:
                check_xmodel_file(plan.path(sg.xmodel))
            except ModelFileError as exc:
                raise ArtifactError(f"{exc} (the board could not run this plan with --backend vart)") from None


def _check_plan_version(folder: Path) -> None:
    """A plan a newer dpupose wrote is refused here: the dpupose that goes with it to the board (this
    version's wheel) would refuse it there, after the previous deployment was replaced."""
    from dpupose import __version__
    from dpupose.split.plan_schema import PLAN_VERSION

    doc = read_own_json(folder / layout.PLAN_FILE)  # None for a damaged plan: for `dpupose run` to say what is wrong
    version = doc.get("version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > PLAN_VERSION:
        raise ArtifactError(
            f"the split plan in {folder} is version {version}, written by a newer dpupose: this dpupose "
            f"({__version__}) reads plan version {PLAN_VERSION}, as does the wheel it builds for the board, so "
            "the board could not run it; stage or deploy it with the dpupose version that wrote it, or re-split "
            "the model with this version's `dpupose split`"
        )


def _walk(folder: Path) -> list[Path]:
    """Regular files under `folder`, following linked folders (a link back up its own branch is not
    followed again; two links to one folder give its files under both names), hidden ones skipped."""
    import os

    files: list[Path] = []

    def visit(d: Path, ancestors: frozenset[str]) -> None:
        real = os.path.realpath(d)
        if real in ancestors:  # a cycle
            return
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():  # follows links
                visit(Path(entry.path), ancestors | {real})
            elif entry.is_file():
                files.append(Path(entry.path))

    visit(folder, frozenset())
    return files


def _fingerprint(path: Path, what: str) -> str | None:
    if not path.is_file():
        return None
    try:
        value = loads_json(path.read_text()).get("fingerprint")
    except (ValueError, AttributeError) as exc:
        raise ArtifactError(f"{what} {path} is not valid JSON ({exc})") from None
    return None if value is None else str(value)


def arch_json_fingerprint(text: str, where: str) -> str:
    """The fingerprint an arch.json's text gives ("0x101000016010407"): its "fingerprint", or that of the
    Vitis AI 2.5 target named by its "target" (runtime.guard.arch_fingerprint, which the board applies)."""
    from dpupose.runtime.guard import arch_fingerprint

    try:
        data = loads_json(text)
    except ValueError as exc:
        raise ArtifactError(f"arch.json {where} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("fingerprint"), str):
        return data["fingerprint"]
    try:
        return f"0x{arch_fingerprint(data, where):x}"
    except ModelFileError as exc:
        raise ArtifactError(str(exc)) from None


def overlay_fingerprint(overlay: Path) -> str | None:
    """The fingerprint of the overlay's arch.json (e.g. "0x101000016010407"), or None if there is none."""
    path = overlay / "arch.json"
    if not path.is_file():
        return None
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"arch.json {path} is not valid JSON ({exc})") from None
    return arch_json_fingerprint(text, str(path))


def plan_fingerprint(model: Path) -> str | None:
    """The split plan's top-level "fingerprint", or None if there is none."""
    return _fingerprint(model / layout.PLAN_FILE, "split plan")


def board_backend(model: Path) -> tuple[str, str | None]:
    """The `dpupose run --backend` the board can use for this model folder, and a note when it is not vart.

    VART runs a DPU subgraph from the .xmodel that Vitis AI compiled from it, recorded in the split plan
    ("xmodel"); a plan whose DPU subgraphs lack one runs on the board with ONNX Runtime (`--backend cpu`).
    A folder without a readable plan is left to `dpupose run` to judge (vart).
    """
    doc = read_own_json(model / layout.PLAN_FILE)
    subgraphs = doc.get("subgraphs", []) if isinstance(doc, dict) else None
    try:
        lacking = [sg.get("name", "?") for sg in subgraphs if sg.get("device") == "dpu" and not sg.get("xmodel")]
    except (AttributeError, TypeError):  # no plan (None), or one of another shape
        return "vart", None
    if not lacking:
        return "vart", None
    return "cpu", (
        f"the split plan in {model} records no compiled .xmodel for DPU subgraph {', '.join(lacking)}: "
        "on the board it runs with --backend cpu (ONNX Runtime on the Cortex-A53) until one is compiled "
        "and recorded (scripts/vitis_ai_quantize.sh --plan, then `dpupose split --xmodel`: docs/quantization.md)"
    )


def same_fingerprint(a: str, b: str) -> bool:
    """Fingerprints are 64-bit numbers written in hex ("0x...") or decimal; compare the numbers."""
    try:
        return int(a, 0) == int(b, 0)
    except ValueError:
        return a.strip().lower() == b.strip().lower()


def compare_fingerprints(overlay_fp: str | None, plan_fp: str | None, *, overlay: str, model: str) -> str:
    """A one-line verdict; FingerprintMismatch if both are known and differ."""
    if overlay_fp is None and plan_fp is None:
        return (
            "fingerprint not checked: the overlay has no arch.json fingerprint and the model no split plan fingerprint"
        )
    if overlay_fp is None:
        return f"fingerprint not checked: the overlay ({overlay}) has no arch.json with a fingerprint"
    if plan_fp is None:
        return f"fingerprint not checked: the model ({model}) has no {layout.PLAN_FILE} with a fingerprint"
    if not same_fingerprint(overlay_fp, plan_fp):
        raise FingerprintMismatch(
            f"the model's split plan was made for DPU fingerprint {plan_fp} but the overlay ({overlay}) has "
            f"{overlay_fp}: compile the model for this DPU configuration, or use the matching overlay"
        )
    return f"fingerprint {overlay_fp} matches (overlay and split plan)"


@dataclass(frozen=True)
class Payload:
    """What goes under layout.BOARD_ROOT: (host file, board path) pairs and the fingerprints."""

    files: tuple[tuple[Path, PurePosixPath], ...]
    overlay_fp: str | None
    plan_fp: str | None
    verdict: str
    wheel: Path
    backend: str = "vart"  # what `dpupose run --backend` the board can use (board_backend)
    backend_note: str | None = None


def precheck(overlay: Path, model: Path) -> None:
    """The checks `collect` makes, for before the (slow) wheel build: folders, files and fingerprints."""
    check_overlay(overlay)
    check_model(model)
    compare_fingerprints(overlay_fingerprint(overlay), plan_fingerprint(model), overlay=str(overlay), model=str(model))


def collect(overlay: Path, model: Path, wheel: Path, setup_script: Path) -> Payload:
    """Check the folders and fingerprints and list every file with its place on the board."""
    overlay_files = check_overlay(overlay)
    model_files = check_model(model)
    ofp, pfp = overlay_fingerprint(overlay), plan_fingerprint(model)
    verdict = compare_fingerprints(ofp, pfp, overlay=str(overlay), model=str(model))
    files = [(p, layout.OVERLAY_DIR / p.name) for p in overlay_files]
    files += [(p, layout.MODEL_DIR / PurePosixPath(*p.relative_to(model).parts)) for p in model_files]
    files.append((wheel, layout.WHEEL_DIR / wheel.name))
    files.append((setup_script, layout.SETUP_SCRIPT))
    backend, note = board_backend(model)
    return Payload(tuple(files), ofp, pfp, verdict, wheel, backend, note)
