"""The teaching guests run on the spear_lab host and print what the ABI prescribes.

Offline: every rtasr fd here uses the stub transport.  Line formats are documented at the
top of each guest's source (guests/c/*.c).
"""

from __future__ import annotations

import re
from pathlib import Path


from spear_lab.runtime import run_guest

BUILD = Path(__file__).resolve().parents[2] / "guests" / "build"


STEP = re.compile(r"^step (?P<name>\w+): rc=(?P<rc>-?\d+)(?: (?P<detail>.*))?$")


def _kv(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def _run(host, name: str, args=(), env=None, timeout=60.0):
    result = run_guest(host, str(BUILD / f"{name}.wasm"), args=list(args), env=env or {},
                       timeout=timeout)
    assert result.trap is None, result.trap
    return result


def test_epoll_tour_steps(host):
    result = _run(host, "epoll_tour")
    lines = result.stdout.splitlines()
    steps: dict[str, tuple[int, str]] = {}
    for line in lines:
        m = STEP.match(line)
        if m:
            steps[m["name"]] = (int(m["rc"]), m["detail"] or "")
    mismatches = [ln for ln in lines if ln.startswith("mismatch ")]
    assert mismatches == [], result.stdout

    ep = steps["epoll_create"][0]
    assert ep >= 1000
    expected = {
        "rtasr_create": ep + 1,
        "ctl_self": -22, "ctl_bad_op": -22, "ctl_unknown_fd": -9, "ctl_add": 0,
        "wait0_out": 1, "set_max_send_queue_bytes": 0, "write16": 16, "wait0_full": 0,
        "write1": -11, "read_empty": -11, "fd_ctl_get_kind": 16,
        "set_transport_stub": 0, "set_stub_event_interval_ms": 0, "connect": 0,
        "ctl_mod_in": 0, "wait_in": 1, "level_wait1": 1, "level_wait2": 1,
        "read_small": -28, "drain": -11,
        "wait_small_cap": -28, "wait_small_cap_bad_epfd": -28, "wait_not_epoll": -9,
        "ctl_mod_hup": 0, "wait0_open": 0, "rtasr_close": 0, "wait_hup": 1,
        "rtasr_close_again": 0, "read_closed": -9, "write_closed": -9, "ctl_del_closed": 0,
        "close_unknown": -9, "epoll_close": 0, "ctl_closed_epfd": -9, "wait_closed_epfd": -9,
    }
    expected.update({"mic_create": ep + 2, "ctl_add_mic_in": 0, "mic_close": 0,
                     "wait_hup_not_in_mask": 0, "ctl_mod_mic_hup": 0, "wait_mic_hup": 1})
    got = {name: steps[name][0] for name in expected}
    assert got == expected

    assert "events=0x4" in steps["wait0_out"][1]
    assert "events=0x10" in steps["wait_hup"][1]
    # -ENOSPC wrote the needed length back; the retry got exactly that event (seq 1)
    need = _kv(steps["read_small"][1])["need"]
    assert steps["read_retry"][0] == need
    assert _kv(steps["read_retry"][1])["seq"] == 1
    assert "type=transcription.delta" in steps["read_retry"][1]
    assert _kv(steps["wait_small_cap"][1])["cell"] == 8

    summary = [ln for ln in lines if ln.startswith("summary: ")]
    assert len(summary) == 1 and _kv(summary[0])["steps"] == len(steps)
    assert result.exit_code == 0


def test_backpressure_paces_writes_at_the_stub_drain_rate(host):
    result = _run(host, "backpressure", ["--frames", "60", "--report-every", "20"])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "config frames=60 frame_bytes=960 queue_bytes=3840 transport=stub"
    progress = [_kv(ln) for ln in lines if ln.startswith("progress: ")]
    assert [p["written"] for p in progress] == [20, 40, 60]
    assert all(p["send_queue_bytes"] <= 3840 for p in progress)
    summary = _kv(lines[-1])
    assert lines[-1].startswith("summary: ")
    assert summary["written"] == 60 and summary["bytes"] == 60 * 960
    # 4 frames fit; every later frame waited for EPOLLOUT once (queue = 4 whole frames)
    assert summary["eagain"] == summary["outwaits"] >= 50
    # the stub takes one item per 10 ms: 56 waited-for frames need about 0.56 s
    assert summary["elapsed_ms"] >= 400


def test_realtime_asr_streams_a_stub_mic_into_a_stub_transport(host):
    mic = '{"sample_rate_hz":24000,"channels":1,"format":"pcm16","frame_ms":20,"source":"stub"}'
    result = _run(host, "realtime_asr",
                  ["--transport", "stub", "--mic", mic, "--max-frames", "25", "--drain-ms", "3000"])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("config backend=local model=- transport=stub ")
    assert "started" in lines
    assert "mic_end reason=max_frames frames=25" in lines
    summary = _kv(lines[-1])
    assert lines[-1].startswith("summary: ")
    assert summary["frames"] == 25 and summary["bytes"] == 25 * 960
    assert summary["exit"] == 0 and summary["drain_timeout"] == 0
