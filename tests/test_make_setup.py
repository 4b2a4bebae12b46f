"""constraints.txt's pins for each host Python `make setup` supports (whether each pinned release has wheels
for that Python is shown by running `make setup` under it, which needs the network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dpupose.dpu.tomlload import read_toml

ROOT = Path(__file__).resolve().parents[1]
HOST_PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def pins_for(python: str) -> dict[str, list[str]]:
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    pins: dict[str, list[str]] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("#")[0].strip():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                assert [s.operator for s in req.specifier] == ["=="], line
                pins.setdefault(req.name, []).append(next(iter(req.specifier)).version)
    return pins


@pytest.mark.parametrize("python", HOST_PYTHONS)
def test_constraints_pin_one_release_of_each_requirement_for_every_host_python(python):
    """Each requirement of the host install (base, host and dev extras) that applies on `python` has exactly
    one pin there, inside the project's own range."""
    project = read_toml(ROOT / "pyproject.toml")["project"]
    extras = project["optional-dependencies"]
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux", "extra": ""}
    reqs = [Requirement(r) for r in [*project["dependencies"], *extras["host"], *extras["dev"]]]
    pins = pins_for(python)
    assert all(len(versions) == 1 for versions in pins.values()), pins
    for req in reqs:
        if req.marker is None or req.marker.evaluate(env):
            assert req.name in pins, f"{req.name} has no pin for Python {python}"
            assert pins[req.name][0] in req.specifier, f"{req.name}=={pins[req.name][0]} is outside {req}"
    assert ("tomli" in pins) == (python == "3.10")
