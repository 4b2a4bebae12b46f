"""Pipelined execution: frames overlap across stages, each stage in its own thread(s).

    source -> [preprocess] -> [subgraph 1] -> ... -> [subgraph n] -> [postprocess] -> results (in order)

Stages are joined by bounded queues, so at most a few frames are in flight. A DPU subgraph's stage runs
`dpu_jobs` workers, each with its own runner, so several DPU jobs are in flight at once (VART releases the
GIL while the DPU works; ONNX Runtime and numpy release it too). Results come out in frame order; no frame
is dropped unless `drop_late` is set: then, when the first stage is still busy, the oldest waiting frame
is dropped and counted (for a live camera, which keeps producing frames whether or not they are taken).

Every stage's time per frame is measured (FrameResult.timings); `RunStats` turns them into per-stage
means and the throughput bound 1 / (slowest stage time / its workers).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dpupose.runtime.base import Runner
from dpupose.runtime.executor import Env, Prepared, SplitExecutor
from dpupose.runtime.frames import FPS_WINDOW_TEXT, Frame, FrameResult
from dpupose.split.plan import Subgraph

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often blocked threads look at the stop flag


@dataclass
class StageStats:
    """A stage's time over the frames it ran: their count and sum, not a list of every frame's time (a run
    on a camera goes on for hours, and a list grew by a float per stage and frame for as long as it ran)."""

    name: str
    workers: int = 1
    frames: int = 0
    total_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.frames += 1
        self.total_seconds += seconds

    @property
    def mean(self) -> float:
        """Mean time per frame over every frame the stage ran."""
        return self.total_seconds / self.frames if self.frames else 0.0

    @property
    def per_frame(self) -> float:
        """Time the stage adds per frame at full overlap: mean time / workers."""
        return self.mean / self.workers


# What each figure of RunStats.to_dict() (run.json) is the average of, written beside them.
AVERAGES = {
    "fps": "frames / wall_s: the frames processed over the whole run, from asking the source for the first frame "
    "to writing the last one's outputs; the first frame's warm-up and any stall of the source (a camera "
    "reconnecting) are in it",
    "recent_fps": f"the moving FPS drawn on the frames and printed during the run, at its end: over {FPS_WINDOW_TEXT}",
    "mean_ms": "each stage's time per frame, averaged over the frames it ran (its frames); waiting for the source "
    "is in no stage",
    "bound_fps": "pipelined: 1 / max(stage mean_ms / workers); sequential: 1 / sum(stage mean_ms)",
}


@dataclass
class RunStats:
    """Stage timings and throughput of a run (sequential or pipelined)."""

    stages: dict[str, StageStats]
    frames: int = 0
    dropped: int = 0
    wall_seconds: float = 0.0
    pipelined: bool = False
    recent_fps: float | None = None  # the moving figure (FpsMeter) when the run ended; None: not measured

    @classmethod
    def for_stages(cls, names: Iterable[str], workers: dict[str, int] | None = None, pipelined: bool = False):
        w = workers or {}
        return cls({n: StageStats(n, w.get(n, 1)) for n in names}, pipelined=pipelined)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        for name, sec in result.timings.items():
            self.stages.setdefault(name, StageStats(name)).add(sec)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def slowest(self) -> str | None:
        timed = [s for s in self.stages.values() if s.frames]
        return max(timed, key=lambda s: s.per_frame).name if timed else None

    @property
    def bound_fps(self) -> float:
        """Pipelined: 1 / slowest stage's per-frame time. Sequential: 1 / sum of the stage means."""
        timed = [s for s in self.stages.values() if s.frames]
        if not timed:
            return 0.0
        t = max(s.per_frame for s in timed) if self.pipelined else sum(s.mean for s in timed)
        return 1.0 / t if t > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "wall_s": round(self.wall_seconds, 4),
            "fps": round(self.fps, 3),
            "recent_fps": None if self.recent_fps is None else round(self.recent_fps, 3),
            "pipelined": self.pipelined,
            "bound_fps": round(self.bound_fps, 3),
            "slowest_stage": self.slowest,
            "stages": {
                s.name: {"workers": s.workers, "mean_ms": round(s.mean * 1e3, 3), "frames": s.frames}
                for s in self.stages.values()
            },
            "averages": AVERAGES,
        }


@dataclass
class _Job:
    seq: int
    frame: Frame
    prepared: Prepared | None = None
    env: Env | None = None
    result: FrameResult | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _End:
    error: BaseException | None = None  # raised by the source; delivered after every frame before it


@dataclass
class _Failure:
    error: BaseException


class Pipeline:
    """Runs frames through an executor's stages in threads; iterate `run(frames)` for ordered results."""

    def __init__(
        self,
        executor: SplitExecutor,
        runner_factory: Callable[[Subgraph], Runner] | None = None,
        dpu_jobs: int = 2,
        queue_size: int = 2,
        drop_late: bool = False,
    ) -> None:
        if dpu_jobs < 1 or queue_size < 1:
            raise ValueError("dpu_jobs and queue_size must be at least 1")
        self.executor = executor
        self.drop_late = drop_late
        self.queue_size = queue_size
        self.dropped = 0
        plan = executor.plan
        self.workers = {name: 1 for name in executor.stage_names}
        # Runners per subgraph stage: the executor's own, plus extra DPU runners from the factory.
        self._runners: list[list[Runner]] = []
        self._extra: list[Runner] = []
        for sg in plan.subgraphs:
            runners = [executor.runners[sg.name]]
            if sg.is_dpu and runner_factory is not None:
                for _ in range(dpu_jobs - 1):
                    extra = runner_factory(sg)
                    self._extra.append(extra)
                    runners.append(extra)
            self._runners.append(runners)
            self.workers[sg.name] = len(runners)

    def new_stats(self) -> RunStats:
        return RunStats.for_stages(self.executor.stage_names, self.workers, pipelined=True)

    # --- stage bodies -------------------------------------------------------------------------------------

    def _preprocess(self, job: _Job, _: Runner | None) -> None:
        job.prepared, job.env = self.executor.start(job.frame.image)

    def _subgraph(self, index: int) -> Callable[[_Job, Runner | None], None]:
        def body(job: _Job, runner: Runner | None) -> None:
            assert job.env is not None
            self.executor.run_subgraph(index, job.env, runner)

        return body

    def _postprocess(self, job: _Job, _: Runner | None) -> None:
        assert job.prepared is not None and job.env is not None
        job.result = self.executor.finish(job.frame, job.prepared, job.env)
        job.env = None

    # --- threads ------------------------------------------------------------------------------------------

    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        """Ordered results; closing the iterator (or an exception) stops every thread."""
        names = self.executor.stage_names
        bodies: list[Callable[[_Job, Runner | None], None]] = [self._preprocess]
        bodies += [self._subgraph(i) for i in range(len(self._runners))]
        bodies.append(self._postprocess)
        stage_runners: list[list[Runner | None]] = [[None], *self._runners, [None]]
        queues: list[queue.Queue] = [queue.Queue(self.queue_size) for _ in range(len(bodies) + 1)]
        stop = threading.Event()
        threads: list[threading.Thread] = []
        seq = iter(range(1 << 62))

        def put(q: queue.Queue, item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            try:
                for frame in frames:
                    if stop.is_set():
                        return
                    if not self.drop_late:
                        if not put(queues[0], frame):
                            return
                        continue
                    try:
                        queues[0].put_nowait(frame)
                    except queue.Full:
                        try:
                            queues[0].get_nowait()  # the oldest waiting frame is late: drop it
                            self.dropped += 1
                        except queue.Empty:
                            pass
                        try:
                            queues[0].put_nowait(frame)
                        except queue.Full:
                            self.dropped += 1
                put(queues[0], _End())
            except BaseException as exc:  # a source error travels behind the frames read before it
                put(queues[0], _End(exc))

        def worker(k: int, runner: Runner | None, remaining: list[int], lock: threading.Lock) -> None:
            q_in, q_out, name, body = queues[k], queues[k + 1], names[k], bodies[k]
            while not stop.is_set():
                try:
                    item = q_in.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if isinstance(item, _End):
                    with lock:
                        remaining[0] -= 1
                        last = remaining[0] == 0
                    put(q_out if last else q_in, item)
                    return
                job = item if isinstance(item, _Job) else _Job(next(seq), item)
                t0 = time.perf_counter()
                try:
                    body(job, runner)
                except BaseException as exc:
                    put(queues[-1], _Failure(exc))
                    stop.set()
                    return
                job.timings[name] = time.perf_counter() - t0
                if not put(q_out, job):
                    return

        threads.append(threading.Thread(target=reader, name="source", daemon=True))
        for k, runners in enumerate(stage_runners):
            remaining, lock = [len(runners)], threading.Lock()
            for w, runner in enumerate(runners):
                t = threading.Thread(
                    target=worker, args=(k, runner, remaining, lock), name=f"{names[k]}-{w}", daemon=True
                )
                threads.append(t)
        for t in threads:
            t.start()
        pending: dict[int, FrameResult] = {}
        next_seq = 0
        try:
            while True:
                try:
                    item = queues[-1].get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if isinstance(item, _Failure):
                    raise item.error
                if isinstance(item, _End):
                    if pending:  # cannot happen: every job reaches the end before _End
                        raise RuntimeError(f"pipeline lost frames {sorted(pending)}")
                    if item.error is not None:
                        raise item.error
                    return
                assert item.result is not None
                item.result.timings = item.timings
                pending[item.seq] = item.result
                while next_seq in pending:
                    yield pending.pop(next_seq)
                    next_seq += 1
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=2.0)
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning(
                    "stopping without waiting for pipeline thread(s) %s, still in a call that has not returned "
                    "(a camera that stopped answering, a runner)",
                    ", ".join(alive),
                )

    def close(self) -> None:
        for r in self._extra:
            r.close()
        self._extra.clear()
