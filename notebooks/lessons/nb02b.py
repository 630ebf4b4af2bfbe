"""Lesson 02b_rtasr_states: the rtasr fd's states, queues and overflow (R31–R39, R46–R49)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

CELLS = [
    md('''
# 2b · The rtasr fd: states, queues and overflow

An **rtasr** fd is one realtime transcription session: the guest *writes* pcm16 audio and
*reads* events, one JSON document per read. Between the two sit two bounded queues and a
transport. This lesson drives every rule of docs/abi.md §5 that needs no network straight
from Python — `Host()` has one method per hostcall and returns exactly what a guest would
get: a byte count, the bytes of an event, or `-errno`.

The transport here is the **stub**: no network, synthetic events, a fixed drain rate. It is
deterministic enough that every output below was stored from a real run and is compared
again by nbval.
'''),
    code(SETUP_ABI),
    md('''
Three small helpers: `status(fd)` decodes GET_STATUS, `set_param(fd, key, value)` sends one
SET_PARAM pair, and `ready(ep, ms)` names the bits a wait reports.
'''),
    code('''
import json
import time

host = Host()


def status(fd):
    return json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))


def set_param(fd, key, value):
    return host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, json.dumps({"key": key, "value": value}).encode())


def ready(ep, timeout_ms=0):
    return [(fd, "|".join(mask_names(ev))) for fd, ev in host.spear_epoll_wait(ep, 8, timeout_ms)]


def watch(fd, events):
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, EpollOp.ADD, fd, events) == 0
    return ep'''),
    md('''
## The status of a fresh fd (R46)

GET_STATUS answers one compact JSON object. Seven of its keys come from the SPEAR reference
host (`state`, `last_error`, the four queue numbers, `dropped_events`); spear_lab adds
exactly three, `backend`, `peer_closed` and `transport`, so a guest can tell which
transport it got and whether the server hung up. Keys are sorted, with no spaces, because
guests parse this text naively.
'''),
    code('''
fresh = host.rtasr_create()
raw = host.rtasr_ctl(fresh, RtasrCtl.GET_STATUS)
print(raw.decode())
REFERENCE = {"state", "last_error", "send_queue_bytes", "max_send_queue_bytes",
             "recv_queue_bytes", "max_recv_queue_bytes", "dropped_events"}
keys = set(json.loads(raw))
print("reference keys present:", REFERENCE <= keys, "| spear_lab adds:", sorted(keys - REFERENCE))''',
         rules={"R46": "spear_lab adds: ['backend', 'peer_closed', 'transport']"}),
    md('''
## States: Init → Configured → Connected (R32)

A new fd is in `Init`. Nothing can have arrived yet, so a read is `-EAGAIN` — "try again
later", not an error. The *first* SET_PARAM, whatever its key, moves it to `Configured`;
CONNECT moves it to `Connected` at once, before any network I/O, because connecting happens
in the background (a failure shows up later as state `Error`, see lesson 3b).
'''),
    code('''
fd = host.rtasr_create()
print("read on a fresh fd:", errno_name(host.rtasr_read(fd)))
print("state:", status(fd)["state"])
print("SET_PARAM anything ->", errno_name(set_param(fd, "anything", {"nested": [1, 2]})),
      "| state:", status(fd)["state"])
print("CONNECT ->", errno_name(host.rtasr_ctl(fd, RtasrCtl.CONNECT)), "| state:", status(fd)["state"],
      "| transport:", status(fd)["transport"])''',
         rules={"R32": "state: Init\nSET_PARAM anything -> OK | state: Configured\nCONNECT -> OK | state: Connected"}),
    md('''
## A second CONNECT changes nothing (R38)

CONNECT chooses and starts a transport once. Asking again is harmless — it returns 0 and
the fd keeps its state and its transport (there is no reconnect: after a failure a guest
creates a new fd).
'''),
    code('''
before = {k: status(fd)[k] for k in ("state", "transport", "backend", "last_error")}
again = host.rtasr_ctl(fd, RtasrCtl.CONNECT)
after = {k: status(fd)[k] for k in ("state", "transport", "backend", "last_error")}
print("second CONNECT ->", errno_name(again))
print("before:", before)
print("after: ", after)
print("unchanged:", before == after)
assert before == after
_ = host.rtasr_close(fd)''',
         rules={"R38": "second CONNECT -> OK\nbefore:"}),
    md('''
## Control errors (R33, R34)

SET_PARAM needs a JSON object with a non-empty string `key`; anything else is `-EINVAL`
and changes nothing (the state stays `Init`). Commands are 1–8; 0 and 99 are `-EINVAL`. But
the fd is looked up *before* the command is checked, so a call on an fd that never existed
is `-EBADF` even when its command is nonsense too — the ABI's error precedence (§10).
'''),
    code('''
fd = host.rtasr_create()
for label, payload in [("empty payload", b""), ("invalid JSON", b"{"), ("no key", b'{"value":1}'),
                       ("empty key", b'{"key":"","value":1}')]:
    print(f"SET_PARAM {label:13} -> {errno_name(host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, payload))}")
print("state still:", status(fd)["state"])''',
         rules={"R33": "SET_PARAM empty payload -> -EINVAL\nSET_PARAM invalid JSON  -> -EINVAL\n"
                       "SET_PARAM no key        -> -EINVAL\nSET_PARAM empty key     -> -EINVAL"}),
    code('''
print("cmd 0            ->", errno_name(host.rtasr_ctl(fd, 0)))
print("cmd 99           ->", errno_name(host.rtasr_ctl(fd, 99)))
print("unknown fd 4242  ->", errno_name(host.rtasr_ctl(4242, RtasrCtl.GET_STATUS)))
print("unknown fd, cmd 99 ->", errno_name(host.rtasr_ctl(4242, 99)), "(the fd is checked first)")''',
         rules={"R34": "cmd 0            -> -EINVAL\ncmd 99           -> -EINVAL\nunknown fd 4242  -> -EBADF"}),
    md('''
## Backpressure with a 16-byte send queue (R31)

`max_send_queue_bytes` bounds what the guest may queue. Without CONNECT no transport takes
anything away, so the arithmetic is exact: the fresh fd has room (`EPOLLOUT`); a 16-byte
write fills the queue to the brim and returns 16; now there is no room, so a wait for
`EPOLLOUT` reports **nothing**; and one more byte is refused with `-EAGAIN`, queueing
nothing — a write is all or nothing.
'''),
    code('''
fd = host.rtasr_create()
ep = watch(fd, EPOLLOUT)
print("fresh fd, wait(0):", ready(ep))
print("SET_PARAM max_send_queue_bytes=16 ->", errno_name(set_param(fd, "max_send_queue_bytes", 16)))
print("write 16 bytes ->", errno_name(host.rtasr_write(fd, b"x" * 16)))
print("wait(0) for OUT:", ready(ep))
print("write 1 byte  ->", errno_name(host.rtasr_write(fd, b"y")))
print("send_queue_bytes:", status(fd)["send_queue_bytes"], "(the refused byte was not queued)")''',
         rules={"R31": "write 16 bytes -> 16\nwait(0) for OUT: []\nwrite 1 byte  -> -EAGAIN"}),
    md('''
All or nothing also means an *exact* fit succeeds, and a chunk bigger than the whole limit
can never succeed — so a guest chunks its audio (4800 bytes = 100 ms at 24 kHz).
'''),
    code('''
fd = host.rtasr_create()
set_param(fd, "max_send_queue_bytes", 100)
print("write 60 ->", errno_name(host.rtasr_write(fd, bytes(60))))
print("write 41 ->", errno_name(host.rtasr_write(fd, bytes(41))), "(60 + 41 > 100)")
print("write 40 ->", errno_name(host.rtasr_write(fd, bytes(40))), "(exactly the room left)")
print("queue:", status(fd)["send_queue_bytes"], "of", status(fd)["max_send_queue_bytes"])
_ = host.rtasr_close(fd)''', check=True),
    md('''
## A zero-length write (R49)

Writing nothing returns 0 and queues nothing — not an empty chunk that would become an
empty `input_audio_buffer.append` on the wire (the SPEAR reference queued one; spear_lab
fixes that). It is 0 even when the queue is full, because there is nothing to refuse.
'''),
    code('''
fd = host.rtasr_create()
print("write b'' ->", errno_name(host.rtasr_write(fd, b"")), "| send_queue_bytes:", status(fd)["send_queue_bytes"])
set_param(fd, "max_send_queue_bytes", 0)
print("queue limit 0: write b'' ->", errno_name(host.rtasr_write(fd, b"")),
      "| write b'a' ->", errno_name(host.rtasr_write(fd, b"a")))
_ = host.rtasr_close(fd)''',
         rules={"R49": "write b'' -> OK | send_queue_bytes: 0"}),
    md('''
## Stub events arrive (R35)

CONNECT with the default transport starts the stub. Every `stub_event_interval_ms` (here
20) it queues one event, so a wait of up to 500 ms returns `EPOLLIN` after about 20 ms.
Each read takes *one* event, a JSON object with a `type`; the guest reads until `-EAGAIN`,
which here means "drained for now" (level triggering: as long as events are queued, the fd
stays `EPOLLIN`).
'''),
    code('''
fd = host.rtasr_create()
set_param(fd, "stub_event_interval_ms", 20)
host.rtasr_ctl(fd, RtasrCtl.CONNECT)
ep = watch(fd, EPOLLIN)
print("wait(500) on the rtasr fd:", [bits for who, bits in ready(ep, 500) if who == fd])
events = []
while isinstance(ev := host.rtasr_read(fd), bytes):
    events.append(json.loads(ev))
print("first event:", json.dumps(events[0], separators=(",", ":"))[:60] + "…")
print("every read is a JSON object with a type:", all(isinstance(e.get("type"), str) for e in events))
print("after draining, read ->", errno_name(ev))
_ = host.rtasr_close(fd)''',
         rules={"R35": "wait(500) on the rtasr fd: ['EPOLLIN']"}),
    md('''
Every event read must carry a type, and the drain must end with `-EAGAIN`:
'''),
    code('''
print("every read is a JSON object with a type:", all(isinstance(e.get("type"), str) for e in events))
print("drain ended with", errno_name(ev))''',
         rules={"R35": "every read is a JSON object with a type: True\ndrain ended with -EAGAIN"}),
    md('''
## What the stub says (R36)

The stub's events are deliberately *not* OpenAI's, so a guest can tell it is talking to the
stub: type `transcription.delta`, except every 20th (`seq` a multiple of
`stub_emit_completed_every`, 20 by default), which is `transcription.completed`. The text is
`stub_event_payload_bytes` (256) minus 80 letters `a` — 176. We collect 41 events, fast.
'''),
    code('''
fd = host.rtasr_create()
set_param(fd, "stub_event_interval_ms", 1)
host.rtasr_ctl(fd, RtasrCtl.CONNECT)
got, deadline = [], time.monotonic() + 10
while len(got) < 41 and time.monotonic() < deadline:
    ev = host.rtasr_read(fd)
    if isinstance(ev, bytes):
        got.append(json.loads(ev))
    else:
        time.sleep(0.005)
host.rtasr_close(fd)
for e in got:
    if e["seq"] in (1, 2, 19, 20, 21, 39, 40, 41):
        print(f"seq {e['seq']:2}: {e['type']:25} text = {len(e['text'])} x {e['text'][0]!r}")
print("completed exactly at multiples of 20:",
      all((e["type"] == "transcription.completed") == (e["seq"] % 20 == 0) for e in got))''',
         rules={"R36": "seq 20: transcription.completed   text = 176 x 'a'"}),
    md('''
## Receive overflow: the oldest event goes (R37)

The receive queue is bounded too. Nobody reads here; the stub emits every 10 ms into a
queue of 1000 bytes — room for four of its 224-byte events. After each new event, while
the queue holds more than the limit, the **oldest** is dropped and `dropped_events` goes
up. The guest always finds the newest events; it loses old ones, never the latest.
'''),
    code('''
fd = host.rtasr_create()
set_param(fd, "max_recv_queue_bytes", 1000)
set_param(fd, "stub_event_interval_ms", 10)
host.rtasr_ctl(fd, RtasrCtl.CONNECT)
seen, deadline = [], time.monotonic() + 10
while time.monotonic() < deadline and (not seen or seen[-1]["dropped_events"] < 5):
    seen.append(status(fd))
    time.sleep(0.005)
drops = [s["dropped_events"] for s in seen]
print("dropped_events went from", drops[0], "to at least 5:", drops[-1] >= 5)
print("dropped_events never went down:", drops == sorted(drops))
print("recv_queue_bytes never above the limit 1000:", max(s["recv_queue_bytes"] for s in seen) <= 1000)
seqs = []
while isinstance(ev := host.rtasr_read(fd), bytes):
    seqs.append(json.loads(ev)["seq"])
print("what is left starts after seq 1 (the oldest were dropped):", seqs[0] > 1, "| in order:", seqs == sorted(seqs))
_ = host.rtasr_close(fd)''',
         rules={"R37": "dropped_events went from 0 to at least 5: True\ndropped_events never went down: True\n"
                       "recv_queue_bytes never above the limit 1000: True"}),
    md('''
## A read into a buffer too small (R48)

`rtasr_read` copies the event out with the length-cell protocol: the guest puts its
buffer's capacity in a 4-byte *cell*; when the event does not fit, the call returns
`-ENOSPC`, writes the **needed length** into the cell, and *keeps the event queued* (the
SPEAR reference dropped it — spear_lab fixes that). The Python method `Host.rtasr_read`
has no cell, so this cell reads through a `Probe`: a tiny real wasm guest on the same Host,
whose memory Python fills before each call and reads after it — the cell you see is the
one the wasm glue wrote back. Reading again with exactly that capacity returns that very
event.
'''),
    code('''
from spear_lab import Probe

probe = Probe(host)  # shares this Host's fd table
fd = host.rtasr_create()
set_param(fd, "max_recv_queue_bytes", 300)  # room for one stub event: always the newest
set_param(fd, "stub_event_interval_ms", 20)
host.rtasr_ctl(fd, RtasrCtl.CONNECT)
ready(watch(fd, EPOLLIN), 500)
set_param(fd, "stub_event_interval_ms", 100000)  # and no new one while we look
short = probe.rtasr_read(fd, capacity=10)
print(short.errno, "| cell:", short.cell_in, "->", short.cell_out)
print("still queued:", status(fd)["recv_queue_bytes"], "bytes")
again = probe.rtasr_read(fd, capacity=short.cell_out)
print("read with capacity", short.cell_out, "->", again.rc, "bytes, seq", json.loads(again.data)["seq"])
event = again.data
need = short.cell_out
_ = host.rtasr_close(fd)''',
         rules={"R48": "-ENOSPC | cell: 10 -> 224\nstill queued: 224 bytes\nread with capacity 224 -> 224 bytes, seq 1"}),
    md('''
## Close (R47)

`rtasr_close` returns 0, and 0 again the second time (close is idempotent); the fd stays in
the table, closed, so every later rtasr call on it is `-EBADF` — never a different fd that
happened to get the same number.
'''),
    code('''
fd = host.rtasr_create()
host.rtasr_ctl(fd, RtasrCtl.CONNECT)
print("close ->", errno_name(host.rtasr_close(fd)), "| close again ->", errno_name(host.rtasr_close(fd)))
closed = {f"ctl {c.name}": host.rtasr_ctl(fd, c, b'{"key":"a","value":1}') for c in RtasrCtl}
closed["write"] = host.rtasr_write(fd, b"x")
closed["read"] = host.rtasr_read(fd)
for call, rc in closed.items():
    print(f"{call:20} -> {errno_name(rc)}")
print("every call -EBADF:", all(rc == -Errno.EBADF for rc in closed.values()))''',
         rules={"R47": "close -> OK | close again -> OK"}),
    md('''
## `transport = websocket` with nowhere to go (R39)

A guest asking for the WebSocket transport names a backend; the host routes it. When no
backend matches, spear_lab does not silently pretend: CONNECT returns `-EIO`, the fd is in
`Error` and `last_error` says why and which names exist. A guest that *wants* the SPEAR
reference's behaviour asks for it with `fallback` `{"to_stub":true}` (a host can also turn on
`stub_fallback`): then CONNECT succeeds on the stub, and stub events arrive.
'''),
    code('''
fd = host.rtasr_create()
set_param(fd, "transport", "websocket")
set_param(fd, "backend", "no-such-backend")
print("no fallback:   CONNECT ->", errno_name(host.rtasr_ctl(fd, RtasrCtl.CONNECT)),
      "| state:", status(fd)["state"])
print("  last_error:", status(fd)["last_error"])

fd = host.rtasr_create()
set_param(fd, "transport", "websocket")
set_param(fd, "backend", "no-such-backend")
set_param(fd, "fallback", {"to_stub": True})
set_param(fd, "stub_event_interval_ms", 20)
print("with fallback: CONNECT ->", errno_name(host.rtasr_ctl(fd, RtasrCtl.CONNECT)),
      "| state:", status(fd)["state"], "| transport:", status(fd)["transport"])
ready(watch(fd, EPOLLIN), 2000)
print("  first event type:", json.loads(host.rtasr_read(fd))["type"])
_ = host.rtasr_close(fd)''',
         rules={"R39": "no fallback:   CONNECT -> -EIO | state: Error"}),
    md('''
## Check

The claims of this lesson, asserted on what the cells above returned.
'''),
    code('''
assert keys - REFERENCE == {"backend", "peer_closed", "transport"} and len(keys) == 10
assert events and all(isinstance(e.get("type"), str) for e in events) and ev == -Errno.EAGAIN
assert all((e["type"] == "transcription.completed") == (e["seq"] % 20 == 0) for e in got) and len(got) == 41
assert all(len(e["text"]) == 176 and set(e["text"]) == {"a"} for e in got)
assert drops[-1] >= 5 and drops == sorted(drops) and seqs[0] > 1
assert isinstance(event, bytes) and len(event) == need
host.shutdown()
print("all claims hold")'''),
]
