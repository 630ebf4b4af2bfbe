"""Command line: ``spear-lab serve`` / ``python -m spear_lab.server``.

Runs the local realtime transcription server until interrupted (SIGINT/SIGTERM).
The API key, if any, is read from an environment variable, never from the
command line (where other users could see it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .app import RealtimeServer, ServerOptions
from .config import DEFAULT_SILENCE_MS, DOCUMENTED_SILENCE_MS
from .engines import ENGINE_NAMES, EngineUnavailable, engine_spec
from .silero import SileroUnavailable
from .vad import VAD_CHOICES

__all__ = ["main", "build_parser"]



class _Parser(argparse.ArgumentParser):
    """A bad flag is one line naming the command and where help is (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="spear-lab serve",
        description="Local OpenAI-compatible realtime transcription server "
                    "(ws://HOST:PORT/v1/realtime?intent=transcription).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default 8765)")
    p.add_argument("--api-key-env", default="SPEAR_LAB_SERVER_API_KEY", metavar="VAR",
                   help="environment variable holding the API key clients must send "
                        "(default SPEAR_LAB_SERVER_API_KEY; required off loopback)")
    p.add_argument("--require-auth", action=argparse.BooleanOptionalAction, default=None,
                   help="check the API key (default: only when not on loopback)")
    p.add_argument("--dialect", choices=("ga", "beta"), default="ga",
                   help="shape for clients without an OpenAI-Beta header (default ga)")
    p.add_argument("--strict-ga", action="store_true",
                   help="reject beta clients with beta_api_shape_disabled / close 4000 (always "
                        "so in the default profile unless --dialect beta)")
    p.add_argument("--lenient", action="store_true",
                   help="legacy-client profile: nested session objects are replaced, not merged; "
                        "transcription on from the start; any model name, URL shape, binary "
                        "frames and the beta header accepted; a bad key gets HTTP 401")
    p.add_argument("--max-sessions", type=int, default=None, metavar="N",
                   help="concurrent sessions accepted (default 32 per CPU core); past it a "
                        "client gets an error event and close 1013")
    p.add_argument("--silence-ms", type=int, default=DEFAULT_SILENCE_MS,
                   help=f"default server_vad silence_duration_ms (default {DEFAULT_SILENCE_MS}, "
                        f"as OpenAI's session objects show; OpenAI's docs say "
                        f"{DOCUMENTED_SILENCE_MS})")
    p.add_argument("--engine", choices=ENGINE_NAMES + ("faster-whisper",), default="auto",
                   help="recogniser: whisper (Whisper finals with faster-whisper, pocketsphinx "
                        "partials), pocketsphinx, or auto (default: whisper when installed)")
    p.add_argument("--whisper-model", metavar="NAME|PATH",
                   help="whisper model: a CTranslate2 model directory or a faster-whisper name "
                        "in your Hugging Face cache (e.g. base.en, small, large-v3); default: "
                        "the bundled, hash-verified tiny.en")
    p.add_argument("--fast", action="store_true",
                   help="pocketsphinx without its second (fwdflat) pass: about 120 ms less "
                        "latency and 20%% less CPU per utterance, WER about 0.03 higher")
    p.add_argument("--vad", choices=VAD_CHOICES, default="auto",
                   help="server_vad frame estimator: silero (Silero VAD v6, ONNX), statistical, "
                        "or auto (silero when onnxruntime and its model are installed; default)")
    p.add_argument("--workers", type=int, default=None,
                   help="recognition worker processes (default: CPU count)")
    p.add_argument("--deterministic", action="store_true",
                   help="counter ids, fixed clock, lock-step recognition (for tests)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


async def _serve(opts: ServerOptions) -> None:
    server = RealtimeServer(opts)
    await server.start()
    await server.wait_ready()
    rec = server.info()["recognition"]
    print(f"spear-lab realtime server: {server.url}\n"
          f"recognition: {rec.get('engine')} {rec.get('model', '')}; VAD: {server.vad}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.aclose()


def main(argv: list[str] | None = None) -> int:
    """Run ``spear-lab serve``; ``argv`` may start with ``serve``. Returns an exit code."""
    argv = list(argv or [])
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        kwargs = {"fwdflat": False} if args.fast and args.engine == "pocketsphinx" else {}
        spec = engine_spec(args.engine, whisper_model=args.whisper_model, **kwargs)
        opts = ServerOptions(
            host=args.host, port=args.port, api_key=os.environ.get(args.api_key_env) or None,
            require_auth=args.require_auth, dialect=args.dialect, strict_ga=args.strict_ga,
            default_silence_ms=args.silence_ms, deterministic=args.deterministic,
            engine=spec, workers=args.workers,
            vad=args.vad, lenient=args.lenient, max_sessions=args.max_sessions)
        asyncio.run(_serve(opts))
    except (ValueError, EngineUnavailable, SileroUnavailable, OSError) as exc:
        print(f"spear-lab serve: error: {exc}", file=sys.stderr)
        return 2
    return 0
