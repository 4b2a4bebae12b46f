"""The manifest of what was put on a board or an image: every file's board path, size and SHA-256.

JSON (`manifest.json`) for `dpupose sdcard ls`, and the same list as `SHA256SUMS` (paths relative to
the dpupose folder) for `sha256sum -c` on the board.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dpupose import __version__
from dpupose.errors import ArtifactError
from dpupose.formats import newer_format, newer_format_refusal
from dpupose.fsio import json_text, loads_json, sha256_file

FORMAT = "dpupose-staged/1"


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # absolute path on the board's root file system
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    overlay_fingerprint: str | None
    plan_fingerprint: str | None
    wheel: str
    generated_by: str = f"dpupose {__version__}"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "generated_by": self.generated_by,
            "overlay_fingerprint": self.overlay_fingerprint,
            "plan_fingerprint": self.plan_fingerprint,
            "wheel": self.wheel,
            "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.entries],
        }
        return json_text(data, indent=2) + "\n"

    def sha256sums(self, base: PurePosixPath) -> str:
        """`sha256sum -c` input for the files under `base`, paths relative to it."""
        lines = []
        for e in self.entries:
            path = PurePosixPath(e.path)
            if path.is_relative_to(base):
                lines.append(f"{e.sha256}  {path.relative_to(base)}")
        return "\n".join(lines) + "\n"


def build_manifest(
    files: Iterable[tuple[Path, PurePosixPath]],
    *,
    overlay_fingerprint: str | None,
    plan_fingerprint: str | None,
    wheel: str,
) -> Manifest:
    """Hash the host files that will be put at the given board paths."""
    entries = tuple(
        ManifestEntry(str(dest), src.stat().st_size, sha256_file(src))
        for src, dest in sorted(files, key=lambda f: str(f[1]))
    )
    return Manifest(entries, overlay_fingerprint, plan_fingerprint, wheel)


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    try:
        data = loads_json(text)
        if newer_format(data.get("format"), FORMAT):
            by = data.get("generated_by")
            refusal = newer_format_refusal(
                f"the manifest in {where}",
                data["format"],
                FORMAT,
                by if isinstance(by, str) and by else "a newer dpupose",
            )
            raise ArtifactError(
                f"{refusal}: read the image with the dpupose version that staged it, or stage it again with this one"
            )
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        entries = tuple(ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"the manifest in {where} is not readable ({exc}): stage the image again") from None
    return Manifest(
        entries,
        data.get("overlay_fingerprint"),
        data.get("plan_fingerprint"),
        str(data.get("wheel", "")),
        str(data.get("generated_by", "")),
    )


@dataclass(frozen=True)
class Check:
    entry: ManifestEntry
    status: str  # "ok", "changed", "missing"


def check_files(manifest: Manifest, locate: Callable[[str], Path | None]) -> list[Check]:
    """Compare the manifest with local copies of the board files; `locate` maps a board path to its
    local copy (e.g. dumped from an image), or None when the file is absent."""
    out = []
    for e in manifest.entries:
        path = locate(e.path)
        if path is None or not path.is_file():
            out.append(Check(e, "missing"))
        elif path.stat().st_size != e.size or sha256_file(path) != e.sha256:
            out.append(Check(e, "changed"))
        else:
            out.append(Check(e, "ok"))
    return out
