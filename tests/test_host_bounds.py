"""The host bounds what guests make it hold (issue 16, "host bounds").

Every defect of the issue's list has a test here: Trace deltas, guest-raised queue
limits, params kept by closed fds, rtasr_write copying before the fd check, random_i64
counted as an errno, stop right after start, bad Python arguments, unscrubbed close
reasons, raw guest log text.  The hostile guest below does all the flooding at once.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from test_ws_support import make_server, status, wait_until, ws_fd  # noqa: F401

from spear_lab import Host
from spear_lab.abi.constants import Errno, MicCtl, RtasrCtl
from spear_lab.api import Epoll, Rtasr
from spear_lab.host import HostConfig
from spear_lab.host.logtext import format_line, printable
from spear_lab.runtime import start_guest
from spear_lab.session import Session
from spear_lab.trace import Trace, TraceCaps
from spear_lab.transports.backends import Backend, BackendRegistry

MiB = 1024 * 1024

#: A guest that does everything the issue lists, 12 times over ~3 s: an rtasr fd asking
#: the stub for 1 MiB deltas every tick that never complete, raising both queue limits
#: to 2 GB, holding two 900 KB params, filling its send queue with 8 MiB writes; a mic
#: fd asking for a 2 GB queue; then both fds are closed and the cycle starts again.
HOSTILE = Path(__file__).with_name("hostile_guest.wat")


def test_hostile_guest_keeps_host_memory_under_the_bound():
    """Bound: the Python heap (Trace + queues + params) peaks below 64 MiB while the guest
    floods (send 16 MiB + receive 16 MiB ceilings + one 1 MiB event in flight + 1 MiB of
    params + the Trace's capped records), and below 8 MiB is left once its fds closed.
    Without the bounds the Trace alone grew by ~100 MB/s and the queues by the guest's 2 GB."""
    tracemalloc.start()
    try:
        with Session() as s:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            res = s.run(HOSTILE, name="hostile", timeout=60)
            current, peak = tracemalloc.get_traced_memory()
            summary = s.trace.summary()
            ctl_rcs = [r["rc"] for r in s.trace.hostcalls(name="rtasr_ctl")]
            levels = [v for v in s.trace.latest_levels().values() if v["what"] == "rtasr_queues"]
            items = s.trace.transcript()
    finally:
        tracemalloc.stop()
    assert res.exit_code == 0 and res.trap is None
    # it did flood: events dropped at the receive ceiling, deltas not kept, params refused
    assert summary["drops"]["dropped_events"] > 0
    assert summary["drops"]["evicted"]["delta"] > 0 and summary["dropped_records"] > 0
    assert summary["drops"]["eagain_writes"] == 12
    assert ctl_rcs.count(-Errno.ENOMEM) == 12  # the second 900 KB param of each fd
    assert len(levels) == 12
    assert all(lv["max_recv_queue_bytes"] == lv["max_send_queue_bytes"] == 16 * MiB for lv in levels)
    assert items and all(len(i.text) <= TraceCaps().item_text for i in items)
    # ... and the host held it under the bound
    assert peak - base < 64 * MiB, f"peak {(peak - base) / MiB:.1f} MiB"
    assert current - base < 8 * MiB, f"retained {(current - base) / MiB:.1f} MiB"


# -- Trace -------------------------------------------------------------------------------


def test_trace_keeps_transcript_deltas_bounded():
    tr = Trace()
    delta = "x" * 10_000
    for n in range(5_000):
        tr.note("g", 1001, "event", {"event": json.dumps(
            {"type": "transcription.delta", "seq": n, "text": delta}).encode()})
    (item,) = tr.transcript()
    caps = tr.caps
    assert len(item.deltas) <= caps.deltas_per_item
    assert len(item.text) <= caps.item_text
    assert tr.evicted["delta"] >= 5_000 - caps.deltas_per_item
    assert tr.summary()["dropped_records"] >= tr.evicted["delta"]
    assert sum(len(e["text"]) for e in tr.events()) <= caps.events * (caps.event_text + 1)


def test_trace_completed_transcripts_are_cut():
    tr = Trace()
    tr.note("g", 1001, "event", {"event": json.dumps(
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i",
         "transcript": "y" * 100_000}).encode()})
    assert len(tr.transcript_text()[0]) == tr.caps.item_text


def test_trace_forgets_old_fds_beyond_its_cap():
    tr = Trace(TraceCaps(fds=50))
    for fd in range(1000, 1400):
        tr.hostcall("g", "rtasr_create", (), fd, tr.start, tr.start)
        tr.note("g", fd, "rtasr_queues", {"send_queue_bytes": 0})
    assert len(tr.latest_levels()) == 50
    assert tr.fd_kind("g", 1399) == "rtasr" and tr.fd_kind("g", 1000) is None
    assert tr.evicted["fd"] > 0


def test_random_i64_results_are_not_errnos():
    tr = Trace()
    for value in range(-1, -20_001, -1):
        tr.hostcall("g", "random_i64", (), value * 7_919_000_003, tr.start, tr.start)
    tr.hostcall("g", "rtasr_write", (1000, 0, 4), -11, tr.start, tr.start)
    tr.hostcall("g", "rtasr_write", (1000, 0, 4), -(1 << 40), tr.start, tr.start)  # not an errno
    s = tr.summary()
    assert s["errno"] == {"-EAGAIN": 1}
    assert s["hostcalls"]["random_i64"] == {**s["hostcalls"]["random_i64"], "calls": 20_000, "errors": {}}
    assert len(json.dumps(s)) < 2_000


def test_random_i64_from_a_guest_keeps_the_cli_summary_short(capsys):
    from spear_lab import cli

    wat = '''(module (import "spear" "random_i64" (func $r (result i64)))
      (memory (export "memory") 1)
      (func (export "_start") (local $i i32)
        (loop $l (drop (call $r)) (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 20000))))))'''
    args = cli.build_parser().parse_args(["run", wat, "--mic", "stub", "--backend", "stub"])
    args.guest_args = []
    import io

    out = io.StringIO()
    assert cli.run_command(args, out=out) == 0
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith("--- wat: exit 0") and line.endswith("errno none") and len(line) < 300


# -- queues and params ---------------------------------------------------------------------


def _set(host, fd, key, value):
    return host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, json.dumps({"key": key, "value": value}).encode())


def test_guest_queue_limits_are_clamped_to_host_ceilings():
    with Host(HostConfig(max_send_queue_bytes=64 * 1024, max_recv_queue_bytes=32 * 1024,
                         max_mic_queue_bytes=16 * 1024)) as h:
        fd = h.rtasr_create()
        assert _set(h, fd, "max_send_queue_bytes", 2_000_000_000) == 0
        assert _set(h, fd, "max_recv_queue_bytes", 2_000_000_000) == 0
        st = status(h, fd)
        assert (st["max_send_queue_bytes"], st["max_recv_queue_bytes"]) == (64 * 1024, 32 * 1024)
        assert h.rtasr_write(fd, bytes(64 * 1024 + 1)) == -Errno.EAGAIN
        mic = h.mic_create()
        assert h.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"stub","max_queue_bytes":2000000000}') == 0
        assert json.loads(h.mic_ctl(mic, MicCtl.GET_STATUS))["max_queue_bytes"] == 16 * 1024


def test_default_host_ceilings_apply():
    with Host() as h:
        fd = h.rtasr_create()
        assert _set(h, fd, "max_recv_queue_bytes", 1 << 40) == 0
        assert status(h, fd)["max_recv_queue_bytes"] == 16 * MiB


def test_params_are_capped_per_fd():
    with Host(HostConfig(max_param_bytes=4096)) as h:
        fd = h.rtasr_create()
        assert _set(h, fd, "a", "x" * 3000) == 0
        assert _set(h, fd, "b", "x" * 2000) == -Errno.ENOMEM
        assert _set(h, fd, "a", "x" * 1000) == 0  # replacing a value frees its share
        assert _set(h, fd, "b", "x" * 2000) == 0
        assert h.table.get(fd).params["b"] == "x" * 2000


def test_closed_fds_release_what_they_held():
    """100 cycles of an rtasr fd with 900 KB of params and a mic fd with a 9 MiB stub
    pattern: the heap does not grow (it grew by ~3 MB per cycle before)."""
    import base64

    pattern = base64.b64encode(bytes(9 * MiB)).decode()
    with Host() as h:
        tracemalloc.start()
        try:
            base = None
            for n in range(100):
                fd = h.rtasr_create()
                assert _set(h, fd, "junk", "j" * 900_000) == 0
                mic = h.mic_create()
                payload = json.dumps({"source": "none-at-all", "stub_pcm16_base64": pattern}).encode()
                assert h.mic_ctl(mic, MicCtl.SET_PARAM, payload) == 0
                assert h.rtasr_close(fd) == 0 and h.mic_close(mic) == 0
                del payload
                if n == 0:
                    base, _ = tracemalloc.get_traced_memory()
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert current - base < 2 * MiB, f"grew by {(current - base) / MiB:.1f} MiB"
        closed = [e for e in h.table if e.closed]
        assert len(closed) == 200 and all(not getattr(e, "params", {}) for e in closed)
        assert all(getattr(e, "pattern", None) is None for e in closed)


# -- the fd and kind are checked before guest memory is copied -------------------------------

BIG_WRITER = '''(module
  (import "spear" "rtasr_write" (func $w (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_create" (func $c (result i32)))
  (import "spear" "rtasr_ctl" (func $ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "mic_create" (func $m (result i32)))
  (memory (export "memory") 2048)
  (func (export "bad_fd") (result i32) (call $w (i32.const -1) (i32.const 0) (i32.const 0x7f00000)))
  (func (export "full_queue") (result i32) (call $w (call $c) (i32.const 0) (i32.const 0x7f00000)))
  (func (export "wrong_kind") (result i32) (call $w (call $m) (i32.const 0) (i32.const 0x7f00000)))
  (func (export "bad_range") (result i32) (call $w (i32.const -1) (i32.const 0x7ffff00) (i32.const 4096)))
  (func (export "ctl_bad_fd") (result i32)
    (i32.store (i32.const 0) (i32.const 0x7f00000))
    (call $ctl (i32.const -1) (i32.const 1) (i32.const 16) (i32.const 0)))
  (func (export "ctl_get_big_cap") (result i32) (local $fd i32)
    (local.set $fd (call $c))
    (i32.store (i32.const 0) (i32.const 0x7f00000))
    (call $ctl (local.get $fd) (i32.const 3) (i32.const 16) (i32.const 0))))'''


@pytest.mark.parametrize("entry, rc", [
    ("bad_fd", -Errno.EBADF), ("full_queue", -Errno.EAGAIN), ("wrong_kind", -Errno.EBADF),
    ("bad_range", -Errno.EFAULT), ("ctl_bad_fd", -Errno.EBADF), ("ctl_get_big_cap", 0),
])
def test_hostcalls_check_before_copying_guest_memory(host, entry, rc):
    """127 MiB of guest memory offered to a write or ctl that cannot use it: nothing is
    copied (the Python heap peak stays under 1 MiB; it was 127 MiB and more)."""
    run = start_guest(host, BIG_WRITER, entry=entry)
    tracemalloc.start()
    try:
        res = run.wait(30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        run.cleanup()
    got = res.value
    assert res.trap is None
    assert (got > 0 if entry == "ctl_get_big_cap" else got == rc), got
    assert peak < 1 * MiB, f"peak {peak / MiB:.1f} MiB"


# -- stop ------------------------------------------------------------------------------------

SPIN = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'


def _guest_threads():
    return [t for t in threading.enumerate() if t.name.startswith("spear-guest") and t.is_alive()]


def test_stop_right_after_start_100_of_100(host):
    stopped = 0
    for _ in range(100):
        run = start_guest(host, SPIN)
        res = run.stop(timeout=5)
        stopped += res.stopped and res.trap == "stopped"
        run.cleanup()
    assert stopped == 100
    assert _guest_threads() == []


def test_session_close_leaves_no_guest_thread():
    for _ in range(10):
        s = Session()
        s.start(SPIN)
        s.start(SPIN)
        s.close(timeout=5)
        assert _guest_threads() == []


# -- Python API arguments ------------------------------------------------------------------


@pytest.mark.parametrize("call, name", [
    (lambda a, e: a.write_all(b"x" * 100, chunk_bytes=0), "chunk_bytes"),
    (lambda a, e: a.write_all(b"x" * 100, chunk_bytes=-5), "chunk_bytes"),
    (lambda a, e: a.write_all(b"x" * 100, chunk_bytes=math.nan), "chunk_bytes"),
    (lambda a, e: a.write_all(b"x" * 100, timeout_s=math.nan), "timeout_s"),
    (lambda a, e: a.read(timeout_ms=math.nan), "timeout_ms"),
    (lambda a, e: a.read(timeout_ms=math.inf), "timeout_ms"),
    (lambda a, e: a.read_bytes(timeout_ms="10"), "timeout_ms"),
    (lambda a, e: list(a.events(1.0, poll_ms=0)), "poll_ms"),
    (lambda a, e: list(a.events(math.nan)), "duration_s"),
    (lambda a, e: e.wait(timeout_ms=math.nan), "timeout_ms"),
    (lambda a, e: e.wait(max_events=0), "max_events"),
])
def test_bad_python_arguments_raise_value_error_naming_them(call, name):
    with Host() as h:
        asr, ep = Rtasr(h), Epoll(h)
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=name):
            call(asr, ep)
        assert time.monotonic() - t0 < 5  # raised, not looped


def test_good_python_timeouts_still_work():
    with Host() as h:
        asr = Rtasr(h, stub_event_interval_ms=10)
        asr.connect()
        assert asr.write_all(bytes(9600), chunk_bytes=960) == 9600
        assert asr.read(timeout_ms=2000.0)["type"] == "transcription.delta"


# -- secrets in close reasons ----------------------------------------------------------------


def test_a_close_reason_echoing_the_key_is_scrubbed(monkeypatch, make_server, caplog):
    key = "sk-closing-" + secrets.token_hex(8)
    monkeypatch.setenv("SPEAR_TEST_CLOSE_KEY", key)
    caplog.set_level(logging.DEBUG, logger="spear_lab")
    srv = make_server(require_bearer=key)
    registry = BackendRegistry([Backend("k", srv.url, credential_env="SPEAR_TEST_CLOSE_KEY")])
    host = Host(HostConfig(backends=registry))
    trace = Trace()
    trace.attach(host)
    try:
        fd = ws_fd(host, backend="k")
        assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        srv.conn()
        srv.close(4001, f"bad key {key[:40]}")
        wait_until(lambda: status(host, fd)["peer_closed"], 20, "the peer close")
        st = host.rtasr_ctl(fd, RtasrCtl.GET_STATUS).decode()
        assert "4001" in st and "***" in st
        seen = [st, repr(trace.events()), trace.to_jsonl(), caplog.text]
        assert not any(key[:40] in text for text in seen)
    finally:
        host.shutdown()


# -- guest log text ------------------------------------------------------------------------


def test_guest_log_text_is_neutralised():
    forged = "ok\n--- fake: exit 0\x1b[2J\x1b]0;title\x07\r\u202eevil\u2028x\x00"
    line = printable(forged + "\n")
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert "\u202e" not in line and "\u2028" not in line and "\x00" not in line
    assert line.startswith("ok\\n--- fake") and "\\x1b[2J" in line and "\\u202e" in line
    assert printable("tab\there") == "tab\there"
    assert format_line("g\x1b", 2, "hi\n") == "[g\\x1b] hi"
    assert format_line("g", 3, "careful") == "[g warn] careful"


def test_host_logs_are_bounded():
    with Host() as h:
        for _ in range(300):
            assert h.log(2, b"x" * 16384) == 0
        assert sum(len(t) for _, _, t in h.logs) <= 4 * MiB and h.logs_total == 300
        new, total = h.logs_since(299)
        assert total == 300 and len(new) == 1
