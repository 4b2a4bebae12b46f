"""TOML reading with unknown-key checks, shared by the configuration and board loaders."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dpupose.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give a configuration file (.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}{_given_twice(path, str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a TOML text file (byte {exc.start} is not UTF-8)") from None


def _given_twice(path: Path, message: str) -> str:
    """What TOML's 'Cannot overwrite a value (at line N, ...)' means, naming the key of that line."""
    found = re.match(r"Cannot overwrite a value \(at line (\d+),", message)
    if not found:
        return ""
    try:
        line = path.read_text(encoding="utf-8").splitlines()[int(found.group(1)) - 1]
    except (OSError, UnicodeDecodeError, IndexError):
        return ""
    key = line.split("=", 1)[0].strip()
    return f": {key} is given a value twice; keep one line for it" if key else ""


def reject_unknown(data: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        named = []
        for key in unknown:  # a misspelt key is told the one it is close to
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
            named.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigError(f"{where}: unknown key(s) {', '.join(named)}; allowed keys: {', '.join(sorted(allowed))}")
