"""Soak: an hour of audio through one rtasr fd, as fast as the server accepts it.

The full path of a user's long session: a looping WAV (``HostConfig(mic_file_realtime=
False, mic_file_loop=True)``) → the ``realtime_asr`` guest (mic fd → rtasr fd, epoll) →
the WebSocket transport → the server (the embedded ``local`` one by default, or an
external ``spear-lab serve``) → events back to the guest.  The guest stops after
``--minutes`` of audio (``--max-frames``), commits the trailing segment and waits for
every transcript.

Printed every ``--every`` minutes of audio: the host process's RSS and the server's (the
recognition worker processes of the embedded server — it runs in-process on the host's
I/O loop, so its Python state counts in the host's RSS — or the external server's
process tree), events and transcripts received, drops.  At the end: growth per hour of
audio after ``--warmup`` minutes (least-squares slope over the samples), wall time,
transport failures, committed items without a transcript, and whether every Trace ring
stayed within its cap.

RSS samples are taken after ``gc.collect()`` and glibc's ``malloc_trim(0)`` in the host,
so that free memory the allocator keeps cached does not read as growth (the raw value is
printed too).  The Trace is bounded by design: it grows until each ring is full, so by
default the soak uses small caps (:data:`SOAK_CAPS`) that fill within the warm-up; with
``--trace-caps default`` the growth includes the rings filling (up to ~120 MB).

Goals (``--check`` exits 1 when one fails): 0 transport failures, every committed item
completed, RSS growth <= 5 MB per hour of audio after warm-up for the host and the server.

    PYTHONPATH=. python bench/bench_soak.py                        # 60 min, embedded server
    PYTHONPATH=. python bench/bench_soak.py --minutes 10 --every 1 --warmup 4
    PYTHONPATH=. python bench/bench_soak.py --serve                # spawn `spear-lab serve`
    PYTHONPATH=. python bench/bench_soak.py --server-url ws://127.0.0.1:8765/v1/realtime
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from spear_lab.fds.rtasr import RtasrFd
from spear_lab.host import HostConfig
from spear_lab.server.reccache import ENV as RECOGNITION_CACHE_ENV
from spear_lab.session import Session
from spear_lab.trace import TraceCaps
from spear_lab.session.wiring import embedded_server
from spear_lab.transports.backends import Backend, BackendRegistry

DEMO_WAV = Path(__file__).resolve().parents[1] / "spear_lab" / "data" / "demo_speech.wav"
AUDIO_BYTES_PER_MIN = 24000 * 2 * 60  # the guest's mic: 24 kHz mono pcm16
FRAMES_PER_MIN = 50 * 60  # 20 ms frames
GOAL_MB_PER_HOUR = 5.0
#: Trace caps that every ring reaches within the first ~3 minutes of accelerated audio.
SOAK_CAPS = TraceCaps(hostcalls=10_000, readiness=200, queues=10_000, events=500,
                      transcript_items=40, deltas_per_item=64, logs=100, vad=3_000)

log = logging.getLogger("bench_soak")


@dataclass
class Sample:
    audio_min: float
    wall_s: float
    host_mb: float
    host_raw_mb: float
    server_mb: float
    events: int
    transcripts: int
    dropped_events: int
    dropped_frames: int


@dataclass
class SoakResult:
    minutes: float
    backend: str
    wall_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    host_mb_per_hour: float | None = None
    server_mb_per_hour: float | None = None
    events: int = 0
    transcripts: int = 0
    committed: int = 0
    failed_items: list[str] = field(default_factory=list)
    missing_items: list[str] = field(default_factory=list)
    error_events: int = 0
    dropped_events: int = 0
    dropped_frames: int = 0
    transport_failures: list[str] = field(default_factory=list)
    exit_code: int | None = None
    last_error: str | None = None
    trace_over_cap: dict = field(default_factory=dict)
    trace_evicted: dict = field(default_factory=dict)
    server_info: dict | None = None

    def goals(self) -> dict[str, bool]:
        return {
            "no transport failure": not self.transport_failures and self.exit_code == 0,
            "every utterance completed": self.committed > 0 and not self.failed_items
            and not self.missing_items,
            f"host growth <= {GOAL_MB_PER_HOUR:g} MB/h": self.host_mb_per_hour is not None
            and self.host_mb_per_hour <= GOAL_MB_PER_HOUR,
            f"server growth <= {GOAL_MB_PER_HOUR:g} MB/h": self.server_mb_per_hour is not None
            and self.server_mb_per_hour <= GOAL_MB_PER_HOUR,
            "trace within caps": not self.trace_over_cap,
        }


# -- measuring -----------------------------------------------------------------------------

def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: raw RSS only
        pass


def tree_rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def embedded_workers() -> list[psutil.Process]:
    """The recognition worker processes this process started."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("spear_lab.server.worker" in a for a in p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(audio_min, mb)`` points, in MB per 60 minutes."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return 60.0 * sum((x - mx) * (y - my) for x, y in points) / sxx


class _Failures(logging.Handler):
    """Collects WARNING+ records of the transport and server loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


# -- the external server ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_server(recognition_cache: str | None = "off",
                 timeout_s: float = 180.0) -> tuple[subprocess.Popen, str]:
    """Start ``spear-lab serve`` on a free loopback port; returns (process, URL)."""
    port = _free_port()
    env = dict(os.environ)
    if recognition_cache is not None:
        env[RECOGNITION_CACHE_ENV] = recognition_cache
    proc = subprocess.Popen([sys.executable, "-m", "spear_lab.cli", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spear-lab serve exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, f"ws://127.0.0.1:{port}/v1/realtime"
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError("spear-lab serve did not listen in time")


def server_processes(url: str, pid: int | None) -> list[psutil.Process]:
    """The external server's process and its children (by ``pid``, else by who listens
    on the URL's port)."""
    if pid is None:
        port = urlsplit(url).port
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                pid = c.pid
                break
    if pid is None:
        return []
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


# -- the run ---------------------------------------------------------------------------------

def _rtasr(handle) -> RtasrFd | None:
    for entry in list(handle.host.table):
        if isinstance(entry, RtasrFd):
            return entry
    return None


def _levels(trace) -> tuple[int, int]:
    levels = trace.latest_levels().values()
    return (sum(int(v.get("dropped_events", 0) or 0) for v in levels),
            sum(int(v.get("dropped_frames", 0) or 0) for v in levels))


def trace_over_cap(trace) -> dict[str, tuple[int, int]]:
    """Rings holding more than their cap: ``{kind: (held, cap)}`` (empty when bounded)."""
    c = trace.caps
    items = trace.transcript()
    held = {
        "hostcalls": (len(trace.hostcalls()), c.hostcalls),
        "readiness": (len(trace.readiness_changes()), c.readiness),
        "queues": (len(trace.queue_levels()), c.queues),
        "events": (len(trace.events()), c.events),
        "transcript_items": (len(items), c.transcript_items),
        "logs": (len(trace.logs()), c.logs),
        "vad": (len(trace.vad()), c.vad),
        "deltas_per_item": (max((len(i.deltas) for i in items), default=0), c.deltas_per_item),
        "item_text": (max((len(i.text) for i in items), default=0), c.item_text),
    }
    return {k: v for k, v in held.items() if v[0] > v[1]}


def server_info(session, server_url: str | None) -> dict | None:
    """What the server runs (engine, model, VAD), from ``RealtimeServer.info()`` or
    ``GET /v1/spear/info``; None when it cannot tell."""
    try:
        if server_url is None:
            srv = embedded_server(session.context)
            return srv.server.info() if srv is not None and srv.server is not None else None
        import urllib.request

        parts = urlsplit(server_url)
        with urllib.request.urlopen(f"http://{parts.netloc}/v1/spear/info", timeout=5) as r:
            return json.loads(r.read())
    except Exception:  # noqa: BLE001 - informational only
        return None


def _outcome(stdout: str, result: SoakResult) -> None:
    committed, completed = [], set()
    for line in stdout.splitlines():
        head, _, rest = line.partition(" ")
        item = rest.split(":", 1)[0].strip()
        if head == "committed":
            committed.append(item)
        elif head == "completed":
            completed.add(item)
        elif head == "failed":
            result.failed_items.append(rest[:200])
        elif head == "error_event:":
            result.error_events += 1
        elif line.startswith("status rtasr: "):
            try:
                result.last_error = json.loads(line[len("status rtasr: "):]).get("last_error")
            except ValueError:
                pass
    result.committed = len(committed)
    result.transcripts = len(completed)
    result.missing_items = [i for i in committed if i not in completed and i != "-"]
    m = re.search(r"^summary: .*\bexit=(\d+)", stdout, re.MULTILINE)
    if m:
        result.exit_code = int(m.group(1))


def run_soak(minutes: float = 60.0, every: float = 5.0, warmup: float = 10.0, *,
             wav: str | os.PathLike[str] = DEMO_WAV, server_url: str | None = None,
             server_pid: int | None = None, caps: TraceCaps | None = SOAK_CAPS,
             recognition_cache: str | None = "off", report=print,
             timeout_s: float | None = None) -> SoakResult:
    """Stream ``minutes`` of looping ``wav`` through the full path; sample every
    ``every`` minutes of audio; growth from the samples at or after ``warmup``.
    ``server_url``: an external server (else the embedded ``local`` one).
    ``recognition_cache``: ``$SPEAR_LAB_RECOGNITION_CACHE`` for the embedded server's
    workers (``"off"``: every utterance of the looping file is really recognised; None:
    leave the environment alone)."""
    backend = "local" if server_url is None else "soak-external"
    config = HostConfig(mic_file_realtime=False, mic_file_loop=True)
    if server_url is not None:
        config.backends = BackendRegistry([Backend(name=backend, url=server_url)])
    result = SoakResult(minutes=minutes, backend=backend)
    failures = _Failures()
    watched = [logging.getLogger(n) for n in ("spear_lab.transports", "spear_lab.server")]
    for lg in watched:
        lg.addHandler(failures)
    me = psutil.Process()
    frames = int(round(minutes * FRAMES_PER_MIN))
    saved_env = os.environ.get(RECOGNITION_CACHE_ENV)
    if recognition_cache is not None:
        os.environ[RECOGNITION_CACHE_ENV] = recognition_cache
    try:
        with Session(config, mic=f"file:{os.fspath(wav)}", backend=backend, trace_caps=caps) as s:
            t0 = time.monotonic()
            handle = s.start("realtime_asr", ["--max-frames", str(frames), "--flush-at-end", "always"])
            next_mark = every
            while True:
                done = handle.done
                fd = _rtasr(handle)
                audio_min = (fd.audio_bytes_written if fd is not None else 0) / AUDIO_BYTES_PER_MIN
                if audio_min + 1e-9 >= next_mark or done:
                    if not done or audio_min + 1e-9 >= next_mark:
                        raw = me.memory_info().rss / 1e6
                        _trim()
                        procs = embedded_workers() if server_url is None else \
                            server_processes(server_url, server_pid)
                        de, df = _levels(s.trace)
                        sample = Sample(round(audio_min, 2), round(time.monotonic() - t0, 1),
                                        round(me.memory_info().rss / 1e6, 2), round(raw, 2),
                                        round(tree_rss_mb(procs), 2),
                                        fd.events_received if fd is not None else 0,
                                        handle.stdout.count("\ncompleted "), de, df)
                        result.samples.append(sample)
                        report(f"audio {sample.audio_min:6.1f} min  wall {sample.wall_s:7.1f} s  "
                               f"host {sample.host_mb:7.1f} MB (raw {sample.host_raw_mb:.1f})  "
                               f"server {sample.server_mb:7.1f} MB  events {sample.events}  "
                               f"transcripts {sample.transcripts}  drops {de + df}")
                        next_mark += every
                if done:
                    break
                if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                    handle.stop()
                    result.transport_failures.append(f"timed out after {timeout_s:g} s")
                    break
                time.sleep(0.25)
            res = handle.wait(60)
            result.wall_s = round(time.monotonic() - t0, 1)
            fd = _rtasr(handle)
            if fd is not None:
                result.events = fd.events_received
                result.dropped_events = fd.dropped_events
            result.dropped_frames = _levels(s.trace)[1]
            _outcome(res.stdout, result)
            if res.exit_code != 0 and result.exit_code is None:
                result.exit_code = res.exit_code
            result.trace_over_cap = trace_over_cap(s.trace)
            result.trace_evicted = s.trace.evicted
            result.server_info = server_info(s, server_url)
    finally:
        if recognition_cache is not None:
            if saved_env is None:
                os.environ.pop(RECOGNITION_CACHE_ENV, None)
            else:
                os.environ[RECOGNITION_CACHE_ENV] = saved_env
        for lg in watched:
            lg.removeHandler(failures)
    result.transport_failures += [m for m in failures.messages if "spear_lab.transports" in m]
    if result.last_error:
        result.transport_failures.append(f"last_error: {result.last_error}")
    steady = [x for x in result.samples if x.audio_min >= warmup - 1e-9]
    result.host_mb_per_hour = _round(slope_per_hour([(x.audio_min, x.host_mb) for x in steady]))
    result.server_mb_per_hour = _round(slope_per_hour([(x.audio_min, x.server_mb) for x in steady]))
    return result


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def print_result(r: SoakResult, report=print) -> None:
    rt = (r.minutes * 60 / r.wall_s) if r.wall_s else 0.0
    report(f"\n{r.minutes:g} min of audio in {r.wall_s:.1f} s wall ({rt:.1f}x real time), "
           f"backend {r.backend}")
    report(f"server: {json.dumps(r.server_info) if r.server_info else 'unknown'}")
    report(f"events received {r.events}, transcripts {r.transcripts} of {r.committed} committed, "
           f"failed {len(r.failed_items)}, missing {len(r.missing_items)}, error events "
           f"{r.error_events}")
    report(f"drops: rtasr dropped_events {r.dropped_events}, mic dropped_frames {r.dropped_frames}; "
           f"trace evicted {sum(r.trace_evicted.values())} ({r.trace_evicted})")
    report(f"growth after warm-up: host {r.host_mb_per_hour} MB/h, server {r.server_mb_per_hour} "
           f"MB/h of audio (least squares over {len(r.samples)} samples)")
    report(f"transport failures: {r.transport_failures or 0}; exit {r.exit_code}")
    report(f"trace over caps: {r.trace_over_cap or 'none'}")
    for goal, ok in r.goals().items():
        report(f"  {'PASS' if ok else 'FAIL'}  {goal}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="audio minutes (default 60)")
    ap.add_argument("--every", type=float, default=5.0, help="sample every N audio minutes")
    ap.add_argument("--warmup", type=float, default=10.0, help="audio minutes before growth counts")
    ap.add_argument("--wav", default=str(DEMO_WAV), help="the looping WAV (24 kHz mono)")
    ap.add_argument("--server-url", help="an external server (e.g. spear-lab serve)")
    ap.add_argument("--server-pid", type=int, help="its pid (default: who listens on the port)")
    ap.add_argument("--serve", action="store_true", help="spawn `spear-lab serve` and use it")
    ap.add_argument("--trace-caps", choices=("soak", "default"), default="soak")
    ap.add_argument("--recognition-cache", default="off",
                    help="SPEAR_LAB_RECOGNITION_CACHE for the server started here (default off: "
                         "every utterance of the looping file is recognised); 'keep' leaves it")
    ap.add_argument("--json", help="write the result as JSON to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    proc = None
    url, pid = args.server_url, args.server_pid
    cache = None if args.recognition_cache == "keep" else args.recognition_cache
    if args.serve:
        proc, url = spawn_server(cache)
        pid = proc.pid
    try:
        r = run_soak(args.minutes, args.every, args.warmup, wav=args.wav, server_url=url,
                     server_pid=pid, caps=SOAK_CAPS if args.trace_caps == "soak" else TraceCaps(),
                     recognition_cache=cache)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print_result(r)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(r), indent=1))
    return 1 if args.check and not all(r.goals().values()) else 0


if __name__ == "__main__":
    sys.exit(main())
