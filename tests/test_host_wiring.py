"""The host core and its wiring: a bare Host has no edges, ``spear_lab.Host`` is wired,
the context closes what the edges started; the one policy module's answers."""

from __future__ import annotations

import json

import pytest

import spear_lab
from spear_lab.abi import Errno, MicCtl, RtasrCtl
from spear_lab.audio.sources import SourceFactory
from spear_lab.host import Host, HostConfig, HostContext
from spear_lab.session import policy
from spear_lab.session.wiring import embedded_server, host_context, wire
from spear_lab.transports.factory import TransportOpener


def status(host, fd):
    return json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))


def test_a_bare_host_has_no_edges():
    with Host() as h:
        assert h.context.connector is None and h.context.sources is None
        fd = h.rtasr_create()
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        st = status(h, fd)
        assert st["transport"] is None and st["state"] == "Connected"
        assert h.rtasr_write(fd, bytes(960)) == 960  # queued; nothing carries it
        mic = h.mic_create()
        assert h.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"stub"}') == 0
        assert h.mic_read(mic) == -Errno.EAGAIN  # no source produces frames


def test_spear_lab_host_is_wired_to_the_real_edges():
    with spear_lab.Host(HostConfig(stub_fallback=False), name="wired") as h:
        assert isinstance(h, Host) and h.name == "wired"
        assert isinstance(h.context.connector, TransportOpener)
        assert isinstance(h.context.sources, SourceFactory)
        fd = h.rtasr_create()
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        assert status(h, fd)["transport"] == "stub"
        assert embedded_server(h.context) is None  # nothing started the local server


def test_wire_fills_only_empty_ports_and_forks_share_them():
    ctx = HostContext()
    mine = object()
    ctx.sources = mine  # type: ignore[assignment]
    wire(ctx)
    connector = ctx.connector
    assert isinstance(connector, TransportOpener) and ctx.sources is mine
    wire(ctx)
    assert ctx.connector is connector
    root = Host(context=ctx)
    child = root.fork("child")
    assert child.context is ctx and child.table is not root.table
    root.shutdown()


def test_the_context_closes_what_was_registered_once_newest_first():
    ctx = host_context()
    order = []
    ctx.on_close(lambda: order.append("first"))
    ctx.on_close(lambda: order.append("second"))
    ctx.on_close(lambda: 1 / 0)  # a failing closer does not stop the others
    ctx.close()
    ctx.close()
    assert order == ["second", "first"] and ctx.closed and not ctx.io.running


def test_policy_answers_name_the_problem(tmp_path):
    assert policy.guest_env("stub") == {"SPEAR_TRANSPORT": "stub", "SPEAR_BACKEND": "stub"}
    env = policy.guest_env("local", {"strategy": "manual"}, "whisper-1")
    assert env["SPEAR_TRANSPORT"] == "websocket" and env["SPEAR_MODEL"] == "whisper-1"
    assert json.loads(env["SPEAR_SEGMENTATION"]) == {"strategy": "manual"}
    with pytest.raises(ValueError, match="invalid JSON object"):
        policy.segmentation_env("[1]")
    with pytest.raises(ValueError, match="invalid segmentation setting"):
        policy.segmentation_env({"strategy": "sometimes"})
    registry = policy.backend_registry()
    assert "local" in registry
    with pytest.raises(ValueError, match="no such file"):
        policy.backend_registry(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[backends.x]\nurl = 3\n")
    with pytest.raises(ValueError, match=str(bad)):
        policy.backend_registry(bad)
    assert policy.parse_routes(["a = local"], registry) == {"a": "local"}
    with pytest.raises(ValueError, match="expected NAME=BACKEND"):
        policy.parse_routes(["a"], registry)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        policy.parse_routes(["a=nope"], registry)
    out = "hello\nsummary: frames=12 bytes=11520 dropped=-1\nsummary: frames=3 events=2\n"
    assert policy.parse_summary(out) == {"frames": 3, "events": 2}
    assert policy.parse_summary("no summary here") == {}
