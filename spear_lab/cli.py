"""The ``spear-lab`` command line.

- ``spear-lab run GUEST [--mic …] [--backend …] [--segmentation JSON] [--timeout S] [-- args]``
  runs a guest, streams its stdout, prints a summary and exits with the guest's status;
- ``spear-lab demo``: the main job — ``realtime_asr`` transcribes the bundled speech
  through the embedded local server (no key, no network);
- ``spear-lab serve``: the local realtime transcription server;
- ``spear-lab guests``: the built-in guests.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

DATA = Path(__file__).resolve().parent / "data"
DEMO_WAV = DATA / "demo_speech.wav"
DEMO_TEXT = DATA / "demo_speech.txt"


class UsageError(Exception):
    """A bad command-line value; the message says which and why."""


def mic_policy(spec: str) -> dict:
    """HostConfig fields for ``--mic device[:NAME] | file:PATH | stub``."""
    if spec == "stub":
        return {"mic_device": "stub"}
    if spec == "device" or spec.startswith("device:"):
        return {"mic_device": spec}
    if spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        if not path.is_file():
            raise UsageError(f"--mic {spec}: no such file {str(path)!r}")
        return {"mic_device": f"file:{path}", "mic_file": str(path)}
    raise UsageError(f"--mic {spec!r}: expected device, device:NAME, file:PATH or stub")


def guest_env(backend: str, segmentation: str | None, model: str | None) -> dict[str, str]:
    """Environment that the bundled guests read for ``--backend`` and ``--segmentation``."""
    env = {"SPEAR_TRANSPORT": "stub"} if backend == "stub" else {
        "SPEAR_TRANSPORT": "websocket", "SPEAR_BACKEND": backend}
    if segmentation is not None:
        try:
            if not isinstance(json.loads(segmentation), dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise UsageError(f"--segmentation: invalid JSON object: {exc}") from None
        env["SPEAR_SEGMENTATION"] = segmentation
    if model:
        env["SPEAR_MODEL"] = model
    return env


def run_command(args: argparse.Namespace, out=sys.stdout) -> int:
    """``spear-lab run``: returns the guest's exit status (2 for usage errors)."""
    from .runtime import Host, HostConfig, load_guest, start_guest
    from .trace import Trace

    try:
        guest = load_guest(args.guest)
        config = HostConfig(**mic_policy(args.mic), mic_file_realtime=not args.fast)
        env = guest_env(args.backend, args.segmentation, args.model)
    except (UsageError, FileNotFoundError, ValueError) as exc:
        print(f"spear-lab run: {exc}", file=sys.stderr)
        return 2
    root = Host(config)
    trace = Trace()
    root.context.trace = trace
    root.context.fork_listeners.append(trace.attach)
    status = 1
    try:
        run = start_guest(root, guest, args.guest_args, env)
        shown = 0
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while True:
            finished = run.finished(0.05)
            text = run.stdout
            if len(text) > shown:
                out.write(text[shown:])
                out.flush()
                shown = len(text)
            if finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                print(f"spear-lab run: timeout after {args.timeout} s, stopping the guest", file=sys.stderr)
                run.stop()
                break
        result = run.wait(10)
        text = run.stdout
        out.write(text[shown:])
        if result.stderr:
            sys.stderr.write(result.stderr)
        run.cleanup()
        print_summary(result, trace, out)
        status = result.exit_code if result.exit_code is not None else 1
        if result.stopped and args.timeout is not None and result.exit_code is None:
            status = 124
    finally:
        root.shutdown()
    return status


def print_summary(result, trace, out) -> None:
    """One block: guest status, events, drops, errno counts, duration."""
    s = trace.summary()
    errnos = ", ".join(f"{k}={v}" for k, v in sorted(s["errno"].items())) or "none"
    drops = s["drops"]
    calls = sum(v["calls"] for v in s["hostcalls"].values())
    ended = f"exit {result.exit_code}" if result.exit_code is not None else f"trap: {result.trap}"
    out.write(
        f"--- {result.name}: {ended}; {result.duration_s:.2f} s; hostcalls {calls}; "
        f"events {s['events']}; transcripts {s['transcript']['completed']}; "
        f"dropped events {drops['dropped_events']}, frames {drops['dropped_frames']}; "
        f"errno {errnos}\n"
    )


def demo_command(args: argparse.Namespace) -> int:
    """The main job: realtime_asr → local server on the bundled speech, then the WER."""
    ns = argparse.Namespace(
        guest="realtime_asr", mic=f"file:{DEMO_WAV}", backend=args.backend, segmentation=None,
        model=None, timeout=args.timeout, fast=False, guest_args=[])
    print(f"spear-lab demo: realtime_asr transcribing {DEMO_WAV.name} "
          f"({_wav_seconds(DEMO_WAV):.1f} s) through backend {args.backend!r}", flush=True)
    capture = _Tee(sys.stdout)
    status = run_command(ns, out=capture)
    hyp = [line.split(": ", 1)[1] for line in capture.text.splitlines()
           if line.startswith("completed ") and ": " in line]
    ref = DEMO_TEXT.read_text().split("\n")
    try:
        import jiwer

        wer = jiwer.wer(" ".join(r for r in ref if r).lower(), " ".join(hyp).lower() or "-")
        print(f"spear-lab demo: {len(hyp)} segments; WER {wer:.2f} against {DEMO_TEXT.name}")
    except ImportError:  # pragma: no cover
        pass
    return status


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


class _Tee:
    """A stream that writes through and keeps a copy."""

    def __init__(self, stream) -> None:
        self.stream, self.parts = stream, []

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.parts.append(text)

    def flush(self) -> None:
        self.stream.flush()

    @property
    def text(self) -> str:
        return "".join(self.parts)


def guests_command(_: argparse.Namespace) -> int:
    from .runtime import builtin_guests

    for name, path in builtin_guests().items():
        print(f"{name:20s} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spear-lab", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a guest (arguments after -- go to the guest)")
    r.add_argument("guest", help="a .wasm/.wat path or a built-in guest name")
    r.add_argument("--mic", default="device", help="device[:NAME] | file:PATH | stub (default device)")
    r.add_argument("--backend", default="local", help="local | stub | a configured backend name")
    r.add_argument("--segmentation", help="segmentation JSON (SET_SEGMENTATION)")
    r.add_argument("--model", help="transcription model")
    r.add_argument("--timeout", type=float, help="stop the guest after S seconds (exit 124)")
    r.add_argument("--fast", action="store_true", help="file mic: as fast as the guest reads")
    r.set_defaults(func=run_command)
    d = sub.add_parser("demo", help="the main job: transcribe the bundled speech locally")
    d.add_argument("--backend", default="local")
    d.add_argument("--timeout", type=float, default=120.0)
    d.set_defaults(func=demo_command)
    s = sub.add_parser("serve", help="the local realtime transcription server", add_help=False)
    s.set_defaults(func=None)
    g = sub.add_parser("guests", help="list the built-in guests")
    g.set_defaults(func=guests_command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from .server.cli import main as serve_main

        return serve_main(argv[1:])
    guest_args: list[str] = []
    if "--" in argv:  # everything after -- goes to the guest untouched
        cut = argv.index("--")
        argv, guest_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.guest_args = guest_args
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
