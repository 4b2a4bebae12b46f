"""Frame sources (folder, video, camera with unplug/reconnect) and sinks (JSON lines, folder, video, FPS)."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import FakeCapture, corrupt_frame, grey, jpeg_with_orientation, png_claiming_size, write_video

from dpupose.errors import DataError, DeviceError, UsageError
from dpupose.runtime import sinks, sources
from dpupose.runtime.frames import FrameResult
from dpupose.runtime.imagefile import read_bgr
from dpupose.runtime.sinks import DisplaySink, FolderSink, FpsMeter, JsonLinesSink, VideoSink, annotate
from dpupose.runtime.sources import CameraSource, ImageFolderSource, VideoFileSource, open_source

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.board_py


def test_image_folder_sorted_skipping_non_images_and_corrupt_files(tmp_path: Path, caplog) -> None:
    cv2.imwrite(str(tmp_path / "b.png"), grey(20))
    cv2.imwrite(str(tmp_path / "a.jpg"), grey(10))
    cv2.imwrite(str(tmp_path / "d.PNG"), grey(40))
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "notes.txt").write_text("not an image")
    src = ImageFolderSource(tmp_path)
    with caplog.at_level(logging.WARNING):
        got = [(f.index, f.source, int(f.image.mean())) for f in src]
    assert [(i, s) for i, s, _ in got] == [(0, "a.jpg"), (1, "b.png"), (2, "d.PNG")]
    assert [m for _, _, m in got] == pytest.approx([10, 20, 40], abs=1)
    assert src.skipped == 1  # the image that did not decode; notes.txt is no input
    assert "c.png: cannot decode" in caplog.text and "notes.txt: not an image" in caplog.text


def test_an_image_over_opencvs_size_limit_is_skipped_with_what_to_do(tmp_path: Path, caplog) -> None:
    # OpenCV raises for an image over 2**30 pixels (where other bad images decode to None): that stopped the
    # whole run with a cv2.error traceback.
    (tmp_path / "huge.png").write_bytes(png_claiming_size(40000, 40000))
    cv2.imwrite(str(tmp_path / "small.png"), grey(30))
    src = ImageFolderSource(tmp_path)
    with caplog.at_level(logging.WARNING):
        got = [f.source for f in src]
    assert got == ["small.png"] and src.skipped == 1
    assert "huge.png: larger than OpenCV decodes" in caplog.text and "OPENCV_IO_MAX_IMAGE_PIXELS" in caplog.text
    # What the data set reader (train, eval) and `data check` call: a DataError, one line for the CLI.
    with pytest.raises(DataError, match="huge.png: larger than OpenCV decodes"):
        read_bgr(tmp_path / "huge.png")


def test_a_video_or_other_source_that_is_a_link_leading_nowhere_is_named_so(tmp_path: Path) -> None:
    # A link to a video on a disk not mounted (or to a name without an image's extension) was 'source ... does
    # not exist', though the user sees the link there; an image's link was named for what it is.
    for name, target in (("clip.mp4", "mnt/usb/clip.mp4"), ("latest", "latest"), ("gone.jpg", "elsewhere/x.jpg")):
        (tmp_path / name).symlink_to(target)
        with pytest.raises(UsageError) as exc:
            open_source(str(tmp_path / name))
        assert f"{tmp_path / name} is a symbolic link that leads nowhere (to {target}): pass an image folder" in str(
            exc.value
        )
    with pytest.raises(UsageError, match=r"source \S*nothing.mp4 does not exist: pass an image folder"):
        open_source(str(tmp_path / "nothing.mp4"))


def test_subfolders_and_broken_links_are_said_not_passed_over(tmp_path: Path, caplog) -> None:
    # Both were left out of the folder's listing without a word: a user whose photos sit in subfolders, or
    # whose links point at a disk not mounted, saw fewer frames than images and no reason.
    cv2.imwrite(str(tmp_path / "a.png"), grey(10))
    (tmp_path / "gone.jpg").symlink_to("elsewhere/gone.jpg")
    (tmp_path / "day1").mkdir()
    cv2.imwrite(str(tmp_path / "day1" / "b.png"), grey(20))
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden: not mentioned
    with caplog.at_level(logging.WARNING):
        src = ImageFolderSource(tmp_path)
        got = [f.source for f in src]
    assert got == ["a.png"] and src.skipped == 1  # the link is an input that could not be read
    assert f"{tmp_path}: not reading its subfolders (day1); pass one as --source" in caplog.text
    assert "gone.jpg: a symbolic link that leads nowhere (to elsewhere/gone.jpg)" in caplog.text
    assert ".ipynb_checkpoints" not in caplog.text
    with pytest.raises(
        UsageError,
        match=r"gone.jpg is a symbolic link that leads nowhere \(to elsewhere/gone.jpg\): pass an image folder, an "
        r"image, a "
        r"video file or camera:N$",
    ):
        open_source(str(tmp_path / "gone.jpg"))
    # A folder whose images are all in subfolders says where they are, not only that it holds none.
    (tmp_path / "a.png").unlink()
    (tmp_path / "gone.jpg").unlink()
    with pytest.raises(
        DataError,
        match=r"holds no images \(.*\) itself, and subfolders are not read: pass one of them "
        r"\(day1\) as --source$",
    ):
        ImageFolderSource(tmp_path)


def test_an_empty_file_is_said_to_be_empty(tmp_path: Path, caplog) -> None:
    # It was "cannot decode the image (corrupt or truncated?)": a 0-byte file (a copy that failed, a download
    # cut off at once) is neither, and replacing it is what to do.
    (tmp_path / "a.jpg").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "b.png"), grey(20))
    src = ImageFolderSource(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert [f.source for f in src] == ["b.png"]
    assert src.skipped == 1
    assert f"skipping {tmp_path / 'a.jpg'}: the file is empty (0 bytes)" in caplog.text
    assert "corrupt" not in caplog.text


def test_a_phone_photo_is_read_as_it_is_shown(tmp_path: Path) -> None:
    # Stored 48 x 64 with EXIF orientation 6 (turn 90 degrees clockwise to show), as a phone held upright
    # writes it: the frame is the upright 64 x 48 picture, so keypoints are in the coordinates of the image as
    # the user sees it and the skeleton is drawn on that image (the stored pixels' top-left corner is shown
    # top right).
    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:8, :8] = 255
    (tmp_path / "phone.jpg").write_bytes(jpeg_with_orientation(stored, 6))
    (frame,) = list(ImageFolderSource(tmp_path))
    assert frame.image.shape == (64, 48, 3)
    ys, xs = np.nonzero(frame.image[..., 0] > 128)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (0, 7, 40, 47)


def test_folder_without_images_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="holds no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(UsageError, match="camera:N"):
        open_source("camera:front")
    with pytest.raises(UsageError, match="camera:N"):  # str.isdigit's digits, which int() refused: a ValueError
        open_source("camera:²")
    for name in ("pipe.mp4", "pipe.jpg"):  # was "does not exist", then "not a regular file (a pipe or a device?)"
        os.mkfifo(tmp_path / name)
        with pytest.raises(UsageError, match=rf"{name} is a FIFO: pass an image folder, an image, a video file or"):
            open_source(str(tmp_path / name))
    (tmp_path / "disk.mp4").symlink_to("/dev/zero")  # a device that is no camera, named as such
    with pytest.raises(UsageError, match=r"disk\.mp4 is a device: pass an image folder, an image, a video file or"):
        open_source(str(tmp_path / "disk.mp4"))
    # A camera's device node (here a character device by that name) is camera:N, not a video file.
    (tmp_path / "video2").symlink_to("/dev/null")
    camera = r" is a camera device: give camera:2 as the source for it \(--source camera:2\)$"
    with pytest.raises(UsageError, match="video2" + camera):
        open_source(str(tmp_path / "video2"))
    # As udev's stable names are: /dev/v4l/by-id/usb-...-video-index0 -> ../../video0.
    (tmp_path / "by-id").mkdir()
    (tmp_path / "by-id" / "usb-cam-index0").symlink_to("../video2")
    with pytest.raises(UsageError, match="usb-cam-index0" + camera):
        open_source(str(tmp_path / "by-id" / "usb-cam-index0"))


def test_video_with_a_corrupt_frame_skips_it_and_goes_on(tmp_path: Path, caplog) -> None:
    path = write_video(tmp_path / "clip.avi", 8)
    corrupt_frame(path, 3)
    src = open_source(str(path))
    assert isinstance(src, VideoFileSource) and src.count == 8 and src.fps == pytest.approx(10)
    with caplog.at_level(logging.WARNING):
        got = [(f.index, round((f.image.mean() - 10) / 20)) for f in src]
    src.close()
    assert got == [(i, i) for i in (0, 1, 2, 4, 5, 6, 7)]  # frame numbers stay those of the file
    assert src.skipped == 1 and "frame(s) 3 could not be decoded; skipped" in caplog.text


def test_camera_reconnects_after_an_unplug_then_gives_up_with_a_message() -> None:
    FakeCapture.opens, FakeCapture.made = [], []
    sleeps: list[float] = []
    cam = CameraSource(
        2,
        FakeCapture.factory([[1, 2, 3], None, [4, 5], None, None]),
        reconnect_attempts=2,
        reconnect_delay_s=0.5,
        sleep=sleeps.append,
    )
    got = []
    with pytest.raises(DeviceError, match=r"camera 2 stopped delivering frames .* 2 reconnect attempts .* 5 frames"):
        for f in cam:
            got.append((f.index, int(f.image[0, 0, 0]), f.source))
    assert got == [(0, 1, "camera:2"), (1, 2, "camera:2"), (2, 3, "camera:2"), (3, 4, "camera:2"), (4, 5, "camera:2")]
    assert FakeCapture.opens == [(2, sources.CAMERA_API)] * 5 and sleeps == [0.5] * 4
    assert cam.fps == 30.0
    # Each capture that opened (the first and the reopen) holds one frame: a slow reader gets the newest.
    assert [c.props for c in FakeCapture.made] == [
        {cv2.CAP_PROP_BUFFERSIZE: 1},
        {},
        {cv2.CAP_PROP_BUFFERSIZE: 1},
        {},
        {},
    ]


def test_a_camera_closed_during_a_read_is_released_when_the_read_returns() -> None:
    # A pipelined run stopped (Ctrl-C) while its source thread waited in read() on a camera that stopped
    # answering: the main thread released the capture under that read, which OpenCV's is not safe for.
    import threading

    entered, answer = threading.Event(), threading.Event()

    class Stuck(FakeCapture):
        reading = False
        released_during_read = False

        def read(self):
            if self.script:
                return super().read()
            self.reading = True
            entered.set()
            answer.wait(10)
            self.reading = False
            return False, None

        def release(self) -> None:
            self.released_during_read |= self.reading
            super().release()

    FakeCapture.made = []
    cam = CameraSource(0, lambda *a: Stuck([1]), reconnect_attempts=3, reconnect_delay_s=0)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(f.index for f in cam))
    reader.start()
    assert entered.wait(10)
    cam.close()  # from this thread, while the reader is in read()
    assert not cam.cap.released
    answer.set()
    reader.join(10)
    assert not reader.is_alive() and got == [0]
    assert cam.cap.released and not cam.cap.released_during_read
    assert len(FakeCapture.made) == 1  # not reopened after the close: the read's failure is the end


def test_camera_driver_queue_left_alone_for_a_continuous_reader() -> None:
    FakeCapture.made = []
    cam = CameraSource(0, FakeCapture.factory([[1]]), buffer_frames=None)
    assert [f.index for f in itertools.islice(cam, 1)] == [0]
    assert [c.props for c in FakeCapture.made] == [{}]
    cam = CameraSource(0, FakeCapture.factory([[1]]), buffer_frames=3)
    assert FakeCapture.made[-1].props == {cv2.CAP_PROP_BUFFERSIZE: 3}


def test_camera_opens_through_v4l2_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not CAP_ANY: that picks GStreamer first for a camera number in a build that has it (Ubuntu's OpenCV).
    expected = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    FakeCapture.opens = []
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture.factory([[7], [8]]))
    cam = open_source("camera:1", reconnect_attempts=1, reconnect_delay_s=0)
    got = []
    with pytest.raises(DeviceError, match="camera 1 stopped delivering frames"):
        for f in cam:
            got.append(int(f.image[0, 0, 0]))
    assert got == [7, 8]
    assert FakeCapture.opens == [(1, expected)] * 3  # the reopens after an unplug too


def test_camera_that_cannot_be_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture.factory([None]))
    with pytest.raises(DeviceError, match=r"cannot open camera 0: .*ls /dev/video"):
        open_source("camera")


def test_a_file_named_like_a_camera_is_given_with_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"use camera:N with N the camera number \(0 for the first\)$"):
        open_source("camera:1.mp4")  # no such file: nothing more to say
    write_video(tmp_path / "camera:1.avi", 2)
    with pytest.raises(UsageError, match=r"; for the file camera:1.avi, pass ./camera:1.avi$"):
        open_source("camera:1.avi")
    # FFmpeg read the relative name as a URL of protocol "camera" ("not a video OpenCV can decode").
    for spec in ("./camera:1.avi", str(tmp_path / "camera:1.avi")):
        with open_source(spec) as video:
            assert isinstance(video, VideoFileSource) and len(list(video)) == 2


def test_a_video_whose_relative_name_holds_a_colon_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # .mp4 goes through FFmpeg (OpenCV reads and writes MJPG .avi itself, whatever the name).
    monkeypatch.chdir(tmp_path)
    sink = VideoSink(Path("out:1") / "annotated.mp4", fps=10.0)
    for i in range(3):
        sink.write(result(i, grey(10 * i)), grey(10 * i))
    sink.close()
    assert (tmp_path / "out:1" / "annotated.mp4").stat().st_size > 0
    with open_source("out:1/annotated.mp4") as video:
        assert len(list(video)) == 3
    os.rename(tmp_path / "out:1" / "annotated.mp4", tmp_path / "clip:2.mp4")
    with open_source("clip:2.mp4") as video:
        assert len(list(video)) == 3


def result(index: int, image: np.ndarray | None = None) -> FrameResult:
    kp = np.stack([np.linspace(5, 50, 16), np.linspace(5, 40, 16)], axis=1).astype(np.float32)
    return FrameResult(index, f"img{index}.png", kp, np.full(16, 0.5, np.float32), kp / 64, {"dpu0": 0.002}, image)


def test_json_lines_are_flushed_per_frame(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "out" / "k.jsonl")
    sink.write(result(0), None)
    line = json.loads((tmp_path / "out" / "k.jsonl").read_text())  # readable before close
    assert line["frame"] == 0 and line["source"] == "img0.png" and len(line["keypoints"]) == 16
    assert line["keypoints"][0] == [5.0, 5.0] and line["confidence"][0] == 0.5 and line["timings_ms"] == {"dpu0": 2.0}
    sink.close()


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, the words Python writes by default and JSON lacks."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_a_keypoint_that_is_not_a_number_is_written_as_null(tmp_path: Path) -> None:
    """A damaged model's NaN or infinite coordinates: the line stays JSON (null), not Python's NaN."""
    r = result(0)
    r.keypoints[3] = [np.nan, np.inf]
    r.confidence[5] = -np.inf
    r.timings["cpu0"] = float("nan")
    sink = JsonLinesSink(tmp_path / "k.jsonl")
    sink.write(r, None)
    sink.close()
    line = strict_json((tmp_path / "k.jsonl").read_text())
    assert line["keypoints"][3] == [None, None] and line["keypoints"][2] == [11.0, 9.67]
    assert line["confidence"][5] is None and line["confidence"][4] == 0.5
    assert line["timings_ms"] == {"dpu0": 2.0, "cpu0": None}


def test_video_is_finalized_on_close_and_only_then_named(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "v.avi", fps=12)
    for i in range(5):
        sink.write(result(i), grey(30 * i, 40, 60) if i != 2 else grey(60, 80, 120))  # other sizes are resized
    assert not (tmp_path / "v.avi").exists()
    sink.close()
    assert not (tmp_path / "v.part.avi").exists()
    cap = cv2.VideoCapture(str(tmp_path / "v.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 60


def test_a_video_given_by_a_link_is_written_where_it_leads_and_the_link_kept(tmp_path: Path) -> None:
    """The finished video was renamed over the link, which became a file, and what it led to stayed as it was
    (architecture.md: an output given as a link stays one); a link that leads nowhere yet is written through."""
    (tmp_path / "old.avi").write_bytes(b"an earlier video")
    for target in ("old.avi", os.path.join("videos", "new.avi")):
        link = tmp_path / "v.avi"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        sink = VideoSink(link, fps=12)
        for i in range(3):
            sink.write(result(i), grey(30 * i, 40, 60))
        sink.close()
        assert os.readlink(link) == target
        assert len(read_video(tmp_path / target)) == 3
    assert sorted(os.listdir(tmp_path)) == ["old.avi", "v.avi", "videos"] and os.listdir(tmp_path / "videos") == [
        "new.avi"
    ]


def test_sinks_in_a_folder_given_by_a_link_that_leads_nowhere_yet_write_where_it_leads(tmp_path: Path) -> None:
    """A sink's folder that is a link to a folder not made yet (architecture.md: what a link names is made, the
    link stays; a run's --out given so), and keypoints.jsonl in such a folder: mkdir refused the link itself
    ('File exists'). (`dpupose run` refuses such a link at frames/ inside its --out before any sink is made.)"""
    (tmp_path / "frames").symlink_to(os.path.join("kept", "frames"))
    (tmp_path / "out").symlink_to(os.path.join("runs", "r1"))
    folder = FolderSink(tmp_path / "frames", by_frame_number=True)
    folder.write(result(3), grey(80, 40, 60))
    folder.close()
    lines = JsonLinesSink(tmp_path / "out" / "keypoints.jsonl")
    lines.write(result(3), None)
    lines.close()
    assert [os.readlink(tmp_path / n) for n in ("frames", "out")] == [
        os.path.join("kept", "frames"),
        os.path.join("runs", "r1"),
    ]
    (frame,) = (tmp_path / "kept" / "frames").iterdir()
    assert read_bgr(frame).shape == (40, 60, 3)
    assert json.loads((tmp_path / "runs" / "r1" / "keypoints.jsonl").read_text())["frame"] == 3


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def test_live_video_follows_the_wall_clock(tmp_path: Path) -> None:
    # A camera at 10 fps whose frames are processed at 0 s, 0.1 s, 0.32 s and 0.33 s: the video holds a
    # frame per 0.1 s of wall time (the third repeated to fill 0.2-0.3 s; the fourth, 0.01 s after it, left
    # out), so it plays back in real time rather than 4 frames in 0.4 s whatever the processing rate.
    times = iter([0.0, 0.1, 0.32, 0.33, 0.51])
    sink = VideoSink(tmp_path / "v.avi", fps=10, realtime=True, clock=lambda: 100.0 + next(times))
    shades = [0, 60, 120, 180, 240]
    for i, shade in enumerate(shades):
        sink.write(result(i), grey(shade, 40, 60))
    sink.close()
    means = [round(float(f.mean()) / 60) * 60 for f in read_video(tmp_path / "v.avi")]
    assert means == [0, 60, 120, 120, 240, 240]


def test_file_video_writes_each_frame_once(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "v.avi", fps=10, clock=lambda: pytest.fail("a file source needs no clock"))
    for i in range(3):
        sink.write(result(i), grey(60 * i, 40, 60))
    sink.close()
    assert [round(float(f.mean()) / 60) * 60 for f in read_video(tmp_path / "v.avi")] == [0, 60, 120]


def test_folder_sink_names_and_annotation(tmp_path: Path) -> None:
    sink = FolderSink(tmp_path, by_frame_number=False)
    r = result(3, grey(0, 48, 64))
    drawn = annotate(r, fps=12.5)
    assert drawn.any() and not r.image.any()  # drawn on a copy
    sink.write(r, drawn)
    assert [p.name for p in tmp_path.iterdir()] == ["img3.jpg"]
    FolderSink(tmp_path / "cam", by_frame_number=True).write(r, drawn)
    assert [p.name for p in (tmp_path / "cam").iterdir()] == ["000003.jpg"]


def test_folder_sink_keeping_only_shared_names_names_frames_as_keeping_every_name(tmp_path: Path) -> None:
    """FolderSink given the folder's shared_stems keeps only the names two images can ask for: it must name
    every frame as the sink that keeps every name does, for listings of stems that clash (a.jpg, a.png), whole
    names that are other images' stems (a.png beside a.png.jpg) and images skipped before they are written
    (a.jpg unreadable: a.png is then a.jpg). 300 random listings in name order, as an image folder reads them."""
    rng = np.random.default_rng(0)
    pool = [stem + ext for stem in ("a", "a.png", "a.jpg", "a.b", "b", "b.png") for ext in (".jpg", ".png", ".bmp")]
    image = grey(0, 4, 4)
    for case in range(300):
        listing = sorted(rng.choice(pool, size=int(rng.integers(1, 9)), replace=False).tolist())
        written = [n for n in listing if rng.random() < 0.8]  # the others are skipped (do not decode)
        frames = []
        for shared in (None, sinks.shared_stems(listing)):
            folder = tmp_path / f"{case}-{shared is None}"
            sink = FolderSink(folder, by_frame_number=False, shared=shared)
            for i, name in enumerate(written):
                sink.write(FrameResult(i, name, np.zeros((16, 2)), np.ones(16), np.zeros((16, 2))), image)
            frames.append(sorted(p.name for p in folder.iterdir()))
        assert frames[1] == frames[0], listing
        assert len(frames[0]) == len(written)
    assert sinks.shared_stems(["a.jpg", "a.png", "a.png.jpg", "b.jpg"]) == {"a", "a.png"}
    assert sinks.shared_stems([f"im{i}.png" for i in range(100)]) == set()


def test_a_full_disk_leaves_whole_json_lines_and_no_part_file(tmp_path: Path, monkeypatch) -> None:
    """A write the disk has room for only in part: the file keeps the lines before it (a reader of JSON lines
    would choke on half a line), and the error names the file; an annotated frame leaves no .part file."""
    import errno

    sink = JsonLinesSink(tmp_path / "k.jsonl")
    sink.write(result(0), None)
    real = sink._f

    class HalfFull:  # takes 10 bytes of the next line, then refuses
        def __init__(self) -> None:
            self.room = 10

        def write(self, data) -> int:
            if not self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = real.write(bytes(data[: self.room]))
            self.room -= n
            return n

        def __getattr__(self, name):
            return getattr(real, name)

    sink._f = HalfFull()  # type: ignore[assignment]
    with pytest.raises(OSError) as info:
        sink.write(result(1), None)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(tmp_path / "k.jsonl"))
    sink._f = real
    sink.close()
    assert [json.loads(line)["frame"] for line in (tmp_path / "k.jsonl").read_text().splitlines()] == [0]

    def full_disk(path, image, quality=None, comment=None):
        Path(path).write_bytes(b"\xff\xd8 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dpupose.runtime.sinks.write_jpeg", full_disk)
    with pytest.raises(OSError) as info:
        FolderSink(tmp_path / "frames", by_frame_number=True).write(result(4), grey(0))
    assert info.value.filename == str(tmp_path / "frames" / "000004.jpg")
    assert os.listdir(tmp_path / "frames") == []


def test_a_real_full_disk_keeps_what_the_run_wrote_and_no_broken_video(small_fs) -> None:
    import errno

    from conftest import fill

    fs = small_fs(512)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    keypoints = JsonLinesSink(fs / "keypoints.jsonl")
    frames = FolderSink(fs / "frames", by_frame_number=True)
    videos = [VideoSink(fs / "annotated.mp4", fps=10), VideoSink(fs / "annotated.avi", fps=10)]
    keypoints.write(result(0), None)
    frames.write(result(0), noise[0])
    fill(fs)
    with pytest.raises(OSError) as info:
        for i in range(1, 200):  # whole lines until the disk is full
            keypoints.write(result(i), None)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(fs / "keypoints.jsonl"))
    keypoints.close()
    assert [r["frame"] for r in map(json.loads, (fs / "keypoints.jsonl").read_text().splitlines())] == list(range(i))
    with pytest.raises(OSError) as info:
        frames.write(result(1), noise[1])
    assert info.value.filename == str(fs / "frames" / "000001.jpg")
    assert os.listdir(fs / "frames") == ["000000.jpg"]
    for video in videos:  # OpenCV's writer says nothing; the video must not get its final name
        for i in range(20):
            video.write(result(i), noise[i % 3])
        with pytest.raises(DeviceError, match=rf"the annotated video {video.path} could not be written whole"):
            video.close()
        assert not video.path.exists() and video.part.exists()  # kept, under the name that says so


def test_fps_meter() -> None:
    t = iter([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # the meter starts at 0.0, a frame every 0.1 s
    meter = FpsMeter(window=3, clock=lambda: next(t))
    assert [meter.tick() for _ in range(5)] == pytest.approx([10.0] * 5)


def test_fps_meter_counts_from_its_start() -> None:
    # started at 0 s (when the run asked its source for the first frame), read later: frames at 1 s and 2 s
    # are 1 FPS from the start, whatever the clock said when the meter was made
    meter = FpsMeter(clock=lambda: 7.0, start=0.0)
    assert meter.fps == 0.0 and meter.tick(1.0) == 1.0 and meter.tick(2.0) == 1.0


def test_run_json_s_recent_fps_keeps_three_decimals() -> None:
    from dpupose.runtime.pipeline import RunStats

    stats = RunStats({}, frames=2, wall_seconds=3.0, recent_fps=2 / 3)
    assert stats.to_dict()["recent_fps"] == 0.667 and stats.to_dict()["fps"] == 0.667
    assert RunStats({}).to_dict()["recent_fps"] is None


def test_fps_meter_of_frames_that_come_in_pairs() -> None:
    # A pipeline with two DPU jobs hands on two frames at once, each pair 1 s after the last: 2 FPS, where
    # the two first frames alone made a rate of 1 / 30 us (the run's progress line said 'frame 1: 33333 FPS').
    t = iter([0.0, 1.0, 1.00003, 2.0, 2.00003, 3.0, 3.00003, 4.0, 4.00003])
    meter = FpsMeter(window=4, clock=lambda: next(t))
    got = [meter.tick() for _ in range(8)]
    assert got == pytest.approx([1.0, 2.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0], rel=1e-4)


def test_fps_meter_recovers_within_its_horizon_after_the_source_stalls() -> None:
    # 2 FPS, then the camera gives nothing for 10 s (reconnecting), then 2 FPS again. The figure kept the
    # stall in for 30 frames, 15 s at that rate (1.22 FPS 5 s after it); now for 5 s at most.
    before = [0.5 * i for i in range(1, 21)]  # frames at 0.5 ... 10 s
    after = [20.0 + 0.5 * k for k in range(16)]  # then at 20 ... 27.5 s
    t = iter([0.0, *before, *after])
    meter = FpsMeter(clock=lambda: next(t))
    assert [meter.tick() for _ in before] == pytest.approx([2.0] * 20)
    got = [meter.tick() for _ in after]
    # Until 5 s after the stall: the frames since, over the time since the last frame before it.
    assert got[:10] == pytest.approx([(k + 1) / (10 + 0.5 * k) for k in range(10)])
    assert got[10:] == pytest.approx([2.0] * 6)


def test_show_without_a_display_warns(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.WARNING):
        sink = DisplaySink()
    assert not sink.enabled and "no display" in caplog.text
    sink.write(result(0, grey(0)), grey(0))
    sink.close()


def test_file_names_that_are_not_utf8(tmp_path: Path) -> None:
    """OpenCV's own file functions crash the process on such names; a child process keeps a regression
    from taking the test run down with it."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"  # Latin-1 "café": not UTF-8
    with open(raw, "wb") as f:
        f.write(cv2.imencode(".jpg", grey(30))[1].tobytes())
    code = f"""
import os
from dpupose.runtime.frames import FrameResult
from dpupose.runtime.imagefile import read_bgr
from dpupose.runtime.sinks import FolderSink
from dpupose.runtime.sources import ImageFolderSource
import numpy as np
frames = list(ImageFolderSource({str(tmp_path)!r}))
assert len(frames) == 1 and int(frames[0].image.mean()) in (29, 30, 31), frames
out = FolderSink({str(tmp_path / "out")!r}, by_frame_number=False)
r = FrameResult(0, frames[0].source, np.zeros((16, 2)), np.ones(16), np.zeros((16, 2)))
out.write(r, frames[0].image)
print(os.listdir(os.fsencode({str(tmp_path / "out")!r})))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[b'caf\\xe9.jpg']"  # the source's name, byte for byte
    video = os.fsdecode(os.fsencode(tmp_path) + b"/clip\xe9.avi")
    write_video(tmp_path / "clip.avi", 2)
    os.rename(os.fsencode(tmp_path) + b"/clip.avi", os.fsencode(video))
    with pytest.raises(DataError, match=r"not valid UTF-8; rename it"):
        VideoFileSource(video)


@pytest.mark.parametrize(("frame_count", "reads", "whole"), [(-1, True, True), (0, False, False), (12, False, True)])
def test_video_read_back_asks_for_a_frame_when_the_backend_cannot_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame_count: float, reads: bool, whole: bool
) -> None:
    from dpupose.runtime import sinks

    class Capture:  # a backend such as GStreamer, which answers -1 or 0 for a file's frame count
        def __init__(self, path: str) -> None:
            pass

        def isOpened(self) -> bool:
            return True

        def get(self, prop: int) -> float:
            assert prop == cv2.CAP_PROP_FRAME_COUNT
            return frame_count

        def read(self):
            return reads, (np.zeros((4, 4, 3), np.uint8) if reads else None)

        def release(self) -> None:
            pass

    monkeypatch.setattr(sinks.cv2, "VideoCapture", Capture)
    assert sinks._reads_back(tmp_path / "annotated.part.mp4") is whole


def test_a_fifo_made_at_a_frame_name_during_a_run_is_refused_not_replaced(tmp_path: Path) -> None:
    """run refuses one before its work (test_run_command); one made while the run goes on stops it at that frame
    with the run's one-line error, the frames before it kept, and is not replaced."""
    import stat

    sink = FolderSink(tmp_path, by_frame_number=True)
    sink.write(result(0), grey(0))
    for name in ("000001.jpg", ".000001.part.jpg"):
        os.mkfifo(tmp_path / name)
        # a reader held open: a frame written into the FIFO fails this test instead of blocking it for ever
        reader = os.open(tmp_path / name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(UsageError, match=rf"{name} is a FIFO, not a file, and this run writes an annotated"):
                sink.write(result(1), grey(0))
        finally:
            os.close(reader)
        assert stat.S_ISFIFO(os.stat(tmp_path / name).st_mode)
        os.unlink(tmp_path / name)
    assert os.listdir(tmp_path) == ["000000.jpg"]
    sink.write(result(1), grey(0))
    assert sorted(os.listdir(tmp_path)) == ["000000.jpg", "000001.jpg"]


def test_subfolders_are_named_up_to_four_then_counted(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"day{i}").mkdir()
    with pytest.raises(DataError, match=r"pass one of them \(day0, day1, day2, day3\) as --source$"):
        ImageFolderSource(tmp_path)
    (tmp_path / "day4").mkdir()
    with pytest.raises(DataError, match=r"pass one of them \(day0, day1, day2, day3 and 1 more\) as --source$"):
        ImageFolderSource(tmp_path)


def test_camera_frames_of_one_or_four_channels_are_made_bgr() -> None:
    """A grey (H, W, 1) frame has its value in all three channels, a BGRA one loses its alpha; a frame of two
    channels stops the run naming its form."""
    bgra = np.zeros((6, 8, 4), np.uint8)
    bgra[...] = (10, 20, 30, 255)
    script = [np.full((6, 8, 1), 77, np.uint8), bgra, np.zeros((6, 8, 2), np.uint8)]
    frames = iter(CameraSource(0, FakeCapture.factory([script]), reconnect_attempts=0, sleep=lambda s: None))
    grey_frame, colour = next(frames), next(frames)
    assert grey_frame.image.shape == colour.image.shape == (6, 8, 3)
    assert (grey_frame.image == 77).all() and (colour.image == (10, 20, 30)).all()
    with pytest.raises(DataError, match=r"camera 0: frame 2 is uint8 of shape \(6, 8, 2\), not an 8-bit colour"):
        next(frames)


def test_a_camera_closed_while_it_waits_to_reconnect_is_not_opened_again() -> None:
    """close() from the main thread (a pipelined run stopping) during the pause before a reconnect: the
    source ends there, and no capture is opened after it (one would be left open, never released)."""
    FakeCapture.opens, FakeCapture.made = [], []
    cam = CameraSource(1, FakeCapture.factory([[5, None], [6]]), reconnect_attempts=3, sleep=lambda s: cam.close())
    assert [f.index for f in cam] == [0]
    assert len(FakeCapture.opens) == 1 and [c.released for c in FakeCapture.made] == [True]


class _FailingAfter:
    """A video's capture that announces 100 frames at 10 FPS and decodes only the first `good`."""

    def __init__(self, good: int) -> None:
        self.good, self.reads = good, 0

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_COUNT: 100.0, cv2.CAP_PROP_FPS: 10.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        return (True, grey(self.reads)) if self.reads <= self.good else (False, None)

    def release(self) -> None:
        pass


def test_a_video_stops_at_its_max_bad_run_of_undecodable_frames(tmp_path: Path, caplog) -> None:
    """Frames 0-1 decode, then none does: with max_bad_run 3 the source reads frames 2, 3 and 4 and stops
    there, 3 skipped, not one read more."""
    (tmp_path / "cut.mp4").write_bytes(b"\0")
    capture = _FailingAfter(2)
    src = VideoFileSource(tmp_path / "cut.mp4", open_capture=lambda path: capture, max_bad_run=3)
    with caplog.at_level(logging.WARNING):
        assert [f.index for f in src] == [0, 1]
    assert capture.reads == 5 and src.skipped == 3
    assert "cut.mp4: 3 frames in a row from frame 2 could not be decoded" in caplog.text
    assert "stopping (the file announces 100)" in caplog.text


def test_an_image_file_of_an_upper_case_extension_is_read_as_an_image(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "photo.JPG"), grey(40))
    assert sources.is_image_source(str(tmp_path / "photo.JPG"))
    src = open_source(str(tmp_path / "photo.JPG"))
    assert isinstance(src, ImageFolderSource) and [f.source for f in src] == ["photo.JPG"]


def test_a_frames_folder_that_was_there_stays_when_no_frame_comes(tmp_path: Path) -> None:
    """close() with no frame written removes the folder the sink made, and only that one: an empty folder
    that was there before (made by the user, or an earlier run's emptied frames/) stays."""
    (tmp_path / "there").mkdir()
    for name in ("there", "made"):
        FolderSink(tmp_path / name, by_frame_number=True).close()
    assert (tmp_path / "there").is_dir() and not (tmp_path / "made").exists()


def test_a_video_of_a_source_of_unknown_rate_plays_at_15_fps(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "a.avi", fps=None)
    for i in range(3):
        sink.write(result(i, grey(10 * i)), grey(10 * i))
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "a.avi"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0) and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    capture.release()


def test_a_plan_without_confidence_still_has_its_skeleton_drawn() -> None:
    """Confidence NaN (a plan without heatmaps) is no confidence at all: every joint is drawn, as at
    confidence 1, not none of them (NaN >= 0 is false)."""
    unknown = result(0, np.zeros((64, 64, 3), np.uint8))
    unknown.confidence = np.full(16, np.nan, np.float32)
    sure = result(0, np.zeros((64, 64, 3), np.uint8))
    sure.confidence = np.ones(16, np.float32)
    drawn = annotate(unknown)
    assert drawn.any()
    np.testing.assert_array_equal(drawn, annotate(sure))


@pytest.mark.parametrize(("key", "quits"), [(ord("q"), True), (27, True), (ord(" "), False)])
def test_q_or_esc_in_the_window_asks_the_run_to_stop(monkeypatch: pytest.MonkeyPatch, key: int, quits: bool) -> None:
    shown = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(sinks.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(sinks.cv2, "imshow", lambda title, image: shown.append(title))
    monkeypatch.setattr(sinks.cv2, "waitKey", lambda delay: key)
    sink = DisplaySink("pose")
    sink.write(result(0), np.zeros((4, 4, 3), np.uint8))
    assert shown == ["pose"] and sink.quit_requested is quits


def test_a_video_says_once_that_it_scales_frames_of_another_size(tmp_path: Path, caplog) -> None:
    sink = VideoSink(tmp_path / "a.avi", fps=10)
    with caplog.at_level(logging.WARNING):
        for i, (h, w) in enumerate([(32, 48), (16, 24), (40, 40)]):
            sink.write(result(i), np.zeros((h, w, 3), np.uint8))
    sink.close()
    said = [r.getMessage() for r in caplog.records if "scales" in r.getMessage()]
    assert said == [
        "a.avi: frame 1 is 24x16, not 48x32 as the first: the video scales it (and each other frame of another "
        "size) to 48x32; keypoints.jsonl keeps each frame's own pixels"
    ]
    capture = cv2.VideoCapture(str(tmp_path / "a.avi"))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 32)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    capture.release()


def test_an_empty_image_file_reads_as_none(tmp_path: Path) -> None:
    # None, as for any file that does not decode (OpenCV's imdecode raises on an empty buffer instead)
    (tmp_path / "a.jpg").write_bytes(b"")
    assert read_bgr(tmp_path / "a.jpg") is None


def test_an_opencv_error_other_than_its_size_limit_is_one_line_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    from dpupose.runtime import imagefile

    def refuses(data, flags):
        error = cv2.error("OpenCV(4.9.0) loadsave.cpp:812: error: (-2:Unspecified error) in function 'imdecode_'\n")
        error.err = "broken stream"
        raise error

    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr(imagefile.cv2, "imdecode", refuses)
    with pytest.raises(DataError) as error:
        read_bgr(tmp_path / "a.png")
    assert str(error.value) == f"{tmp_path / 'a.png'}: cannot decode the image: OpenCV stops on it (broken stream)"


def test_write_jpeg_writes_at_the_quality_given(tmp_path: Path) -> None:
    from dpupose.runtime.imagefile import write_jpeg

    image = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)  # noise: size follows quality
    sizes = {}
    for quality in (0, 50, 95, 100, None):
        assert write_jpeg(tmp_path / f"{quality}.jpg", image, quality) is True
        sizes[quality] = (tmp_path / f"{quality}.jpg").stat().st_size
    assert sizes[0] < sizes[50] < sizes[95] < sizes[100]
    assert (tmp_path / "None.jpg").read_bytes() == (tmp_path / "95.jpg").read_bytes()  # OpenCV's default: 95
    assert read_bgr(tmp_path / "100.jpg").shape == (48, 64, 3)


def test_write_jpeg_of_an_image_jpeg_cannot_hold_is_false_and_writes_nothing(tmp_path: Path) -> None:
    from dpupose.runtime.imagefile import write_jpeg

    # JPEG's sides stop at 65535 (OpenCV's encoder at 65500): imencode gives False (5.x) or raises (4.x)
    assert write_jpeg(tmp_path / "tall.jpg", np.zeros((70000, 2, 3), np.uint8)) is False
    assert not (tmp_path / "tall.jpg").exists()


def test_write_jpeg_where_opencv_raises_is_false_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    """The board's OpenCV 4.x raises cv2.error for an image its JPEG encoder refuses (a side over 65500),
    where 5.x returns False: write_jpeg let the error through, a traceback in the middle of a run."""
    import cv2

    from dpupose.runtime import imagefile

    def refusing(ext, image, params=None):
        raise cv2.error("Raw image encoder error: Maximum supported image dimension is 65500 pixels")

    monkeypatch.setattr(imagefile.cv2, "imencode", refusing)
    assert imagefile.write_jpeg(tmp_path / "tall.jpg", np.zeros((4, 2, 3), np.uint8)) is False
    assert not (tmp_path / "tall.jpg").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_jpeg_on_a_full_disk_names_the_file() -> None:
    # A write's ENOSPC names no file; write_jpeg's names the one it wrote (/dev/full: every write is ENOSPC)
    import errno

    from dpupose.runtime.imagefile import write_jpeg

    with pytest.raises(OSError) as error:
        write_jpeg("/dev/full", grey(10))
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, "/dev/full")
    assert str(error.value) == f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}: '/dev/full'"


def test_a_video_opencv_cannot_write_as_mp4_is_written_as_avi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where OpenCV cannot write MP4 (a build without its encoder) the video is MJPG in annotated.avi, written as
    annotated.part.avi until it reads back; the annotated.part.mp4 a writer that failed to open may leave is
    not left behind."""
    real = cv2.VideoWriter

    def writer(path, fourcc, fps, size):
        if fourcc == cv2.VideoWriter_fourcc(*"mp4v"):
            Path(path).write_bytes(b"")  # made, then not opened
            return real()
        return real(path, fourcc, fps, size)

    monkeypatch.setattr(sinks.cv2, "VideoWriter", writer)
    sink = VideoSink(tmp_path / "annotated.mp4", fps=10)
    for i in range(3):
        sink.write(result(i), grey(60 * i, 40, 60))
    assert sink.part == tmp_path / "annotated.part.avi" and os.listdir(tmp_path) == ["annotated.part.avi"]
    sink.close()
    assert sink.path == tmp_path / "annotated.avi" and os.listdir(tmp_path) == ["annotated.avi"]
    assert [round(float(f.mean()) / 60) * 60 for f in read_video(tmp_path / "annotated.avi")] == [0, 60, 120]


def test_a_frame_s_json_record_rounds_to_a_hundredth_pixel_a_ten_thousandth_and_a_microsecond() -> None:
    kp = np.zeros((16, 2), np.float32)
    kp[0] = (12.3456, 7.891)
    conf = np.full(16, np.nan, np.float32)
    conf[0], conf[1] = 0.123456, 0.98766  # float32: 0.12345600 and 0.98765999
    r = FrameResult(7, "clip.mp4", kp, conf, kp / 64, {"dpu0": 0.0123456, "cpu0": 0.0004}, None)
    j = r.to_json()
    assert (j["frame"], j["source"]) == (7, "clip.mp4")
    assert j["keypoints"][0] == [12.35, 7.89] and j["keypoints"][1] == [0.0, 0.0]
    assert j["confidence"][:3] == [0.1235, 0.9877, None]
    assert j["timings_ms"] == {"dpu0": 12.346, "cpu0": 0.4}


def test_an_image_of_one_pixel_is_letterboxed_and_scaled_into_a_video(tmp_path: Path) -> None:
    # OpenCV 4.5.4 (a PYNQ 3.0.1 board's) stops with an assertion enlarging a one-pixel colour image, which
    # `dpupose run` did for a 1 x 1 PNG, a traceback on the board; make test-board-py runs this under 4.5.4
    from dpupose.data.transforms import letterbox

    pixel = np.array([[[10, 20, 30]]], np.uint8)
    boxed, affine = letterbox(pixel, 8)
    np.testing.assert_array_equal(boxed, np.full((8, 8, 3), (10, 20, 30), np.uint8))  # no bars: it is square
    np.testing.assert_allclose(affine @ [0.0, 0.0, 1.0], [3.5, 3.5])  # its centre at the crop's
    sink = VideoSink(tmp_path / "a.avi", fps=10)
    sink.write(result(0), np.zeros((16, 24, 3), np.uint8))
    sink.write(result(1), np.full((1, 1, 3), 200, np.uint8))  # scaled to the first frame's size
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "a.avi"))
    frames = [capture.read()[1] for _ in range(2)]
    capture.release()
    assert frames[1].shape == (16, 24, 3) and abs(int(frames[1].mean()) - 200) <= 2


def test_a_pattern_given_as_the_source_is_answered_with_its_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    # `--source images/*.jpg` unquoted reaches dpupose as one word per file, the first the source and the
    # rest unrecognized; quoted, as a path that is not there: each says to give the folder
    from dpupose.cli import main

    for name in ("a.jpg", "b.jpg", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((4, 4, 3), np.uint8))
    monkeypatch.chdir(tmp_path.parent)
    here = tmp_path.name

    def refused(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as exc:
            main(["run", "--plan", "p", *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert refused(["--source", f"{here}/a.jpg", f"{here}/b.jpg", f"{here}/c.png"]) == (
        f"dpupose run: error: unrecognized arguments: {here}/b.jpg {here}/c.png; --source takes one image folder, "
        "image, video or camera:N, not 3 files (a pattern such as *.jpg, which the shell expands into a word per "
        f"file): pass their folder, --source {here} (see `dpupose run --help`)\n"
    )
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "d.jpg"), np.zeros((4, 4, 3), np.uint8))
    assert f"pass each of their folders in a run of its own ({here}, {here}/sub)" in refused(
        ["--source", f"{here}/a.jpg", f"{here}/sub/d.jpg"]
    )
    # A word that is no file is an ordinary unrecognized argument.
    assert refused(["--source", f"{here}/a.jpg", "extra"]).endswith(
        "unrecognized arguments: extra (see `dpupose run --help`)\n"
    )
    with pytest.raises(UsageError, match=r"does not exist \(dpupose expands no pattern such as \*\.jpg: give the"):
        open_source(f"{here}/*.jpg")
    with pytest.raises(UsageError, match=r"does not exist \(dpupose expands no pattern"):
        open_source(f"{here}/clip?.mp4")
    with pytest.raises(UsageError) as error:
        open_source(f"{here}/x.jpg")
    assert "expands no pattern" not in str(error.value)


@pytest.mark.parametrize(
    ("missing", "line", "names"),
    [
        ("torch,onnx", "train --data synthetic --epochs 1", "dpupose train needs PyTorch (module torch)"),
        ("torch,onnx", "split model.onnx", "dpupose split needs onnx (module onnx)"),
    ],
)
def test_a_host_command_on_the_board_says_it_runs_on_a_pc(tmp_path: Path, missing: str, line: str, names: str) -> None:
    # The board (no torch, no onnx) was told to `pip install 'dpupose[host]'`, PyTorch on the Ultra96, as if
    # the command were for it; it says the command is a PC's
    code = "import sys; sys.modules.update(dict.fromkeys(sys.argv[1].split(','))); from dpupose.cli import main; "
    code += "sys.exit(main(sys.argv[2:]))"
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    out = tmp_path / "out"
    argv = [sys.executable, "-c", code, missing, *line.split(), "--out", str(out)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"dpupose: error: {names}, which is not installed: it runs on a PC, not on the board; on a PC, install "
        "dpupose with its host extra: pip install 'dpupose[host]'\n"
    )
    assert not out.exists()


def _without_torch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`dpupose ARGS` in a subprocess where torch and onnx cannot be imported, as on the board."""
    code = "import sys; sys.modules.update(torch=None, onnx=None); from dpupose.cli import main; "
    code += "sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_deploy_check_needs_no_torch_against_a_dump_and_says_so_first_against_torch(tmp_path: Path) -> None:
    # Without torch, deploy-check made its calibration images (256 synthetic scenes under build/data, a
    # minute) before it found torch missing; and against a board's dump, which needs neither torch nor onnx,
    # it stopped on torch anyway, reading those images through the torch Dataset's module
    from dpupose.data.synthetic import SynthSpec, generate
    from dpupose.quant.compare import dump_name
    from dpupose.runtime.emulator import EmulatorRunner

    dpu0 = ROOT / "models" / "dpupose-synth" / "split" / "dpu0.onnx"
    for against, module in (("torch", "PyTorch (module torch)"), ("ort", "onnx (module onnx)")):
        proc = _without_torch(["deploy-check", str(dpu0), "--against", against], tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(f"dpupose: error: dpupose deploy-check needs {module}")
        assert os.listdir(tmp_path) == [], "calibration images were made first"
    root = generate(tmp_path / "data", SynthSpec(seed=3, num_train=2, num_valid=0, image_size=96), workers=1)
    emulator = EmulatorRunner(dpu0)
    first = emulator.program.steps[0].out
    shape = emulator.trace({"image": np.zeros(emulator.inputs[0].shape, np.int8)})[first].shape
    (tmp_path / "dump").mkdir()
    np.save(tmp_path / "dump" / f"{dump_name(first)}.npy", np.zeros(shape, np.int8))
    args = ["deploy-check", str(dpu0), "--against", "dump", "--data-root", str(root), "--num", "1"]
    proc = _without_torch(args, tmp_path)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the zeros differ from the emulator's layer
    assert proc.stdout.splitlines()[1].startswith(first) and "needs" not in proc.stderr


def test_deploy_check_feeds_a_dumped_input_of_several_images(tmp_path: Path) -> None:
    # --dump writes --num images (2 by default), and a board's dump holds as many as it ran; a dumped input of
    # more than one image was refused by its shape without a word and the calibration images fed instead,
    # which on another machine (another OpenCV draws other synthetic scenes) differ from the dumped ones
    from dpupose.quant.compare import dump_name
    from dpupose.runtime.emulator import EmulatorRunner

    dpu0 = ROOT / "models" / "dpupose-synth" / "split" / "dpu0.onnx"
    emulator = EmulatorRunner(dpu0)
    image = emulator.program.inputs[0]
    first = emulator.program.steps[0].out
    x = np.random.default_rng(0).integers(-128, 128, (3, *emulator.inputs[0].shape[1:]), dtype=np.int8)
    trace = emulator.trace({image.name: x})
    (tmp_path / "dump").mkdir()
    for name in (image.tensor, first):
        np.save(tmp_path / "dump" / f"{dump_name(name)}.npy", trace[name])
    proc = _without_torch(["deploy-check", str(dpu0), "--against", "dump"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "all 2 layers agree with dump within 0 LSB"
    assert not (tmp_path / "build").exists()  # no calibration image was made
    # An input dumped at another size is said, not passed over for the calibration images.
    np.save(tmp_path / "dump" / f"{dump_name(image.tensor)}.npy", x[:, :100])
    proc = _without_torch(["deploy-check", str(dpu0), "--against", "dump"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("dpupose: error: "), proc.stderr
    assert "dumped 'image_int8' has shape (3, 100, 224, 3), the emulator's is (1, 224, 224, 3)" in proc.stderr


@pytest.mark.parametrize("backend", ["cpu", "emulate"])
def test_run_draws_its_backend_under_the_fps_as_the_notebook_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # dpupose run's frames and video showed '3.8 FPS' alone, an emulator's or ONNX Runtime's rate on a PC that
    # a frame shown elsewhere gave for the board's; the notebook's frames say the backend under it
    from dpupose.runtime import app

    drawn: list[tuple[str, int, int]] = []
    real = app.draw_label

    def spy(frame: np.ndarray, text: str, row: int = 0) -> np.ndarray:
        before = frame.copy()
        real(frame, text, row)
        drawn.append((text, row, int((frame != before).any(axis=2).sum())))
        return frame

    monkeypatch.setattr(app, "draw_label", spy)
    (tmp_path / "in").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), np.full((120, 160, 3), 90 + 40 * i, np.uint8))
    plan = ROOT / "models" / "dpupose-synth" / "split"
    app.run(app.RunOptions(plan, str(tmp_path / "in"), backend=backend, out=tmp_path / "out", annotate="frames"))
    assert [(text, row) for text, row, _ in drawn] == [(f"backend: {backend}", 1)] * 2
    assert all(changed > 50 for _, _, changed in drawn)  # the words are on the frame
    assert sorted(os.listdir(tmp_path / "out" / "frames")) == ["0.jpg", "1.jpg"]
    drawn.clear()
    app.run(app.RunOptions(plan, str(tmp_path / "in"), backend=backend, out=tmp_path / "out", annotate="none"))
    assert drawn == []  # no frame to draw on


def test_a_host_subcommand_is_named_with_its_group(tmp_path: Path) -> None:
    # 'dpupose dpu needs onnx' named the group, not the command that needs it, `dpupose dpu estimate`
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    argv = ["dpu", "estimate", "model.onnx", "--config", "u96v2-b1600-pynq"]
    proc = _without_torch(argv, tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "dpupose: error: dpupose dpu estimate needs onnx (module onnx), which is not installed: it runs on a PC"
    ), proc.stderr


def test_a_frame_stopped_before_its_line_is_not_counted_in_run_json(tmp_path: Path, monkeypatch) -> None:
    # Ctrl-C while a large frame was drawn (an 8000 x 6000 photo takes seconds on the board) left run.json
    # saying `frames: 1` over a keypoints.jsonl of no line: the frame was counted before its outputs
    from dpupose.runtime import app

    real, calls = app.annotate, []

    def stopped_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(app, "annotate", stopped_on_the_second)
    (tmp_path / "in").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), np.full((60, 80, 3), 60 * i, np.uint8))
    plan = ROOT / "models" / "dpupose-synth" / "split"
    out = tmp_path / "out"
    summary = app.run(app.RunOptions(plan, str(tmp_path / "in"), backend="cpu", out=out, annotate="frames"))
    assert summary.interrupted and summary.stats.frames == 1
    lines = (out / "keypoints.jsonl").read_text().splitlines()
    record = json.loads((out / "run.json").read_text())
    assert [json.loads(line)["source"] for line in lines] == ["0.png"]
    assert record["interrupted"] and record["frames"] == 1 == len(lines)
    assert all(stage["frames"] == 1 for stage in record["stages"].values())
    assert sorted(os.listdir(out / "frames")) == ["0.jpg"]


def _notebook_cells() -> list[str]:
    import dpupose.notebooks

    path = Path(dpupose.notebooks.__file__).parent / "pose_camera.ipynb"
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize(
    ("value", "frames"),
    [
        *[("25", 25), (" 7 ", 7), ("", 300), (None, 300), ("abc", None), ("2.5", None), ("0", None), ("-3", None)],
        ("\u00b2", None),  # a digit to str.isdigit, which int() refuses with a ValueError
        ("\u0663", None),  # an Arabic-Indic 3, which int() reads as 3: no whole number a user types as such
    ],
)
def test_the_notebook_s_frame_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch, value, frames) -> None:
    # The first cell did int(os.environ["DPUPOSE_NOTEBOOK_FRAMES"]): a word there was a ValueError traceback,
    # and an empty value (unset, as make's empty variables are) one too
    if value is None:
        monkeypatch.delenv("DPUPOSE_NOTEBOOK_FRAMES", raising=False)
    else:
        monkeypatch.setenv("DPUPOSE_NOTEBOOK_FRAMES", value)
    for name in ("PLAN", "SOURCE", "OVERLAY", "DECODE"):
        monkeypatch.setenv(f"DPUPOSE_NOTEBOOK_{name}", "")  # empty: the default too
    namespace: dict = {}
    first = _notebook_cells()[0]
    if frames is not None:
        exec(compile(first, "pose_camera.ipynb", "exec"), namespace)
        assert namespace["MAX_FRAMES"] == frames
        assert [namespace[name] for name in ("PLAN", "SOURCE", "OVERLAY", "DECODE")] == [
            "/home/xilinx/dpupose/model",
            "camera:0",
            "/home/xilinx/dpupose/overlay",
            "dsnt",
        ]
        return
    with pytest.raises(UsageError) as refused:
        exec(compile(first, "pose_camera.ipynb", "exec"), namespace)
    assert refused.value._render_traceback_() == [
        f"UsageError: DPUPOSE_NOTEBOOK_FRAMES is {value!r}: give a whole number of frames, 1 or more, or leave it "
        "empty (or unset) for 300"
    ]


def test_frames_from_env_gives_the_default_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from dpupose.runtime.notebook import frames_from_env

    monkeypatch.delenv("DPUPOSE_TEST_FRAMES", raising=False)
    assert frames_from_env("DPUPOSE_TEST_FRAMES", 12) == 12
    monkeypatch.setenv("DPUPOSE_TEST_FRAMES", " ")
    assert frames_from_env("DPUPOSE_TEST_FRAMES", 5) == 5
    monkeypatch.setenv("DPUPOSE_TEST_FRAMES", "0")
    with pytest.raises(UsageError, match=r"^DPUPOSE_TEST_FRAMES is '0': .* \(or unset\) for 5$"):
        frames_from_env("DPUPOSE_TEST_FRAMES", 5)


def test_the_notebook_says_what_run_says_of_a_source_without_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, caplog
) -> None:
    # The notebook printed '0 frames' where `dpupose run` stops with what to do, and its messages about the
    # source named run's --source, an option the notebook's user never typed
    from dpupose.commands.run import run as run_command
    from dpupose.runtime.notebook import PoseSession

    plan = ROOT / "models" / "dpupose-synth" / "split"
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.jpg", "b.png"):
        (bad / name).write_bytes(b"not an image")
    empty = write_video(tmp_path / "empty.avi", 0)
    (tmp_path / "nested" / "day1").mkdir(parents=True)
    (tmp_path / "nested" / "day1" / "0.png").write_bytes(b"")
    (tmp_path / "video2").symlink_to("/dev/null")
    cli = {}
    for spec in (bad, empty):
        args = argparse.Namespace(
            plan=str(plan), source=str(spec), backend="cpu", out=None, pipeline=False, drop_late=False,
            max_frames=None, threads=None, overlay=None, dpu_jobs=2, show=False, annotate="none",
            fast_emulator=False, min_confidence=0.0, decode="dsnt", camera_retries=0, camera_retry_delay=0.0,
        )  # fmt: skip
        assert run_command(args) == 2
        cli[spec] = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("dpupose: error: ")
    assert cli[bad] == (
        f"none of the 2 input(s) of {bad} could be decoded; check that they are images or a video OpenCV can read"
    )
    assert cli[empty].endswith("check that it plays, or pass another --source")

    cells = _notebook_cells()
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_PLAN", str(plan))
    monkeypatch.setenv("DPUPOSE_NOTEBOOK_OVERLAY", str(tmp_path / "no-overlay"))
    monkeypatch.setenv("DPUPOSE_BACKEND", "cpu")
    for spec in (bad, empty):
        monkeypatch.setenv("DPUPOSE_NOTEBOOK_SOURCE", str(spec))
        namespace: dict = {}
        for cell in cells[:2]:  # settings, the session
            exec(compile(cell, "pose_camera.ipynb", "exec"), namespace)
        capsys.readouterr()
        with pytest.raises(DataError) as stopped:  # the run cell: one line in Jupyter, not '0 frames'
            exec(compile(cells[2], "pose_camera.ipynb", "exec"), namespace)
        assert "frames," not in capsys.readouterr().out
        namespace["session"].close()
        want = cli[spec].replace("pass another --source", "set SOURCE to another source")
        assert stopped.value._render_traceback_() == [f"DataError: {want}"]
    assert want.endswith("check that it plays, or set SOURCE to another source")
    with PoseSession(plan, backend="cpu") as session:
        with pytest.raises(DataError, match=r"not read: set SOURCE to one of them \(day1\)$"):
            next(session.run(str(tmp_path / "nested")))
        with pytest.raises(UsageError, match=r'give camera:2 as the source for it \(SOURCE = "camera:2"\)$'):
            next(session.run(str(tmp_path / "video2")))
        with pytest.raises(UsageError, match=r"^SOURCE is empty: pass an image folder"):
            next(session.run(""))
        caplog.clear()
        (tmp_path / "nested" / "1.png").write_bytes(cv2.imencode(".png", grey(10))[1].tobytes())
        assert len(list(session.run(str(tmp_path / "nested")))) == 1
        assert "not reading its subfolders (day1); set SOURCE to one for its images" in caplog.text


def test_the_notebook_names_source_for_a_video_that_does_not_open_and_an_image_name_at_a_camera(
    tmp_path: Path,
) -> None:
    # The messages of a video OpenCV does not open and of an image's name at a camera's device node named
    # run's --source in the notebook, whose user sets SOURCE
    from dpupose.runtime.notebook import PoseSession

    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    (tmp_path / "video0").symlink_to("/dev/null")  # a camera's device node, by its name
    (tmp_path / "cam.jpg").symlink_to("video0")
    camera = f"image source {tmp_path / 'cam.jpg'} is a camera device: give camera:0 as the source for it"
    with pytest.raises(UsageError) as given:
        open_source(str(tmp_path / "cam.jpg"))
    assert str(given.value) == f"{camera} (--source camera:0)"
    with PoseSession(ROOT / "models" / "dpupose-synth" / "split", backend="cpu") as session:
        with pytest.raises(DataError) as unopened:
            next(session.run(str(tmp_path / "clip.mp4")))
        with pytest.raises(UsageError) as given:
            next(session.run(str(tmp_path / "cam.jpg")))
    assert str(unopened.value).startswith(f"cannot open video {tmp_path / 'clip.mp4'}: not a video OpenCV can decode")
    assert str(unopened.value).endswith("; check that it plays, or set SOURCE to another source")
    assert str(given.value) == f'{camera} (SOURCE = "camera:0")'


def test_a_video_whose_first_image_is_one_pixel_takes_the_model_s_input_size(tmp_path: Path, caplog) -> None:
    # An image folder whose first image was 1 pixel wide or tall sized the video so: OpenCV's MP4 writer refused
    # it with an error dump, a warning blamed the place ('OpenCV cannot write annotated.mp4 here') and every
    # later frame was shrunk into a 1 x 1 annotated.avi
    from dpupose.runtime import app

    plan = ROOT / "models" / "dpupose-synth" / "split"
    for first in ((1, 1), (1, 90), (90, 1)):
        folder, out = tmp_path / f"in{first}", tmp_path / f"out{first}"
        folder.mkdir()
        cv2.imwrite(str(folder / "0.png"), np.full((*first, 3), 200, np.uint8))
        cv2.imwrite(str(folder / "1.png"), np.full((120, 160, 3), 90, np.uint8))
        caplog.clear()
        app.run(app.RunOptions(plan, str(folder), backend="cpu", out=out, annotate="video"))
        assert sorted(os.listdir(out)) == [".dpupose.lock", "annotated.mp4", "keypoints.jsonl", "run.json"]
        frames = read_video(out / "annotated.mp4")
        assert [f.shape for f in frames] == [(224, 224, 3)] * 2  # the plan's input size (model.input_size)
        assert abs(float(np.median(frames[1])) - 90) <= 3  # the second image, scaled, not shrunk to a pixel
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"annotated.mp4: the first frame (0.png) is {first[1]}x{first[0]}, too small to size the video by: the "
            "video is 224x224 (the model's input size), each frame scaled to it; keypoints.jsonl keeps each "
            "frame's own pixels"
        ]
    sink = VideoSink(tmp_path / "small.avi", fps=10)  # without a size given: MIN_VIDEO_SIDE square
    sink.write(result(0), grey(50, 4, 30))
    sink.close()
    assert [f.shape for f in read_video(tmp_path / "small.avi")] == [(16, 16, 3)]
    # a size given under MIN_VIDEO_SIDE (a model's input of 8 pixels) is raised to it, the other side kept
    sink = VideoSink(tmp_path / "given.avi", fps=10, small_frame_size=(40, 8))
    sink.write(result(0), grey(50, 4, 30))
    sink.close()
    assert [f.shape for f in read_video(tmp_path / "given.avi")] == [(16, 40, 3)]


def test_a_video_mp4_cannot_be_written_as_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    real = cv2.VideoWriter
    monkeypatch.setattr(
        sinks.cv2,
        "VideoWriter",
        lambda p, fourcc, fps, size: real() if fourcc == real.fourcc(*"mp4v") else real(p, fourcc, fps, size),
    )
    sink = VideoSink(tmp_path / "annotated.mp4", fps=12)
    sink.write(result(0), grey(60, 40, 60))
    sink.close()
    assert "here" not in caplog.text
    assert (
        "this OpenCV cannot write annotated.mp4 (MPEG-4, mp4v, 60x40 at 12 FPS: a build without that encoder); "
        "writing annotated.avi (MJPG) instead" in caplog.text
    )


def test_a_frame_stopped_while_its_line_is_written_is_not_counted_in_run_json(tmp_path: Path, monkeypatch) -> None:
    # A frame counts once its keypoints.jsonl line is written, not as that write starts: Ctrl-C during the
    # second frame's write leaves one line, and run.json says 1 frame
    from dpupose.runtime import app

    real, calls = JsonLinesSink.write, []

    def stopped_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JsonLinesSink, "write", stopped_on_the_second)
    (tmp_path / "in").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), np.full((60, 80, 3), 60 * i, np.uint8))
    plan = ROOT / "models" / "dpupose-synth" / "split"
    out = tmp_path / "out"
    summary = app.run(app.RunOptions(plan, str(tmp_path / "in"), backend="cpu", out=out))
    lines = (out / "keypoints.jsonl").read_text().splitlines()
    record = json.loads((out / "run.json").read_text())
    assert summary.interrupted and len(lines) == 1
    assert summary.stats.frames == 1 and record["frames"] == 1
    assert all(stage["frames"] == 1 for stage in record["stages"].values())


def test_a_pattern_s_folders_are_named_four_at_most_and_this_one_as_dot(tmp_path: Path, capsys, monkeypatch) -> None:
    # `--source a/*.jpg b/*.jpg ...` over many folders names the first four of them, '...' only past four
    from dpupose.cli import main

    monkeypatch.chdir(tmp_path)
    for name in "abcde":
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"")

    def hint(folders: str) -> str:
        with pytest.raises(SystemExit):
            main(["run", "--plan", "p", "--source", *(f"{f}/x.jpg" for f in folders)])
        return capsys.readouterr().err

    assert "pass each of their folders in a run of its own (a, b, c, d) (see" in hint("abcd")
    assert "pass each of their folders in a run of its own (a, b, c, d ...) (see" in hint("abcde")
    # files of the current folder: '.' is their folder, not an empty word
    for name in ("y.jpg", "z.jpg"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["run", "--plan", "p", "--source", "y.jpg", "z.jpg"])
    assert (
        "not 2 files (a pattern such as *.jpg, which the shell expands into a word per file): pass their "
        "folder, --source . (see" in capsys.readouterr().err
    )
