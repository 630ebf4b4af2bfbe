"""Recognition worker process: runs engine streams for the server.

Started by :mod:`spear_lab.server.recognizers` as ``python -m
spear_lab.server.worker``; speaks the framing of :mod:`.wire` on stdin/stdout. A
lane is one session: its engine state (e.g. cepstral mean) passes from each
finished stream to the next one opened. Ops are handled strictly in order, so
results come back in the order their requests were sent. The real stdout is kept
for the protocol and file descriptor 1 is pointed at stderr, so stray prints from
libraries cannot corrupt it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, BinaryIO

import numpy as np

from .engines import EngineSpec, EngineStream, RecognitionError
from .wire import (ABORT, DROP_LANE, FAILED, FATAL, FEED, FINAL, FINISH, HEADER, OPEN, PARTIAL,
                   PARTIAL_TEXT, READY, SHUTDOWN, SYNC, SYNCED, encode)

log = logging.getLogger(__name__)


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


class _Worker:
    def __init__(self, spec: EngineSpec, out: BinaryIO) -> None:
        self.engine = spec.build()
        self.out = out
        self.streams: dict[int, EngineStream] = {}
        self.failed: dict[int, str] = {}
        self.lane_state: dict[int, Any] = {}

    def send(self, op: int, stream: int, payload: Any = None) -> None:
        self.out.write(encode(op, stream, payload))
        self.out.flush()

    def fail(self, sid: int, exc: BaseException) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - already failing
                log.debug("close after failure", exc_info=True)
        self.failed[sid] = f"{type(exc).__name__}: {exc}" if not isinstance(
            exc, RecognitionError) else str(exc)

    def handle(self, op: int, sid: int, payload: bytes) -> bool:
        """Process one message; returns False on shutdown."""
        if op == SHUTDOWN:
            return False
        if op == SYNC:
            self.send(SYNCED, sid)
            return True
        if op == DROP_LANE:
            self.lane_state.pop(sid >> 16, None)
            return True
        if op == OPEN:
            opts = json.loads(payload)
            self.failed.pop(sid, None)
            try:
                self.streams[sid] = self.engine.open_stream(
                    language=opts.get("language"), prompt=opts.get("prompt"),
                    state=self.lane_state.get(sid >> 16))
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                self.fail(sid, exc)
            return True
        stream = self.streams.get(sid)
        if op == ABORT:
            self.failed.pop(sid, None)
            if stream is not None:
                self.streams.pop(sid).close()
            return True
        if op == FINISH:
            if stream is None:
                msg = self.failed.pop(sid, "unknown stream")
                self.send(FAILED, sid, {"message": msg})
                return True
            try:
                r = stream.finish()
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                self.fail(sid, exc)
                self.send(FAILED, sid, {"message": self.failed.pop(sid)})
                return True
            self.streams.pop(sid, None)
            if r.state is not None:
                self.lane_state[sid >> 16] = r.state
            self.send(FINAL, sid, {"text": r.text, "state": r.state, "words": [
                [w.text, w.logprob, w.start_ms, w.end_ms] for w in r.words]})
            return True
        if stream is None:
            return True  # feed/partial for a failed or aborted stream
        try:
            if op == FEED:
                stream.accept(np.frombuffer(payload, dtype="<i2"))
            elif op == PARTIAL:
                self.send(PARTIAL_TEXT, sid, {"text": stream.partial()})
        except Exception as exc:  # noqa: BLE001 - reported on finish
            self.fail(sid, exc)
        return True


def main() -> int:
    """Entry point of the worker process; the engine spec is JSON in argv[1]."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=os.environ.get("SPEAR_LAB_WORKER_LOG", "WARNING"))
    spec_json = json.loads(sys.argv[1])
    try:
        worker = _Worker(EngineSpec(spec_json["factory"], spec_json.get("kwargs", {})), out)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.write(encode(FATAL, 0, {"message": f"{type(exc).__name__}: {exc}"}))
        return 1
    worker.send(READY, 0, {"pid": os.getpid()})
    inp = sys.stdin.buffer
    while True:
        head = _read_exact(inp, HEADER.size)
        if head is None:
            break
        op, sid, n = HEADER.unpack(head)
        payload = _read_exact(inp, n) if n else b""
        if payload is None or not worker.handle(op, sid, payload):
            break
    for stream in list(worker.streams.values()):
        stream.close()
    worker.engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
