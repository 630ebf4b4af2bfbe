"""Lesson 02_backpressure: its cells."""

from __future__ import annotations

from .common import code, md

# ---------------------------------------------------------------------------------------
# 02 — backpressure
# ---------------------------------------------------------------------------------------

CELLS = [
    md('''
# 2 · Backpressure

A transport that drains slower than the guest writes fills the send queue. The ABI makes
that visible instead of hiding it: a write that does not fit returns **-EAGAIN** and queues
nothing, and the fd stops reporting **EPOLLOUT** until there is room again.

The **stub transport** is a deliberately slow consumer: every 10 ms it takes *one* item off
the send queue, whatever its size — about 100 items per second. We feed it 960-byte frames
(20 ms of 24 kHz pcm16) through a queue of 3840 bytes (four frames).
'''),
    code('''
import logging
import time

from spear_lab import EPOLLOUT, EpollOp, RtasrCtl, Session, errno_name

logging.getLogger("spear_lab").setLevel(logging.ERROR)
session = Session()
abi = session.abi  # the Host's hostcalls, each call recorded in session.trace'''),
    md('''
## Filling the queue from Python

`CONNECT` starts the stub on the session's I/O loop. Then six frames as fast as Python can:
the first ones fit, the rest are refused.
'''),
    code('''
asr = abi.rtasr_create()
abi.rtasr_ctl(asr, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":3840}')
abi.rtasr_ctl(asr, RtasrCtl.CONNECT)
frame = bytes(960)
results = [abi.rtasr_write(asr, frame) for _ in range(6)]
[errno_name(rc) for rc in results]'''),
    md('''
## Waiting for EPOLLOUT

Instead of retrying in a loop, wait for `EPOLLOUT`: the stub takes one frame within 10 ms,
the queue drops below its limit, the wait returns, and the write succeeds.
'''),
    code('''
ep = abi.spear_epoll_create()
abi.spear_epoll_ctl(ep, EpollOp.ADD, asr, EPOLLOUT)
t0 = time.perf_counter()
ready = abi.spear_epoll_wait(ep, 8, 1000)
waited_ms = (time.perf_counter() - t0) * 1000
retry = abi.rtasr_write(asr, frame)
ready, round(waited_ms, 1), retry'''),
    md('''
Level-triggered readiness has a trap: a writable fd left in the `EPOLLOUT` interest while
there is nothing to write makes *every* wait return at once. Once the stub has drained the
queue, 100 waits with a 50 ms timeout take almost no time at all — a busy loop:
'''),
    code('''
while b'"send_queue_bytes":0' not in abi.rtasr_ctl(asr, RtasrCtl.GET_STATUS):
    time.sleep(0.01)  # let the stub drain the queue
t0 = time.perf_counter()
busy = [abi.spear_epoll_wait(ep, 8, 50) for _ in range(100)]
busy_ms = (time.perf_counter() - t0) * 1000
abi.spear_epoll_ctl(ep, EpollOp.DEL, asr, 0)
abi.rtasr_close(asr)
round(busy_ms, 1), "ms for 100 waits of up to 50 ms each"'''),
    md('''
## A guest under backpressure

The built-in `backpressure` guest (C) writes 200 frames as fast as it can. On `-EAGAIN` it
adds `EPOLLOUT` to its interest, waits, and removes it again. The dashboard below follows
the run live.

What waits while `session.run` runs: **everything you do** — the cell blocks, cells you run
meanwhile queue up behind it, and so do widget interactions (a slider moved now acts when
the cell ends). What goes on: the views' refreshes (at most 10 a second), because
`session.run` keeps the kernel's event loop turning while it waits. (Notebook 3 shows the
other pattern — `start`, run other cells, then `await` — under which widgets stay live.)
The run cell counts the dashboard's refreshes that happened *during* the run.
'''),
    code('''
dashboard = session.dashboard()
dashboard'''),
    code('''
refreshes_before = dashboard.refresher.updates
result = session.run("backpressure", ["--frames", "200"], timeout=120)
refreshes_during = dashboard.refresher.updates - refreshes_before  # nothing else ran in between
print(result.stdout.splitlines()[-1])
print("dashboard refreshes during the run:", refreshes_during)'''),
    md('''
## The queue, over time

The send queue saw-tooths at its cap: the guest refills each slot as soon as the stub
frees it.
'''),
    code('''
from spear_lab.views import queue_figure, timeline_figure

queue_figure(session.trace, "backpressure")'''),
    md('''
Zoom into 150 ms of the run: `EPOLLOUT` of the rtasr fd flickers on for an instant every
10 ms (one stub tick frees one slot), and every `spear_epoll_wait` returns right then.
'''),
    code('''
writes = session.trace.hostcalls("backpressure", "rtasr_write")
mid = writes[len(writes) // 2]["t"]
timeline_figure(session.trace, "backpressure", t_range=(mid, mid + 0.15))'''),
    md('''
## Check

The claims: a full queue refuses writes with `-EAGAIN` and queues nothing; `EPOLLOUT` comes
back when the stub drains; the guest's write rate settles at the stub's drain rate (at most
~100 frames a second); the queue never exceeds its cap; `EPOLLOUT` comes on about every
10 ms and only for an instant; the views refreshed while `session.run` blocked the cell.
'''),
    code('''
import re

stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(\\d+)", result.stdout.splitlines()[-1])}
levels = [q["send_queue_bytes"] for q in session.trace.queue_levels("backpressure")]
rate = stats["written"] / (stats["elapsed_ms"] / 1000)
print(f"written={stats['written']} eagain={stats['eagain']} rate={rate:.0f} frames/s")

assert results[:4] == [960] * 4 and -11 in results
assert ready == [(asr, EPOLLOUT)] and retry == 960
assert all(b == [(asr, EPOLLOUT)] for b in busy) and busy_ms < 1000  # not 100 x 50 ms
assert result.exit_code == 0 and stats["written"] == 200 and stats["eagain"] > 0
assert max(levels) == 3840 and all(level <= 3840 for level in levels)
assert rate <= 110  # one item per 10 ms tick
eagain = session.trace.summary()["drops"]["eagain_writes"]
assert eagain >= stats["eagain"]
rtasr_fd = writes[0]["args"][0]
changes = [c for c in session.trace.readiness_changes("backpressure") if c["fd"] == rtasr_fd]
on = [c["t"] for c in changes if c["new"] & EPOLLOUT and not c["old"] & EPOLLOUT]
off = [c["t"] for c in changes if c["old"] & EPOLLOUT and not c["new"] & EPOLLOUT]
gaps = sorted(b - a for a, b in zip(on, on[1:]))
lit = sorted(min((t for t in off if t >= a), default=a) - a for a in on)
print(f"EPOLLOUT came on {len(on)} times, median every {gaps[len(gaps) // 2] * 1000:.1f} ms, "
      f"for a median {lit[len(lit) // 2] * 1000:.2f} ms")
assert 5 <= gaps[len(gaps) // 2] * 1000 <= 20 and lit[len(lit) // 2] * 1000 < 5
assert refreshes_during >= 3  # the views refreshed while the cell was blocked
session.close()
print("all claims hold")'''),
]
