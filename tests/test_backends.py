"""Host-side backend configuration and routing of a ``transport=websocket`` CONNECT."""

from __future__ import annotations

import json
import sys
import types

import pytest
from test_ws_support import make_server, status, ws_fd  # noqa: F401

from spear_lab import Host
from spear_lab.abi.constants import Errno, RtasrCtl
from spear_lab.host import HostConfig
from spear_lab.transports import backends as bk
from spear_lab.transports.backends import (Backend, BackendRegistry, default_registry,
                                           registry_for, route)
from spear_lab.transports.base import ConnectRefused
from spear_lab.transports.realtime_ws import RealtimeWsTransport
from spear_lab.transports.stub import StubTransport
from spear_lab.transports.embedded import EMBEDDED_MODULE


def entry(h: Host, fd: int):
    return h.table.get(fd)


def new_host(registry=None, **config) -> Host:
    return Host(HostConfig(backends=registry, **config))


# -- Backend ---------------------------------------------------------------------------------


def test_backend_defaults_and_kinds():
    b = Backend("x", "ws://127.0.0.1:1")
    assert (b.dialect, b.credential_env, b.models, b.default_model, b.connect_timeout_s) == (
        "ga", None, None, "gpt-4o-mini-transcribe", 20)
    assert b.kind == "websocket" and Backend("l", "embedded").kind == "embedded" and Backend("s", "stub").kind == "stub"
    assert Backend("m", "ws://h", models=["a", "b"]).models == ("a", "b")
    assert Backend("m", "ws://h", models="a").allows_model("a")
    assert not Backend("m", "ws://h", models=["a"]).allows_model("b")


@pytest.mark.parametrize("kwargs", [
    {"url": "ftp://h"}, {"url": ""}, {"dialect": "v2"}, {"models": [""]},
    {"default_model": ""}, {"connect_timeout_s": 0}, {"connect_timeout_s": True},
])
def test_backend_rejects_bad_fields(kwargs):
    fields = {"name": "x", "url": "ws://h", **kwargs}
    with pytest.raises(ValueError):
        Backend(**fields)


def test_credential_env_must_be_a_name_and_the_error_never_repeats_it():
    pasted = "sk-proj-abc123-DEF456"
    with pytest.raises(ValueError) as info:
        Backend("x", "ws://h", credential_env=pasted)
    assert pasted not in str(info.value)


def test_credential_is_read_from_the_environment(monkeypatch):
    b = Backend("x", "ws://h", credential_env="SPEAR_TEST_CRED")
    monkeypatch.delenv("SPEAR_TEST_CRED", raising=False)
    with pytest.raises(ConnectRefused) as info:
        b.credential()
    assert info.value.final is True and "SPEAR_TEST_CRED" in str(info.value)
    monkeypatch.setenv("SPEAR_TEST_CRED", "")
    with pytest.raises(ConnectRefused):
        b.credential()
    monkeypatch.setenv("SPEAR_TEST_CRED", "value-123")
    secret = b.credential()
    assert secret.reveal() == "value-123" and "value-123" not in repr(secret) + str(secret)
    assert Backend("y", "ws://h").credential() is None


def test_backend_repr_hides_the_query():
    b = Backend("x", "wss://h/v1/realtime?api_key=zzz-secret")
    assert "zzz-secret" not in repr(b) and "wss://h/v1/realtime" in repr(b)


# -- BackendRegistry ---------------------------------------------------------------------------


def test_default_registry():
    reg = default_registry()
    assert reg.names() == ["local", "stub", "openai"] and reg.default == "local"
    openai = reg.get("openai")
    assert openai.url == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert (openai.dialect, openai.credential_env) == ("ga", "OPENAI_API_KEY")
    assert openai.session_url() == openai.url
    assert reg.get("local").kind == "embedded" and reg.get("local").credential_env is None


def test_registry_from_dict_both_forms_and_round_trip():
    data = {"default": "b", "backends": {"a": {"url": "ws://127.0.0.1:1"},
                                         "b": {"url": "https://x.example/v1", "dialect": "beta",
                                               "credential_env": "B_KEY", "models": ["whisper-1"]}}}
    reg = BackendRegistry.from_dict(data)
    assert reg.names() == ["a", "b"] and reg.default == "b"
    assert reg.get("b").session_url() == "wss://x.example/v1/realtime?intent=transcription"
    assert BackendRegistry.from_dict(reg.to_dict()).to_dict() == reg.to_dict()
    listed = BackendRegistry.from_dict({"backends": [{"name": "only", "url": "ws://h"}]})
    assert listed.default == "only"
    with pytest.raises(ValueError):
        BackendRegistry.from_dict({"backends": {"a": {"url": "ws://h", "api_key": "x"}}})
    with pytest.raises(ValueError):
        BackendRegistry([Backend("a", "ws://h")], default="missing")


TOML = """
default = "lab"

[backends.lab]
url = "ws://127.0.0.1:8765"
dialect = "beta"
credential_env = "LAB_KEY"
models = ["whisper-1"]
connect_timeout_s = 5
"""


def test_registry_from_toml_text_and_file(tmp_path):
    reg = BackendRegistry.from_toml(TOML)
    lab = reg.get("lab")
    assert (reg.default, lab.dialect, lab.credential_env, lab.models, lab.connect_timeout_s) == (
        "lab", "beta", "LAB_KEY", ("whisper-1",), 5)
    path = tmp_path / "backends.toml"
    path.write_text(TOML)
    assert BackendRegistry.from_toml(path).to_dict() == reg.to_dict()
    assert BackendRegistry.from_toml(str(path)).to_dict() == reg.to_dict()


def test_registry_from_env(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(TOML)
    reg = BackendRegistry.from_env({"SPEAR_LAB_BACKENDS": str(path)})
    assert reg.names() == ["local", "stub", "openai", "lab"] and reg.default == "lab"
    reg = BackendRegistry.from_env({"SPEAR_LAB_BACKENDS": str(path), "SPEAR_LAB_DEFAULT_BACKEND": "openai"})
    assert reg.default == "openai"
    assert BackendRegistry.from_env({}).names() == default_registry().names()


def test_registry_for_accepts_the_config_shapes():
    assert registry_for(None).names() == ["local", "stub", "openai"]
    reg = BackendRegistry([Backend("a", "ws://h")])
    assert registry_for(reg) is reg
    assert registry_for({"backends": {"a": {"url": "ws://h"}}}).names() == ["a"]
    assert registry_for([Backend("a", "ws://h")]).names() == ["a"]
    merged = default_registry().merged(reg)
    assert merged.names() == ["local", "stub", "openai", "a"] and merged.default == "a"


# -- routing ---------------------------------------------------------------------------------


def test_unknown_backend_is_a_non_final_refusal():
    h = new_host(stub_fallback=False)
    try:
        fd = ws_fd(h, backend="nope")
        with pytest.raises(ConnectRefused) as info:
            route(entry(h, fd), h.context, h.context.connector.embedded)
        assert getattr(info.value, "final", False) is False
        assert "nope" in str(info.value)
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO  # no fallback allowed here
        st = status(h, fd)
        assert st["state"] == "Error" and "unknown backend 'nope'" in st["last_error"]
    finally:
        h.shutdown()


@pytest.mark.parametrize("value", [None, ""])
def test_missing_credential_fails_connect_even_with_stub_fallback(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", value)
    h = new_host(stub_fallback=True)
    try:
        fd = ws_fd(h, backend="openai")
        with pytest.raises(ConnectRefused) as info:
            route(entry(h, fd), h.context, h.context.connector.embedded)
        assert info.value.final is True
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        st = status(h, fd)
        assert st["state"] == "Error" and st["transport"] is None
        assert st["last_error"] == ("backend 'openai' needs a credential: environment variable "
                                    "OPENAI_API_KEY is not set")
    finally:
        h.shutdown()


def test_model_must_be_offered(make_server):
    srv = make_server()
    reg = BackendRegistry([Backend("lab", srv.url, models=["whisper-1", "gpt-4o-transcribe"],
                                   default_model="whisper-1")])
    h = new_host(reg, stub_fallback=False)
    try:
        bad = ws_fd(h, backend="lab", model="gpt-4o-mini-transcribe")
        with pytest.raises(ConnectRefused) as info:
            route(entry(h, bad), h.context, h.context.connector.embedded)
        assert not getattr(info.value, "final", False)
        assert "not offered" in str(info.value)
        ok = ws_fd(h, backend="lab", model="gpt-4o-transcribe")
        assert h.rtasr_ctl(ok, RtasrCtl.CONNECT) == 0
        first = json.loads(srv.frames(1)[0])
        assert first["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
        default = ws_fd(h)  # the registry's default backend and its default model
        assert h.rtasr_ctl(default, RtasrCtl.CONNECT) == 0
        first = json.loads(srv.frames(1, index=1)[0])
        assert first["session"]["audio"]["input"]["transcription"] == {"model": "whisper-1"}
        assert status(h, default)["backend"] == "lab"
    finally:
        h.shutdown()


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_named_backend_sends_its_credential_and_dialect(monkeypatch, make_server, dialect):
    monkeypatch.setenv("SPEAR_TEST_LAB_KEY", "lab-key-42")
    srv = make_server(require_bearer="lab-key-42")
    base = f"http://127.0.0.1:{srv.port}"  # a base URL: completed to /v1/realtime?intent=transcription
    reg = BackendRegistry([Backend("lab", base, dialect=dialect, credential_env="SPEAR_TEST_LAB_KEY")])
    h = new_host(reg, stub_fallback=False)
    try:
        fd = ws_fd(h, backend="lab")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        first = json.loads(srv.frames(1)[0])
        conn = srv.conn()
        assert conn.path == "/v1/realtime?intent=transcription"
        assert conn.headers["authorization"] == "Bearer lab-key-42"
        assert first["type"] == ("session.update" if dialect == "ga" else "transcription_session.update")
        assert (conn.headers.get("openai-beta") == "realtime=v1") == (dialect == "beta")
        st = status(h, fd)
        assert (st["backend"], st["transport"], st["state"]) == ("lab", "websocket", "Connected")
    finally:
        h.shutdown()


def test_dialect_param_overrides_the_backend(make_server):
    srv = make_server()
    h = new_host(BackendRegistry([Backend("lab", srv.url, dialect="ga")]), stub_fallback=False)
    try:
        fd = ws_fd(h, backend="lab", dialect="beta")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        assert json.loads(srv.frames(1)[0])["type"] == "transcription_session.update"
        bad = ws_fd(h, backend="lab", dialect="v3")
        with pytest.raises(ConnectRefused):
            route(entry(h, bad), h.context, h.context.connector.embedded)
    finally:
        h.shutdown()


@pytest.mark.parametrize("url,policy,allowed", [
    ("ws://127.0.0.1:9/x", "loopback", True),
    ("ws://127.8.9.10:9/x", "loopback", True),
    ("ws://localhost:9", "loopback", True),
    ("ws://[::1]:9/v1/realtime", "loopback", True),
    ("wss://127.0.0.1:9", "loopback", True),
    ("ws://example.com/v1/realtime", "loopback", False),
    ("ws://10.0.0.1:9", "loopback", False),
    ("http://127.0.0.1:9", "loopback", False),
    ("ws://127.0.0.1:9", False, False),
    ("ws://example.com/v1/realtime", True, True),
    ("https://example.com", True, False),
    ("not a url", True, False),
])
def test_guest_url_policy(url, policy, allowed):
    assert bk.guest_url_allowed(url, policy) is allowed


def test_refused_ws_url_fails_connect_even_with_stub_fallback():
    h = new_host(stub_fallback=True)
    try:
        fd = ws_fd(h, "ws://example.com/v1/realtime?token=guest-secret")
        with pytest.raises(ConnectRefused) as info:
            route(entry(h, fd), h.context, h.context.connector.embedded)
        assert info.value.final is True
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        st = status(h, fd)
        assert st["state"] == "Error" and "allow_guest_ws_url" in st["last_error"]
        assert "guest-secret" not in st["last_error"]
    finally:
        h.shutdown()


def test_allowed_guest_url_with_policy_true_gets_no_credential(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent")
    h = new_host(allow_guest_ws_url=True)
    try:
        fd = ws_fd(h, "wss://example.com/v1/realtime", backend="openai", connect_timeout_ms=1500)
        t = route(entry(h, fd), h.context, h.context.connector.embedded)  # built, never started: no network here
        assert isinstance(t, RealtimeWsTransport)
        assert (t.backend, t.dialect, t._credential, t.connect_timeout_s) == ("ws_url", "ga", None, 1.5)
    finally:
        h.shutdown()


def test_guest_url_never_receives_the_host_credential(monkeypatch, make_server):
    monkeypatch.setenv("SPEAR_TEST_LAB_KEY", "lab-key-never-to-guest-url")
    lab = make_server()
    guest_srv = make_server()
    reg = BackendRegistry([Backend("lab", lab.url, dialect="beta", credential_env="SPEAR_TEST_LAB_KEY")])
    h = new_host(reg, stub_fallback=False)
    try:
        fd = ws_fd(h, guest_srv.url, backend="lab")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        first = json.loads(guest_srv.frames(1)[0])
        conn = guest_srv.conn()
        assert "authorization" not in conn.headers
        assert first["type"] == "transcription_session.update"  # the named backend's dialect
        assert status(h, fd)["backend"] == "ws_url"
        assert lab.conns == []
    finally:
        h.shutdown()


def test_connect_timeout_param_only_shortens():
    reg = BackendRegistry([Backend("lab", "ws://127.0.0.1:9", connect_timeout_s=5)])
    h = new_host(reg)
    try:
        assert route(entry(h, ws_fd(h, connect_timeout_ms=250)), h.context, h.context.connector.embedded).connect_timeout_s == 0.25
        assert route(entry(h, ws_fd(h, connect_timeout_ms=60000)), h.context, h.context.connector.embedded).connect_timeout_s == 5
        assert route(entry(h, ws_fd(h, connect_timeout_ms="x")), h.context, h.context.connector.embedded).connect_timeout_s == 5
    finally:
        h.shutdown()


def test_bad_param_types_are_refused():
    h = new_host()
    try:
        for key, value in (("backend", 7), ("backend", ""), ("model", 3), ("ws_url", 5)):
            fd = ws_fd(h, **{key: value})
            with pytest.raises(ConnectRefused):
                route(entry(h, fd), h.context, h.context.connector.embedded)
    finally:
        h.shutdown()


def test_stub_backend_routes_to_the_stub():
    h = new_host()
    try:
        fd = ws_fd(h, backend="stub")
        transport = route(entry(h, fd), h.context, h.context.connector.embedded)
        assert isinstance(transport, StubTransport) and transport.backend == "stub"
        assert transport.name == "stub"
    finally:
        h.shutdown()


# -- the local (embedded) backend ---------------------------------------------------------------


def test_local_backend_without_the_embedded_server_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, EMBEDDED_MODULE, None)  # makes the import fail
    h = new_host(stub_fallback=False)
    try:
        fd = ws_fd(h)  # default backend: local
        with pytest.raises(ConnectRefused) as info:
            route(entry(h, fd), h.context, h.context.connector.embedded)
        assert not getattr(info.value, "final", False)
        assert "embedded server" in str(info.value)
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        assert "embedded server" in status(h, fd)["last_error"]
    finally:
        h.shutdown()


def test_local_backend_starts_the_embedded_server_once_and_connects(monkeypatch, make_server):
    """A stand-in ``spear_lab.server.embedded`` exercises the contract: the server is made
    through the context's embedded-server slot on first connect (with the I/O loop when its constructor takes
    ``io``), started, its URL completed to the session URL, and stopped at shutdown."""
    srv = make_server()
    made = []

    class EmbeddedServer:
        def __init__(self, io=None):
            self.io = io
            self.url = None
            self.stopped = False
            made.append(self)

        def start(self):
            self.url = f"ws://127.0.0.1:{srv.port}"

        def stop(self):
            self.stopped = True

    module = types.ModuleType(EMBEDDED_MODULE)
    module.EmbeddedServer = EmbeddedServer
    monkeypatch.setitem(sys.modules, EMBEDDED_MODULE, module)
    h = new_host(stub_fallback=False)
    try:
        fd1, fd2 = ws_fd(h), ws_fd(h)
        assert h.rtasr_ctl(fd1, RtasrCtl.CONNECT) == 0
        assert h.rtasr_ctl(fd2, RtasrCtl.CONNECT) == 0
        srv.frames(1, index=0)
        srv.frames(1, index=1)
        assert [c.path for c in srv.conns] == ["/v1/realtime?intent=transcription"] * 2
        assert len(made) == 1 and made[0].io is h.io
        assert status(h, fd1)["backend"] == "local"
    finally:
        h.shutdown()
    assert made[0].stopped


def test_invalid_host_configuration_fails_connect_clearly():
    h = new_host({"backends": {"a": {"url": "ftp://x"}}}, stub_fallback=True)
    try:
        fd = ws_fd(h)
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        assert status(h, fd)["last_error"].startswith("host backend configuration is invalid")
    finally:
        h.shutdown()


def test_item39_unknown_backend_falls_back_to_the_stub_when_allowed():
    h = new_host(stub_fallback=True)
    try:
        fd = ws_fd(h, backend="no-such-backend")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        st = status(h, fd)
        assert (st["state"], st["transport"], st["last_error"]) == ("Connected", "stub", None)
    finally:
        h.shutdown()


def test_stub_backend_by_name_through_connect():
    h = new_host(stub_fallback=False)
    try:
        fd = ws_fd(h, backend="stub")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        st = status(h, fd)
        assert (st["transport"], st["backend"]) == ("stub", "stub")
    finally:
        h.shutdown()
