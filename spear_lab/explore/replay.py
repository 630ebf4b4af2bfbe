"""Replaying recordings through the real path and recording what comes back.

The path of every run::

    WAV --file microphone--> realtime_asr guest --rtasr fd--> WebSocket transport --> server

One :class:`Replayer` owns one :class:`~spear_lab.session.Session` (one I/O loop, one
embedded server when the backend is ``local``) and runs up to ``concurrency`` guests at
once, each on its own fork (own fd table).  The host's microphone policy points at the
recording's WAV; with ``realtime=False`` the file source is not paced (frames as fast as
the guest consumes them), so a run takes as long as the transport and server need.

On each fork an :class:`EventTap` (a table listener) records every event pushed to the
rtasr receive queue with its arrival time, and the audio position of every commit the
host queued; :class:`RunRecord` keeps these raw observations (JSON-serialisable, so a
sweep can cache them) and :meth:`RunRecord.segments` folds them into segments.

The guest gets its settings through its environment (``SPEAR_BACKEND``,
``SPEAR_TRANSPORT``, ``SPEAR_SEGMENTATION``, ``SPEAR_MIC``, ``SPEAR_DRAIN_MS``,
``SPEAR_SETTLE_MS``).

**End of a run.**  The guest ends a run itself: at the end of the file it FLUSHes
(manual and client-commit), sends a no-op ``session.update`` as a barrier (the server
answers in order, so the answer means every commit and VAD decision for the audio sent
has been reported), then reads until every committed item has its ``completed``.  Its
drain timeout counts from the last event, so a server still catching up with audio
replayed faster than real time is not cut off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from ..abi.notes import EventReceived, Note, RtasrFailed, RtasrHungUp, RtasrQueues, VadProbabilities
from ..host import Host, HostConfig
from ..runtime.loading import load_guest
from ..session import GuestHandle, Session
from ..session.policy import guest_env, mic_policy, parse_summary
from ..session.wiring import embedded_server
from ..trace import Trace
from .configs import SegConfig
from .corpus import RATE, Recording
from .events import Segment, open_speech, parse_events, segments_from_events

__all__ = ["EventTap", "RunRecord", "Replayer", "Job", "code_version", "worker_name", "GUEST"]

log = logging.getLogger(__name__)

GUEST = "realtime_asr"
"""The built-in guest every run uses."""
BYTES_PER_MS = RATE * 2 / 1000
"""pcm16 bytes per millisecond of audio at the ABI's 24 kHz."""
RECORD_VERSION = 2
"""Bumped when :class:`RunRecord`'s meaning changes (part of the cache key)."""
_STDOUT_KEEP = 60  # last guest stdout lines kept in a record


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of everything on the replay path: the spear_lab version, the sources of
    ``fds``, ``runtime``, ``transports``, ``audio``, ``server`` and this module, and the
    guest's wasm.  Part of every cached run's key."""
    import spear_lab

    from ..runtime.loading import builtin_guests

    root = Path(spear_lab.__file__).resolve().parent
    h = hashlib.sha256(f"{spear_lab.__version__}/{RECORD_VERSION}".encode())
    files = [Path(__file__)]
    for pkg in ("fds", "runtime", "transports", "audio", "server"):
        files += sorted((root / pkg).glob("*.py"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    guest = builtin_guests().get(GUEST)
    if guest is not None:
        h.update(guest.read_bytes())
    return h.hexdigest()[:16]


class EventTap:
    """A fork's table listener: received events with arrival times, and commit positions.

    ``events``: ``(t, raw event bytes)``; ``commits``: ``(t, audio_ms)`` — the audio
    written when the host queued each commit (FLUSH or autoflush), observed at the next
    queue note of the fd (exact for commits queued by a write, within one frame for
    timer commits); ``problems``: transport errors and hang-ups; ``vad``: the server's
    per-frame speech probability ``(audio_ms, probability)`` (embedded server only,
    from the transport's ``"vad"`` notes).  ``t`` is seconds since
    the tap was made (``time.perf_counter``).  Called with the table lock held: it only
    appends.
    """

    def __init__(self, table: Any = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.table = table
        self.clock = clock
        self.t0 = clock()
        self.events: list[tuple[float, bytes]] = []
        self.commits: list[tuple[float, float]] = []
        self.problems: list[str] = []
        self.vad: list[tuple[float, float]] = []
        self.vad_frame_ms = 0.0
        self._seen: dict[int, int] = {}

    def attach(self, table: Any) -> None:
        """Listen to ``table`` from now on (``t`` counts from here)."""
        with table.lock:
            self.table = table
            self.t0 = self.clock()
            table.listeners.append(self)

    def __call__(self, fd: int, note: Note) -> None:
        t = self.clock() - self.t0
        if isinstance(note, EventReceived):
            self.events.append((t, bytes(note.event)))
        elif isinstance(note, (RtasrFailed, RtasrHungUp)):
            self.problems.append(f"{note.what}: {note.message}")
        elif isinstance(note, VadProbabilities):
            start, step = float(note.audio_start_ms), float(note.frame_ms)
            self.vad_frame_ms = step
            self.vad.extend((start + i * step, float(p)) for i, p in enumerate(note.probabilities))
        if isinstance(note, (EventReceived, RtasrQueues)):
            entry = self.table.get(fd)
            n = getattr(entry, "commits", None)
            if isinstance(n, int) and n > self._seen.get(fd, 0):
                pos = getattr(entry, "audio_bytes_written", 0) / BYTES_PER_MS
                self.commits.extend((t, pos) for _ in range(n - self._seen.get(fd, 0)))
                self._seen[fd] = n


@dataclass
class RunRecord:
    """The raw observations of one replay of one recording under one configuration."""

    recording: str
    digest: str
    config: dict[str, Any]
    pace: str
    audio_ms: float
    events: list[tuple[float, dict]] = field(default_factory=list)
    commit_positions_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    exit_code: int | None = None
    trap: str | None = None
    problems: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    stdout_tail: list[str] = field(default_factory=list)
    concurrency: int = 1
    code_version: str = ""
    started_at: float = 0.0
    vad: list[tuple[float, float]] = field(default_factory=list)
    """Server VAD speech probability per frame: ``(audio_ms, probability)``, the frame
    starting at ``audio_ms`` of the replayed audio (16 kHz server positions, in ms)."""
    vad_frame_ms: float = 0.0
    worker: str = ""
    cached: bool = False

    @property
    def seg_config(self) -> SegConfig:
        return SegConfig.from_dict(self.config)

    @property
    def ok(self) -> bool:
        """The guest exited 0 having sent the whole recording, without a drain timeout,
        lost frames or events, transport error or hang-up."""
        return self.error() is None

    def error(self) -> str | None:
        """Why the run is not :attr:`ok` (None when it is)."""
        s = self.summary
        if self.trap:
            return f"trap: {self.trap}"
        if self.problems:
            return "; ".join(self.problems)
        if self.exit_code != 0:
            return f"exit {self.exit_code}"
        if s.get("drain_timeout"):
            return "drain timeout (results may be incomplete)"
        if s.get("dropped", 0) > 0 or s.get("dropped_events", 0) > 0:
            frames, events = max(s.get("dropped", 0), 0), max(s.get("dropped_events", 0), 0)
            return f"lost {frames} mic frames, {events} events"
        if "bytes" in s and s["bytes"] < (self.audio_ms - 100.0) * BYTES_PER_MS:
            return f"only {s['bytes'] / BYTES_PER_MS:.0f} of {self.audio_ms:.0f} ms of audio sent"
        return None

    def segments(self) -> list[Segment]:
        """The committed segments of this run (see :func:`~.events.segments_from_events`)."""
        pad, sil = self.seg_config.effective_vad()
        return segments_from_events(self.events, prefix_padding_ms=pad, silence_ms=sil,
                                    commit_positions_ms=self.commit_positions_ms,
                                    audio_ms=self.audio_ms)

    def open_speech(self) -> int:
        """Speech the server started but never committed before the run ended."""
        return open_speech(self.events)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["events"] = [[t, ev] for t, ev in self.events]
        d["vad"] = [[ms, p] for ms, p in self.vad]
        d.pop("cached")
        return d

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "RunRecord":
        obj = dict(obj)
        obj["events"] = [(float(t), ev) for t, ev in obj.get("events", [])]
        obj["vad"] = [(float(ms), float(p)) for ms, p in obj.get("vad", [])]
        obj.pop("cached", None)
        return cls(**obj)


@dataclass
class Job:
    """One replay to do: ``recording`` under ``config``; ``tag`` is returned with it."""

    recording: Recording
    config: SegConfig
    realtime: bool = False
    tag: Any = None


def worker_name() -> str:
    """The Dask worker's address inside a Dask worker, else ``host:pid``."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError, AttributeError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _unplayable(job: Job, exc: BaseException, concurrency: int) -> RunRecord:
    """The record of a job whose recording could not even be written for replay."""
    rec = job.recording
    audio_ms = len(rec.pcm) * 1000.0 / rec.rate if rec.rate > 0 else 0.0
    return RunRecord(recording=rec.name, digest=rec.digest, config=job.config.to_dict(),
                     pace="realtime" if job.realtime else "fast", audio_ms=audio_ms,
                     problems=[f"recording cannot be replayed: {type(exc).__name__}: {exc}"],
                     concurrency=concurrency, code_version=code_version(), worker=worker_name())


def _mic_json(frame_ms: int) -> str:
    return json.dumps({"sample_rate_hz": RATE, "channels": 1, "format": "pcm16",
                       "frame_ms": frame_ms, "source": "file", "fallback": {"to_stub": False}},
                      separators=(",", ":"))


class Replayer:
    """Runs :class:`Job` s through the real path, ``concurrency`` guests at a time.

    - ``backend``: the guest's ``SPEAR_BACKEND`` (``local`` = the embedded server);
    - ``frame_ms``: microphone frame length;
    - ``settle_ms``: the guest's quiet time before it ends once everything is in
      (default 1500 fast, 500 real time);
    - ``session``: the :class:`~spear_lab.session.Session` to start guests in (default: a
      new one with a paused Trace, closed by :meth:`close`); its microphone policy is
      changed per recording.
    """

    def __init__(self, *, backend: str = "local", concurrency: int = 2, frame_ms: int = 20,
                 settle_ms: int | None = None, guest: str = GUEST, session: Session | None = None,
                 timeout_s: float | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.backend = backend
        self.concurrency = concurrency
        self.frame_ms = frame_ms
        self.settle_ms = settle_ms
        self.timeout_s = timeout_s
        self.guest = load_guest(guest)
        self._own_session = session is None
        self.session = session if session is not None else Session(
            HostConfig(stub_fallback=False), name="explore", trace=Trace(recording=False))
        self.session.context.fork_listeners.append(self._tap_fork)
        self._tapping: EventTap | None = None
        self._cv = threading.Condition()
        self._policy: tuple[str, bool] | None = None

    def recognition_stats(self) -> dict[str, int]:
        """Recognition-cache ``hits``/``misses`` of the embedded server so far (zeros
        before it started)."""
        server = embedded_server(self.session.context)
        stats = getattr(server, "recognition_stats", None)
        if stats is None:
            return {"hits": 0, "misses": 0}
        snap = stats()
        return {"hits": int(snap["hits"]), "misses": int(snap["misses"])}

    # -- one run --------------------------------------------------------------------------

    def _env(self, job: Job) -> dict[str, str]:
        settle = self.settle_ms if self.settle_ms is not None else (500 if job.realtime else 1500)
        drain = 30000  # from the last event
        env = guest_env(self.backend, job.config.segmentation())
        env.update({"SPEAR_MIC": _mic_json(self.frame_ms), "SPEAR_DRAIN_MS": str(drain),
                    "SPEAR_SETTLE_MS": str(settle)})
        return env

    def _set_policy(self, recording: Recording, realtime: bool) -> None:
        path = str(recording.wav().resolve())
        if self._policy == (path, realtime):
            return
        cfg = self.session.config
        mic_policy(cfg, f"file:{path}")
        cfg.mic_file_realtime = realtime
        cfg.mic_file_loop = False
        self._policy = (path, realtime)

    def _tap_fork(self, fork: Host) -> None:
        """Fork listener: the fork of the run being started gets the pending EventTap."""
        tap = self._tapping
        if tap is not None:
            self._tapping = None
            tap.attach(fork.table)

    def _start(self, job: Job, index: int) -> tuple[GuestHandle, EventTap, float]:
        tap = self._tapping = EventTap()
        try:
            handle = self.session.start(self.guest, env=self._env(job), name=f"sweep-{index}")
        finally:
            self._tapping = None
        started = time.time()

        def finished(_result: Any) -> None:
            with self._cv:
                self._cv.notify_all()

        handle.run.add_done_callback(finished)
        return handle, tap, started

    def _record(self, job: Job, run: GuestHandle, tap: EventTap, started: float,
                timed_out: bool) -> RunRecord:
        res = run.result
        wall = time.time() - started
        stdout = run.stdout
        problems = list(tap.problems)
        if timed_out:
            problems.append("run timed out and was stopped")
        return RunRecord(
            recording=job.recording.name, digest=job.recording.digest, config=job.config.to_dict(),
            pace="realtime" if job.realtime else "fast", audio_ms=job.recording.duration_ms,
            events=parse_events(tap.events), commit_positions_ms=[p for _, p in tap.commits],
            wall_s=wall, exit_code=res.exit_code if res else None, trap=res.trap if res else "lost",
            problems=problems, summary=parse_summary(stdout),
            stdout_tail=stdout.splitlines()[-_STDOUT_KEEP:], concurrency=self.concurrency,
            code_version=code_version(), started_at=started, worker=worker_name(),
            vad=list(tap.vad), vad_frame_ms=tap.vad_frame_ms)

    # -- many runs ------------------------------------------------------------------------

    def run(self, jobs: Sequence[Job], on_done: Callable[[Job, RunRecord], None] | None = None,
            poll: Callable[[], None] | None = None) -> list[RunRecord]:
        """Run every job; returns their records in job order.

        Jobs are grouped by (recording, pacing): the microphone policy is switched only
        when no guest is running.  ``on_done(job, record)`` is called in the calling
        thread as each run ends; ``poll()`` every 0.1 s while waiting (progress bars).
        """
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].recording.digest, jobs[i].realtime))
        records: list[RunRecord | None] = [None] * len(jobs)
        active: list[tuple[int, Any, EventTap, float, float]] = []
        pending = list(order)
        try:
            while pending or active:
                while pending and len(active) < self.concurrency:
                    job = jobs[pending[0]]
                    try:
                        want = (str(job.recording.wav().resolve()), job.realtime)
                    except Exception as exc:  # noqa: BLE001 - this recording fails, not the batch
                        i = pending.pop(0)
                        records[i] = _unplayable(job, exc, self.concurrency)
                        if on_done is not None:
                            on_done(job, records[i])
                        continue
                    if active and self._policy != want:
                        break  # switch recordings only when idle
                    self._set_policy(job.recording, job.realtime)
                    i = pending.pop(0)
                    run, tap, started = self._start(job, i)
                    limit = self.timeout_s or (2.0 * job.recording.duration_ms / 1000 + 60.0)
                    active.append((i, run, tap, started, time.monotonic() + limit))
                with self._cv:
                    if not any(a[1].done for a in active):
                        self._cv.wait(0.1)
                if poll is not None:
                    poll()
                now = time.monotonic()
                still = []
                for entry in active:
                    i, run, tap, started, deadline = entry
                    timed_out = False
                    if not run.done and now > deadline:
                        log.warning("run %d (%s on %s) timed out; stopping it", i, jobs[i].config.name,
                                    jobs[i].recording.name)
                        run.run.stop()
                        timed_out = True
                    if run.done:
                        rec = self._record(jobs[i], run, tap, started, timed_out)
                        records[i] = rec
                        if on_done is not None:
                            on_done(jobs[i], rec)
                    else:
                        still.append(entry)
                active = still
        finally:
            for i, run, *_ in active:
                run.run.stop()
        return [r for r in records if r is not None]

    def close(self) -> None:
        """Close the session (I/O loop, embedded server) when this Replayer made it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> "Replayer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
