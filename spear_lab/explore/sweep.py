"""The sweep: recordings × segmentation configurations through the real path, scored.

:func:`sweep` replays every (recording, configuration) pair with a
:class:`~.replay.Replayer` — ``concurrency`` guests at once in one Host context, faster
than real time where the backend and the configuration allow it — takes what it can
from the run cache, shows progress, and scores each run with :func:`evaluate`.

Pacing (``realtime="auto"``): fast (file source not paced) for the ``local`` and
``stub`` backends unless the configuration has a wall-clock trigger
(:meth:`~.configs.SegConfig.needs_realtime`); real time for any other backend.

Latency of fast replays: the processing part comes from a short real-time calibration
replay (:func:`calibrate_processing`, cached like any run), because a fast replay's own
``completed - closed`` times include the recogniser's backlog (see :mod:`.metrics`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Iterable, Iterator

from .cache import RunCache, run_key
from .configs import SegConfig, as_configs, server_vad
from .corpus import SENTENCES, Recording, cache_dir, generate
from .events import COMMITTED, count_type
from .intervals import utterance_values
from .metrics import percentile, score
from .progress import progress as make_progress
from .replay import Job, Replayer, RunRecord, code_version
from .results import Results

__all__ = ["sweep", "evaluate", "calibrate_processing", "calibration_recording", "FAST_BACKENDS"]

log = logging.getLogger(__name__)

FAST_BACKENDS = ("local", "stub")
"""Backends that accept audio faster than real time."""


def evaluate(recording: Recording, run: RunRecord, *, tol_ms: float = 250.0,
             clip_tol_ms: float = 0.0, processing_ms: float | None = None) -> dict[str, Any]:
    """The metric record of one run (columns: the configuration's parameters, the metrics
    of :func:`~.metrics.score`, and ``commits``, ``host_commits``, ``open_speech``,
    ``wall_s``, ``audio_s``, ``speed``, ``pace``, ``ok``, ``error``, ``cached``, ``worker``,
    and ``per_utterance``: the values behind the confidence intervals, see :mod:`.intervals`).
    ``processing_ms`` replaces the measured processing part of the latencies (used for
    fast replays)."""
    cfg = run.seg_config
    segs = run.segments()
    ref = None
    if recording.has_regions:
        ref = [(a, b, u.text) for (a, b), u in zip(recording.regions_ms(), recording.utterances)]
    out: dict[str, Any] = {**cfg.params(), "recording": recording.name}
    out.update(score(ref, recording.text, segs, tol_ms=tol_ms, clip_tol_ms=clip_tol_ms,
                     processing_ms=processing_ms))
    out["per_utterance"] = utterance_values(ref, recording.text, segs, tol_ms=tol_ms,
                                            clip_tol_ms=clip_tol_ms, processing_ms=processing_ms)
    audio_s = run.audio_ms / 1000.0
    out.update(
        commits=count_type(run.events, COMMITTED), host_commits=len(run.commit_positions_ms),
        open_speech=run.open_speech(), wall_s=run.wall_s, audio_s=audio_s,
        speed=audio_s / run.wall_s if run.wall_s > 0 else float("nan"), pace=run.pace,
        ok=run.ok, error=run.error(), cached=run.cached, worker=run.worker,
    )
    return out


CALIBRATION_CONFIG = server_vad(500, 0.5, 300, label="calibration")
"""Configuration of the latency calibration replay."""


def calibration_recording() -> Recording:
    """Two sentences 800 ms apart (about 6 s): the latency calibration recording."""
    return generate(list(SENTENCES[4:6]), pauses_ms=[800], lead_ms=300, tail_ms=1200,
                    name="calibration")


def calibrate_processing(*, backend: str = "local", cache: Any = True,
                         replayer: "Replayer | Callable[[], Replayer] | None" = None) -> dict[str, Any]:
    """Processing time (ms, ``completed`` after the segment closed) of ``backend`` when audio
    arrives in real time: one real-time replay of :func:`calibration_recording` under
    server VAD (500 ms), cached.  Without ``replayer`` it starts its own, whose server
    keeps no recognition cache (a cached recognition is no processing time).  ``replayer`` (or a function making one, called only on
    a cache miss) runs it.  Returns ``processing_ms`` (median; None when the replay
    failed), ``processing_p95_ms``, ``values``, ``ok``, ``cached``, ``error``."""
    store = _cache_of(cache)
    rec = calibration_recording()
    key = run_key(rec.audio_digest, CALIBRATION_CONFIG.key(), "realtime", backend, code_version())
    obj = store.get(key)
    if obj is not None:
        run, cached = RunRecord.from_json(obj), True
    else:
        own = replayer is None
        # Its own server, with no recognition cache: a cached recognition takes ~1 ms and
        # would pass for the recogniser's processing time.
        with _environ("off") if own else contextlib.nullcontext():
            rp = Replayer(backend=backend, concurrency=1) if replayer is None else (
                replayer if isinstance(replayer, Replayer) or hasattr(replayer, "run") else replayer())
            try:
                run = rp.run([Job(rec, CALIBRATION_CONFIG, True)])[0]
            finally:
                if own:
                    rp.close()
        cached = False
        if run.ok:
            store.put(key, run.to_json())
    values = [s.processing_ms for s in run.segments() if s.processing_ms is not None]
    ok = run.ok and bool(values)
    return {"processing_ms": percentile(values, 50) if ok else None,
            "processing_p95_ms": percentile(values, 95) if ok else None,
            "values": values, "ok": ok, "cached": cached,
            "error": None if ok else (run.error() or "no segment completed")}


def _cache_of(cache: Any) -> RunCache:
    if isinstance(cache, RunCache):
        return cache
    if cache is True or cache is None:
        return RunCache()
    if cache is False:
        return RunCache(enabled=False)
    return RunCache(cache)


def _recognition_setting(value: Any) -> str | None:
    if value is None:
        return None
    if value == "shared":
        return str(cache_dir() / "recognitions")
    return str(value)


@contextlib.contextmanager
def _environ(setting: str | None) -> Iterator[None]:
    """Set the recognition-cache variable while servers may start, then restore it."""
    from ..server.reccache import ENV

    if setting is None:
        yield
        return
    old = os.environ.get(ENV)
    os.environ[ENV] = setting
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def _recognition(rp: Any) -> dict[str, int]:
    """Summed recognition-cache hits/misses behind a (local or remote) replayer."""
    if rp is None:
        return {"hits": 0, "misses": 0}
    if hasattr(rp, "recognition"):
        return dict(rp.recognition)
    stats = getattr(rp, "recognition_stats", None)
    return stats() if stats is not None else {"hits": 0, "misses": 0}


def sweep(recordings: Recording | Iterable[Recording],
          configs: SegConfig | dict | Iterable[SegConfig | dict], *,
          concurrency: int = 2, backend: str = "local", realtime: bool | str = "auto",
          cache: Any = True, refresh: bool = False, progress: Any = "auto", tol_ms: float = 250.0,
          clip_tol_ms: float = 0.0, frame_ms: int = 20, settle_ms: int | None = None,
          replayer: Replayer | None = None, calibrate: bool | dict[str, Any] = True,
          executor: Any = None, deterministic: bool = False,
          recognition_cache: Any = "shared") -> Results:
    """Replay every recording under every configuration and score the runs.

    - ``concurrency``: guests running at once (one Host context, one embedded server);
    - ``realtime``: ``"auto"`` (module docstring), True or False;
    - ``cache``: True (``cache_dir()/runs``), False, a directory or a :class:`RunCache`;
      ``refresh=True`` replays even what is cached (and stores the new runs);
    - ``progress``: ``"auto"``, ``"widget"``, ``"tqdm"``, ``"text"`` or False;
    - ``tol_ms``: boundary tolerance; ``clip_tol_ms``: how far a word may stick out of a
      segment before it counts as clipped;
    - ``replayer``: reuse a :class:`Replayer` (and its host) across sweeps;
    - ``calibrate``: take the processing part of fast replays' latencies from
      :func:`calibrate_processing` (False: use their own, backlog-inflated, times; or a
      result of :func:`calibrate_processing` to reuse).

    - ``executor``: a ``dask.distributed.Client`` or any ``concurrent.futures.Executor``:
      the replays become tasks on it (:mod:`.distributed`), up to ``concurrency`` replays of
      one recording per task, run at once by the worker; records come back and are cached
      here.  Give a Dask cluster one thread per worker process;
    - ``deterministic``: results that depend only on the inputs — no calibration, and
      the processing part of every latency is 0 (latency = segmentation delay, in audio
      time); a sweep's rows are then identical wherever it runs, apart from
      :data:`~.results.RUN_COLUMNS` (wall times, worker, cache flags).  Configurations
      that need real-time pacing stay timing-dependent;
    - ``recognition_cache``: where the embedded servers this sweep starts keep recognitions
      of byte-identical segments (:mod:`spear_lab.server.reccache`): ``"shared"``
      (``cache_dir()/recognitions``, shared by local worker processes), a directory,
      ``"memory"`` or ``"off"``; it applies to servers started by this sweep.

    Failed runs (see :attr:`RunRecord.ok`) are kept in the results (``ok`` False,
    ``error`` says why) but never cached; a failed task is such a run.  ``results.info``
    holds the sweep's wall time, the audio replayed (cache misses only), the run-cache
    hits, ``recognition_cache`` (hits, misses, hit_rate of the recognition cache during
    the sweep) and ``workers`` (the worker names seen).
    """
    recs = [recordings] if isinstance(recordings, Recording) else list(recordings)
    cfgs = as_configs(configs)
    names = [r.name for r in recs]
    if len(set(names)) != len(names):
        raise ValueError(f"recording names must be unique: {names}")
    store = _cache_of(cache)
    version = code_version()
    if deterministic:
        calibrate = False
    rc = _recognition_setting(recognition_cache)
    jobs: list[Job] = []
    for rec in recs:
        for cfg in cfgs:
            rt = realtime if isinstance(realtime, bool) else (
                cfg.needs_realtime() or backend not in FAST_BACKENDS)
            jobs.append(Job(rec, cfg, rt))
    keys = [run_key(j.recording.audio_digest, j.config.key(), "realtime" if j.realtime else "fast",
                    backend, version) for j in jobs]
    runs: list[RunRecord | None] = [None] * len(jobs)
    t0 = time.perf_counter()
    todo = []
    for i, (job, key) in enumerate(zip(jobs, keys)):
        obj = None if refresh else store.get(key)
        if obj is not None:
            run = RunRecord.from_json(obj)
            run.cached = True
            run.config = job.config.to_dict()  # keep the caller's label
            runs[i] = run
        else:
            job.tag = i
            todo.append(job)
    bar = make_progress(len(jobs), "sweep", progress)
    hits = len(jobs) - len(todo)
    bar.update(hits, note=f"{hits} cached" if hits else None)
    audio_s = 0.0
    calibration: dict[str, Any] | None = None
    own = replayer is None
    rp = replayer

    def get_rp() -> Replayer:
        nonlocal rp
        if rp is None and executor is not None:
            from .distributed import RemoteReplayer

            rp = RemoteReplayer(executor, backend=backend, concurrency=concurrency, frame_ms=frame_ms,
                                settle_ms=settle_ms, recognition_cache=rc)
        elif rp is None:
            rp = Replayer(backend=backend, concurrency=concurrency, frame_ms=frame_ms,
                          settle_ms=settle_ms)
        return rp

    rec_before = _recognition(rp)
    # a server this sweep starts (on the first connect) reads the recognition-cache setting
    env = _environ(rc if own and executor is None else None)
    try:
        env.__enter__()
        if isinstance(calibrate, dict):
            calibration = calibrate
        elif calibrate and any(not j.realtime for j in jobs):
            bar.update(0, note="latency calibration")
            # locally: a replayer of its own, without the sweep's recognition cache
            calibration = calibrate_processing(backend=backend, cache=store,
                                               replayer=get_rp if executor is not None or not own else None)
        if calibration is not None and not calibration["ok"]:
            log.warning("latency calibration failed (%s): fast replays use their own processing "
                        "times", calibration["error"])
        if todo:
            def done(job: Job, run: RunRecord) -> None:
                nonlocal audio_s
                runs[job.tag] = run
                audio_s += run.audio_ms / 1000.0
                if run.ok:
                    store.put(keys[job.tag], run.to_json())
                else:
                    log.warning("run %s on %s: %s", job.config.name, job.recording.name, run.error())
                bar.update(1, note=f"{job.config.name} / {job.recording.name}")

            get_rp().run(todo, on_done=done)
        rec_delta = {k: v - rec_before.get(k, 0) for k, v in _recognition(rp).items()}
    finally:
        env.__exit__(None, None, None)
        bar.close()
        if own and rp is not None:
            rp.close()
    wall = time.perf_counter() - t0
    proc = calibration["processing_ms"] if calibration and calibration["ok"] else None
    if deterministic:
        proc = 0.0
    records, kept = [], []
    for job, run in zip(jobs, runs):
        if run is None:
            continue
        records.append(evaluate(job.recording, run, tol_ms=tol_ms, clip_tol_ms=clip_tol_ms,
                                processing_ms=proc if run.pace == "fast" else None))
        kept.append(run)
    info = {"wall_s": wall, "audio_s": audio_s, "runs": len(jobs), "replayed": len(todo),
            "cache_hits": len(jobs) - len(todo), "concurrency": concurrency, "backend": backend,
            "code_version": version, "latency_processing_ms": proc, "calibration": calibration,
            "deterministic": deterministic, "executor": type(executor).__name__ if executor else None,
            "workers": sorted({r.worker for r in kept if r.worker and not r.cached}),
            "recognition_cache": {**rec_delta, "hit_rate": (
                rec_delta["hits"] / (rec_delta["hits"] + rec_delta["misses"])
                if rec_delta.get("hits", 0) + rec_delta.get("misses", 0) else float("nan"))}}
    return Results(records, kept, {r.name: r for r in recs}, cfgs, info)

