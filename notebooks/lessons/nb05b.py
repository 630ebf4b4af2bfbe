"""Lesson 05b_segmentation_rules: segmentation settings of an rtasr fd, their two JSON
forms, FLUSH, CLEAR and the host's client commits (R44, R51–R55)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

CELLS = [
    md('''
# 5b · Segmentation: who commits, and how to say so

A recogniser transcribes *turns*: stretches of audio ended by a **commit**. Every rtasr fd
has a segmentation setting that decides who commits:

| strategy | who commits | the server is told |
|---|---|---|
| `server_vad` (default) | the server, after `silence_ms` of silence | `turn_detection: server_vad` |
| `client_commit` | the host, for the guest, by bytes, time or silence | `turn_detection: null` |
| `manual` (`"off"`) | only the guest, with FLUSH | `turn_detection: null` |

The setting is JSON, set with SET_AUTOFLUSH (= SET_SEGMENTATION) and read back with
GET_AUTOFLUSH. Nothing here needs a server: the host parses, stores and acts on the
setting itself. (Lesson 3b shows the server's side: its `turn_detection`.)
'''),
    code(SETUP_ABI),
    code('''
import json

host = Host()


def set_seg(fd, setting):
    text = setting if isinstance(setting, bytes) else json.dumps(setting).encode()
    return host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, text)


def get_seg(fd):
    return host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH).decode()


def queued(fd):
    return json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))["send_queue_bytes"]'''),
    md('''
## The default (R51)

A new fd segments with the server's VAD: 500 ms of silence ends a turn, threshold 0.5,
300 ms of audio kept before detected speech. GET_AUTOFLUSH always answers the same four keys
— `client_commit`, `flush_on_close`, `strategy`, `vad` — so a guest can parse it without
guessing.
'''),
    code('''
fd = host.rtasr_create()
print(get_seg(fd))''',
         rules={"R51": '"strategy":"server_vad","vad":{"prefix_padding_ms":300,"silence_ms":500'}),
    md('''
## The strategy form (R52, R54)

A payload with a string `strategy` is read as the strategy form. Unset client-commit
triggers read back as `null`, so what you set is exactly what you see. `"off"` is a synonym
of `manual` and reads back as `manual`.
'''),
    code('''
fd = host.rtasr_create()
rc = set_seg(fd, {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 123, "min_flush_gap_ms": 7}})
print("SET_AUTOFLUSH ->", errno_name(rc))
print(get_seg(fd))''',
         rules={"R52": '"client_commit":{"flush_interval_ms":null,"max_buffer_bytes":123,"min_flush_gap_ms":7,'
                       '"silence_ms":null}'}),
    md('''
What is refused is refused whole, with `-EINVAL`, and the previous setting stays: an unknown
strategy, a `vad` that is not an object, a payload that is not a JSON object.
'''),
    code('''
fd = host.rtasr_create()
cases = [('{"strategy":"off"}', {"strategy": "off"}),
         ('{"strategy":"sometimes"}', {"strategy": "sometimes"}),
         ('{"strategy":"server_vad","vad":5}', {"strategy": "server_vad", "vad": 5}),
         ('[1,2]', [1, 2]), ('not JSON', b"not json")]
for label, payload in cases:
    rc = set_seg(fd, payload)
    note = f" | reads back as {json.loads(get_seg(fd))['strategy']}" if rc == 0 else ""
    print(f"{label:34} -> {errno_name(rc)}{note}")
print("still:", json.loads(get_seg(fd))["strategy"])''',
         rules={"R54": '{"strategy":"off"}                 -> OK | reads back as manual\n'
                       '{"strategy":"sometimes"}           -> -EINVAL\n'
                       '{"strategy":"server_vad","vad":5}  -> -EINVAL\n'
                       '[1,2]                              -> -EINVAL'}),
    md('''
## The legacy form (R53, R55)

Guests written for the SPEAR reference send `enabled` and `mode` instead of `strategy`.
The host translates them into the strategy form, so they read back in the new shape:

- `"mode":"bytes"` → `client_commit` with only `max_buffer_bytes` (and `min_flush_gap_ms`);
- `"mode":"time"` → `client_commit` with only `flush_interval_ms`;
- `"mode":"silence"` → `server_vad` with `silence_ms` = `silence_ms`, else
  `flush_interval_ms` (the reference reused that field), else 500;
- `enabled` false or absent, or `"mode":"off"` → `manual`.
'''),
    code('''
legacy = [
    {"enabled": True, "mode": "bytes", "max_buffer_bytes": 123},
    {"enabled": True, "mode": "silence", "flush_interval_ms": 700},
    {"enabled": True, "mode": "time", "flush_interval_ms": 2000},
    {"enabled": False, "mode": "bytes", "max_buffer_bytes": 123},
]
for setting in legacy:
    fd = host.rtasr_create()
    rc = set_seg(fd, setting)
    back = json.loads(get_seg(fd))
    detail = back["client_commit"] if back["strategy"] == "client_commit" else back["vad"]
    print(f"{json.dumps(setting, separators=(',', ':')):58} {errno_name(rc)} -> {back['strategy']:13} "
          f"{json.dumps(detail, sort_keys=True, separators=(',', ':'))}")''',
         rules={"R53": 'OK -> client_commit {"flush_interval_ms":null,"max_buffer_bytes":123,'
                       '"min_flush_gap_ms":500,"silence_ms":null}',
                "R55": 'OK -> server_vad    {"prefix_padding_ms":300,"silence_ms":700,"threshold":0.5}'}),
    md('''
## FLUSH and CLEAR, under any strategy

FLUSH always queues the 36-byte commit `{"type":"input_audio_buffer.commit"}`, even under
`server_vad` (a guest may end a turn early). CLEAR queues the 35-byte
`{"type":"input_audio_buffer.clear"}`, asking the *server* to forget its buffered audio —
audio still in our own send queue is not removed. Both wait in the send queue like audio,
so they count against `max_send_queue_bytes` and can be refused with `-EAGAIN`.
'''),
    code('''
fd = host.rtasr_create()
print("strategy:", json.loads(get_seg(fd))["strategy"], "| queue:", queued(fd))
print("write 100 ->", errno_name(host.rtasr_write(fd, bytes(100))), "| queue:", queued(fd))
print("FLUSH ->", errno_name(host.rtasr_ctl(fd, RtasrCtl.FLUSH)), "| queue:", queued(fd), "(+36)")
print("CLEAR ->", errno_name(host.rtasr_ctl(fd, RtasrCtl.CLEAR)), "| queue:", queued(fd), "(+35, the audio stays)")''',
         check=True),
    md('''
## The host commits for the guest (R44)

Under `client_commit` the host checks right after every accepted write (and on a timer)
whether a trigger fires. With `max_buffer_bytes` 1000 and no minimum gap, 1000 bytes of
audio are enough: the write queues the chunk **and** a commit behind it, so
`send_queue_bytes` becomes 1000 + 36 = 1036 — before CONNECT, with no transport at all.
500 bytes are not enough; the next 500 are.
'''),
    code('''
fd = host.rtasr_create()
set_seg(fd, {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 1000, "min_flush_gap_ms": 0}})
print("write 1000 ->", errno_name(host.rtasr_write(fd, bytes(1000))), "| send_queue_bytes:", queued(fd))
fd = host.rtasr_create()
set_seg(fd, {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 1000, "min_flush_gap_ms": 0}})
print("write 500  ->", errno_name(host.rtasr_write(fd, bytes(500))), "| send_queue_bytes:", queued(fd))
print("write 500  ->", errno_name(host.rtasr_write(fd, bytes(500))), "| send_queue_bytes:", queued(fd))''',
         rules={"R44": "write 1000 -> 1000 | send_queue_bytes: 1036"}),
    md('''
A commit is only sent when there is something to commit, and not twice for the same audio:
the same 1000 bytes under `server_vad` or `manual` queue no commit at all — there, the server
or the guest decides.
'''),
    code('''
for setting in ({"strategy": "server_vad"}, {"strategy": "manual"}):
    fd = host.rtasr_create()
    set_seg(fd, setting)
    print(f"{setting['strategy']:10} write 1000 ->", errno_name(host.rtasr_write(fd, bytes(1000))),
          "| send_queue_bytes:", queued(fd))''', check=True),
    md('''
## Check
'''),
    code('''
fresh = json.loads(get_seg(host.rtasr_create()))
assert fresh == {"client_commit": None, "flush_on_close": False, "strategy": "server_vad",
                 "vad": {"prefix_padding_ms": 300, "silence_ms": 500, "threshold": 0.5}}
fd = host.rtasr_create()
set_seg(fd, {"enabled": True, "mode": "bytes", "max_buffer_bytes": 123})
assert json.loads(get_seg(fd))["client_commit"]["max_buffer_bytes"] == 123
fd = host.rtasr_create()
set_seg(fd, {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 1000, "min_flush_gap_ms": 0}})
assert host.rtasr_write(fd, bytes(1000)) == 1000 and queued(fd) == 1036
host.shutdown()
print("all claims hold")'''),
]
