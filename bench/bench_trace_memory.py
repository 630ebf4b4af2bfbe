"""Memory a Trace holds with every ring full of worst-case records (default TraceCaps).

Prints the Python heap the Trace holds (tracemalloc), in MB, and how many records it
dropped.  Usage: ``python bench/bench_trace_memory.py``.
"""

from __future__ import annotations

import json
import tracemalloc

from spear_lab.trace import Trace


def fill(tr: Trace) -> None:
    for i in range(100_000):
        tr.hostcall("guest", "rtasr_write", (1000 + i % 50, 65536, 960), 960, tr.start, tr.start)
        tr.readiness("guest", 1000 + i % 50, 4, 5)
    for i in range(50_000):
        tr.note("guest", 1001, "rtasr_queues", {
            "send_queue_bytes": i, "max_send_queue_bytes": 1 << 24, "recv_queue_bytes": i,
            "max_recv_queue_bytes": 1 << 24, "dropped_events": i})
    delta = "w" * 40
    for item in range(2_000):
        for _ in range(300):
            tr.note("guest", 1001, "event", {"event": json.dumps({
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": f"item_{item:05d}", "delta": delta}).encode()})
    for _ in range(20_000):
        tr.note("guest", 1001, "event", {"event": json.dumps({"type": "x", "text": "a" * 2000}).encode()})
    for _ in range(10_000):
        tr.log("guest", 2, "l" * 2000)


def main() -> None:
    tracemalloc.start()
    tr = Trace()
    before, _ = tracemalloc.get_traced_memory()
    fill(tr)
    after, _ = tracemalloc.get_traced_memory()
    print(f"trace holds {(after - before) / 2**20:.1f} MB; "
          f"dropped {tr.summary()['dropped_records']} records")


if __name__ == "__main__":
    main()
