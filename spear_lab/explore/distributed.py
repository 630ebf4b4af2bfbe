"""Running a sweep's replays on an executor: a Dask cluster or any ``concurrent.futures`` one.

:class:`RemoteReplayer` has the :class:`~.replay.Replayer` interface (``run(jobs,
on_done)``, ``close()``), so :func:`~.sweep.sweep` uses it unchanged; each job becomes
one task, :func:`replay_task`, that runs on a worker process:

- the recording travels as a payload (:func:`recording_payload`: name, rate, pcm16
  bytes, ground truth and the audio's sha256), not as a path, so remote workers can
  run it; the worker checks the digest and writes the WAV into its own cache under the
  digest's name (content-addressed, written once per worker machine).  With a Dask
  client each recording is scattered once and the tasks refer to it;
- each worker process keeps one :class:`~.replay.Replayer` (one Host context, one
  embedded server) per setting in a module-level cache, made on first use and
  reused by every later task; it is closed when the worker process exits;
- a task returns the raw :class:`~.replay.RunRecord` (JSON), the worker's name and
  the change of the worker's recognition-cache counters; the sweep caches the
  records on the client;
- a task that raises (or a worker that dies) becomes a record with ``ok`` False whose
  error says what happened; the other tasks are unaffected.

Results come back in completion order (``as_completed``), which drives the progress
display.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .configs import SegConfig
from .corpus import Recording, Utterance, cache_dir
from .replay import Job, Replayer, RunRecord, worker_name

__all__ = [
    "RemoteReplayer",
    "is_dask_client",
    "recording_from_payload",
    "recording_payload",
    "replay_task",
    "worker_name",
]

log = logging.getLogger(__name__)

_REPLAYERS: dict[tuple, tuple[Replayer, threading.Lock]] = {}
_LOCK = threading.Lock()


def is_dask_client(executor: Any) -> bool:
    """True for a ``dask.distributed.Client`` (anything with ``scatter`` and ``gather``)."""
    return hasattr(executor, "scatter") and hasattr(executor, "gather") and hasattr(executor, "submit")


# -- recordings as payloads ---------------------------------------------------------------

def recording_payload(rec: Recording) -> dict[str, Any]:
    """What a remote worker needs of ``rec``: no paths, only content and its digest."""
    return {"name": rec.name, "rate": int(rec.rate),
            "pcm": np.ascontiguousarray(rec.pcm, dtype="<i2").tobytes(),
            "utterances": [[u.text, u.start, u.end] for u in rec.utterances],
            "audio_digest": rec.audio_digest, "meta": {"source": rec.meta.get("source")}}


def recording_from_payload(p: dict[str, Any]) -> Recording:
    """The Recording of a payload, its WAV in this machine's cache (named by digest).
    Raises ValueError when the bytes do not match the digest."""
    pcm = np.frombuffer(p["pcm"], dtype="<i2").copy()
    rec = Recording(p["name"], pcm, p["rate"], [Utterance(t, a, b) for t, a, b in p["utterances"]],
                    None, dict(p.get("meta") or {}))
    if rec.audio_digest != p["audio_digest"]:
        raise ValueError(f"recording {p['name']!r}: audio does not match its digest (corrupted in transit)")
    rec.wav(cache_dir() / "recordings")
    return rec


# -- the worker side ------------------------------------------------------------------------

def _close_all() -> None:
    with _LOCK:
        items = list(_REPLAYERS.items())
        _REPLAYERS.clear()
    for key, (rp, _) in items:
        try:
            rp.close()
        except Exception:
            log.debug("closing worker replayer %s", key, exc_info=True)


atexit.register(_close_all)
try:  # multiprocessing children (Dask's worker processes) skip atexit but run these
    import multiprocessing.util as _mpu

    _mpu.Finalize(None, _close_all, exitpriority=20)
except Exception:  # noqa: BLE001 - not essential
    log.debug("no multiprocessing finaliser for worker replayers", exc_info=True)


def cached_replayers() -> int:
    """How many Replayers (hosts with their servers) this process keeps for tasks."""
    with _LOCK:
        return len(_REPLAYERS)


def _worker_replayer(settings: dict[str, Any]) -> tuple[Replayer, threading.Lock]:
    """This process's Replayer for ``settings`` (made on first use) and its lock."""
    from ..server import reccache

    key = tuple(sorted(settings.items()))
    with _LOCK:
        entry = _REPLAYERS.get(key)
        if entry is None:
            rc = settings.get("recognition_cache")
            if rc is not None:  # read by the embedded server's recognition workers at start
                os.environ[reccache.ENV] = str(rc)
            rp = Replayer(backend=settings["backend"], concurrency=max(1, int(settings["concurrency"])),
                          frame_ms=settings["frame_ms"], settle_ms=settings["settle_ms"])
            if settings.get("server_workers"):  # read when the embedded server starts
                rp.session.config.local_server = {**rp.session.config.local_server,
                                               "workers": int(settings["server_workers"])}
            entry = _REPLAYERS[key] = (rp, threading.Lock())
        return entry


def replay_task(recording: dict[str, Any], configs: Sequence[dict[str, Any]], realtime: bool,
                settings: dict[str, Any]) -> dict[str, Any]:
    """Replay ``recording`` under each of ``configs`` on this worker (up to
    ``settings["concurrency"]`` at once, in this process's Replayer); never raises.
    Returns ``runs`` (RunRecord JSON per config, or None when the task failed),
    ``error`` (None or why there are no runs), ``worker`` and ``recognition``
    (hits/misses of the worker's recognition cache during the task)."""
    name = worker_name()
    try:
        rec = recording_from_payload(recording)
        rp, lock = _worker_replayer(settings)
        with lock:  # one batch at a time per Replayer (the mic policy is per host)
            before = rp.recognition_stats()
            runs = rp.run([Job(rec, SegConfig.from_dict(c), bool(realtime)) for c in configs])
            after = rp.recognition_stats()
        for run in runs:
            run.worker = name
        return {"runs": [r.to_json() for r in runs], "error": None, "worker": name,
                "recognition": {k: after[k] - before[k] for k in after}}
    except Exception as exc:
        log.exception("replay task failed on %s", name)
        return {"runs": None, "error": f"{type(exc).__name__}: {exc}", "worker": name,
                "recognition": {"hits": 0, "misses": 0}}


def warm_up_task(settings: dict[str, Any]) -> str:
    """Make this worker's Replayer and replay a one-second recording (starts the Host,
    the embedded server and its recogniser); returns the worker's name."""
    from .corpus import generate

    rec = generate(["hello"], lead_ms=200, tail_ms=500, name="warmup")
    rp, lock = _worker_replayer(settings)
    with lock:
        rp.run([Job(rec, SegConfig(), False)])
    return worker_name()


# -- the client side ------------------------------------------------------------------------

class RemoteReplayer:
    """Runs :class:`~.replay.Job` s as :func:`replay_task` s on ``executor``.

    ``concurrency``: replays run at once by each worker's Replayer (a worker process runs
    one task at a time).  The jobs of one recording go out as one task per worker (at
    least ``concurrency`` jobs each), so a worker keeps its slots busy within a task.  ``recognition_cache``: the
    recognition-cache setting given to the workers' servers (a directory shared by them,
    ``"memory"``, ``"off"``, or None to leave theirs).  ``server_workers``: recognition
    processes of each worker's embedded server (None: the server's default, one per CPU;
    several Dask workers on one machine share its CPUs).  After :meth:`run`:
    ``recognition`` (summed hits/misses) and ``workers`` (names seen).
    """

    def __init__(self, executor: Any, *, backend: str = "local", concurrency: int = 1,
                 frame_ms: int = 20, settle_ms: int | None = None,
                 recognition_cache: str | None = None, server_workers: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.executor = executor
        self.dask = is_dask_client(executor)
        self.settings = {"backend": backend, "frame_ms": frame_ms, "settle_ms": settle_ms,
                         "recognition_cache": recognition_cache, "concurrency": concurrency,
                         "server_workers": server_workers}
        self.concurrency = concurrency
        self.recognition = {"hits": 0, "misses": 0}
        self.workers: set[str] = set()
        self._scattered: dict[str, Any] = {}

    def _payload(self, rec: Recording) -> Any:
        digest = (rec.digest, rec.name)
        if digest not in self._scattered:
            p = recording_payload(rec)
            self._scattered[digest] = (self.executor.scatter([p], hash=False, broadcast=True)[0]
                                       if self.dask else p)
        return self._scattered[digest]

    def _submit(self, batch: Sequence[Job]) -> Any:
        job = batch[0]
        args = (self._payload(job.recording), [j.config.to_dict() for j in batch], job.realtime,
                self.settings)
        if self.dask:
            return self.executor.submit(replay_task, *args, pure=False)
        return self.executor.submit(replay_task, *args)

    def warm_up(self) -> list[str]:
        """Start every Dask worker's Replayer (Host, embedded server, recogniser) now, so
        the first tasks do not pay for it; returns the workers' names (Dask only)."""
        if not self.dask:
            return []
        addrs = list(self.executor.scheduler_info()["workers"])
        futs = [self.executor.submit(warm_up_task, self.settings, workers=[a], allow_other_workers=False,
                                     pure=False) for a in addrs]
        return list(self.executor.gather(futs))

    def _worker_count(self) -> int:
        """How many workers run tasks at once (1 when the executor does not say)."""
        if self.dask:
            return max(1, len(self.executor.scheduler_info().get("workers", {})))
        return max(1, int(getattr(self.executor, "_max_workers", 1) or 1))

    def _failed(self, job: Job, error: str, worker: str = "") -> RunRecord:
        return RunRecord(recording=job.recording.name, digest=job.recording.digest,
                         config=job.config.to_dict(), pace="realtime" if job.realtime else "fast",
                         audio_ms=job.recording.duration_ms if job.recording.rate > 0 else 0.0,
                         problems=[f"task failed: {error}"],
                         worker=worker)

    def run(self, jobs: Sequence[Job], on_done: Callable[[Job, RunRecord], None] | None = None,
            poll: Callable[[], None] | None = None) -> list[RunRecord]:
        """Submit every job, collect records as they complete; returns them in job order."""
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.recording.digest, job.realtime), []).append(i)
        futures = {}
        workers = self._worker_count()
        for idx in groups.values():
            # one task per worker and recording when the jobs allow it: inside a task the
            # worker's Replayer refills its slots as runs end, while a task boundary
            # waits for the task's slowest run
            size = max(self.concurrency, -(-len(idx) // workers))
            for k in range(0, len(idx), size):
                part = idx[k:k + size]
                futures[self._submit([jobs[i] for i in part])] = part
        if self.dask:
            from distributed import as_completed
            done_iter = as_completed(list(futures))
        else:
            done_iter = cf.as_completed(list(futures))
        records: list[RunRecord | None] = [None] * len(jobs)
        for fut in done_iter:
            part = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a serialisation error…
                out = {"runs": None, "error": f"{type(exc).__name__}: {exc}", "worker": "",
                       "recognition": {"hits": 0, "misses": 0}}
            if out["worker"]:
                self.workers.add(out["worker"])
            for k in self.recognition:
                self.recognition[k] += int(out["recognition"].get(k, 0))
            runs = out["runs"] or [None] * len(part)
            for i, obj in zip(part, runs):
                job = jobs[i]
                if obj is not None:
                    run = RunRecord.from_json(obj)
                    run.config = job.config.to_dict()
                else:
                    run = self._failed(job, out["error"] or "no record", out["worker"])
                records[i] = run
                if on_done is not None:
                    on_done(job, run)
            if poll is not None:
                poll()
        return [r for r in records if r is not None]

    def close(self) -> None:
        """Forget the scattered recordings (the workers keep their replayers)."""
        if self.dask and self._scattered:
            try:
                self.executor.cancel(list(self._scattered.values()))
            except Exception:
                log.debug("cancel scattered recordings", exc_info=True)
        self._scattered.clear()
