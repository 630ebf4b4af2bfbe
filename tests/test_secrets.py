"""A host credential never leaks: a whole session with a canary key, then a search for
the canary everywhere a guest or a notebook user could see it — the guest's linear
memory, GET_STATUS, logs at DEBUG (websockets' own included), the hostcall trace, reprs,
and the messages of failed connects."""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import socket

import pytest
import wasmtime
from test_ws_support import make_server, status, wait_until, ws_fd  # noqa: F401

from spear_lab import Host
from spear_lab.abi.constants import FdCtl, RtasrCtl
from spear_lab.host import HostConfig
from spear_lab.runtime.linker import define_spear
from spear_lab.runtime.memory import GuestMemory
from spear_lab.trace import Trace
from spear_lab.transports.backends import Backend, BackendRegistry, route
from spear_lab.transports.base import ConnectRefused

ENV = "SPEAR_TEST_CANARY_KEY"
DELTA = b'{"delta":"canary test","item_id":"item_1","type":"conversation.item.input_audio_transcription.delta"}'


def wat_string(text: str) -> str:
    return "".join(c if c.isalnum() or c in " :,{}_-." else f"\\{ord(c):02x}" for c in text)


def guest_wat(params: list[str]) -> str:
    """A guest exporting ``run(want) -> events_read``: set ``params``, CONNECT, write 100 ms
    of audio, FLUSH, then epoll-wait and read events one after another into memory from
    64 KiB on until ``want`` arrived (or 10 s pass); finally GET_STATUS at 2048."""
    data, calls, at = [], [], 1024
    for p in params:
        data.append(f'(data (i32.const {at}) "{wat_string(p)}")')
        calls.append(f"(drop (call $ctl (local.get $fd) (i32.const 1) (i32.const {at}) (i32.const {len(p)})))")
        at += len(p) + 8
    assert at < 2048
    return f"""
(module
  (import "spear" "rtasr_create" (func $rtasr_create (result i32)))
  (import "spear" "rtasr_ctl" (func $rtasr_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $rtasr_write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_read" (func $rtasr_read (param i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
  {' '.join(data)}
  (func $ctl (param $fd i32) (param $cmd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 16) (local.get $len))
    (call $rtasr_ctl (local.get $fd) (local.get $cmd) (local.get $ptr) (i32.const 16)))
  (func (export "run") (param $want i32) (result i32)
    (local $fd i32) (local $ep i32) (local $out i32) (local $rc i32) (local $got i32)
    (local.set $fd (call $rtasr_create))
    {' '.join(calls)}
    (drop (call $ctl (local.get $fd) (i32.const 2) (i32.const 0) (i32.const 0)))
    (drop (call $rtasr_write (local.get $fd) (i32.const 8192) (i32.const 4800)))
    (drop (call $ctl (local.get $fd) (i32.const 5) (i32.const 0) (i32.const 0)))
    (local.set $ep (call $ep_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 0x19)))
    (local.set $out (i32.const 65536))
    (block $done
      (loop $wait
        (br_if $done (i32.ge_s (local.get $got) (local.get $want)))
        (i32.store (i32.const 24) (i32.const 64))
        (br_if $done (i32.le_s (call $ep_wait (local.get $ep) (i32.const 32) (i32.const 24) (i32.const 10000))
                               (i32.const 0)))
        (block $empty
          (loop $drain
            (i32.store (i32.const 20) (i32.sub (i32.const 524288) (local.get $out)))
            (local.set $rc (call $rtasr_read (local.get $fd) (local.get $out) (i32.const 20)))
            (br_if $empty (i32.le_s (local.get $rc) (i32.const 0)))
            (local.set $out (i32.add (local.get $out) (local.get $rc)))
            (local.set $got (i32.add (local.get $got) (i32.const 1)))
            (br $drain)))
        (br $wait)))
    (drop (call $ctl (local.get $fd) (i32.const 3) (i32.const 2048) (i32.const 4096)))
    (local.get $got)))
"""


def run_guest_and_keep_memory(host: Host, wat: str, want: int, trace: Trace) -> tuple[int, bytes, Host]:
    """Run ``run(want)`` of ``wat`` on a fork of ``host`` (traced) through the real glue and
    return (its result, its whole linear memory afterwards, the fork)."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    guest_host = host.fork("canary-guest")
    trace.attach(guest_host)
    mem = GuestMemory()
    define_spear(linker, guest_host, mem)
    instance = linker.instantiate(store, wasmtime.Module(engine, wasmtime.wat2wasm(wat)))
    exports = instance.exports(store)
    memory = exports["memory"]
    mem.bind(memory, store)
    got = exports["run"](store, want)
    image = bytes(memory.read(store, 0, memory.data_len(store)))
    mem.release()
    return got, image, guest_host


def test_canary_key_never_leaks(monkeypatch, make_server, caplog):
    canary = "sk-canary-" + secrets.token_hex(16)
    needles = [canary.encode(), canary[10:].encode()]
    monkeypatch.setenv(ENV, canary)
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "websockets.client", "spear_lab", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)

    async def answer(srv, conn, data):
        if data == b'{"type":"input_audio_buffer.commit"}':
            await conn.ws.send(DELTA)

    srv = make_server(require_bearer=canary,
                      greeting=[b'{"type":"session.created","session":{"type":"transcription"}}'],
                      on_message=answer)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    refused_port = probe.getsockname()[1]
    probe.close()
    registry = BackendRegistry([
        Backend("canary", srv.url, credential_env=ENV),
        Backend("canary_refused", f"ws://127.0.0.1:{refused_port}", credential_env=ENV),
    ], default="canary")
    host = Host(HostConfig(backends=registry, stub_fallback=False))
    trace = Trace()
    trace.attach(host)
    seen: list[str] = []
    try:
        # 1. A whole session driven by a wasm guest.
        params = ['{"key":"transport","value":"websocket"}', '{"key":"backend","value":"canary"}']
        got, image, guest = run_guest_and_keep_memory(host, guest_wat(params), 2, trace)
        assert got == 2
        assert srv.handshakes[0]["authorization"] == f"Bearer {canary}"  # the key did go out
        assert b"session.created" in image and b"canary test" in image  # events landed in memory
        assert b'"state":"Connected"' in image and b'"backend":"canary"' in image  # GET_STATUS too
        for needle in needles:
            assert needle not in image, "canary in guest memory"
        fd = guest.table.open_fds()[0]
        rt = guest.table.get(fd)
        transport = rt.transport
        seen += [guest.rtasr_ctl(fd, RtasrCtl.GET_STATUS).decode(),
                 guest.spear_fd_ctl(fd, FdCtl.GET_STATUS).decode(),
                 repr(host), repr(guest), repr(rt), repr(transport), str(transport),
                 repr(vars(transport)), repr(transport._credential), repr(registry), repr(list(registry)),
                 repr(host.config), repr(rt.params)]
        with pytest.raises(TypeError) as info:
            pickle.dumps(transport._credential)
        seen.append(str(info.value))

        # 2. Failing connects that carry the key: refused port, HTTP 401 from a server
        #    that wants another key.
        f = ws_fd(host, backend="canary_refused")
        assert host.rtasr_ctl(f, RtasrCtl.CONNECT) == 0
        wait_until(lambda: status(host, f)["state"] == "Error", 20, "the refused connect")
        seen.append(host.rtasr_ctl(f, RtasrCtl.GET_STATUS).decode())
        srv.require_bearer = "another-key"
        f = ws_fd(host, backend="canary")
        assert host.rtasr_ctl(f, RtasrCtl.CONNECT) == 0
        wait_until(lambda: status(host, f)["state"] == "Error", 20, "the 401")
        last = status(host, f)["last_error"]
        assert "401" in last
        seen.append(last)

        # 3. A refusal naming the variable when it is empty.
        monkeypatch.setenv(ENV, "")
        f = ws_fd(host, backend="canary")
        with pytest.raises(ConnectRefused) as refused:
            route(host.table.get(f), host.context, host.context.connector.embedded)
        seen.append(str(refused.value))
        monkeypatch.setenv(ENV, canary)

        assert guest.rtasr_close(fd) == 0
        assert transport.join(10)
    finally:
        host.shutdown()

    seen += [r.getMessage() for r in caplog.records]
    seen += [repr(r.args) for r in caplog.records]
    seen.append(caplog.text)
    records = trace.records()
    seen += [repr(r) for r in records]
    seen.append(trace.to_jsonl())
    seen.append(repr(trace.summary()))
    kinds = {r.get("kind") for r in records}
    assert {"hostcall", "event"} <= kinds, kinds  # the trace did record the session
    assert any("401" in repr(r) for r in records)  # and the failed connects
    assert any("websockets" in r.name or "spear_lab" in r.name for r in caplog.records)
    blob = "\n".join(seen)
    for needle in needles:
        assert needle.decode() not in blob, "canary leaked: " + next(s for s in seen if needle.decode() in s)
    assert json.loads(seen[0])["transport"] == "websocket"
