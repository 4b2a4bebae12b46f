"""`dpupose run` over a long run: what it keeps does not grow with the frame count."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import tinyplan

from dpupose.cli import main
from dpupose.runtime import app
from dpupose.runtime.frames import Frame
from dpupose.runtime.sources import FrameSource, ImageFolderSource

CONTAINERS = (list, dict, set)  # what grows in place (a tuple, such as a video's size once set, does not)
PER_FRAME = {"Frame", "FrameResult", "_Job"}  # one a frame in flight: their number is bounded instead


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    tinyplan.write_split_plan(folder)
    return folder


def _held(obj: object) -> int:
    """Entries of the containers an object holds in its attributes (a list of 10 and a dict of 3: 13); a
    deque with a maxlen counts as full."""
    total = 0
    for value in getattr(obj, "__dict__", {}).values():
        if getattr(value, "maxlen", None) is not None:
            total += value.maxlen
        elif isinstance(value, CONTAINERS) or hasattr(value, "maxlen"):
            total += len(value)
    return total


def _dpupose_objects() -> list[object]:
    gc.collect()
    return [o for o in gc.get_objects() if str(getattr(type(o), "__module__", "")).startswith("dpupose.")]


class Census:
    """At two frames of a run: dpupose's objects, and what each one alive at both holds."""

    def __init__(self) -> None:
        self.first: list[tuple[weakref.ref, str, int]] = []
        self.counts: list[int] = []
        self.grown: dict[str, tuple[int, int]] = {}

    def take(self) -> None:
        objects = _dpupose_objects()
        self.counts.append(len(objects))
        if not self.first:
            self.first = [
                (weakref.ref(o), type(o).__qualname__, _held(o))
                for o in objects
                if type(o).__qualname__ not in PER_FRAME and _weakrefable(o)
            ]
            return
        for ref, name, before in self.first:
            obj = ref()
            if obj is not None and _held(obj) != before:
                self.grown[name] = (before, _held(obj))


def _weakrefable(obj: object) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


class CountedCamera(FrameSource):
    """`n` small frames as a camera gives them; a census at frames `at`."""

    live = True
    fps = 30.0

    def __init__(self, n: int, at: tuple[int, int], census: Census) -> None:
        super().__init__()
        self.n, self.at, self.census = n, at, census

    def __iter__(self) -> Iterator[Frame]:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        for i in range(self.n):
            if i in self.at:
                self.census.take()
            yield Frame(i, image.copy(), "camera:0")


@pytest.mark.parametrize("mode", [[], ["--pipeline"], ["--drop-late"]])
@pytest.mark.parametrize("annotate", ["video", "frames"])
def test_what_a_run_keeps_does_not_grow_with_its_frames(
    plan_dir: Path, tmp_path: Path, monkeypatch, mode, annotate
) -> None:
    """A run on a camera goes on for hours: every stage's time was kept in a list (six floats a frame), and
    frames/'s sink kept every frame number's name. Between frames 100 and 400 nothing any of dpupose's
    objects holds may grow, nor may their number by more than the frames a pipeline has in flight."""
    census = Census()
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: CountedCamera(420, (100, 400), census))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out)]
    assert main([*argv, "--annotate", annotate, "--threads", "1", *mode]) == 0
    assert census.grown == {}
    # In flight: 2 a queue and one a worker, each a job, its frame and its result (a list of the 300 frames' results
    # kept would add 300 or more).
    assert census.counts[1] - census.counts[0] < 100
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] + run["dropped"] == 420
    assert all(stage["frames"] == run["frames"] for stage in run["stages"].values())


class CountedFolder(ImageFolderSource):
    """An image folder whose census is taken as frames `at` are read."""

    def __init__(self, path: Path, at: tuple[int, int], census: Census) -> None:
        super().__init__(path)
        self.at, self.census = at, census

    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            if frame.index in self.at:
                self.census.take()
            yield frame


def test_frames_of_an_image_folder_are_named_without_keeping_every_name(
    plan_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """frames/' sink remembered the name of every image it wrote, to give a second image of one stem its
    whole name (a.png.jpg beside a.jpg): 100 bytes or more a frame, for as long as the run went on. It now
    keeps only the names two of the folder's images can ask for (from its listing): between frames 100 and
    400 of 420 images nothing any of dpupose's objects holds grows, and the names are still told apart."""
    src = tmp_path / "src"
    src.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    names = ["a.jpg", "a.png", "a.png.jpg", *(f"im{i:04d}.png" for i in range(417))]
    for name in names:
        cv2.imwrite(str(src / name), image)
    census = Census()
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: CountedFolder(Path(spec), (100, 400), census))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(src), "--out", str(out)]
    assert main([*argv, "--threads", "1"]) == 0
    assert census.grown == {}
    written = sorted(p.name for p in (out / "frames").iterdir())
    assert written[:3] == ["a.jpg", "a.png.jpg", "a.png.jpg.jpg"]
    assert written[3:] == [f"im{i:04d}.jpg" for i in range(417)]


class StallingCamera(FrameSource):
    """Frames 0.5 s apart by `clock`, 10 s without one after frame 19 (a camera reconnecting), then 0.5 s apart
    again: frame k at `times[k]`."""

    live = True
    fps = 2.0

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.times = [0.5 * i for i in range(1, 21)] + [20.0 + 0.5 * k for k in range(16)]

    def __iter__(self) -> Iterator[Frame]:
        image = np.zeros((24, 32, 3), np.uint8)
        for i, t in enumerate(self.times):
            self.clock[0] = t
            yield Frame(i, image.copy(), "camera:0")
        self.clock[0] = self.times[-1]


def test_fps_after_a_stall_recovers_and_run_json_says_what_it_averages(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The run's moving FPS (drawn, printed) kept a 10 s stall of a 2 FPS camera in for 30 frames; run.json gave
    one FPS figure without saying it is the whole run's, stall and all."""
    from types import SimpleNamespace

    clock = [0.0]
    camera = StallingCamera(clock)
    monkeypatch.setattr(app, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: camera)
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out)]
    assert main([*argv, "--annotate", "none"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] == 36 and run["wall_s"] == 27.5
    assert run["fps"] == pytest.approx(36 / 27.5, abs=1e-3)  # the whole run's, the stall in it
    assert run["recent_fps"] == 2.0  # the last 5 s: 10 frames 0.5 s apart
    assert set(run["averages"]) == {"fps", "recent_fps", "mean_ms", "bound_fps"}
    window = "the last 30 frames, or the last 5 s where those took longer"
    assert "stall" in run["averages"]["fps"] and window in run["averages"]["recent_fps"]
    printed = capsys.readouterr().out
    assert "36 frames in 27.50 s, 1.31 FPS over the whole run" in printed
    assert f"at the end 2.00 FPS ({window})" in printed
