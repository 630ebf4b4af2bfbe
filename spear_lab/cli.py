"""The ``spear-lab`` command line.

- ``spear-lab run GUEST [--mic …] [--backend …] [--route NAME=BACKEND] [--backends FILE]
  [--segmentation JSON] [--timeout S] [-q] [-- args]`` runs a guest, streams its stdout and
  its log (``printf`` of the reference SDK; one neutralised line per message), prints a
  summary and exits with the guest's status;
- ``spear-lab demo``: the main job — ``realtime_asr`` transcribes the bundled speech
  through the embedded local server (no key, no network);
- ``spear-lab serve``: the local realtime transcription server;
- ``spear-lab guests``: the built-in guests;
- ``spear-lab sdk [--include-dir | --dir | --cflags]``: the C guest SDK installed with the
  package (``clang $(spear-lab sdk --cflags) -o my.wasm my.c``).

A failure the user can cause (missing file, no device, bad flag) is one line on stderr and
a non-zero exit (2 for usage, 1 otherwise); ``-v`` also shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

from .cliutil import ArgumentParser, UsageError, guarded, has_verbose, installed_version

DATA = Path(str(resources.files(__package__ or "spear_lab") / "data"))
DEMO_WAV = DATA / "demo_speech.wav"
DEMO_TEXT = DATA / "demo_speech.txt"


def _policy(option: str, make, *args):
    """``make(*args)`` from :mod:`spear_lab.session.policy`; its ValueError as a UsageError."""
    try:
        return make(*args)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}" if option else str(exc)) from None


def _byte_count(option: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{option}: must be a positive number of bytes, not {value}")
    return value


def host_config(args: argparse.Namespace):
    """The HostConfig of ``spear-lab run``: mic policy, backends, routes, host ceilings."""
    from .host import DEFAULT_MIC_TAIL_MS, HOST_PARAM_CEILING, HOST_QUEUE_CEILING, HostConfig
    from .session import policy

    mic = args.mic
    if not (mic in ("device", "stub", "demo") or mic.startswith(("device:", "file:"))):
        raise UsageError(f"--mic {mic!r}: expected device, device:NAME, file:PATH, demo or stub")
    if mic.startswith("file:") and not Path(mic[5:]).expanduser().is_file():
        raise UsageError(f"--mic {mic}: no such file {str(Path(mic[5:]).expanduser())!r}")
    backends = getattr(args, "backends", None)
    registry = _policy("--backends" if backends else "", policy.backend_registry, backends)
    routes = _policy("--route", policy.parse_routes, getattr(args, "route", None) or [], registry)
    backend = getattr(args, "backend", "local")
    if backend not in registry and backend not in routes:
        raise UsageError(f"--backend {backend!r}: unknown backend "
                         f"(known: {', '.join(registry.names())}; or route it with --route)")
    tail = getattr(args, "mic_tail", None)
    if tail is not None and tail < 0:
        raise UsageError(f"--mic-tail: must be 0 or more milliseconds, not {tail}")
    queue = _byte_count("--max-queue-bytes", getattr(args, "max_queue_bytes", None)) or HOST_QUEUE_CEILING
    params = _byte_count("--max-param-bytes", getattr(args, "max_param_bytes", None)) or HOST_PARAM_CEILING
    config = HostConfig(
        mic_file_realtime=not args.fast, mic_file_loop=bool(getattr(args, "loop", False)),
        mic_file_tail_ms=DEFAULT_MIC_TAIL_MS if tail is None else tail,
        backends=registry, routes=routes, stub_fallback=bool(getattr(args, "stub_fallback", False)),
        max_send_queue_bytes=queue, max_recv_queue_bytes=queue, max_mic_queue_bytes=queue,
        max_param_bytes=params)
    _policy(f"--mic {mic}", policy.mic_policy, config, mic)
    return config


class _Printer:
    """Writes guest stdout and guest log lines to one stream without tearing lines: stdout
    goes out a line at a time (a partial line after :data:`PARTIAL_S` seconds), each log
    message as one neutralised line (:func:`spear_lab.host.logtext.format_line`)."""

    PARTIAL_S = 0.5

    def __init__(self, out, name: str, show_logs: bool) -> None:
        self.out, self.name, self.show_logs = out, name, show_logs
        self.shown = 0  # characters of stdout handled
        self.partial = ""
        self.partial_since = 0.0
        self.at_line_start = True
        self.logs_seen = 0

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.at_line_start = text.endswith("\n")

    def stdout(self, text: str, final: bool = False) -> None:
        new, self.shown = text[self.shown:], len(text)
        if new and not self.partial:
            self.partial_since = time.monotonic()
        buf = self.partial + new
        cut = buf.rfind("\n") + 1
        self._write(buf[:cut])
        self.partial = buf[cut:]
        if self.partial and (final or time.monotonic() - self.partial_since >= self.PARTIAL_S):
            self._write(self.partial)
            self.partial = ""
        self.out.flush()

    def logs(self, host) -> None:
        from .host.logtext import format_line

        new, self.logs_seen = host.logs_since(self.logs_seen)
        if not self.show_logs or not new:
            return
        if not self.at_line_start:
            self._write("\n")
        self._write("".join(format_line(self.name, level, text) + "\n" for _, level, text in new))
        self.out.flush()


def run_command(args: argparse.Namespace, out=sys.stdout) -> int:
    """``spear-lab run``: returns the guest's exit status (2 for usage errors)."""
    from .runtime import load_guest
    from .session import Session, policy

    try:
        guest = load_guest(args.guest)
        config = host_config(args)
        env = _policy("--segmentation", policy.guest_env, args.backend, args.segmentation, args.model)
    except (UsageError, FileNotFoundError, ValueError) as exc:
        print(f"spear-lab run: {exc}", file=sys.stderr)
        return 2
    session = Session(config)
    session.context.warning_listeners.append(
        lambda key, message: print(f"spear-lab run: warning: {message}", file=sys.stderr, flush=True))
    status = 1
    try:
        handle = session.start(guest, args.guest_args, env)
        printer = _Printer(out, guest.name, not getattr(args, "quiet", False))
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while True:
            finished = handle.run.finished(0.05)
            printer.logs(handle.host)
            printer.stdout(handle.stdout)
            if finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                print(f"spear-lab run: timeout after {args.timeout} s, stopping the guest", file=sys.stderr)
                handle.stop()
                break
        result = handle.wait(10)
        printer.logs(handle.host)
        printer.stdout(result.stdout, final=True)
        if not printer.at_line_start:
            out.write("\n")
        if result.stderr:
            sys.stderr.write(result.stderr)
        print_summary(result, session.trace, out)
        status = result.exit_code if result.exit_code is not None else 1
        if result.stopped and args.timeout is not None and result.exit_code is None:
            status = 124
    finally:
        session.close()
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
        f"trace dropped {s.get('dropped_records', 0)}; errno {errnos}\n"
    )


def demo_speech(which: str) -> tuple[Path, str, str]:
    """The demo's WAV, its reference text and a description.

    ``real``: the five LibriVox utterances (public-domain human read speech) of Debian's
    ``pocketsphinx-testdata``, joined with 1.2 s pauses; ``bundled``: the synthetic
    recording inside the package; ``auto``: real when that package is installed."""
    if which in ("auto", "real"):
        from .explore.corpus import join_recordings
        from .explore.realspeech import real_speech
        try:
            rec = join_recordings(real_speech("librivox"), pauses_ms=1200, name="demo-librivox")
        except (FileNotFoundError, RuntimeError, OSError) as exc:
            if which == "real":
                raise UsageError(f"--speech real: {exc}") from None
            print(f"spear-lab demo: real speech unavailable ({exc}); using the bundled "
                  "synthetic recording", file=sys.stderr)
        else:
            return rec.wav(), rec.text, "5 LibriVox utterances (human read speech)"
    return DEMO_WAV, DEMO_TEXT.read_text(), f"{DEMO_WAV.name} (espeak-ng)"


def demo_command(args: argparse.Namespace) -> int:
    """The main job: realtime_asr → local server on real speech, then the WER."""
    try:
        wav, reference, what = demo_speech(args.speech)
    except UsageError as exc:
        print(f"spear-lab demo: {exc}", file=sys.stderr)
        return 2
    ns = argparse.Namespace(
        guest="realtime_asr", mic=f"file:{wav}", backend=args.backend, segmentation=None,
        model=None, timeout=args.timeout, fast=False, guest_args=[])
    print(f"spear-lab demo: realtime_asr transcribing {what}, {_wav_seconds(wav):.1f} s, "
          f"through backend {args.backend!r}", flush=True)
    capture = _Tee(sys.stdout)
    status = run_command(ns, out=capture)
    if not capture.text:  # the guest never started (run_command said why)
        return status
    hyp = [line.split(": ", 1)[1] for line in capture.text.splitlines()
           if line.startswith("completed ") and ": " in line]
    from .explore.metrics import wer_counts

    w = wer_counts(reference, " ".join(hyp))
    print(f"spear-lab demo: {len(hyp)} segments; WER {w['wer']:.2f} normalised "
          f"(raw {w['wer_raw']:.2f}) against the reference transcript")
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
    from .runtime.loading import guest_dirs

    found = builtin_guests()
    if not found:
        raise FileNotFoundError("no built-in guests in "
                                + (", ".join(map(str, guest_dirs())) or "any guest directory"))
    for name, path in found.items():
        print(f"{name:20s} {path}")
    return 0


def sdk_command(args: argparse.Namespace) -> int:
    """``spear-lab sdk``: where the installed C guest SDK is, or one of its paths/flags."""
    import shlex

    from . import guests

    if args.include_dir:
        print(guests.include_dir())
    elif args.dir:
        print(guests.sdk_dir())
    elif args.cflags:
        print(shlex.join(guests.cflags()))
    else:
        print(f"spear_lab {installed_version()} guest SDK\n"
              f"header      {guests.header()}\n"
              f"sources     {guests.sdk_dir()}  (make -C DIR BUILD=/tmp/out rebuilds them)\n"
              f"prebuilt    {guests.build_dir()}  ({len(guests.prebuilt())} guests)\n"
              f"compile     clang {shlex.join(guests.cflags())} -Wl,--strip-all "
              f"-o my.wasm my.c")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="spear-lab", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log at DEBUG level; on failure, show the traceback")
    p.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a guest (arguments after -- go to the guest)")
    r.add_argument("guest", help="a .wasm/.wat path or a built-in guest name")
    r.add_argument("--mic", default="device", help="device[:NAME] | file:PATH | stub (default device)")
    r.add_argument("--backend", default="local", help="local | stub | a configured backend name")
    r.add_argument("--segmentation", help="segmentation JSON (SET_SEGMENTATION)")
    r.add_argument("--model", help="transcription model")
    r.add_argument("--timeout", type=float, help="stop the guest after S seconds (exit 124)")
    r.add_argument("--fast", action="store_true",
                   help="file mic: as fast as the guest reads (the tail stays real time)")
    r.add_argument("--mic-tail", type=int, metavar="MS",
                   help="file mic: silence after the file before EPOLLHUP, played in real "
                        "time, so the VAD closes the last utterance and its transcript arrives "
                        "(default 2500; with --fast a long file may need more)")
    r.add_argument("--loop", action="store_true", help="file mic: repeat the file (no EPOLLHUP)")
    r.add_argument("--route", action="append", metavar="NAME=BACKEND", default=[],
                   help="serve a backend name the guest asks for with a host backend "
                        "(local, stub, or one from --backends); repeatable")
    r.add_argument("--backends", metavar="FILE",
                   help="TOML backend table (also $SPEAR_LAB_BACKENDS)")
    r.add_argument("--stub-fallback", action="store_true",
                   help="let the stub serve backend names nothing routes (one warning)")
    r.add_argument("--max-queue-bytes", type=int, metavar="N",
                   help="host ceiling on every queue limit a guest sets (default 16 MiB)")
    r.add_argument("--max-param-bytes", type=int, metavar="N",
                   help="host ceiling on the SET_PARAM values of one rtasr fd (default 1 MiB)")
    r.add_argument("-q", "--quiet", action="store_true", help="do not print the guest's log")
    r.set_defaults(func=run_command)
    d = sub.add_parser("demo", help="the main job: transcribe the bundled speech locally")
    d.add_argument("--backend", default="local")
    d.add_argument("--speech", choices=("auto", "real", "bundled"), default="auto",
                   help="real: LibriVox utterances from Debian's pocketsphinx-testdata; "
                        "bundled: the synthetic recording in the package; auto (default): "
                        "real when installed")
    d.add_argument("--timeout", type=float, default=120.0)
    d.set_defaults(func=demo_command)
    s = sub.add_parser("serve", help="the local realtime transcription server", add_help=False)
    s.set_defaults(func=None)
    g = sub.add_parser("guests", help="list the built-in guests")
    g.set_defaults(func=guests_command)
    k = sub.add_parser("sdk", help="the C guest SDK installed with the package")
    which = k.add_mutually_exclusive_group()
    which.add_argument("--include-dir", action="store_true", help="print the -I directory of spear.h")
    which.add_argument("--dir", action="store_true", help="print the SDK tree (sources, Makefile, build/)")
    which.add_argument("--cflags", action="store_true", help="print the flags to compile a C guest")
    k.set_defaults(func=sdk_command)
    for name, sp in sub.choices.items():  # -v also after the sub-command
        if name != "serve":
            sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="log at DEBUG level; on failure, show the traceback")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn any failure into one line on stderr (traceback with -v)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = 0  # -v before the sub-command
    while argv[lead:lead + 1] in (["-v"], ["--verbose"]):
        lead += 1
    if argv[lead:lead + 1] == ["serve"]:
        from .server.cli import main as serve_main

        rest = argv[lead + 1:] + ["-v"] * lead
        return guarded("serve", lambda: serve_main(rest), verbose=has_verbose(rest))
    guest_args: list[str] = []
    if "--" in argv:  # everything after -- goes to the guest untouched
        cut = argv.index("--")
        argv, guest_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.guest_args = guest_args
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return guarded(args.command, lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
