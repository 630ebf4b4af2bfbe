"""Recognition worker process: runs engine streams for the server.

Started by :mod:`spear_lab.server.process_recognizer` as ``python -m
spear_lab.server.worker``; speaks the framing of :mod:`.wire` on stdin/stdout. A
lane is one session: its engine state (e.g. cepstral mean) passes from each
finished stream to the next one opened. Ops are handled strictly in order, so
results come back in the order their requests were sent. The real stdout is kept
for the protocol and file descriptor 1 is pointed at stderr, so stray prints from
libraries cannot corrupt it.

Bounds (what one worker holds, whatever its clients do):

* A reader thread moves frames from stdin into an in-memory inbox, so a
  cancellation overtakes queued work: ``ABORT`` drops the stream's queued ops,
  ``DROP_LANE`` the lane's, ``SHUTDOWN`` everything. Queued audio is capped at
  :data:`MAX_INBOX_BYTES`; audio past the cap is dropped and its stream fails
  ("recognition overloaded").
* At most :data:`MAX_LIVE_STREAMS` engine streams are open at once (for
  pocketsphinx each holds a ~90 MB decoder); further streams keep their audio
  (at most :data:`MAX_STREAM_SECONDS`) and get an engine stream when one frees up,
  or at their finish.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
from typing import Any, BinaryIO

import numpy as np

from . import reccache
from .engines import EngineSpec, EngineStream, RecognitionError
from .wire import (ABORT, DROP_LANE, FAILED, FATAL, FEED, FINAL, FINISH, HEADER, OPEN, PARTIAL,
                   PARTIAL_TEXT, READY, SHUTDOWN, SYNC, SYNCED, encode)

log = logging.getLogger(__name__)

MAX_LIVE_STREAMS = int(os.environ.get("SPEAR_LAB_WORKER_LIVE_STREAMS", "2"))
"""Engine streams open at once per worker (``$SPEAR_LAB_WORKER_LIVE_STREAMS``)."""
MAX_STREAM_SECONDS = 120
"""Longest utterance a stream accepts (16 kHz audio); longer ones fail."""
MAX_INBOX_BYTES = 64 * 1024 * 1024
"""Queued, not yet processed audio per worker."""
_OVERLOAD = 100  # internal op: audio of this stream was dropped at the inbox cap


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


class Inbox:
    """Frames from the parent, read by a thread; cancellations purge queued work."""

    def __init__(self, source: BinaryIO, cap: int = MAX_INBOX_BYTES,
                 exit_after_shutdown_s: float | None = None) -> None:
        """``exit_after_shutdown_s``: after a ``SHUTDOWN``, end the process that long
        later if the main thread is still busy (e.g. inside one long decode)."""
        self._exit_after = exit_after_shutdown_s
        self._q: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self._cond = threading.Condition()
        self._bytes, self._cap = 0, cap
        self._source = source
        self.ended = threading.Event()  # the parent's end of input was read
        self._thread = threading.Thread(target=self._run, name="spear-worker-inbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                head = _read_exact(self._source, HEADER.size)
                if head is None:
                    break
                op, key, n = HEADER.unpack(head)
                payload = _read_exact(self._source, n) if n else b""
                if payload is None:
                    break
                self.put(op, key, payload)
        finally:  # end of input: stop after the queued work
            with self._cond:
                self._q.append((SHUTDOWN, 0, b""))
                self._cond.notify()
            self.ended.set()

    def put(self, op: int, key: int, payload: bytes) -> None:
        with self._cond:
            if op == ABORT:
                self._purge(lambda k: k == key)
            elif op == DROP_LANE:
                self._purge(lambda k: k >> 16 == key >> 16)
            elif op == SHUTDOWN:
                self._q.clear()
                self._bytes = 0
                if self._exit_after is not None:
                    timer = threading.Timer(self._exit_after, os._exit, (0,))
                    timer.daemon = True
                    timer.start()
            elif op == FEED and self._bytes + len(payload) > self._cap:
                op, payload = _OVERLOAD, b""
            self._q.append((op, key, payload))
            self._bytes += len(payload)
            self._cond.notify()

    def _purge(self, match) -> None:
        kept = collections.deque(m for m in self._q if not match(m[1]))
        self._bytes = sum(len(m[2]) for m in kept)
        self._q = kept

    def get(self, timeout: float | None = None) -> tuple[int, int, bytes]:
        """The next frame; TimeoutError after ``timeout`` seconds without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._q, timeout):
                raise TimeoutError("no frame from the parent")
            m = self._q.popleft()
            self._bytes -= len(m[2])
            return m

    def __len__(self) -> int:
        with self._cond:
            return len(self._q)


class _Utterance:
    """One stream: its options, its engine stream once it has one, audio kept until then."""

    __slots__ = ("opts", "es", "kept", "samples", "error")

    def __init__(self, opts: dict) -> None:
        self.opts = opts
        self.es: EngineStream | None = None
        self.kept: list[np.ndarray] = []
        self.samples = 0
        self.error: str | None = None


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RecognitionError) else f"{type(exc).__name__}: {exc}"


class _Worker:
    def __init__(self, spec: EngineSpec, out: BinaryIO, live: int = MAX_LIVE_STREAMS) -> None:
        self.engine = reccache.wrap(spec.build(), spec)  # recognition once per distinct audio
        self.out = out
        self.live = max(1, live)
        self.streams: dict[int, _Utterance] = {}
        self.lane_state: dict[int, Any] = {}

    def send(self, op: int, stream: int, payload: Any = None) -> None:
        self.out.write(encode(op, stream, payload))
        self.out.flush()

    # ------------------------------------------------------------------ engine streams
    def _live_count(self) -> int:
        return sum(1 for u in self.streams.values() if u.es is not None)

    def _start(self, sid: int, u: _Utterance) -> None:
        """Give ``u`` an engine stream and the audio it kept."""
        try:
            u.es = self.engine.open_stream(
                language=u.opts.get("language"), prompt=u.opts.get("prompt"),
                partials=bool(u.opts.get("partials")), state=self.lane_state.get(sid >> 16))
            kept, u.kept = u.kept, []
            for pcm in kept:
                u.es.accept(pcm)
        except Exception as exc:  # noqa: BLE001 - reported on finish
            self._fail(u, _message(exc))

    def _fail(self, u: _Utterance, message: str) -> None:
        if u.error is None:
            u.error = message
        u.kept = []
        self._close(u)

    @staticmethod
    def _close(u: _Utterance) -> None:
        es, u.es = u.es, None
        if es is not None:
            try:
                es.close()
            except Exception:  # noqa: BLE001 - freeing only
                log.debug("closing an engine stream failed", exc_info=True)

    def _promote(self) -> None:
        """Hand freed engine slots to the oldest waiting streams."""
        free = self.live - self._live_count()
        for sid, u in list(self.streams.items()):
            if free <= 0:
                break
            if u.es is None and u.error is None:
                self._start(sid, u)
                free -= 1

    # ------------------------------------------------------------------ ops
    def handle(self, op: int, sid: int, payload: bytes) -> bool:
        """Process one message; returns False on shutdown."""
        if op == SHUTDOWN:
            return False
        if op == SYNC:
            self.send(SYNCED, sid)
        elif op == DROP_LANE:
            self.lane_state.pop(sid >> 16, None)
            for key in [k for k in self.streams if k >> 16 == sid >> 16]:
                self._close(self.streams.pop(key))
            self._promote()
        elif op == OPEN:
            u = self.streams[sid] = _Utterance(json.loads(payload))
            if self._live_count() < self.live:
                self._start(sid, u)
        elif op == ABORT:
            u = self.streams.pop(sid, None)
            if u is not None:
                self._close(u)
                self._promote()
        elif op == FINISH:
            self._finish(sid)
        else:
            u = self.streams.get(sid)
            if u is None or u.error is not None:
                return True  # feed/partial for a failed or aborted stream
            if op == _OVERLOAD:
                self._fail(u, "recognition overloaded: audio was dropped")
                self._promote()
            elif op == FEED:
                self._feed(u, np.frombuffer(payload, dtype="<i2"))
            elif op == PARTIAL and u.es is not None:
                try:
                    self.send(PARTIAL_TEXT, sid, {"text": u.es.partial()})
                except Exception as exc:  # noqa: BLE001 - reported on finish
                    self._fail(u, _message(exc))
                    self._promote()
        return True

    def _feed(self, u: _Utterance, pcm: np.ndarray) -> None:
        u.samples += len(pcm)
        if u.samples > MAX_STREAM_SECONDS * 16000:
            self._fail(u, f"utterance longer than {MAX_STREAM_SECONDS} s")
            self._promote()
        elif u.es is None:
            u.kept.append(pcm)
        else:
            try:
                u.es.accept(pcm)
            except Exception as exc:  # noqa: BLE001 - reported on finish
                self._fail(u, _message(exc))
                self._promote()

    def _finish(self, sid: int) -> None:
        u = self.streams.pop(sid, None)
        if u is None:
            self.send(FAILED, sid, {"message": "unknown stream"})
            return
        if u.es is None and u.error is None:
            self._start(sid, u)  # over the live cap for the length of one finish
        if u.error is not None:
            self.send(FAILED, sid, {"message": u.error})
            self._promote()
            return
        stream = u.es
        try:
            r = stream.finish()
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            self._fail(u, _message(exc))
            self.send(FAILED, sid, {"message": u.error})
            self._promote()
            return
        u.es = None
        if r.state is not None:
            self.lane_state[sid >> 16] = r.state
        self.send(FINAL, sid, {"text": r.text, "state": r.state,
                               "cached": bool(getattr(stream, "cache_hit", False)), "words": [
            [w.text, w.logprob, w.start_ms, w.end_ms] for w in r.words]})
        self._promote()

    def close(self) -> None:
        for u in self.streams.values():
            self._close(u)
        self.streams.clear()
        self.engine.close()


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
    try:
        worker.send(READY, 0, {"pid": os.getpid(), "engine": worker.engine.describe()})
        inbox = Inbox(sys.stdin.buffer, exit_after_shutdown_s=0.3)
        while True:
            op, sid, payload = inbox.get()
            if not worker.handle(op, sid, payload):
                break
    except BrokenPipeError:  # the server went away: nobody is left to answer
        pass
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
