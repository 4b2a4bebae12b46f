"""`dpupose run` end to end on tiny plans: outputs, bad input, Ctrl-C and a camera that disappears."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import cv2
import doc_keys
import media
import numpy as np
import pytest
import tinyplan
from media import FakeCapture, corrupt_frame, write_video

from dpupose.cli import main
from dpupose.errors import UsageError
from dpupose.runtime import app, sources
from dpupose.runtime.frames import Frame
from dpupose.runtime.sources import FrameSource
from dpupose.split.plan import PLAN_FILE


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    tinyplan.write_split_plan(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(5)
    for i in range(4):
        cv2.imwrite(str(folder / f"im{i}.png"), rng.integers(0, 256, (30 + 4 * i, 40, 3), dtype=np.uint8))
    return folder


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


@pytest.mark.parametrize("mode", [[], ["--pipeline"]])
def test_folder_run_writes_keypoints_frames_and_timings(
    plan_dir: Path, images: Path, tmp_path: Path, mode, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out), *mode]
    assert main(argv) == 0
    records = lines(out / "keypoints.jsonl")
    assert [(r["frame"], r["source"]) for r in records] == [(i, f"im{i}.png") for i in range(4)]
    assert all(len(r["keypoints"]) == 16 and len(r["confidence"]) == 16 for r in records)
    assert set(records[0]["timings_ms"]) == {"preprocess", "dpu0", "cpu0", "dpu1", "head", "postprocess"}
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"im{i}.jpg" for i in range(4)]
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] == 4 and run["backend"] == "cpu" and run["pipelined"] == bool(mode)
    assert run["stages"]["dpu1"]["frames"] == 4
    printed = capsys.readouterr().out
    assert "backend cpu: 4 frames" in printed and "dpu0" in printed


def test_run_json_holds_the_keys_runtime_md_lists(plan_dir: Path, images: Path, tmp_path: Path) -> None:
    """docs/runtime.md's table of run.json keys against a real run's file, both ways, with their types."""
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert list(run) == doc_keys.table_keys("runtime.md", "- `run.json`: what the run did")
    assert all(isinstance(run[k], bool) for k in ("interrupted", "pipelined"))
    assert all(type(run[k]) is int for k in ("skipped_inputs", "frames", "dropped"))
    assert all(isinstance(run[k], float) for k in ("wall_s", "fps", "recent_fps", "bound_fps", "peak_rss_mb"))
    assert run["slowest_stage"] in run["stages"] and run["outputs"] == ["keypoints.jsonl", "frames"]
    assert all(list(s) == ["workers", "mean_ms", "frames"] for s in run["stages"].values())
    assert set(run["averages"]) == {"fps", "recent_fps", "mean_ms", "bound_fps"}
    # keypoints.jsonl: the example line runtime.md gives has a real line's keys, in order
    text = " ".join((doc_keys.DOCS / "runtime.md").read_text().split())
    example = re.search(r'`(\{"frame": .*?\}\})`', text).group(1)
    top = re.sub(r"\{[^{}]*\}", "{}", example[1:-1])  # the example's own keys, not timings_ms's
    assert list(lines(out / "keypoints.jsonl")[0]) == re.findall(r'"(\w+)": ', top)


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_is_a_line_a_second_on_a_terminal_and_every_half_minute_in_a_log(
    plan_dir: Path, images: Path, terminal: bool, monkeypatch, capsys
) -> None:
    """A run as a service (stderr into the journal) wrote 'frame N: X FPS' every second for as long as it ran.
    Here 10 s pass between frames: the start at 0 s, frames 0-3 at 10-40 s."""
    from types import SimpleNamespace

    clock = itertools.count(0.0, 10.0)
    monkeypatch.setattr(app, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--annotate", "none"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    reported = [line.split(":")[0] for line in err.splitlines() if line.startswith("frame ")]
    assert reported == (["frame 0", "frame 1", "frame 2", "frame 3"] if terminal else ["frame 2"])
    assert not any(line.startswith("frame ") for line in out.splitlines()) and out.startswith("backend cpu: 4 frames")


def test_run_json_names_its_outputs_relative_to_its_folder(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch
) -> None:
    """The same names for an --out given relative to the working directory and absolute, read from anywhere."""
    monkeypatch.chdir(tmp_path)
    base = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--max-frames", "1"]
    assert main([*base, "--out", "rel"]) == 0
    assert main([*base, "--out", str(tmp_path / "abs")]) == 0
    for out in (tmp_path / "rel", tmp_path / "abs"):
        names = json.loads((out / "run.json").read_text())["outputs"]
        assert names == ["keypoints.jsonl", "frames"]
        assert all((out / name).exists() for name in names)


def test_local_decoding_moves_keypoints_and_is_recorded(plan_dir: Path, images: Path, tmp_path: Path) -> None:
    base = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--annotate", "none"]
    assert main([*base, "--out", str(tmp_path / "dsnt")]) == 0
    assert main([*base, "--out", str(tmp_path / "local"), "--decode", "local"]) == 0
    a, b = lines(tmp_path / "dsnt" / "keypoints.jsonl"), lines(tmp_path / "local" / "keypoints.jsonl")
    assert [r["confidence"] for r in a] == [r["confidence"] for r in b]  # same heatmaps
    assert any(r["keypoints"] != s["keypoints"] for r, s in zip(a, b, strict=True))
    assert json.loads((tmp_path / "dsnt" / "run.json").read_text())["decode"] == "dsnt"
    assert json.loads((tmp_path / "local" / "run.json").read_text())["decode"] == "local"


def test_two_images_with_one_stem_keep_both_annotated_frames(plan_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(src / "a.jpg"), rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    cv2.imwrite(str(src / "a.png"), rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["a.jpg", "a.png.jpg"]
    assert [cv2.imread(str(out / "frames" / n)).shape[0] for n in ("a.jpg", "a.png.jpg")] == [32, 36]


def test_video_with_corrupt_frame_pipelined_and_max_frames(plan_dir: Path, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.avi", 8)
    corrupt_frame(clip, 2)
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(clip), "--out", str(out)]
    assert main([*argv, "--pipeline", "--max-frames", "6"]) == 0
    assert [r["frame"] for r in lines(out / "keypoints.jsonl")] == [0, 1, 3, 4, 5, 6]
    assert video_frames(out / "annotated.mp4") == 6
    assert json.loads((out / "run.json").read_text())["skipped_inputs"] == 1


def _user_files(out: Path, tmp_path: Path) -> dict[str, bytes]:
    """A user's files in a run's --out and in its frames/, none at a name a run writes: a note, an image of
    another kind, a subfolder with a .jpg in it, and a link named like a frame (to a file outside)."""
    (out / "frames" / "sub").mkdir(parents=True, exist_ok=True)
    (out / "notes.txt").write_text("mine")
    (out / "clip.mp4").write_bytes(b"my video")
    (out / "frames" / "notes.txt").write_text("mine too")
    (out / "frames" / "mine.png").write_bytes(b"a png")
    (out / "frames" / "sub" / "000001.jpg").write_bytes(b"kept")
    (tmp_path / "photo.jpg").write_bytes(b"a photo")
    (out / "frames" / "link.jpg").symlink_to(tmp_path / "photo.jpg")
    names = ["notes.txt", "clip.mp4", "frames/notes.txt", "frames/mine.png", "frames/sub/000001.jpg"]
    names.append("frames/link.jpg")
    return {n: (out / n).read_bytes() for n in names}


def test_an_earlier_runs_frames_past_this_runs_last_are_removed(plan_dir: Path, tmp_path: Path) -> None:
    """A run of 5 numbered frames, then one of 2 into the same --out: frames/ kept 000002.jpg to 000004.jpg
    beside the new run's two, one folder of two runs' frames. An earlier run's frames are removed before the
    new run writes; a user's other files there stay."""
    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 5)
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*common, "--annotate", "frames"]) == 0
    assert len(list((out / "frames").glob("0*.jpg"))) == 5
    (out / "frames" / ".000004.part.jpg").write_bytes(b"a killed run's")  # a frame its records name
    mine = _user_files(out, tmp_path)
    assert main([*common, "--annotate", "frames", "--max-frames", "2"]) == 0
    assert sorted(p.name for p in (out / "frames").glob("*.jpg")) == ["000000.jpg", "000001.jpg", "link.jpg"]
    assert not (out / "frames" / ".000004.part.jpg").exists()
    assert {n: (out / n).read_bytes() for n in mine} == mine and (tmp_path / "photo.jpg").read_bytes() == b"a photo"


@pytest.mark.parametrize("annotate", ["frames", "none"])
def test_an_earlier_runs_video_is_removed_when_this_run_writes_none(
    plan_dir: Path, images: Path, tmp_path: Path, annotate: str
) -> None:
    """A video run, then an image run into the same --out: annotated.mp4 (and a .part one a full disk had left)
    stayed beside the new run's frames, as if this run's. They are removed before the new run writes."""
    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 3)
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(clip)]) == 0 and video_frames(out / "annotated.mp4") == 3
    (out / "annotated.part.avi").write_bytes(b"cut short")
    (out / "my.annotated.mp4").write_bytes(b"mine")
    assert main([*common, "--source", str(images), "--annotate", annotate]) == 0
    written = ["frames"] if annotate == "frames" else []
    kept = [".dpupose.lock", "keypoints.jsonl", "run.json", "my.annotated.mp4", *written]
    assert sorted(os.listdir(out)) == sorted(kept)
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl", *written]


def test_an_earlier_runs_frames_are_removed_when_this_run_writes_none(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    """An image run, then a video run into the same --out: frames/ stayed, listed in no run.json. Its frames are
    removed, and frames/ with them, or kept for a user's files in it."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images)]) == 0 and len(os.listdir(out / "frames")) == 4
    clip = write_video(tmp_path / "clip.avi", 3)
    assert main([*common, "--source", str(clip)]) == 0
    assert sorted(os.listdir(out)) == [".dpupose.lock", "annotated.mp4", "keypoints.jsonl", "run.json"]
    assert main([*common, "--source", str(images)]) == 0
    mine = _user_files(out, tmp_path)
    assert main([*common, "--source", str(clip)]) == 0
    assert sorted(os.listdir(out / "frames")) == ["link.jpg", "mine.png", "notes.txt", "sub"]
    assert {n: (out / n).read_bytes() for n in mine} == mine


def test_a_folder_no_run_wrote_keeps_its_frames(plan_dir: Path, tmp_path: Path) -> None:
    """Without keypoints.jsonl or run.json, --out is no run's: a frames/ there is not emptied."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000004.jpg").write_bytes(b"not a run's")
    (out / "annotated.avi").write_bytes(b"not a run's either")
    clip = write_video(tmp_path / "clip.avi", 2)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "frames"]) == 0
    assert sorted(os.listdir(out / "frames")) == ["000000.jpg", "000001.jpg", "000004.jpg"]
    assert (out / "annotated.avi").read_bytes() == b"not a run's either"


def test_a_run_that_stops_before_its_record_leaves_no_earlier_record(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A run into an earlier run's --out emptied keypoints.jsonl at its start, and a run that then stopped
    before writing its own run.json (here its disk full at run.json) left the earlier run's record beside
    its own keypoints: run.json said 4 frames, keypoints.jsonl held 1. The earlier run.json is removed before
    anything of the new run is written: no run.json is a run that did not finish."""
    import errno

    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(common) == 0 and json.loads((out / "run.json").read_text())["frames"] == 4
    (out / "notes.txt").write_text("mine")

    def full(path, data, indent=2):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(app, "write_json", full)
    assert main([*common, "--max-frames", "1"]) == 2
    assert f"No space left on device for {out / 'run.json'}" in capsys.readouterr().err
    assert [r["source"] for r in lines(out / "keypoints.jsonl")] == ["im0.png"]
    assert not (out / "run.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_run_killed_into_an_earlier_runs_folder_leaves_no_record(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    """Killed (SIGKILL: nothing is finalized) after its first line, a run left the earlier run's run.json."""
    import subprocess

    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(common) == 0 and (out / "run.json").is_file()
    script = (
        "import os, signal, sys\n"
        "from dpupose.runtime import sinks\n"
        "from dpupose.cli import main\n"
        "write = sinks.JsonLinesSink.write\n"
        "def killed(self, result, annotated):\n"
        "    write(self, result, annotated)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "sinks.JsonLinesSink.write = killed\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
    r = subprocess.run([sys.executable, "-c", script, *common], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert len(lines(out / "keypoints.jsonl")) == 1 and not (out / "run.json").exists()


@pytest.mark.parametrize("where", [".", "runs/today"])
def test_out_inside_the_plan_folder_is_refused(plan_dir: Path, images: Path, where: str, capsys) -> None:
    # The plan folder is what `sdcard stage` and `deploy` copy to the board: a run's outputs do not belong there.
    before = sorted(p.relative_to(plan_dir) for p in plan_dir.rglob("*"))
    out = plan_dir / where
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)])
    assert rc == 2 and "is inside the plan folder" in capsys.readouterr().err
    assert sorted(p.relative_to(plan_dir) for p in plan_dir.rglob("*")) == before


@pytest.mark.parametrize("linked", ["plan", "out", "out through a bind mount"])
def test_out_inside_the_plan_folder_through_a_link_is_refused(
    plan_dir: Path, images: Path, tmp_path: Path, linked: str, capsys, bind_mount
) -> None:
    # The same folder by another name: a link to the plan given as --plan, or a link to it in --out's path, or a
    # bind mount of it elsewhere (which no real path ties to it).
    link = tmp_path / "link"
    link.symlink_to(plan_dir, target_is_directory=True)
    plan, out = (link, plan_dir / "run") if linked == "plan" else (plan_dir, link / "run")
    if linked == "out through a bind mount":
        out = bind_mount(plan_dir) / "run"
    before = sorted(p.relative_to(plan_dir) for p in plan_dir.rglob("*"))
    rc = main(["run", "--plan", str(plan), "--backend", "cpu", "--source", str(images), "--out", str(out)])
    assert rc == 2 and "is inside the plan folder" in capsys.readouterr().err
    assert sorted(p.relative_to(plan_dir) for p in plan_dir.rglob("*")) == before


def test_the_source_image_folder_as_out_is_refused_before_anything_is_written(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    # --out the image folder itself put keypoints.jsonl, run.json and frames/ among the images, where the
    # next run of the folder warned of each as a file that is not an image and a subfolder it does not read.
    folder = tmp_path / "pictures"
    folder.mkdir()
    for p in images.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    before = sorted(os.listdir(folder))
    (tmp_path / "link").symlink_to(folder)
    for out in (folder, tmp_path / "link", Path(f"{folder}/")):
        argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(folder), "--out", str(out)]
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"dpupose: error: --out {out} is the --source image folder: keypoints.jsonl, run.json and the annotated "
            "frames would go among its images, and a later run of the folder would find them there; choose another "
            "--out\n"
        )
        assert sorted(os.listdir(folder)) == before  # not even the run's lock
    # Its parent is an --out like any other.
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(folder), "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "frames").is_dir() and sorted(os.listdir(folder)) == before


def test_the_source_image_folder_as_out_through_a_bind_mount_is_refused(
    plan_dir: Path, images: Path, tmp_path: Path, capsys, bind_mount
) -> None:
    """--out the image folder by a name no real path ties to it (a bind mount of it elsewhere), as --out and
    --plan are compared (fsio.within): the outputs went among the images."""
    folder = tmp_path / "pictures"  # a copy: the module's images stay as they are should the run write
    shutil.copytree(images, folder)
    before = sorted(os.listdir(folder))
    out = bind_mount(folder)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(folder), "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"dpupose: error: --out {out} is the --source image folder: ")
    assert sorted(os.listdir(folder)) == before


def test_a_source_among_the_outputs_is_refused_and_kept(plan_dir: Path, images: Path, tmp_path: Path, capsys) -> None:
    # Rerunning on an earlier run's annotated frames (or video) with the same --out would overwrite them.
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images)]) == 0
    before = {p.name: p.read_bytes() for p in (out / "frames").iterdir()}
    kept = {n: (out / n).read_bytes() for n in ("keypoints.jsonl", "run.json")}
    assert main([*common, "--source", str(out / "frames")]) == 2
    assert "would overwrite its own input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == before
    assert {n: (out / n).read_bytes() for n in kept} == kept  # a refused run touches nothing
    one = sorted((out / "frames").iterdir())[0]  # one of them, as a single image: frames/ would take its name
    assert main([*common, "--source", str(one)]) == 2
    assert f"--source {one} is where this run writes frames" in capsys.readouterr().err
    assert one.read_bytes() == before[one.name]
    (tmp_path / "v").mkdir()
    clip = write_video(tmp_path / "v" / "annotated.mp4", 3)
    data = clip.read_bytes()
    assert (
        main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(clip.parent), "--source", str(clip)])
        == 2
    )
    assert clip.read_bytes() == data and os.listdir(clip.parent) == ["annotated.mp4"]  # no lock file left there
    avi = write_video(tmp_path / "v" / "annotated.avi", 3)  # where OpenCV could not write MP4
    data = avi.read_bytes()
    assert (
        main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(avi.parent), "--source", str(avi)]) == 2
    )
    assert avi.read_bytes() == data
    # Not an output of this run (--annotate none writes no frames), but an earlier run's, which this run
    # removes: refused too. Into another --out the folder may be read.
    capsys.readouterr()
    assert main([*common, "--source", str(out / "frames"), "--annotate", "none", "--max-frames", "1"]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --source {out / 'frames'} is an earlier run's frames under --out {out}, which this run "
        "removes before it starts: choose another --out\n"
    )
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == before
    # v/ as a run's (its keypoints.jsonl a run's): its video is removed by a run of frames
    (clip.parent / "keypoints.jsonl").write_bytes((out / "keypoints.jsonl").read_bytes())
    data = clip.read_bytes()
    video = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(clip.parent), "--annotate", "frames"]
    assert main([*video, "--source", str(clip)]) == 2
    assert "is an earlier run's annotated.mp4" in capsys.readouterr().err and clip.read_bytes() == data
    other = ["--out", str(tmp_path / "other"), "--annotate", "none", "--max-frames", "1"]
    assert main([*common[:-2], "--source", str(out / "frames"), *other]) == 0


def test_a_source_among_the_outputs_under_a_name_resolve_does_not_tie_to_them_is_refused(
    plan_dir: Path, tmp_path: Path, capsys, bind_mount
) -> None:
    """An earlier run's annotated video given as --source through a bind mount of --out (or in the other case
    on a case-insensitive file system): compared by resolved path only, it was not taken for the run's own, and
    the run replaced the video it read. They are compared by folder and inode too. A hard link under another
    name, in --out or elsewhere, keeps the file when the video's name is replaced or removed, and is read: one in
    --out was refused as the earlier run's video."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--annotate", "video"]
    assert main([*common, "--source", str(write_video(tmp_path / "clip.avi", 3))]) == 0
    video = next(p for p in out.iterdir() if p.name.startswith("annotated."))
    data = video.read_bytes()
    for kept in (out / f"mine{video.suffix}", tmp_path / f"kept{video.suffix}"):
        os.link(video, kept)
        capsys.readouterr()
        assert main([*common, "--source", str(kept), "--annotate", "frames"]) == 0, capsys.readouterr().err
        assert kept.read_bytes() == data and not video.exists()  # the earlier video removed, the link's kept
        os.link(kept, video)
        assert main([*common, "--source", str(kept)]) == 0  # its video replaced, the link's kept
        assert kept.read_bytes() == data and video.read_bytes() != data
        os.replace(kept, video)
    bound = bind_mount(out)
    assert main([*common, "--source", str(bound / video.name)]) == 2
    assert "would overwrite its own input" in capsys.readouterr().err and video.read_bytes() == data
    assert main([*common, "--source", str(bound / video.name), "--annotate", "frames"]) == 2
    assert "is an earlier run's" in capsys.readouterr().err and video.read_bytes() == data


def test_a_source_in_or_of_an_earlier_runs_frames_through_a_bind_mount_is_refused(
    plan_dir: Path, images: Path, tmp_path: Path, capsys, bind_mount
) -> None:
    """Through a bind mount of --out, as by its own name: the earlier run's frames/ as --source of a run that
    removes those frames first, and an image inside frames/ as --source of a run that writes frames/."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images), "--annotate", "frames"]) == 0
    import shutil

    shutil.copy(images / "im0.png", out / "frames" / "mine.png")
    before = {p.name: p.read_bytes() for p in (out / "frames").iterdir()}
    bound = bind_mount(out)
    for where in (out, bound):  # its own name, then the bind mount's
        capsys.readouterr()
        assert main([*common, "--source", str(where / "frames"), "--annotate", "none"]) == 2
        assert f"--source {where / 'frames'} is an earlier run's frames under --out" in capsys.readouterr().err
        assert main([*common, "--source", str(where / "frames" / "mine.png"), "--annotate", "frames"]) == 2
        assert "is where this run writes frames (under --out" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == before


@pytest.mark.parametrize("name", ["annotated.part.mp4", "annotated.part.avi"])
def test_a_source_at_the_video_s_temporary_name_is_refused_as_an_output(
    plan_dir: Path, tmp_path: Path, name: str, capsys
) -> None:
    """A video run writes its annotated video under a .part name first (annotated.part.avi where OpenCV cannot
    write MP4): a --source there, in an --out that holds no earlier run, is where this run writes, and is
    refused as the other outputs are, not taken for a file of the user's to move."""
    out = tmp_path / "out"
    out.mkdir()
    clip = write_video(out / name, 3)
    data = clip.read_bytes()
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --source {clip} is where this run writes {name} (under --out {out}): it would overwrite "
        "its own input; choose another --out\n"
    )
    assert clip.read_bytes() == data and os.listdir(out) == [name]
    assert main([*argv, "--annotate", "frames", "--max-frames", "1"]) == 0  # a run of frames writes no video


def test_a_run_refused_once_it_holds_out_leaves_it_as_it_found_it(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A run refused by the checks it makes holding --out's lock (_sinks') left the lock file it made there, and
    the --out folder (with its parents) it made for it. Neither stays; a lock file that was there does."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keypoints.jsonl").write_bytes(b"my notes\n")
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--annotate", "none"]
    assert main([*argv, "--out", str(mine)]) == 2
    assert "holds keypoints.jsonl, which no finished dpupose run wrote" in capsys.readouterr().err
    assert os.listdir(mine) == ["keypoints.jsonl"]
    (mine / ".dpupose.lock").write_bytes(b"")  # an earlier run's
    assert main([*argv, "--out", str(mine)]) == 2
    assert sorted(os.listdir(mine)) == [".dpupose.lock", "keypoints.jsonl"]

    def refused(*args) -> None:
        raise UsageError("refused")

    monkeypatch.setattr(app, "_check_nothing_of_yours_is_replaced", refused)
    assert main([*argv, "--out", str(tmp_path / "new" / "out")]) == 2
    assert "refused" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["mine"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "dpu1.onnx").unlink(), "dpu1.onnx, which is missing"),
        (lambda d: _edit_plan(d, version=2), "plan version 2 is newer"),
        (lambda d: _edit_plan(d, fingerprint="0x1"), None),  # no overlay given on a PC: runs
    ],
)
def test_bad_plans_stop_with_a_clear_message(tmp_path: Path, images: Path, capsys, edit, message) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")
    edit(tmp_path / "plan")
    rc = main(["run", "--plan", str(tmp_path / "plan"), "--backend", "cpu", "--source", str(images)])
    err = capsys.readouterr().err
    if message is None:
        assert rc == 0
    else:
        assert rc == 2 and err.startswith("dpupose: error: ") and message in err and "Traceback" not in err


def test_local_decoding_of_a_plan_without_heatmaps_stops_before_any_runner(
    tmp_path: Path, images: Path, capsys, monkeypatch
) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")
    _edit_plan(tmp_path / "plan", outputs={"coords": "coords", "heatmaps": None})
    base = ["run", "--plan", str(tmp_path / "plan"), "--backend", "cpu", "--source", str(images)]
    assert main(base) == 0  # DSNT needs only the coordinates
    capsys.readouterr()
    monkeypatch.setattr(app, "RunnerFactory", lambda *a, **k: pytest.fail("runners opened"))
    assert main([*base, "--decode", "local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: ")
    assert "outputs coordinates only; use the dsnt decoder (--decode dsnt;" in err


def _edit_plan(folder: Path, **fields: object) -> None:
    data = json.loads((folder / PLAN_FILE).read_text())
    data.update(fields)
    (folder / PLAN_FILE).write_text(json.dumps(data))


def test_wrong_source_and_options(plan_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["run", "--plan", str(plan_dir), "--backend", "cpu"]
    assert main([*base, "--source", str(tmp_path / "none.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # An image's name said only 'image source X does not exist'; a video's said what to pass, as both do now.
    assert main([*base, "--source", str(tmp_path / "none.jpg")]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: image source {tmp_path / 'none.jpg'} does not exist: pass an image folder, an image, a "
        "video file or camera:N\n"
    )
    assert main([*base, "--source", ""]) == 2  # not the current folder
    assert "--source is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # refused while the command line is read
        main([*base, "--source", str(tmp_path), "--max-frames", "0"])
    assert exc.value.code == 2
    assert "argument --max-frames: must be at least 1" in capsys.readouterr().err


def test_no_decodable_input_is_an_error(plan_dir: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a PNG signature and nothing else
    out = tmp_path / "out"
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(folder), "--out", str(out)])
    assert rc == 2
    captured = capsys.readouterr()
    assert "none of the 2 input(s)" in captured.err
    record = json.loads((out / "run.json").read_text())
    assert record["skipped_inputs"] == 2  # the record is still written
    # No annotated frame was written: no frames/ folder is left, listed in run.json or said on stdout.
    assert record["outputs"] == ["keypoints.jsonl"] and sorted(p.name for p in out.iterdir()) == [
        ".dpupose.lock",
        "keypoints.jsonl",
        "run.json",
    ]
    assert f"wrote {out / 'frames'}" not in captured.out and "wrote" in captured.out


def test_a_frames_folder_of_an_earlier_run_stays_when_no_frame_is_written(plan_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "old.jpg").write_bytes(b"an earlier run's frame")
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(folder), "--out", str(out)])
    assert rc == 2
    assert (out / "frames" / "old.jpg").read_bytes() == b"an earlier run's frame"
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl"]


def test_a_video_without_frames_is_an_error_and_lists_no_video(plan_dir: Path, tmp_path: Path, capsys) -> None:
    # An AVI OpenCV's writer closed before any frame: it opens, and the first read ends it. The run said
    # "0 frames", exited 0, and listed annotated.mp4 in run.json and on stdout, which it never made.
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    writer.release()
    out = tmp_path / "out"
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(empty), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert f"dpupose: error: {empty} gave no frame: a video with no frames" in captured.err
    assert "annotated" not in captured.out and not (out / "annotated.mp4").exists()
    record = json.loads((out / "run.json").read_text())
    assert record["frames"] == 0 and record["outputs"] == ["keypoints.jsonl"]
    assert record["recent_fps"] is None  # not measured (runtime.md's null), not a rate of 0
    assert (out / "keypoints.jsonl").read_bytes() == b""


class Interrupted(FrameSource):
    """Frames from a list; a real signal (SIGINT unless told) arrives while frame `at` is being read."""

    def __init__(self, n: int, at: int, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.n, self.at, self.signum, self.closed = n, at, signum, False

    def __iter__(self):
        rng = np.random.default_rng(0)
        for i in range(self.n):
            if i == self.at:
                signal.raise_signal(self.signum)
            yield Frame(i, rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), "camera:0")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler, as a user at a terminal has: a process started in the background by a
    non-interactive shell (as CI may) ignores SIGINT, and Python then installs none."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("mode", [[], ["--pipeline"]])
@pytest.mark.parametrize(
    ("signum", "rc_want", "said"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_or_sigterm_keeps_and_finalizes_outputs(
    plan_dir: Path, tmp_path: Path, monkeypatch, mode, signum, rc_want, said, capsys, sigint_raises
) -> None:
    # SIGTERM is how a service manager, `kill` or `timeout` stops a run on the board: it must end as Ctrl-C does.
    source = Interrupted(50, at=5, signum=signum)
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: source)
    out = tmp_path / "out"
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out), *mode])
    assert rc == rc_want and f"{said}; outputs so far are kept" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler is gone again
    n = len(lines(out / "keypoints.jsonl"))
    assert n <= 5 if mode else n == 5
    assert video_frames(out / "annotated.mp4") == n
    run = json.loads((out / "run.json").read_text())
    assert run["interrupted"] and run["frames"] == n
    assert source.closed


def _proc_status_mb(field: str) -> float:
    """A field of /proc/self/status in MB: the kernel's own account, read apart from getrusage."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1e3  # kB
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="Linux /proc")
def test_run_json_records_the_peak_memory_of_the_run(plan_dir: Path, images: Path, tmp_path: Path, capsys) -> None:
    resident = _proc_status_mb("VmRSS")  # the process holds at least this much during the run
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    peak = json.loads((tmp_path / "o" / "run.json").read_text())["peak_rss_mb"]
    assert resident - 1 <= peak <= _proc_status_mb("VmHWM") + 0.1  # the kernel's high-water mark, read after
    assert f"peak memory {peak:.0f} MB" in capsys.readouterr().out


def test_camera_unplugged_stops_cleanly_with_outputs_kept(plan_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    FakeCapture.made = []
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture.factory([[10, 20, 30, 40], None, None]))
    # The camera's video follows the wall clock: here frames are processed 0.1 s apart (a 30 fps camera, so
    # each is written three times).
    ticks = itertools.count(0.0, 0.1)
    video_sink = app.VideoSink
    monkeypatch.setattr(app, "VideoSink", lambda *a, **kw: video_sink(*a, **kw, clock=lambda: next(ticks)))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out)]
    rc = main([*argv, "--pipeline", "--camera-retries", "2", "--camera-retry-delay", "0"])
    monkeypatch.undo()  # cv2.VideoCapture again, to read the output back
    err = capsys.readouterr().err
    assert rc == 2
    assert "camera 0 stopped delivering frames" in err and "4 frames were processed before that" in err
    assert str(out / "keypoints.jsonl") in err
    assert [r["frame"] for r in lines(out / "keypoints.jsonl")] == [0, 1, 2, 3]
    assert video_frames(out / "annotated.mp4") == 10  # 0.3 s at 30 fps, then the last frame
    assert FakeCapture.made[0].props == {cv2.CAP_PROP_BUFFERSIZE: 1}  # frames read when taken: the newest


@pytest.mark.parametrize("mode", [[], ["--pipeline"]])
def test_a_camera_whose_read_raises_is_reconnected_then_stops_in_one_line(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys, caplog, mode
) -> None:
    # Some drivers' errors come out of read() as cv2.error instead of False: the run ended in a traceback,
    # without reconnecting.
    gone = cv2.error("VIDIOC_DQBUF: No such device")
    FakeCapture.made = []
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture.factory([[10, 20, 30, gone], [gone], None]))
    ticks = itertools.count(0.0, 0.1)  # frames processed 0.1 s apart, from a 30 fps camera
    video_sink = app.VideoSink
    monkeypatch.setattr(app, "VideoSink", lambda *a, **kw: video_sink(*a, **kw, clock=lambda: next(ticks)))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out), *mode]
    with caplog.at_level("WARNING"):
        rc = main([*argv, "--camera-retries", "2", "--camera-retry-delay", "0"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    said = "camera 0: no frame (unplugged?: VIDIOC_DQBUF: No such device); reconnecting"
    assert [r.getMessage()[: len(said)] for r in caplog.records if "reconnecting" in r.getMessage()] == [said] * 2
    last = err.splitlines()[-1]
    assert last.startswith(  # the last reopen did not open: nothing raised that time
        "dpupose: error: camera 0 stopped delivering frames (unplugged?) and did not come back after 2 reconnect"
    )
    assert "3 frames were processed before that" in last
    assert len(FakeCapture.made) == 3 and all(c.released for c in FakeCapture.made)
    assert [r["frame"] for r in lines(out / "keypoints.jsonl")] == [0, 1, 2]
    assert video_frames(out / "annotated.mp4") == 7  # 0.2 s at 30 fps, then the last frame
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] == 3 and run["outputs"] == ["keypoints.jsonl", "annotated.mp4"]


def test_camera_with_drop_late_keeps_the_driver_queue(plan_dir: Path, tmp_path: Path, monkeypatch) -> None:
    FakeCapture.made = []
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture.factory([[10, 20]]))
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--drop-late"]
    assert main([*argv, "--max-frames", "2", "--out", str(tmp_path / "out")]) == 0
    assert FakeCapture.made[0].props == {}  # read continuously: the pipeline drops what it cannot take
    assert json.loads((tmp_path / "out" / "run.json").read_text())["pipelined"] is True  # implies --pipeline


def scripted(script: list):
    """A video file's capture that reads `script` (FakeCapture's), then ends."""
    return lambda path: FakeCapture(script)


@pytest.mark.parametrize("mode", [[], ["--pipeline"]])
def test_video_frames_that_change_size_or_come_grey_run_at_their_own_size(
    plan_dir: Path, tmp_path: Path, monkeypatch, caplog, mode
) -> None:
    # A grey (H, W) or BGRA frame, as some capture back ends deliver, stopped the run with a numpy broadcasting
    # traceback; a frame of another size was scaled into the video without a word.
    grey64 = media.grey(90)
    script = [grey64, media.grey(90, 96, 128), grey64[:, :, 0].copy(), cv2.cvtColor(grey64, cv2.COLOR_BGR2BGRA)]
    video = tmp_path / "in.avi"
    video.write_bytes(b"read by the scripted capture")
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: sources.VideoFileSource(spec, scripted(script)))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(video), "--out", str(out), *mode]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    monkeypatch.undo()
    kp = [np.array(r["keypoints"]) for r in lines(out / "keypoints.jsonl")]
    assert len(kp) == 4
    # The same picture at twice the size: the same joints, in its own pixels (pixel centres at integers).
    np.testing.assert_allclose(kp[1], 2 * (kp[0] + 0.5) - 0.5, atol=0.02)
    np.testing.assert_array_equal(kp[2], kp[0])  # grey, as three equal channels
    np.testing.assert_array_equal(kp[3], kp[0])  # BGRA, its alpha dropped
    assert "annotated.mp4: frame 1 is 128x96, not 64x48 as the first: the video scales it" in caplog.text
    assert caplog.text.count("as the first") == 1
    cap = cv2.VideoCapture(str(out / "annotated.mp4"))
    sizes = []
    while (got := cap.read())[0]:
        sizes.append(got[1].shape)
    assert sizes == [(48, 64, 3)] * 4


def test_a_video_frame_of_a_form_the_run_cannot_take_stops_it_in_one_line(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    script = [media.grey(90), media.grey(90), np.zeros((48, 64, 3), np.uint16)]
    video = tmp_path / "in.avi"
    video.write_bytes(b"read by the scripted capture")
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: sources.VideoFileSource(spec, scripted(script)))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(video), "--out", str(out)]
    assert main([*argv, "--pipeline"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith(
        "dpupose: error: in.avi: frame 2 is uint16 of shape (48, 64, 3), not an 8-bit colour or grey image"
    )
    assert err.count("\n") == 1 and "2 frames were processed before that" in err
    assert len(lines(out / "keypoints.jsonl")) == 2
    assert json.loads((out / "run.json").read_text())["frames"] == 2


@pytest.mark.parametrize("mode", [[], ["--pipeline"]])
def test_a_video_cut_short_runs_to_its_last_whole_frame_and_says_so(
    plan_dir: Path, tmp_path: Path, caplog, mode
) -> None:
    video = write_video(tmp_path / "in.avi", 8)
    data = video.read_bytes()
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    video.write_bytes(data[: soi[5]])  # a copy or a recording stopped before frame 5 (and the AVI's index)
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(video), "--out", str(out), *mode]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "in.avi: the last frame(s) 5-7 of 8 could not be decoded (a file cut short?)" in caplog.text
    assert [r["frame"] for r in lines(out / "keypoints.jsonl")] == [0, 1, 2, 3, 4]
    assert video_frames(out / "annotated.mp4") == 5
    run = json.loads((out / "run.json").read_text())
    assert run["frames"] == 5 and run["skipped_inputs"] == 3


def test_an_mp4_cut_short_is_refused_saying_it_may_be(plan_dir: Path, tmp_path: Path, capsys) -> None:
    # An MP4's index is written at its end: a recording stopped before it does not open at all.
    path = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV writes no MP4")
    for i in range(10):
        writer.write(media.grey(20 * i))
    writer.release()
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 5])
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(path), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"dpupose: error: cannot open video {path}: not a video OpenCV can decode, or one cut short (an MP4 or MOV "
        "recording stopped before its end has no index and does not open); check that it plays, or pass another "
        "--source\n"
    )


def test_a_plan_fix_point_other_than_the_subgraph_file_s_is_named(tmp_path: Path, images: Path, caplog) -> None:
    tinyplan.write_split_plan(tmp_path / "plan")
    data = json.loads((tmp_path / "plan" / PLAN_FILE).read_text())
    sg = data["subgraphs"][0]
    real = sg["inputs"][0]["fix_point"]
    sg["inputs"][0]["fix_point"] = real + 3  # an edited plan.json
    (tmp_path / "plan" / PLAN_FILE).write_text(json.dumps(data))
    argv = ["run", "--plan", str(tmp_path / "plan"), "--backend", "emulate", "--source", str(images)]
    with caplog.at_level("WARNING"):
        assert main([*argv, "--max-frames", "1"]) == 0
    assert f"has fix_point {real} in {sg['file']} but {real + 3} in the plan; using the file's" in caplog.text


def test_a_video_that_does_not_read_back_fails_the_run_and_keeps_its_part_name(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    # What a full disk leaves (OpenCV's writer reports nothing): the run said it wrote annotated.mp4, exit 0.
    from dpupose.runtime import sinks

    monkeypatch.setattr(sinks, "_reads_back", lambda path: False)
    video, out = write_video(tmp_path / "in.avi", 3), tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(video), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"dpupose: error: the annotated video {out / 'annotated.mp4'} could not")
    assert sorted(p.name for p in out.iterdir()) == ["annotated.part.mp4", "keypoints.jsonl", "run.json"]
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl"]  # not the video


def test_an_out_folder_another_run_is_writing_is_refused(plan_dir: Path, images: Path, tmp_path: Path, capsys) -> None:
    # Both runs opened keypoints.jsonl at once (emptying it) and wrote their lines over each other's.
    import os

    from dpupose.fsio import lock_folder

    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(argv) == 0
    earlier = (out / "keypoints.jsonl").read_bytes()
    with lock_folder(out, "dpupose run"):  # as another process's run holds it
        assert main(argv) == 2
    assert capsys.readouterr().err.endswith(
        f"dpupose: error: --out {out} is in use by another `dpupose run` (process {os.getpid()}): wait for it to "
        "end, or choose another --out\n"
    )
    assert (out / "keypoints.jsonl").read_bytes() == earlier
    assert main(argv) == 0  # the lock went with the run that held it


@pytest.mark.parametrize("code", ["ENOLCK", "EOPNOTSUPP"])
def test_a_file_system_without_locks_still_runs(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch, caplog, code: str
) -> None:
    # NFS without its lock service answers flock with ENOLCK: the lock that keeps a second run out cannot be
    # had there, which stopped every run with 'dpupose: error: No locks available' (they ran before it).
    import errno
    import fcntl

    def flock(fd, op):
        raise OSError(getattr(errno, code), "No locks available")

    monkeypatch.setattr(fcntl, "flock", flock)
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert len(lines(out / "keypoints.jsonl")) == len(list(images.iterdir()))
    assert f"--out {out}: its file system takes no lock" in caplog.text


@pytest.mark.parametrize(
    ("source", "name", "kind"),
    [
        ("images", "keypoints.jsonl", "a FIFO"),
        ("images", "run.json", "a FIFO"),
        ("images", "keypoints.jsonl", "a folder"),
        ("images", "frames", "a FIFO"),
        ("video", "annotated.mp4", "a FIFO"),
        ("video", "annotated.part.mp4", "a FIFO"),
    ],
)
def test_an_output_name_taken_by_a_fifo_or_folder_is_refused_before_any_work(
    plan_dir: Path, images: Path, tmp_path: Path, source: str, name: str, kind: str
) -> None:
    """A FIFO at keypoints.jsonl blocked the run for ever in its open; one at run.json or the video (written
    aside and renamed) was refused, or replaced by a file, only once every frame was done. A subprocess with a
    timeout, so that a run that blocks fails the test instead of hanging it."""
    import os
    import stat
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    if kind == "a FIFO":
        os.mkfifo(out / name)
    else:
        (out / name).mkdir()
    src = images if source == "images" else write_video(tmp_path / "clip.avi", 2)
    argv = [sys.executable, "-m", "dpupose", "run", "--plan", str(plan_dir), "--backend", "cpu"]
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
        argv += ["--source", str(src), "--out", str(out)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dpupose run blocked on {kind} at {name}")
    what = "a folder" if name == "frames" else "a file"
    output = "annotated frames" if name == "frames" else name
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"dpupose: error: {out / name} is {kind}, not {what}, and this run writes its {output} there: move it "
        "away, or choose another --out\n"
    )
    assert os.listdir(out) == [name]  # nothing written, not even the lock: refused before any work
    assert stat.S_ISFIFO(os.stat(out / name).st_mode) == (kind == "a FIFO")


@pytest.mark.parametrize(
    ("source", "name", "kind"),
    [
        ("images", "im1.jpg", "a FIFO"),
        ("images", ".im2.part.jpg", "a FIFO"),  # the name a frame is written as before its rename
        ("images", "im3.jpg", "a folder"),
        ("video", "000001.jpg", "a FIFO"),
    ],
)
def test_a_frame_name_taken_by_a_fifo_or_folder_is_refused_before_any_work(
    plan_dir: Path, images: Path, tmp_path: Path, source: str, name: str, kind: str
) -> None:
    """frames/ of an earlier run: a FIFO at a frame's name was replaced by the frame (at the name it is written
    as, the write blocked for ever), and a folder there failed the run at that frame. Refused before the run
    takes its lock or writes anything; the earlier run's frames and keypoints stay as they were, and a FIFO at
    a name this run does not write is no reason to refuse (the last run below writes its frames beside it)."""
    import os
    import stat
    import subprocess

    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    earlier = '{"frame": 0, "source": "im0.png", "keypoints": [], "confidence": [], "timings_ms": {}}\n'
    (out / "keypoints.jsonl").write_text(earlier)  # a run's record: the folder is an earlier run's
    _finished(out)  # which wrote frames/
    (out / "frames" / "im0.jpg").write_bytes(b"earlier frame")
    if kind == "a FIFO":
        os.mkfifo(out / "frames" / name)
    else:
        (out / "frames" / name).mkdir()
    before = sorted(os.listdir(out / "frames"))
    src = images if source == "images" else write_video(tmp_path / "clip.avi", 3)
    argv = [sys.executable, "-m", "dpupose", "run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    argv += ["--source", str(src), "--annotate", "frames"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "sw")}
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dpupose run blocked on {kind} at frames/{name}")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"dpupose: error: {out / 'frames' / name} is {kind}, not a file, and this run writes an annotated frame "
        "there: move it away, or choose another --out\n"
    )
    assert sorted(os.listdir(out)) == ["frames", "keypoints.jsonl", "run.json"]  # not even the lock: before any work
    assert sorted(os.listdir(out / "frames")) == before
    assert (out / "keypoints.jsonl").read_text() == earlier
    assert (out / "frames" / "im0.jpg").read_bytes() == b"earlier frame"
    assert stat.S_ISFIFO(os.stat(out / "frames" / name).st_mode) == (kind == "a FIFO")
    # Moved away, the run writes its frames; a FIFO at a name it does not write stays beside them.
    os.rename(out / "frames" / name, tmp_path / "moved")
    os.mkfifo(out / "frames" / "other.jpg")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    stems = ["im0", "im1", "im2", "im3"] if source == "images" else ["000000", "000001", "000002"]
    written = {f"{stem}.jpg" for stem in stems}
    assert set(os.listdir(out / "frames")) == {"other.jpg"} | written  # the earlier run's im0.jpg removed
    assert stat.S_ISFIFO(os.stat(out / "frames" / "other.jpg").st_mode)


def test_frames_of_an_earlier_run_of_many_images_are_checked_in_one_pass(tmp_path: Path) -> None:
    """The check of frames/ before a run looked each entry up by going over every image of the source: an
    image folder of thousands run again into its --out took minutes (MPII's 25 000 images, half an hour) before the
    first frame. 3000 images and their 3000 earlier frames are checked in well under a second (a FIFO at the
    last frame's name, so every entry is looked up), and the names it may write are those it looked up."""
    import os
    import time

    from dpupose.errors import UsageError
    from dpupose.runtime.app import RunOptions, _check_outputs_are_files
    from dpupose.runtime.sinks import frame_stems, may_write_frame

    stems = frame_stems(["a.jpg", "a.png", ".hidden.png"])
    assert [may_write_frame(n, stems) for n in ("a.jpg", "a.png.jpg", ".a.png.part.jpg", "a.png", "b.jpg")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert may_write_frame(".hidden.jpg", stems) and may_write_frame("000012.jpg", None)
    assert may_write_frame(".000012.part.jpg", None)
    # a video's frames are numbers of 6 digits or more; a part name is hidden: no other name is refused
    assert not any(may_write_frame(n, None) for n in ("12.jpg", "abcdef.jpg", "x000012.part.jpg"))
    assert not may_write_frame("im2.part.jpg", frame_stems(["m2.png"]))  # it writes m2.jpg and .m2.part.jpg

    src, frames = tmp_path / "src", tmp_path / "out" / "frames"
    src.mkdir()
    frames.mkdir(parents=True)
    n = 3000
    for i in range(n):
        (src / f"im{i:05d}.png").touch()
        if i < n - 1:
            (frames / f"im{i:05d}.jpg").touch()
    os.mkfifo(frames / f"im{n - 1:05d}.jpg")
    opts = RunOptions(plan=tmp_path / "plan", source=str(src), out=tmp_path / "out", annotate="frames")
    start = time.perf_counter()
    with pytest.raises(UsageError, match=rf"im{n - 1:05d}\.jpg is a FIFO, not a file"):
        _check_outputs_are_files(opts)
    assert time.perf_counter() - start < 3


def test_a_frame_name_of_a_single_image_source_taken_by_a_fifo_is_refused_before_any_work(tmp_path: Path) -> None:
    """--source one image file writes frames/STEM.jpg: a FIFO there is refused by the check before the run,
    as for an image folder's frames, and a FIFO at another image's name is not."""
    import os

    from dpupose.errors import UsageError
    from dpupose.runtime.app import RunOptions, _check_outputs_are_files

    image, frames = tmp_path / "shot.png", tmp_path / "out" / "frames"
    image.touch()
    frames.mkdir(parents=True)
    os.mkfifo(frames / "other.jpg")
    opts = RunOptions(plan=tmp_path / "plan", source=str(image), out=tmp_path / "out", annotate="frames")
    _check_outputs_are_files(opts)
    os.mkfifo(frames / "shot.jpg")
    with pytest.raises(UsageError, match=r"frames/shot\.jpg is a FIFO, not a file, and this run writes an annotated"):
        _check_outputs_are_files(opts)


def test_options_out_of_range_are_refused_by_the_library_too(plan_dir: Path, images: Path) -> None:
    """app.run, called without the command line's checks (the notebook, a script), refuses them itself."""
    for field, value, message in [
        ("threads", 0, "--threads must be at least 1"),
        ("max_frames", 0, "--max-frames must be at least 1"),
        ("dpu_jobs", 0, "--dpu-jobs must be at least 1"),
        ("annotate", "all", "--annotate must be one of auto, frames, video, none"),
    ]:
        opts = app.RunOptions(plan_dir, str(images), backend="cpu", **{field: value})
        with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
            app.run(opts)


def test_a_pipelined_run_gives_each_dpu_subgraph_its_dpu_jobs(plan_dir: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main([*argv, "--pipeline", "--dpu-jobs", "3"]) == 0
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert {name: s["workers"] for name, s in stages.items()} == {
        "preprocess": 1,
        "dpu0": 3,
        "cpu0": 1,
        "dpu1": 3,
        "head": 1,
        "postprocess": 1,
    }
    assert all(s["frames"] == 4 for s in stages.values())


def test_q_in_the_window_stops_the_run_after_that_frame(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    for name in ("namedWindow", "imshow", "destroyWindow"):
        monkeypatch.setattr(cv2, name, lambda *a: None)
    monkeypatch.setattr(cv2, "waitKey", lambda delay: ord("q"))
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out), "--show"]
    assert main(argv) == 0
    assert [line["source"] for line in lines(out / "keypoints.jsonl")] == ["im0.png"]
    assert json.loads((out / "run.json").read_text())["frames"] == 1


def test_the_first_sink_that_cannot_finalize_is_the_error_and_every_sink_is_closed(caplog) -> None:
    class Broken(app.Sink):
        def __init__(self, name: str) -> None:
            self.name, self.closed = name, False

        def close(self) -> None:
            self.closed = True
            raise OSError(f"{self.name} could not be written")

    sinks = [Broken("first"), Broken("second")]
    summary = app.RunSummary("cpu", app.RunStats.for_stages(["preprocess"]))
    failed = app._finish(summary, sinks, FrameSource(), None, app.RunOptions(Path("plan"), "images"))
    assert str(failed) == "first could not be written" and all(s.closed for s in sinks)
    assert "could not finalize Broken: second could not be written" in caplog.text


def test_an_interrupted_run_whose_video_cannot_be_finalized_still_ends_as_interrupted(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys, caplog, sigint_raises
) -> None:
    """Ctrl-C, then the video does not read back (a full disk): the run ends as interrupted (130), the
    video's error logged, not raised in place of the interruption."""
    from dpupose.runtime import sinks

    monkeypatch.setattr(sinks, "_reads_back", lambda path: False)
    monkeypatch.setattr(app, "open_source", lambda spec, **kw: Interrupted(20, at=3, signum=signal.SIGINT))
    out = tmp_path / "out"
    rc = main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", "camera:0", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted; outputs so far are kept" in err
    assert f"could not finalize VideoSink: the annotated video {out / 'annotated.mp4'} could not" in caplog.text
    run = json.loads((out / "run.json").read_text())
    assert run["interrupted"] and run["frames"] == 3 and run["outputs"] == ["keypoints.jsonl"]


def test_outputs_of_another_program_in_out_are_not_called_an_earlier_run_s(
    plan_dir: Path, images: Path, tmp_path: Path, caplog
) -> None:
    """An --out that no run wrote (no keypoints.jsonl or run.json): its annotated.mp4 is no earlier run's, and
    is neither removed nor warned of."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotated.mp4").write_bytes(b"a video of its own")
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "still holds" not in caplog.text and (out / "annotated.mp4").read_bytes() == b"a video of its own"


def test_annotations_without_an_out_folder_are_refused(plan_dir: Path, images: Path, capsys) -> None:
    for mode in ("frames", "video"):
        assert (
            main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--annotate", mode]) == 2
        )
        assert capsys.readouterr().err.strip() == f"dpupose: error: --annotate {mode} needs --out DIR"


def test_one_image_as_the_source_is_annotated_as_a_frame_not_a_video(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    source = images / "im2.png"
    assert main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(source), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["im2.jpg"]
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl", "frames"]


@pytest.mark.parametrize("decode", ["dsnt", "local"])
@pytest.mark.parametrize("sha", [False, True], ids=["no-sha256", "sha256"])
def test_a_run_reads_each_plan_file_once(tmp_path: Path, images: Path, monkeypatch, decode: str, sha: bool) -> None:
    """The heatmaps check (check_decode before the runners, SplitExecutor after) and the ONNX Runtime session of
    the subgraph whose graph it reads share one read of its file: a run opens each subgraph file once, plus
    once to check its sha256 on loading the plan where the plan records one (it used to read head.onnx three
    more times with --decode local, once more without)."""
    import builtins
    import collections
    import hashlib
    import io

    import onnxruntime as ort

    folder = tmp_path / "plan"
    tinyplan.write_split_plan(folder)
    if sha:
        data = json.loads((folder / PLAN_FILE).read_text())
        for sg in data["subgraphs"]:
            sg["sha256"] = hashlib.sha256((folder / sg["file"]).read_bytes()).hexdigest()
        (folder / PLAN_FILE).write_text(json.dumps(data))
    reads: collections.Counter[str] = collections.Counter()
    real_open, session = io.open, ort.InferenceSession

    def counted_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).parent == folder and "r" in mode:
            reads[Path(file).name] += 1
        return real_open(file, mode, *args, **kwargs)

    class CountedSession(session):  # ONNX Runtime reads a file it is given by path itself
        def __init__(self, model, *args, **kwargs) -> None:
            if isinstance(model, (str, Path)) and Path(model).parent == folder:
                reads[Path(model).name] += 1
            super().__init__(model, *args, **kwargs)

    monkeypatch.setattr(io, "open", counted_open)
    monkeypatch.setattr(builtins, "open", counted_open)
    monkeypatch.setattr(ort, "InferenceSession", CountedSession)
    argv = ["run", "--plan", str(folder), "--backend", "cpu", "--source", str(images), "--max-frames", "1"]
    assert main([*argv, "--annotate", "none", "--out", str(tmp_path / "out"), "--decode", decode]) == 0
    onnx_reads = {name: n for name, n in reads.items() if name.endswith(".onnx")}
    assert onnx_reads == {name: 1 + sha for name in ("dpu0.onnx", "cpu0.onnx", "dpu1.onnx", "head.onnx")}


def test_a_plan_file_with_external_data_runs_as_its_own_folder_says(tmp_path: Path, images: Path, monkeypatch) -> None:
    """A subgraph file that keeps its weights beside it (ONNX external data: onnx.save(...,
    save_as_external_data=True)) is loaded by ONNX Runtime from its path, which finds them in the plan folder;
    the heatmaps check reads the file once for the runner too (above), but from its bytes ONNX Runtime looks
    for them in the current folder: the run failed ("External data path ... does not exist"), or read a
    same-named file there. The keypoints are the plan's with its weights inside its file."""
    import onnx

    plain, external = tmp_path / "plain", tmp_path / "external"
    tinyplan.write_split_plan(plain)
    tinyplan.write_split_plan(external)
    model = onnx.load(str(external / "head.onnx"))
    assert any(t.name == "grid" for t in model.graph.initializer)
    # the soft-argmax grid (512 bytes) goes to head.data; the reshapes' small shapes stay inside
    onnx.save(model, str(external / "head.onnx"), save_as_external_data=True, location="head.data", size_threshold=100)
    assert (external / "head.data").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for plan in (plain, external):
        argv = ["run", "--plan", str(plan), "--backend", "cpu", "--source", str(images), "--annotate", "none"]
        assert main([*argv, "--out", str(tmp_path / f"out-{plan.name}"), "--decode", "local"]) == 0
    got, want = lines(tmp_path / "out-external" / "keypoints.jsonl"), lines(tmp_path / "out-plain" / "keypoints.jsonl")
    assert [r["keypoints"] for r in got] == [r["keypoints"] for r in want] and len(got) == 4


def test_the_command_passes_every_option_on_and_prints_the_summary_line_by_line(tmp_path, monkeypatch, capsys):
    """`dpupose run` hands the runtime each option as given (and its defaults otherwise), and prints the run's
    summary: here 40 frames in 8 s through a preprocess stage of 5 ms and a DPU stage of 100 ms in 2 workers,
    and a CPU stage that never ran (not printed). Pipelined, the bound is 1 / max(5, 100 / 2) ms = 20 FPS;
    sequential 1 / (5 + 100) ms = 9.52 FPS."""
    from dpupose.runtime.frames import FPS_WINDOW_TEXT
    from dpupose.runtime.pipeline import RunStats, StageStats

    seen: list[app.RunOptions] = []

    def stats(pipelined: bool) -> RunStats:
        stages = [StageStats("preprocess", 1, 40, 0.2), StageStats("dpu0", 2, 40, 4.0), StageStats("cpu0", 1, 0, 0.0)]
        return RunStats({s.name: s for s in stages}, frames=40, wall_seconds=8.0, pipelined=pipelined, recent_fps=5.5)

    summaries = [
        app.RunSummary("emulate", stats(True), outputs=[tmp_path / "o" / "keypoints.jsonl"], skipped=3,
                       peak_rss_mb=123.4),
        app.RunSummary("cpu", stats(False)),
    ]  # fmt: skip

    def run(opts, progress):
        seen.append(opts)
        return summaries[len(seen) - 1]

    monkeypatch.setattr(app, "run", run)
    argv = ["run", "--plan", "p", "--backend", "emulate", "--source", "camera:1", "--out", str(tmp_path / "o"),
            "--drop-late", "--max-frames", "9", "--threads", "3", "--overlay", "ov", "--dpu-jobs", "4", "--show",
            "--annotate", "video", "--fast-emulator", "--min-confidence", "0.25", "--decode", "local",
            "--camera-retries", "7", "--camera-retry-delay", "0.5"]  # fmt: skip
    assert main(argv) == 0
    assert seen[0] == app.RunOptions(
        plan=Path("p"), source="camera:1", backend="emulate", out=tmp_path / "o", pipeline=False, drop_late=True,
        max_frames=9, threads=3, overlay=Path("ov"), dpu_jobs=4, show=True, annotate="video", exact=False,
        min_confidence=0.25, decode="local", report_every_s=30.0, camera_retries=7, camera_retry_delay_s=0.5,
    )  # fmt: skip
    # (stderr is not a terminal here: a progress line every 30 s)
    assert capsys.readouterr().out.splitlines() == [
        "backend emulate: 40 frames in 8.00 s, 5.00 FPS over the whole run (pipelined; stage bound 20.00 FPS)",
        f"  at the end 5.50 FPS ({FPS_WINDOW_TEXT})",
        "  preprocess           5.00 ms/frame  x1",
        "  dpu0               100.00 ms/frame  x2",
        "  dropped (late) 0, skipped (unreadable) 3",
        "  peak memory 123 MB (this process, resident)",
        f"  wrote {tmp_path / 'o' / 'keypoints.jsonl'}",
    ]
    assert main(["run", "--plan", "p", "--source", "images", "--pipeline"]) == 0
    assert seen[1] == app.RunOptions(plan=Path("p"), source="images", pipeline=True, report_every_s=30.0)
    assert capsys.readouterr().out.splitlines()[0] == (
        "backend cpu: 40 frames in 8.00 s, 5.00 FPS over the whole run (sequential; stage bound 9.52 FPS)"
    )


def test_a_frames_link_of_an_earlier_run_keeps_the_folder_it_points_to(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    """An earlier run's frames/ that is a link to a folder (a user's photo folder, say): the new video run
    removed every .jpg in the folder it points to. A link to a folder is left whole."""
    out = tmp_path / "out"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"a photo")
    out.mkdir()
    (out / "frames").symlink_to(photos)
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images)]) == 0
    written = sorted(os.listdir(photos))
    assert "holiday.jpg" in written and len(written) == 5
    assert main([*common, "--source", str(write_video(tmp_path / "clip.avi", 2))]) == 0
    assert sorted(os.listdir(photos)) == written and (photos / "holiday.jpg").read_bytes() == b"a photo"
    assert (out / "frames").is_symlink()


def test_an_earlier_runs_keypoints_kept_under_another_name_outlive_the_next_run(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    """An earlier run's keypoints.jsonl kept by a hard link elsewhere (`ln OUT/keypoints.jsonl kept.jsonl`, a
    `cp -al` snapshot): the next run into --out emptied the file in place, and the kept name with it. The new
    run writes a new file."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--annotate", "none"]
    assert main([*common, "--source", str(images)]) == 0
    kept = tmp_path / "kept.jsonl"
    os.link(out / "keypoints.jsonl", kept)
    before = kept.read_bytes()
    assert len(before.splitlines()) == 4
    assert main([*common, "--source", str(images / "im0.png")]) == 0
    assert kept.read_bytes() == before
    assert [r["source"] for r in lines(out / "keypoints.jsonl")] == ["im0.png"]


def test_a_keypoints_link_to_a_runs_file_elsewhere_is_refused_and_kept(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """An --out whose keypoints.jsonl is a link to another run's (a run folder copied as links, `cp -rs`): the
    run took it for its own earlier file and emptied the one it points to, that run's records. A link there,
    as in frames/ and at the video's names, is no file a run wrote there: refused, nothing written."""
    first, out = tmp_path / "first", tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--annotate", "none", "--source", str(images)]
    assert main([*common, "--out", str(first)]) == 0
    out.mkdir()
    for name in ("keypoints.jsonl", "run.json"):
        (out / name).symlink_to(first / name)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    capsys.readouterr()
    assert main([*common, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds keypoints.jsonl, run.json, which no finished dpupose run wrote there" in err
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert sorted(os.listdir(out)) == ["keypoints.jsonl", "run.json"]


@pytest.mark.parametrize("theirs", ["keypoints.jsonl", "run.json"])
def test_a_users_own_keypoints_or_run_json_does_not_make_a_folder_a_runs(
    plan_dir: Path, tmp_path: Path, theirs: str
) -> None:
    """A folder of a user's photos with a frames/ of their own and a keypoints.jsonl (or run.json) another
    program wrote, given as --out: any file of those names made it an earlier run's, and every .jpg in frames/
    and their annotated.avi were removed before the run started. A run's folder is one whose keypoints.jsonl
    starts with a run's record or whose run.json is a run's. The file itself, which the run would write over,
    stops it before anything is removed or written; moved away, the run goes and the photos stay."""
    out = tmp_path / "photos"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "holiday.jpg").write_bytes(b"a photo")
    (out / "frames" / "000004.jpg").write_bytes(b"a camera's photo")
    (out / "annotated.avi").write_bytes(b"a video of their own")
    text = {"keypoints.jsonl": '{"image": "holiday.jpg", "keypoints": [[1, 2]]}\n', "run.json": '{"name": "trip"}'}
    (out / theirs).write_text(text[theirs])
    clip = write_video(tmp_path / "clip.avi", 1)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "none"]) == 2
    assert (out / theirs).read_text() == text[theirs]
    (out / theirs).rename(tmp_path / theirs)
    assert main([*argv, "--annotate", "none"]) == 0
    assert sorted(os.listdir(out / "frames")) == ["000004.jpg", "holiday.jpg"]
    assert (out / "frames" / "holiday.jpg").read_bytes() == b"a photo"
    assert (out / "annotated.avi").read_bytes() == b"a video of their own"


def _record(frame: object, source: object) -> str:
    return json.dumps({"frame": frame, "source": source, "keypoints": [], "confidence": [], "timings_ms": {}})


def _finished(out: Path) -> None:
    """The run.json of a finished run that wrote frames/: its records then say which frames it wrote (without
    one, a run that did not finish, only their .part.jpg names)."""
    outputs = ["keypoints.jsonl", "frames"]
    run = {"backend": "cpu", "decode": "dsnt", "skipped_inputs": 0, "fingerprint_check": None, "outputs": outputs}
    (out / "run.json").write_text(json.dumps(run))


def _run_into(out: Path, plan_dir: Path, tmp_path: Path) -> None:
    """A run into `out` that writes no frames (a video, --annotate none): what it removes is all that changes
    in frames/."""
    clip = write_video(tmp_path / "clip.avi", 1)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "none"]) == 0


def test_a_users_photos_in_frames_outlive_a_run_that_wrote_none(plan_dir: Path, tmp_path: Path) -> None:
    """A folder of a user's photos in frames/, given as --out to a run of --annotate none: that run wrote its
    keypoints.jsonl there, and the next run into the folder took it for a run's and removed every .jpg in
    frames/, photos included. Only frames the earlier run may have written go: none for a run whose run.json
    lists no frames/, and without run.json (a run that did not finish, which says nowhere whether it wrote
    any) none but the hidden .part.jpg names its records give."""
    out = tmp_path / "photos"
    (out / "frames").mkdir(parents=True)
    photos = {  # JPEGs: the last run reads them
        name: cv2.imencode(".jpg", np.full((30, 40, 3), shade, np.uint8))[1].tobytes()
        for name, shade in (("holiday.jpg", 40), ("im0.jpg", 90), ("000000.jpg", 200))  # im0: a frame's name
    }
    for name, data in photos.items():
        (out / "frames" / name).write_bytes(data)
    images = tmp_path / "images"  # images of the names of two of the photos
    images.mkdir()
    cv2.imwrite(str(images / "im0.png"), np.full((30, 40, 3), 90, np.uint8))
    cv2.imwrite(str(images / "holiday.png"), np.full((30, 40, 3), 90, np.uint8))
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--annotate", "none"]
    assert main([*argv, "--source", str(images)]) == 0
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl"]
    _run_into(out, plan_dir, tmp_path)  # a video's run: its records name 000000.jpg
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == photos
    _run_into(out, plan_dir, tmp_path)
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == photos
    # Without run.json (a run killed before its end, or stopped by a full disk at run.json) nothing says
    # whether it wrote frames: its records name 000000.jpg (frame 0 of a video), and those of a run that read
    # the photos themselves (--source photos/frames) every photo. None goes; only the hidden .part.jpg a run
    # killed while writing a frame leaves, at a name its records give.
    (out / "run.json").unlink()
    (out / "frames" / ".000000.part.jpg").write_bytes(b"a killed run's")
    _run_into(out, plan_dir, tmp_path)
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == photos
    assert main([*argv, "--source", str(out / "frames")]) == 0
    assert [r["source"] for r in lines(out / "keypoints.jsonl")] == ["000000.jpg", "holiday.jpg", "im0.jpg"]
    (out / "run.json").unlink()
    _run_into(out, plan_dir, tmp_path)
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == photos


def test_an_earlier_runs_image_frames_are_told_by_its_records(plan_dir: Path, tmp_path: Path) -> None:
    """An earlier image run's frames are the names its records give (an image's stem, its whole name for a
    second image of that stem, and the .part.jpg names of a frame being written), not every .jpg in frames/;
    a half-written last line (a run killed while writing it, its frame not written yet) and lines that are no
    run's record are passed over, and frames/ stays for what is left in it."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    records = [_record(0, "a.jpg"), _record(1, "a.png"), _record(2, "a.png.jpg"), _record(3, "x.png")]
    records += ['{"frame": 4, "source": "c.png"}', _record("5", "d.png"), _record(6, ["e.png"]), "not json"]
    long = json.loads(_record(8, "g.png")) | {"padding": "x" * app.RECORD_LINE_LIMIT}  # no run's: passed over
    records += [json.dumps(long), _record(9, "b.PNG")]  # read on after it
    records.append(_record(7, "f.png")[:30])  # the half-written last line, no newline
    (out / "keypoints.jsonl").write_text("\n".join(records))
    _finished(out)
    ours = ["a.jpg", "a.png.jpg", "a.png.jpg.jpg", ".a.part.jpg", ".a.png.jpg.part.jpg", "b.jpg"]
    theirs = ["a.jpeg.jpg", "a.jpg.jpg.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg", "000000.jpg", ".b.jpg"]
    theirs.append("bb.jpg")
    for name in [*ours, *theirs]:
        (out / "frames" / name).write_bytes(name.encode())
    (out / "frames" / "notes.txt").write_text("mine")
    _run_into(out, plan_dir, tmp_path)
    assert sorted(os.listdir(out / "frames")) == sorted([*theirs, "notes.txt"])
    assert all((out / "frames" / name).read_bytes() == name.encode() for name in theirs)


def test_an_earlier_runs_numbered_frames_are_told_by_its_records(plan_dir: Path, tmp_path: Path) -> None:
    """A video's or camera's run: the frame numbers its records give (a video's skipped frames leave gaps),
    and frames/ goes when nothing else is left in it."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    records = [_record(0, "clip.mp4"), _record(2, "clip.mp4"), _record(1234567, "camera:0"), _record(5, "x")]
    (out / "keypoints.jsonl").write_text("\n".join(records) + "\n")
    _finished(out)
    ours = ["000000.jpg", "000002.jpg", "1234567.jpg", ".000005.part.jpg"]
    theirs = ["000001.jpg", "clip.jpg", "clip.mp4.jpg", "0.jpg", "000005.png"]
    for name in [*ours, *theirs]:
        (out / "frames" / name).write_bytes(b"x")
    _run_into(out, plan_dir, tmp_path)
    assert sorted(os.listdir(out / "frames")) == sorted(theirs)
    for name in theirs:
        (out / "frames" / name).unlink()
    (out / "keypoints.jsonl").write_text(records[0] + "\n")
    _finished(out)
    (out / "frames" / "000000.jpg").write_bytes(b"x")
    _run_into(out, plan_dir, tmp_path)
    assert not (out / "frames").exists()


def test_an_earlier_run_with_only_its_run_json_keeps_frames(plan_dir: Path, tmp_path: Path) -> None:
    """An earlier run's run.json without its keypoints.jsonl: which frames it wrote is said nowhere, and every
    .jpg in frames/ was removed; none is now."""
    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 2)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "frames"]) == 0
    assert json.loads((out / "run.json").read_text())["outputs"] == ["keypoints.jsonl", "frames"]
    (out / "keypoints.jsonl").unlink()
    _run_into(out, plan_dir, tmp_path)
    assert sorted(os.listdir(out / "frames")) == ["000000.jpg", "000001.jpg"]


@pytest.mark.parametrize("annotate", ["video", "none"])
def test_a_fifo_in_frames_does_not_stop_a_run_that_writes_no_frames(
    plan_dir: Path, tmp_path: Path, annotate: str
) -> None:
    """frames/ is checked only for a run that writes its frames there: a FIFO at a frame's name in it is no
    reason to refuse a run whose frames go into a video, or nowhere, and stays as it was."""
    import stat

    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    os.mkfifo(out / "frames" / "000000.jpg")
    clip = write_video(tmp_path / "clip.avi", 2)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", annotate]) == 0
    assert stat.S_ISFIFO(os.stat(out / "frames" / "000000.jpg").st_mode)


def test_the_earlier_record_s_removal_is_flushed_before_the_run_writes(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch
) -> None:
    """The earlier run.json's removal reaches the disk (its folder flushed) before the new run empties
    keypoints.jsonl: after a power cut the folder must not hold the earlier record beside the new keypoints."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(common) == 0
    flushed = []
    real = app.sync_file

    def sync(path, shown):
        flushed.append((Path(path), Path(shown), (out / "run.json").exists(), len(lines(out / "keypoints.jsonl"))))
        real(path, shown)

    monkeypatch.setattr(app, "sync_file", sync)
    assert main([*common, "--max-frames", "1"]) == 0
    assert flushed == [(out, out, False, 4)]  # run.json gone, the earlier run's 4 lines still there


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("keypoints.jsonl", '[{"frame": 0, "source": "clip.mp4"}]\n'),
        ("keypoints.jsonl", "7\n"),
        ("keypoints.jsonl", '{"frame": 0, "source": "clip.mp4", "keypoints": [[1, 2]]}\n'),  # no confidence
        ("run.json", '["backend", "decode", "skipped_inputs", "fingerprint_check", "outputs"]'),
        ("run.json", '{"backend": "tensorrt", "outputs": ["frames"]}'),  # another program's record of a run
    ],
)
def test_a_file_of_a_run_s_name_that_is_not_a_run_s_removes_nothing(
    plan_dir: Path, tmp_path: Path, name: str, text: str
) -> None:
    """A keypoints.jsonl or run.json of JSON that is no object, or an object without every key a run's has,
    is another program's: the folder is no run's, and its frames and videos stay (a JSON list or number read
    as an object was an AttributeError's traceback). The file itself, which a run would write over, stops the
    run before anything is removed or written."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000000.jpg").write_bytes(b"a photo")
    (out / "annotated.avi").write_bytes(b"a video of their own")
    (out / name).write_text(text)
    assert not app._holds_a_run(out)
    clip = write_video(tmp_path / "clip.avi", 1)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "none"]) == 2
    assert (out / name).read_text() == text
    assert os.listdir(out / "frames") == ["000000.jpg"]
    assert (out / "annotated.avi").read_bytes() == b"a video of their own"


def test_an_earlier_runs_videos_are_removed_and_a_link_at_their_name_is_not(plan_dir: Path, tmp_path: Path) -> None:
    """An earlier run's videos under each name it writes them (annotated.avi where OpenCV cannot write MP4,
    and the .part name of one that did not read back) are removed; a link at such a name stays, as does the
    file it points to."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keypoints.jsonl").write_text(_record(0, "clip.mp4") + "\n")
    for name in ("annotated.mp4", "annotated.avi", "annotated.part.mp4", "annotated.part.avi"):
        (out / name).write_bytes(b"an earlier run's")
    _run_into(out, plan_dir, tmp_path)
    assert sorted(os.listdir(out)) == [".dpupose.lock", "keypoints.jsonl", "run.json"]
    (tmp_path / "mine.mp4").write_bytes(b"my video")
    (out / "annotated.mp4").symlink_to(tmp_path / "mine.mp4")
    _run_into(out, plan_dir, tmp_path)
    assert (out / "annotated.mp4").is_symlink() and (tmp_path / "mine.mp4").read_bytes() == b"my video"


def test_records_of_no_frame_number_name_no_frame(plan_dir: Path, tmp_path: Path) -> None:
    """A record's frame is a whole number from 0: true (a bool is an int in Python), -1 or 2.0 name no frame,
    so 000001.jpg, -00001.jpg and 000002.jpg stay; the record of frame 3 removes its frame."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    records = [_record(True, "clip.mp4"), _record(-1, "clip.mp4"), _record(2.0, "clip.mp4"), _record(3, "clip.mp4")]
    (out / "keypoints.jsonl").write_text("\n".join(records) + "\n")
    _finished(out)
    theirs = ["000001.jpg", "-00001.jpg", ".-00001.part.jpg", "-1.jpg", "000002.jpg"]
    for name in [*theirs, "000003.jpg"]:
        (out / "frames" / name).write_bytes(b"x")
    _run_into(out, plan_dir, tmp_path)
    assert sorted(os.listdir(out / "frames")) == sorted(theirs)


def test_an_earlier_run_json_naming_its_outputs_by_path_still_says_which(plan_dir: Path, tmp_path: Path) -> None:
    """run.json's outputs were the paths as the run opened them (absolute, or relative to where it ran) before
    they were named relative to run.json's folder: frames/ is one whose last part is frames, whatever comes
    before. A list holding something that is no name is no run's run.json, and no traceback: the folder's is
    then a run that did not finish, whose frames stay."""
    out = tmp_path / "out"
    cases = [
        ([str(out / "keypoints.jsonl"), str(out / "frames")], []),  # frames/ listed: its frame goes
        (["runs/out/keypoints.jsonl", "runs/out/frames"], []),
        ([str(out / "keypoints.jsonl")], ["000000.jpg"]),  # no frames/ listed: nothing in it goes
        ([None, "keypoints.jsonl"], ["000000.jpg"]),  # no listing: no run's run.json, a run that did not finish
    ]
    for outputs, left in cases:
        (out / "frames").mkdir(parents=True, exist_ok=True)
        (out / "frames" / "000000.jpg").write_bytes(b"x")
        (out / "frames" / "photo.jpg").write_bytes(b"mine")
        (out / "keypoints.jsonl").write_text(_record(0, "clip.mp4") + "\n")
        run = {"backend": "cpu", "decode": "dsnt", "skipped_inputs": 0, "fingerprint_check": None, "outputs": outputs}
        (out / "run.json").write_text(json.dumps(run))
        _run_into(out, plan_dir, tmp_path)
        assert sorted(os.listdir(out / "frames")) == sorted(["photo.jpg", *left]), outputs


def test_a_record_line_of_the_limit_is_read_and_a_longer_one_passed_over_whole(tmp_path: Path) -> None:
    """keypoints.jsonl's lines are read up to 1 MiB (1048576 bytes, the newline included); a longer one is
    passed over whole, its tail too (a record after 1 MiB of spaces is JSON, but the line is too long)."""
    import io

    data = b"abcdefg\n" + b"abcdefgh" + b"ijk\n" + b"x\n" + b"12345678" * 2 + b"9\n" + b"end"
    assert list(app._lines(io.BytesIO(data), 8)) == [b"abcdefg\n", b"x\n", b"end"]

    def padded(frame: int, size: int) -> str:  # a record whose line is `size` bytes
        base = json.loads(_record(frame, "clip.mp4"))
        pad = size - len(json.dumps(base | {"pad": ""})) - 1
        line = json.dumps(base | {"pad": "x" * pad}) + "\n"
        assert len(line) == size
        return line

    limit = 1 << 20
    text = padded(1, limit) + padded(2, limit + 1) + " " * limit + _record(3, "clip.mp4") + "\n" + _record(4, "x")
    (tmp_path / "keypoints.jsonl").write_text(text)
    present = {f"{i:06d}.jpg" for i in range(1, 5)}
    assert app._earlier_frames(tmp_path, present, {"frames"}) == {"000001.jpg", "000004.jpg"}


def test_a_source_among_the_outputs_is_refused_when_both_are_relative(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """--out and --source relative to the working directory name the same files as their absolute paths: an
    earlier run's frames given as the source of a run into that folder are refused, and stay."""
    monkeypatch.chdir(tmp_path)
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", "out"]
    assert main([*common, "--source", str(images)]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "frames").iterdir()}
    capsys.readouterr()
    assert main([*common, "--source", "out/frames", "--annotate", "none"]) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: --source out/frames is an earlier run's frames under --out out, which this run removes "
        "before it starts: choose another --out\n"
    )
    assert main([*common, "--source", "out/frames/im0.jpg"]) == 2
    assert "--source out/frames/im0.jpg is where this run writes frames (under --out out)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "frames").iterdir()} == before


def test_an_earlier_runs_video_names_held_by_no_file_stay(plan_dir: Path, tmp_path: Path) -> None:
    """Only regular files at an earlier run's video names are its videos: a folder at annotated.avi (with a
    file in it) and a FIFO at annotated.part.mp4 stay, and are no traceback, for a run that writes no video."""
    import stat

    out = tmp_path / "out"
    (out / "annotated.avi").mkdir(parents=True)
    (out / "annotated.avi" / "mine.txt").write_text("mine")
    os.mkfifo(out / "annotated.part.mp4")
    (out / "keypoints.jsonl").write_text(_record(0, "clip.mp4") + "\n")
    _run_into(out, plan_dir, tmp_path)
    assert (out / "annotated.avi" / "mine.txt").read_text() == "mine"
    assert stat.S_ISFIFO(os.stat(out / "annotated.part.mp4").st_mode)


def test_a_run_stopped_while_removing_an_earlier_runs_frames_leaves_the_rest_to_the_next(
    plan_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Ctrl-C while a run removed an earlier run's frames: run.json had gone first, and the folder then held a
    run that did not finish, whose frames no later run removes (nothing says it wrote any). run.json goes
    last: the next run finds the earlier run's record and removes the frames that are left."""
    import pathlib

    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 3)
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*common, "--annotate", "frames"]) == 0
    unlink = pathlib.Path.unlink

    def interrupted(self, missing_ok=False):
        if self.name == "000001.jpg":
            raise KeyboardInterrupt
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", interrupted)
    assert main([*common, "--annotate", "none"]) == 130
    assert capsys.readouterr().err == "dpupose: interrupted\n"
    assert (out / "frames" / "000001.jpg").exists() and len(lines(out / "keypoints.jsonl")) == 3
    monkeypatch.undo()
    assert main([*common, "--annotate", "none"]) == 0
    assert not (out / "frames").exists()


def test_an_earlier_record_that_cannot_be_removed_stops_the_run_before_it_writes(
    plan_dir: Path, images: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """An earlier run.json that cannot be removed (a folder whose entries cannot change, its files writable)
    stops the run in one line before keypoints.jsonl is emptied: the earlier record must not stay beside
    this run's keypoints."""
    import errno
    import pathlib

    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main(common) == 0
    kept = {n: (out / n).read_bytes() for n in ("keypoints.jsonl", "run.json")}
    unlink = pathlib.Path.unlink

    def refused(self, missing_ok=False):
        if self.name == "run.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", refused)
    capsys.readouterr()
    assert main([*common, "--max-frames", "1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("dpupose: error: ") and err.count("\n") == 1 and str(out / "run.json") in err, err
    assert {n: (out / n).read_bytes() for n in kept} == kept


def test_a_source_in_frames_no_earlier_run_wrote_is_read_not_refused(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """Only what this run removes is refused as --source: a run of --annotate none lists no frames/ in its
    run.json, so nothing in frames/ is removed, yet a later run of the images there was refused as 'an earlier
    run's frames ..., which this run removes'; so was a user's own image beside an earlier run's frames. Those
    runs read their source and it stays; an earlier run's frame, which the run does remove, is still refused."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images), "--annotate", "none"]) == 0
    (out / "frames").mkdir()  # the user's own images, of the names that run's frames would have had
    for image in images.iterdir():
        cv2.imwrite(str(out / "frames" / f"{image.stem}.jpg"), cv2.imread(str(image)))
    mine = {p.name: p.read_bytes() for p in (out / "frames").iterdir()}
    capsys.readouterr()
    assert main([*common, "--source", str(out / "frames"), "--annotate", "none"]) == 0, capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == mine
    assert sorted(r["source"] for r in lines(out / "keypoints.jsonl")) == sorted(mine)  # the run read them all

    out = tmp_path / "frames-run"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images)]) == 0
    earlier = sorted(p.name for p in (out / "frames").iterdir())
    (out / "frames" / "mine.jpg").write_bytes((out / "frames" / earlier[0]).read_bytes())
    capsys.readouterr()
    one = out / "frames" / earlier[0]
    assert main([*common, "--source", str(one), "--annotate", "none"]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --source {one} is an earlier run's frames under --out {out}, which this run removes "
        "before it starts: choose another --out\n"
    )
    assert sorted(os.listdir(out / "frames")) == sorted([*earlier, "mine.jpg"])
    assert main([*common, "--source", str(out / "frames" / "mine.jpg"), "--annotate", "none"]) == 0
    assert os.listdir(out / "frames") == ["mine.jpg"]  # the earlier run's frames removed, the user's read and kept
    assert [r["source"] for r in lines(out / "keypoints.jsonl")] == ["mine.jpg"]


@pytest.mark.parametrize("annotate", ["frames", "video"])
def test_a_users_files_at_the_names_a_run_writes_stop_it_before_anything_changes(
    plan_dir: Path, tmp_path: Path, annotate: str, capsys
) -> None:
    """A folder of a user's own files given as --out, none of them a run's: a photo in frames/ at the name an
    image's frame is written under (a.jpg for a.png), a keypoints.jsonl and a run.json of another program, an
    annotated.mp4 of theirs. The run wrote over every one of them (the photo replaced by the annotated frame,
    the other files emptied or replaced), though only an earlier run's outputs are replaced. Such a file stops
    the run before anything is removed or written, naming the files; the files are as they were."""
    out = tmp_path / "photos"
    (out / "frames").mkdir(parents=True)
    mine = {"frames/a.jpg": b"my photo", "frames/b.jpg": b"another photo", "frames/000001.jpg": b"a camera's photo"}
    mine |= {"keypoints.jsonl": b"my notes\n", "run.json": b'{"trip": "Rome"}', "annotated.mp4": b"my video"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    source = tmp_path / "images" / "a.png" if annotate == "frames" else write_video(tmp_path / "clip.avi", 3)
    if annotate == "frames":
        source.parent.mkdir()
        cv2.imwrite(str(source), np.full((30, 40, 3), 90, np.uint8))
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(source.parent)]
    if annotate == "video":
        argv[-1] = str(source)
    before = sorted(os.listdir(out))
    assert main(argv) == 2
    err = capsys.readouterr().err
    taken = ["keypoints.jsonl", "run.json", "frames/a.jpg" if annotate == "frames" else "annotated.mp4"]
    assert err == (
        f"dpupose: error: --out {out} holds {', '.join(taken)}, which no finished dpupose run wrote there and this "
        "run would write over: move them elsewhere (or remove them, if they are an unfinished run's), or choose "
        "another --out\n"
    )
    assert {n: (out / n).read_bytes() for n in mine} == mine
    assert sorted(os.listdir(out)) == before  # and no .dpupose.lock left behind
    assert sorted(os.listdir(out / "frames")) == ["000001.jpg", "a.jpg", "b.jpg"]


def test_the_frame_names_a_run_may_write_are_refused_and_no_others(plan_dir: Path, tmp_path: Path, capsys) -> None:
    """Which files in frames/ stop a run: those at the names its frames are written under (a video's frame
    numbers below its length, their hidden .part.jpg names, a link there), whoever's they are, but for an
    earlier run's frames, removed first: a finished run's, and those of a run that did not finish (no run.json)
    that bear its mark. A name past the video's last frame does not."""
    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 3)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    argv += ["--annotate", "frames"]
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000003.jpg").write_bytes(b"past the last frame")  # frames 0 to 2 only
    assert main(argv) == 0
    assert main(argv) == 0  # the earlier run's frames go first
    (out / "run.json").unlink()  # as a run killed before its end leaves it
    (out / "frames" / "000001.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert main(argv) == 2  # a frame without the run's mark, as an earlier version wrote, or a photo
    assert "holds frames/000001.jpg, which" in capsys.readouterr().err
    for name in ("000000.jpg", "000001.jpg", "000002.jpg", "../keypoints.jsonl"):  # no run's folder now
        (out / "frames" / name).unlink()
    (tmp_path / "photo.jpg").write_bytes(b"a photo")
    (out / "frames" / "000001.jpg").symlink_to(tmp_path / "photo.jpg")
    (out / "frames" / ".000002.part.jpg").write_bytes(b"mine")
    assert main(argv) == 2
    assert "holds frames/.000002.part.jpg, frames/000001.jpg, which" in capsys.readouterr().err
    assert (out / "frames" / "000001.jpg").is_symlink() and (tmp_path / "photo.jpg").read_bytes() == b"a photo"
    (out / "frames" / "000001.jpg").unlink()
    (out / "frames" / ".000002.part.jpg").unlink()
    assert main(argv) == 0
    assert sorted(os.listdir(out / "frames")) == ["000000.jpg", "000001.jpg", "000002.jpg", "000003.jpg"]
    assert (out / "frames" / "000003.jpg").read_bytes() == b"past the last frame"


def test_a_frames_link_to_a_photo_folder_is_not_written_over(plan_dir: Path, tmp_path: Path) -> None:
    """frames/ a link to a folder of photos: the run's frames went into it, replacing a photo of a frame's name."""
    out = tmp_path / "out"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "000000.jpg").write_bytes(b"a photo")
    out.mkdir()
    (out / "frames").symlink_to(photos)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--annotate", "frames"]
    assert main([*argv, "--source", str(write_video(tmp_path / "clip.avi", 2))]) == 2
    assert os.listdir(photos) == ["000000.jpg"] and (photos / "000000.jpg").read_bytes() == b"a photo"


def test_a_killed_runs_frames_are_replaced_by_the_next_run_and_a_photo_among_them_stays(
    plan_dir: Path, tmp_path: Path
) -> None:
    """A run killed (kill -9, the OOM killer, a power cut) leaves keypoints.jsonl and frames/ without run.json.
    Its frames stopped the same command run again, naming every one 'which no finished dpupose run wrote'
    (a camera's run: thousands), for the user to remove by hand. Each frame carries the run's mark, a JPEG
    comment that changes no pixel: those its records name go, and a photo at a name they give, unmarked, stays
    (the records of an --annotate none run of the photos name the photos themselves)."""
    from dpupose.runtime.imagefile import has_jpeg_comment, read_bgr
    from dpupose.runtime.sinks import FRAME_MARK

    out = tmp_path / "out"
    clip = write_video(tmp_path / "clip.avi", 3)
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(clip)]
    assert main([*argv, "--annotate", "frames"]) == 0
    frame = out / "frames" / "000000.jpg"
    data = frame.read_bytes()
    assert data[20:24] == b"\xff\xfe" + (len(FRAME_MARK) + 2).to_bytes(2, "big") and has_jpeg_comment(frame, FRAME_MARK)
    bare = data[:20] + data[24 + len(FRAME_MARK) :]  # the same JPEG without the comment: the same pixels
    assert np.array_equal(read_bgr(frame), cv2.imdecode(np.frombuffer(bare, np.uint8), cv2.IMREAD_COLOR))
    (out / "run.json").unlink()  # as a killed run leaves it
    assert main([*argv, "--annotate", "frames", "--max-frames", "2"]) == 0
    assert sorted(os.listdir(out / "frames")) == ["000000.jpg", "000001.jpg"]  # the killed run's 000002 gone
    assert len(lines(out / "keypoints.jsonl")) == 2

    (out / "run.json").unlink()
    (out / "frames" / "000001.jpg").write_bytes(bare)  # a photo of a frame's name: no mark
    assert main([*argv, "--annotate", "none"]) == 0
    assert os.listdir(out / "frames") == ["000001.jpg"] and (out / "frames" / "000001.jpg").read_bytes() == bare


def test_a_finished_runs_frames_without_its_keypoints_are_written_over_not_refused(
    plan_dir: Path, images: Path, tmp_path: Path
) -> None:
    """A finished run's folder whose keypoints.jsonl was removed (only run.json and frames/ left): nothing says
    which frames were the run's, so none is removed, and the same run again was refused, its frames named as
    files 'which no finished dpupose run wrote there'. They bear a run's mark: written over; a photo of the
    user's at such a name still stops the run."""
    out = tmp_path / "out"
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(images)]
    assert main(argv) == 0
    (out / "keypoints.jsonl").unlink()
    (out / "frames" / "mine.jpg").write_bytes(b"a photo at no name the run writes")
    frames = sorted(os.listdir(out / "frames"))
    before = {name: (out / "frames" / name).stat().st_ino for name in frames}
    assert main(argv) == 0
    assert sorted(os.listdir(out / "frames")) == frames and len(lines(out / "keypoints.jsonl")) == 4
    assert all((out / "frames" / n).stat().st_ino != before[n] for n in frames if n != "mine.jpg")  # written anew
    (out / "keypoints.jsonl").unlink()
    first = frames[0] if frames[0] != "mine.jpg" else frames[1]
    (out / "frames" / first).write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert main(argv) == 2  # unmarked: a photo of the user's


@pytest.mark.parametrize("text", ["", '{"frame": 0, "sour'])
def test_a_keypoints_file_a_killed_run_left_before_its_first_record_is_replaced(
    plan_dir: Path, images: Path, tmp_path: Path, text: str
) -> None:
    """A run killed before its first record was whole leaves keypoints.jsonl empty, or the start of that record:
    the run's own, replaced by the next run."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keypoints.jsonl").write_text(text)
    assert main(["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(images)]) == 0
    assert len(lines(out / "keypoints.jsonl")) == 4


def _argv(plan_dir: Path, out: Path, source: Path, *more: str) -> list[str]:
    return ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out), "--source", str(source), *more]


def test_a_one_byte_keypoints_file_of_a_users_stops_the_run(plan_dir: Path, images: Path, tmp_path: Path, capsys):
    """Only an empty keypoints.jsonl (a run killed before its first record) is nothing to write over; one byte
    of the user's is data."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keypoints.jsonl").write_bytes(b"x")
    assert main(_argv(plan_dir, out, images)) == 2
    assert f"--out {out} holds keypoints.jsonl, which no finished dpupose run" in capsys.readouterr().err
    assert (out / "keypoints.jsonl").read_bytes() == b"x"


def test_a_video_run_again_into_its_own_folder_replaces_its_video(plan_dir: Path, tmp_path: Path) -> None:
    """The earlier run's annotated video is what _earlier_annotations removes: not a file of the user's."""
    out = tmp_path / "out"
    argv = _argv(plan_dir, out, write_video(tmp_path / "clip.avi", 2), "--annotate", "video")
    assert main(argv) == 0
    videos = [n for n in os.listdir(out) if n.startswith("annotated.")]
    assert len(videos) == 1
    assert main(argv) == 0
    assert [n for n in os.listdir(out) if n.startswith("annotated.")] == videos and len(
        lines(out / "keypoints.jsonl")
    ) == 2


def test_a_link_in_frames_to_a_runs_frame_elsewhere_stops_the_run(plan_dir: Path, tmp_path: Path, capsys) -> None:
    """A link at a frame's name is the user's, whatever it points to (a marked frame of another run's)."""
    clip = write_video(tmp_path / "clip.avi", 2)
    assert main(_argv(plan_dir, tmp_path / "first", clip, "--annotate", "frames")) == 0
    target = tmp_path / "first" / "frames" / "000001.jpg"
    kept = target.read_bytes()
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000001.jpg").symlink_to(target)
    assert main(_argv(plan_dir, out, clip, "--annotate", "frames")) == 2
    assert f"--out {out} holds frames/000001.jpg, which" in capsys.readouterr().err
    assert (out / "frames" / "000001.jpg").is_symlink() and target.read_bytes() == kept


def test_five_files_of_the_users_are_four_named_and_1_more(plan_dir: Path, tmp_path: Path, capsys) -> None:
    out, photos = tmp_path / "out", tmp_path / "photos"
    (out / "frames").mkdir(parents=True)
    photos.mkdir()
    for stem in "abc":
        cv2.imwrite(str(photos / f"{stem}.png"), np.full((30, 40, 3), 90, np.uint8))
        (out / "frames" / f"{stem}.jpg").write_bytes(b"my photo")
    (out / "keypoints.jsonl").write_text("my notes\n")
    (out / "run.json").write_text('{"trip": "Rome"}')
    assert main(_argv(plan_dir, out, photos)) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --out {out} holds keypoints.jsonl, run.json, frames/a.jpg, frames/b.jpg and 1 more, which "
        "no finished dpupose run wrote there and this run would write over: move them elsewhere (or remove them, "
        "if they are an unfinished run's), or choose another --out\n"
    )


def test_a_run_stopped_while_removing_the_earlier_runs_frames_keeps_its_run_json(
    plan_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier finished run's frames (unmarked, as an earlier version wrote them) are removed before its
    run.json: a run stopped between the two (Ctrl-C) leaves run.json saying which frames were that run's, and
    the next run removes the rest, instead of refusing them as an unfinished run's unmarked frames."""
    from dpupose.runtime.imagefile import _comment_at
    from dpupose.runtime.sinks import FRAME_MARK

    out = tmp_path / "out"
    argv = _argv(plan_dir, out, write_video(tmp_path / "clip.avi", 3), "--annotate", "frames")
    assert main(argv) == 0
    for frame in (out / "frames").iterdir():
        data = frame.read_bytes()
        at = _comment_at(data)
        frame.write_bytes(data[:at] + data[at + 4 + len(FRAME_MARK) :])  # the mark's segment taken out
    remove = app._remove_earlier_annotations

    def stopped(folder: Path, earlier: list[Path]) -> None:
        remove(folder, sorted(earlier)[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "_remove_earlier_annotations", stopped)
    assert main(argv) != 0
    assert sorted(os.listdir(out / "frames")) == ["000001.jpg", "000002.jpg"] and (out / "run.json").is_file()
    monkeypatch.setattr(app, "_remove_earlier_annotations", remove)
    assert main(argv) == 0
    assert sorted(os.listdir(out / "frames")) == ["000000.jpg", "000001.jpg", "000002.jpg"]


def test_a_video_of_unknown_length_may_write_any_frame_number(tmp_path: Path) -> None:
    """A video whose length OpenCV does not give (count 0) can reach any frame number: a photo at 000005.jpg
    stops the run. Of a video of 3 frames it does not (frames 0 to 2 only)."""
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000005.jpg").write_bytes(b"my photo")
    opts = app.RunOptions(plan=tmp_path, source="clip.avi", out=out, annotate="frames")
    video = object.__new__(sources.VideoFileSource)
    video.count = 3
    app._check_nothing_of_yours_is_replaced(opts, "frames", video, [])
    video.count = 0
    with pytest.raises(UsageError, match=r"holds frames/000005\.jpg, which no finished dpupose run"):
        app._check_nothing_of_yours_is_replaced(opts, "frames", video, [])


@pytest.mark.parametrize("name", ["²³⁴⁵⁶⁷.jpg", "١٢٣٤٥٦.jpg"])
def test_a_photo_named_in_other_scripts_digits_is_no_frame_a_video_run_writes(
    plan_dir: Path, tmp_path: Path, capsys, name: str
) -> None:
    """A video's frames are 000012.jpg, ASCII digits. A photo in frames/ named in superscript digits (which
    str.isdigit takes and int() refuses) stopped a video run with a ValueError traceback, and one in
    Arabic-Indic digits (which int() reads) was taken for one (refused, where a camera's run has no last frame)."""
    from dpupose.runtime.sinks import may_write_frame

    assert not may_write_frame(name, None) and not may_write_frame(f".{name[:-4]}.part.jpg", None)
    assert may_write_frame("000012.jpg", None) and may_write_frame(".000012.part.jpg", None)
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / name).write_bytes(b"a photo")
    argv = _argv(plan_dir, out, write_video(tmp_path / "clip.avi", 2), "--annotate", "frames")
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out / "frames")) == sorted(["000000.jpg", "000001.jpg", name])
    assert (out / "frames" / name).read_bytes() == b"a photo"


def test_a_frame_saved_again_by_an_editor_goes_with_its_finished_run_and_stops_the_next_after_an_unfinished_one(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """Saved again (here by OpenCV, as by an image editor), a frame loses the run's mark. After a finished run its
    records say it was the run's: removed with the rest. After a run that did not finish nothing says so."""
    out = tmp_path / "out"
    argv = _argv(plan_dir, out, images)
    assert main(argv) == 0
    edited = out / "frames" / "im0.jpg"

    def edit() -> None:
        picture = cv2.imread(str(edited))
        picture[0, 0] = 0
        assert cv2.imwrite(str(edited), picture)

    edit()
    assert main([*argv, "--max-frames", "1", "--annotate", "none"]) == 0
    assert not (out / "frames").exists()  # all four the finished run's, the edited one too
    assert main(argv) == 0
    (out / "run.json").unlink()  # as a run killed before it wrote it leaves the folder
    edit()
    before = edited.read_bytes()
    assert main(argv) == 2
    assert f"--out {out} holds frames/im0.jpg, which no finished dpupose run wrote" in capsys.readouterr().err
    assert edited.read_bytes() == before


def test_a_keypoints_link_to_another_runs_file_stops_the_run(plan_dir: Path, images: Path, tmp_path: Path, capsys):
    """keypoints.jsonl in --out a link to another run's: the run emptied and wrote it through the link, the other
    run's records cut to this one's beside its run.json, which still counted all of them."""
    archive, out = tmp_path / "archive", tmp_path / "out"
    assert main(_argv(plan_dir, archive, images, "--annotate", "none")) == 0
    before = (archive / "keypoints.jsonl").read_bytes()
    out.mkdir()
    (out / "keypoints.jsonl").symlink_to(archive / "keypoints.jsonl")
    assert main(_argv(plan_dir, out, images, "--max-frames", "1", "--annotate", "none")) == 2
    assert f"--out {out} holds keypoints.jsonl, which no finished dpupose run wrote there" in capsys.readouterr().err
    assert (archive / "keypoints.jsonl").read_bytes() == before and (out / "keypoints.jsonl").is_symlink()
    (out / "keypoints.jsonl").unlink()
    (out / "keypoints.jsonl").symlink_to(tmp_path / "nowhere.jsonl")  # to nothing: the open would make the file
    assert main(_argv(plan_dir, out, images, "--max-frames", "1", "--annotate", "none")) == 2
    assert not (tmp_path / "nowhere.jsonl").exists()


def test_a_plan_json_nested_too_deep_to_read_is_one_line_naming_it(plan_dir: Path, tmp_path: Path, capsys) -> None:
    """JSON nested past Python's recursion limit stopped the run with a RecursionError's traceback."""
    plan = tmp_path / "plan"
    plan.mkdir()
    for f in plan_dir.iterdir():
        (plan / f.name).write_bytes(f.read_bytes())
    (plan / PLAN_FILE).write_text("[" * 100_000 + "]" * 100_000)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    argv = ["run", "--plan", str(plan), "--source", str(image), "--out", str(tmp_path / "out"), "--backend", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dpupose: error: {plan / PLAN_FILE} is not valid JSON (nested deeper than can be read")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_source_in_or_of_an_earlier_runs_frames_through_a_bind_mount_of_frames_is_refused(
    plan_dir: Path, images: Path, tmp_path: Path, capsys, bind_mount
) -> None:
    """Through a bind mount of --out's frames/ itself (not of --out): the folder is frames/ by device and inode,
    but its mount point has another name in another folder, which same_entry (a file's name in its folder) took
    for another folder. A folder has no other name but a mount's: it is compared as one folder (fsio.within)."""
    out = tmp_path / "out"
    common = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--out", str(out)]
    assert main([*common, "--source", str(images), "--annotate", "frames"]) == 0
    import shutil

    shutil.copy(images / "im0.png", out / "frames" / "mine.png")
    before = {p.name: p.read_bytes() for p in (out / "frames").iterdir()}
    bound = bind_mount(out / "frames")
    capsys.readouterr()
    assert main([*common, "--source", str(bound), "--annotate", "none"]) == 2
    assert f"--source {bound} is an earlier run's frames under --out" in capsys.readouterr().err
    assert main([*common, "--source", str(bound / "mine.png"), "--annotate", "frames"]) == 2
    assert "is where this run writes frames (under --out" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "frames").iterdir()} == before


def test_a_fifo_or_a_link_to_a_file_at_frames_is_named_as_other_folders_names_are(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """Where --annotate frames writes its folder, a link to a file was 'a file' (and a FIFO 'a FIFO'), where every
    other refusal of the wrong kind of entry at a folder's name names what is there (fsio.what_is_at): 'a link to
    X'. Left as it was, and nothing written."""
    for name, make in (("fifo", lambda p: os.mkfifo(p)), ("link", lambda p: p.symlink_to("../note.txt"))):
        out = tmp_path / name
        out.mkdir()
        (tmp_path / "note.txt").write_text("mine")
        make(out / "frames")
        what = "a FIFO" if name == "fifo" else "a link to ../note.txt"
        argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
        assert main([*argv, "--annotate", "frames"]) == 2
        assert capsys.readouterr().err == (
            f"dpupose: error: {out / 'frames'} is {what}, not a folder, and this run writes its annotated frames "
            "there: move it away, or choose another --out\n"
        )
        assert os.listdir(out) == ["frames"] and (tmp_path / "note.txt").read_text() == "mine"


def test_a_link_that_leads_nowhere_at_frames_is_refused_and_nothing_is_written(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """A symbolic link that leads nowhere at --out's frames/ was written through: the run made the folder it
    named (elsewhere) and wrote its frames there, where runtime.md refuses anything but a folder at frames (and
    architecture.md a link at a name a run replaces as its own). Refused, naming it; nothing made or written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "frames").symlink_to("../elsewhere")
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--out", str(out)]
    assert main([*argv, "--annotate", "frames"]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {out / 'frames'} is a symbolic link that leads nowhere (to ../elsewhere), not a folder, "
        "and this run writes its annotated frames there: move it away, or choose another --out\n"
    )
    assert os.listdir(out) == ["frames"] and not os.path.lexists(tmp_path / "elsewhere")
    # a link to a folder is written through, as runtime.md says (left as it is when an earlier run is removed)
    (tmp_path / "elsewhere").mkdir()
    assert main([*argv, "--annotate", "frames"]) == 0
    assert (out / "frames").is_symlink() and len(os.listdir(tmp_path / "elsewhere")) == len(os.listdir(images))


def test_a_link_at_run_json_is_refused_as_one_at_keypoints_jsonl_is(
    plan_dir: Path, images: Path, tmp_path: Path, capsys
) -> None:
    """A link at --out's run.json to a run's run.json elsewhere made --out a run's folder: the run removed the link
    and wrote its own run.json there, where a link at keypoints.jsonl, even to a run's, is refused (what it points
    to is not this folder's) and architecture.md refuses a link at a name a run replaces as its own. Refused as
    that one is; the link and its run kept."""
    argv = ["run", "--plan", str(plan_dir), "--backend", "cpu", "--source", str(images), "--annotate", "none"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    record = (tmp_path / "a" / "run.json").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").symlink_to("../a/run.json")
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: --out {out} holds run.json, which no finished dpupose run wrote there and this run would "
        "write over: move it elsewhere (or remove it, if it is an unfinished run's), or choose another --out\n"
    )
    assert os.listdir(out) == ["run.json"] and (out / "run.json").is_symlink()
    assert (tmp_path / "a" / "run.json").read_bytes() == record
