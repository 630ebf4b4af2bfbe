"""The guests in guests/: they build, and their linkage matches the ABI (docs/abi.md §1.1).

- ``make -C guests BUILD=<tmp>`` produces every expected module, bit-identical to the
  committed ``guests/build`` (so a source change without a rebuild is caught);
- every committed module imports only from ``spear`` and ``wasi_snapshot_preview1``, each
  import with the exact signature of docs/abi.md §1.1 (table below, written out independently of the
  runtime's own table);
- ``mic_rtasr.wasm`` has the linkage of the reference sample (docs/abi.md §1.1, §1.1);
- the SDK header's constants and JSON helpers are checked by running ``sdk_selftest.wasm``
  under plain WASI (it imports nothing from ``spear``).

Build tests are skipped when the Debian toolchain (clang lld wasi-libc
libclang-rt-14-dev-wasm32 wabt) is missing; linkage tests read the committed modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import wasmtime

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests"
BUILD = GUESTS / "build"

C_GUESTS = ["realtime_asr", "mic_rtasr", "epoll_tour", "backpressure", "sdk_selftest"]
#: guests/compat: the reference SDK's API forms, built with -Wall -Werror in C and in C++.
COMPAT_GUESTS = ["asr_transcribe", "compat_api", "compat_api_cpp", "asr_transcribe_cxx"]
C_GUESTS += COMPAT_GUESTS
WAT_GUESTS = ["link_all", "epoll_basics", "nomem", "spin", "block"]
ALL_GUESTS = C_GUESTS + WAT_GUESTS

I32, I64 = "i32", "i64"

#: docs/abi.md §1.1: import name -> (params, results), module "spear".
SPEAR_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "spear_epoll_create": ((), (I32,)),
    "spear_epoll_ctl": ((I32, I32, I32, I32), (I32,)),
    "spear_epoll_wait": ((I32, I32, I32, I32), (I32,)),
    "spear_epoll_close": ((I32,), (I32,)),
    "spear_fd_ctl": ((I32, I32, I32, I32), (I32,)),
    "rtasr_create": ((), (I32,)),
    "rtasr_ctl": ((I32, I32, I32, I32), (I32,)),
    "rtasr_write": ((I32, I32, I32), (I32,)),
    "rtasr_read": ((I32, I32, I32), (I32,)),
    "rtasr_close": ((I32,), (I32,)),
    "mic_create": ((), (I32,)),
    "mic_ctl": ((I32, I32, I32, I32), (I32,)),
    "mic_read": ((I32, I32, I32), (I32,)),
    "mic_close": ((I32,), (I32,)),
    "log": ((I32, I32, I32), (I32,)),
    "time_now_ms": ((), (I64,)),
    "wall_time_s": ((), (I64,)),
    "random_i64": ((), (I64,)),
    "sleep_ms": ((I32,), ()),
    "cchat_create": ((), (I32,)),
    "cchat_write_msg": ((I32, I32, I32, I32, I32), (I32,)),
    "cchat_write_fn": ((I32, I32, I32, I32), (I32,)),
    "cchat_ctl": ((I32, I32, I32, I32), (I32,)),
    "cchat_send": ((I32, I32), (I32,)),
    "cchat_recv": ((I32, I32, I32), (I32,)),
    "cchat_close": ((I32,), (I32,)),
    "user_stream_open": ((I32, I32), (I32,)),
    "user_stream_read": ((I32, I32, I32), (I32,)),
    "user_stream_write": ((I32, I32, I32), (I32,)),
    "user_stream_close": ((I32,), (I32,)),
    "user_stream_ctl_open": ((), (I32,)),
    "user_stream_ctl_read": ((I32, I32, I32), (I32,)),
}

#: The WASI preview1 functions a wasi-libc guest may import, with their signatures.
WASI_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "args_get": ((I32, I32), (I32,)),
    "args_sizes_get": ((I32, I32), (I32,)),
    "environ_get": ((I32, I32), (I32,)),
    "environ_sizes_get": ((I32, I32), (I32,)),
    "clock_time_get": ((I32, I64, I32), (I32,)),
    "clock_res_get": ((I32, I32), (I32,)),
    "fd_close": ((I32,), (I32,)),
    "fd_fdstat_get": ((I32, I32), (I32,)),
    "fd_fdstat_set_flags": ((I32, I32), (I32,)),
    "fd_prestat_get": ((I32, I32), (I32,)),
    "fd_prestat_dir_name": ((I32, I32, I32), (I32,)),
    "fd_read": ((I32, I32, I32, I32), (I32,)),
    "fd_seek": ((I32, I64, I32, I32), (I32,)),
    "fd_write": ((I32, I32, I32, I32), (I32,)),
    "poll_oneoff": ((I32, I32, I32, I32), (I32,)),
    "proc_exit": ((I32,), ()),
    "random_get": ((I32, I32), (I32,)),
    "sched_yield": ((), (I32,)),
}

#: docs/abi.md §1.1: what the reference mic_rtasr.wasm imports.
MIC_RTASR_SPEAR_IMPORTS = {
    "spear_epoll_create", "spear_epoll_ctl", "spear_epoll_wait", "spear_epoll_close",
    "mic_create", "mic_ctl", "mic_read", "mic_close",
    "rtasr_create", "rtasr_ctl", "rtasr_write", "rtasr_read", "rtasr_close", "log",
}
MIC_RTASR_WASI_IMPORTS = {"fd_close", "fd_fdstat_get", "fd_seek", "fd_write", "proc_exit"}

TOOLS = ("make", "clang", "wasm-ld", "wat2wasm")
missing_tools = [t for t in TOOLS if shutil.which(t) is None]
needs_toolchain = pytest.mark.skipif(
    bool(missing_tools),
    reason=f"missing {', '.join(missing_tools)} (Debian: clang lld wasi-libc "
    "libclang-rt-14-dev-wasm32 wabt)",
)

_engine = wasmtime.Engine()


def _module(name: str) -> wasmtime.Module:
    path = BUILD / f"{name}.wasm"
    assert path.is_file(), f"{path} missing: run `make -C guests`"
    return wasmtime.Module.from_file(_engine, str(path))


def _sig(functype: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in functype.params), tuple(str(r) for r in functype.results)


def _imports(module: wasmtime.Module) -> dict[tuple[str, str], object]:
    return {(imp.module, imp.name): imp.type for imp in module.imports}


def _exports(module: wasmtime.Module) -> dict[str, object]:
    return {exp.name: exp.type for exp in module.exports}


# --------------------------------------------------------------------------------------
# building


@pytest.fixture(scope="module")
def fresh_build():
    """Build every guest into a temporary directory once for this module."""
    if missing_tools:
        pytest.skip(f"missing {', '.join(missing_tools)}")
    with tempfile.TemporaryDirectory(prefix="spear-guests-") as out:
        proc = subprocess.run(
            ["make", "-C", str(GUESTS), f"BUILD={out}"],
            capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield Path(out)


@needs_toolchain
def test_make_check_finds_the_toolchain():
    proc = subprocess.run(["make", "-s", "-C", str(GUESTS), "check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "toolchain ok" in proc.stdout


def test_make_check_names_the_packages_when_a_tool_is_missing(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make missing")
    proc = subprocess.run(["make", "-s", "-C", str(GUESTS), "check", "CC=no-such-clang-xyz"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt" in proc.stdout + proc.stderr


@needs_toolchain
def test_make_builds_every_guest(fresh_build):
    produced = sorted(p.name for p in fresh_build.glob("*.wasm"))
    assert produced == sorted(f"{n}.wasm" for n in ALL_GUESTS)
    for name in produced:
        wasmtime.Module.from_file(_engine, str(fresh_build / name))  # validates


@needs_toolchain
@pytest.mark.parametrize("name", ALL_GUESTS)
def test_committed_build_is_up_to_date(fresh_build, name):
    committed = BUILD / f"{name}.wasm"
    assert committed.is_file(), f"{committed} missing: run `make -C guests`"
    assert committed.read_bytes() == (fresh_build / f"{name}.wasm").read_bytes(), (
        f"guests/build/{name}.wasm is stale: run `make -C guests` and commit the result"
    )


@needs_toolchain
def test_make_clean_removes_the_outputs(tmp_path):
    out = tmp_path / "out"
    subprocess.run(["make", "-s", "-C", str(GUESTS), f"BUILD={out}", f"{out}/spin.wasm"],
                   check=True, capture_output=True, timeout=120)
    assert (out / "spin.wasm").is_file()
    subprocess.run(["make", "-s", "-C", str(GUESTS), f"BUILD={out}", "clean"],
                   check=True, capture_output=True, timeout=120)
    assert not out.exists()


# --------------------------------------------------------------------------------------
# linkage of the committed modules


@pytest.mark.parametrize("name", ALL_GUESTS)
def test_imports_come_from_spear_and_wasi_with_abi_signatures(name):
    module = _module(name)
    for (mod, field), ty in _imports(module).items():
        assert isinstance(ty, wasmtime.FuncType), f"{name}: non-function import {mod}.{field}"
        if mod == "spear":
            assert field in SPEAR_SIGNATURES, f"{name}: unknown hostcall {field}"
            assert _sig(ty) == SPEAR_SIGNATURES[field], f"{name}: spear.{field} has {_sig(ty)}"
        elif mod == "wasi_snapshot_preview1":
            assert field in WASI_SIGNATURES, f"{name}: unexpected WASI import {field}"
            assert _sig(ty) == WASI_SIGNATURES[field], f"{name}: WASI {field} has {_sig(ty)}"
        else:
            pytest.fail(f"{name}: import from unexpected module {mod!r}")


@pytest.mark.parametrize("name", [n for n in ALL_GUESTS if n != "nomem"])
def test_exports_memory_and_start(name):
    exports = _exports(_module(name))
    assert isinstance(exports.get("memory"), wasmtime.MemoryType), name
    assert isinstance(exports.get("_start"), wasmtime.FuncType), name
    assert _sig(exports["_start"]) == ((), ())


@pytest.mark.parametrize("name", ["sdk_selftest", "spin"])
def test_host_free_guests_import_nothing_from_spear(name):
    assert not [k for k in _imports(_module(name)) if k[0] == "spear"]


def test_mic_rtasr_linkage_matches_the_reference_sample():
    module = _module("mic_rtasr")
    imports = _imports(module)
    assert {f for m, f in imports if m == "spear"} == MIC_RTASR_SPEAR_IMPORTS
    assert len([1 for m, _ in imports if m == "spear"]) == 14
    assert {f for m, f in imports if m == "wasi_snapshot_preview1"} == MIC_RTASR_WASI_IMPORTS
    exports = _exports(module)
    assert set(exports) == {"memory", "_start", "__indirect_function_table"}
    assert isinstance(exports["memory"], wasmtime.MemoryType)
    assert isinstance(exports["__indirect_function_table"], wasmtime.TableType)
    assert _sig(exports["_start"]) == ((), ())


def test_link_all_imports_every_hostcall_and_forwards_it():
    module = _module("link_all")
    imports = _imports(module)
    assert {f for m, f in imports} == set(SPEAR_SIGNATURES)
    assert {m for m, f in imports} == {"spear"}
    exports = _exports(module)
    for name, sig in SPEAR_SIGNATURES.items():
        assert _sig(exports[f"call_{name}"]) == sig, name


def test_nomem_has_no_memory_at_all():
    module = _module("nomem")
    assert not any(isinstance(t, wasmtime.MemoryType) for t in _exports(module).values())
    assert not any(isinstance(t, wasmtime.MemoryType) for t in _imports(module).values())
    exports = _exports(module)
    assert _sig(exports["check"]) == ((), (I32,))
    assert "_start" in exports


def test_epoll_basics_exports_its_results():
    exports = _exports(_module("epoll_basics"))
    for g in ("epfd", "asrfd", "ctl_rc", "wait_rc", "wait_len", "close_rc"):
        assert isinstance(exports[g], wasmtime.GlobalType), g
    assert _sig(exports["record_fd"]) == ((I32,), (I32,))
    assert _sig(exports["record_events"]) == ((I32,), (I32,))


def test_block_and_spin_shapes():
    block = _imports(_module("block"))
    assert set(block) == {("spear", "spear_epoll_create"), ("spear", "spear_epoll_wait")}
    assert _imports(_module("spin")) == {}


# --------------------------------------------------------------------------------------
# the SDK header, run under plain WASI


def _run_wasi(name: str) -> tuple[int, str]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(BUILD / f"{name}.wasm"))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "stdout")
        cfg = wasmtime.WasiConfig()
        cfg.argv = [name]
        cfg.stdout_file = out
        store.set_wasi(cfg)
        instance = linker.instantiate(store, module)
        code = 0
        try:
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            code = exc.code
        del instance, store
        with open(out, encoding="utf-8") as fh:
            return code, fh.read()


@pytest.fixture(scope="module")
def selftest():
    code, out = _run_wasi("sdk_selftest")
    assert code == 0
    assert out.endswith("done\n"), out[-500:]
    consts: dict[str, int] = {}
    json: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("const "):
            _, name, value = line.split(" ")
            consts[name] = int(value)
        elif line.startswith("json "):
            name, rest = line[5:].split(" ", 1)
            json[name] = rest
    return consts, json


EXPECTED_CONSTANTS = {
    # errno, Linux numbering (docs/abi.md §1.2, §12.2)
    "SPEAR_CCHAT_OK": 0, "SPEAR_EPERM": 1, "SPEAR_ENOENT": 2, "SPEAR_EIO": 5, "SPEAR_EBADF": 9,
    "SPEAR_EAGAIN": 11, "SPEAR_ENOMEM": 12, "SPEAR_EACCES": 13, "SPEAR_EFAULT": 14,
    "SPEAR_EINVAL": 22, "SPEAR_ENOSPC": 28, "SPEAR_EPIPE": 32, "SPEAR_ENOSYS": 38,
    "SPEAR_ECONNRESET": 104, "SPEAR_ENOTCONN": 107, "SPEAR_ETIMEDOUT": 110,
    "SPEAR_CCHAT_ERR_INVALID_FD": -9, "SPEAR_CCHAT_ERR_INVALID_PTR": -14,
    "SPEAR_CCHAT_ERR_BUFFER_TOO_SMALL": -28, "SPEAR_CCHAT_ERR_INVALID_CMD": -22,
    "SPEAR_CCHAT_ERR_INTERNAL": -5,
    # chat
    "SPEAR_CCHAT_CTL_SET_PARAM": 1, "SPEAR_CCHAT_CTL_GET_METRICS": 2,
    "SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS": 1, "SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL": 2,
    "AUTO_TOOL_CALL": 2,
    # rtasr (docs/abi.md §5.6) with the [EXT] aliases
    "SPEAR_RTA_CTL_SET_PARAM": 1, "SPEAR_RTA_CTL_CONNECT": 2, "SPEAR_RTA_CTL_GET_STATUS": 3,
    "SPEAR_RTA_CTL_SEND_EVENT": 4, "SPEAR_RTA_CTL_FLUSH": 5, "SPEAR_RTA_CTL_CLEAR": 6,
    "SPEAR_RTA_CTL_SET_AUTOFLUSH": 7, "SPEAR_RTA_CTL_GET_AUTOFLUSH": 8,
    "SPEAR_RTA_CTL_SET_SEGMENTATION": 7, "SPEAR_RTA_CTL_GET_SEGMENTATION": 8,
    # mic (docs/abi.md §7.6) with [EXT] LIST_DEVICES
    "SPEAR_MIC_CTL_SET_PARAM": 1, "SPEAR_MIC_CTL_GET_STATUS": 2, "SPEAR_MIC_CTL_LIST_DEVICES": 3,
    # user streams
    "SPEAR_USER_STREAM_DIR_INBOUND": 1, "SPEAR_USER_STREAM_DIR_OUTBOUND": 2,
    "SPEAR_USER_STREAM_DIR_BIDIRECTIONAL": 3, "SPEAR_USER_STREAM_CTL_EVENT_STREAM_CONNECTED": 1,
    "SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED": 2, "sizeof_sp_user_stream_ctl_event_t": 8,
    # epoll (docs/abi.md §3.1)
    "SPEAR_EPOLL_CTL_ADD": 1, "SPEAR_EPOLL_CTL_MOD": 2, "SPEAR_EPOLL_CTL_DEL": 3,
    "SPEAR_EP_CTL_ADD": 1, "SPEAR_EP_CTL_MOD": 2, "SPEAR_EP_CTL_DEL": 3,
    "SPEAR_EPOLLIN": 0x001, "SPEAR_EPOLLOUT": 0x004, "SPEAR_EPOLLERR": 0x008,
    "SPEAR_EPOLLHUP": 0x010, "sizeof_sp_epoll_event_t": 8,
    # fd ctl (docs/abi.md §4.1)
    "SPEAR_FD_CTL_SET_FLAGS": 1, "SPEAR_FD_CTL_GET_FLAGS": 2, "SPEAR_FD_CTL_GET_KIND": 3,
    "SPEAR_FD_CTL_GET_STATUS": 4, "SPEAR_FD_CTL_GET_METRICS": 5,
    # log (docs/abi.md §8)
    "SP_LOG_TRACE": 0, "SP_LOG_DEBUG": 1, "SP_LOG_INFO": 2, "SP_LOG_WARN": 3, "SP_LOG_ERROR": 4,
    "SP_LOG_MAX_BYTES": 16384,
}


def test_header_constants_match_the_abi(selftest):
    consts, _ = selftest
    assert consts == EXPECTED_CONSTANTS


def test_header_constants_match_the_python_constants(selftest):
    c = pytest.importorskip("spear_lab.abi.constants")
    consts, _ = selftest
    for e in c.Errno:
        assert consts[f"SPEAR_{e.name}"] == e.value, e
    for op in c.EpollOp:
        assert consts[f"SPEAR_EPOLL_CTL_{op.name}"] == op.value
    for bit in (c.EpollEvent.IN, c.EpollEvent.OUT, c.EpollEvent.ERR, c.EpollEvent.HUP):
        assert consts[f"SPEAR_EPOLL{bit.name}"] == bit.value
    for cmd in c.FdCtl:
        assert consts[f"SPEAR_FD_CTL_{cmd.name}"] == cmd.value
    for cmd in c.RtasrCtl:
        assert consts[f"SPEAR_RTA_CTL_{cmd.name}"] == cmd.value
    for cmd in c.MicCtl:
        assert consts[f"SPEAR_MIC_CTL_{cmd.name}"] == cmd.value
    for lvl in c.LogLevel:
        assert consts[f"SP_LOG_{lvl.name}"] == lvl.value
    assert consts["SP_LOG_MAX_BYTES"] == c.LOG_MAX_BYTES


#: the value sp_json_value_len measures in the self-test
ERROR_VALUE = '{"code":"x","m":[1,{"y":"}"}]}'


def test_header_json_helpers(selftest):
    _, json = selftest
    assert json == {
        "type": "rc=53 out=conversation.item.input_audio_transcription.completed",
        "item_id": "rc=6 out=item_1",
        "escapes": 'rc=16 out=He said "hi"\\x0a\\x5cok',
        "missing": "rc=-1 out=",
        "truncated": "rc=6 out=item",
        "unicode": "rc=14 out=café € \U0001F600",
        "spaces": "rc=3 out=x.y",
        "nested": 'rc=11 out=bad "thing"',
        "key_in_value": "rc=3 out=yes",
        "top_level_wins": "rc=5 out=error",
        "not_string": "rc=-1 out=",
        "int_seq": "rc=0 out=12",
        "int_neg": "rc=0 out=-7",
        "bool": "rc=1",
        "value_len": f"rc={len(ERROR_VALUE)}",
        "type_is": "rc=1",
        "escape": 'rc=16 out=a\\"b\\\\c\\nd\\u0001',
    }


# --------------------------------------------------------------------------------------
# the header compiles cleanly in stricter modes, and the stdio redirection works


@needs_toolchain
@pytest.mark.parametrize("redirect", [True, False])
def test_header_strict_compile_and_stdio_redirect(tmp_path, redirect):
    src = tmp_path / "t.c"
    src.write_text(
        ("" if redirect else "#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG\n")
        + '#include "spear.h"\n'
        'int main(void) { printf("x %d\\n", 1); fprintf(stderr, "e\\n"); puts("p"); return 0; }\n'
    )
    out = tmp_path / "t.wasm"
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "-O2", "-std=c11", "-Wall", "-Wextra", "-pedantic",
         "-Werror", f"-I{GUESTS / 'include'}", "-o", str(out), str(src)],
        check=True, capture_output=True, timeout=120,
    )
    spear = {f for m, f in _imports(wasmtime.Module.from_file(_engine, str(out))) if m == "spear"}
    assert spear == ({"log"} if redirect else set())
