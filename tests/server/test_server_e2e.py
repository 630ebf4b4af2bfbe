"""End to end over real WebSockets on loopback: speech in, transcripts out."""

from __future__ import annotations

import asyncio
import subprocess

import jiwer
import pytest

from srvkit import COMPLETED, DELTA, Client, ga_update, norm, silence


def by_item(events: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        item = e.get("item_id") or (e.get("item") or {}).get("id")
        if item:
            out.setdefault(item, []).append(e["type"])
    return out


async def transcribe_vad(url: str, pcm: bytes, n: int, headers=None, update=None) -> list[dict]:
    c = await Client.open(url, headers)
    try:
        await c.recv()
        await c.send(update or ga_update({"type": "server_vad", "silence_duration_ms": 500}))
        await c.recv()
        await c.stream(pcm)
        events: list[dict] = []
        for _ in range(n):
            events += await c.until(COMPLETED, timeout=60)
        await c.no_event(0.3)
        return c.events
    finally:
        await c.close()


def test_server_vad_ga_one_completed_per_sentence(server, speech):
    events = asyncio.run(transcribe_vad(server.url, speech.pcm.tobytes(), len(speech.segments)))
    done = [e for e in events if e["type"] == COMPLETED]
    assert len(done) == len(speech.segments)
    wer = jiwer.wer([norm(t) for t in speech.texts], [norm(e["transcript"]) for e in done])
    assert wer <= 0.35, [e["transcript"] for e in done]
    commits = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert [e["item_id"] for e in done] == [e["item_id"] for e in commits]
    assert commits[0]["previous_item_id"] is None
    assert [c["previous_item_id"] for c in commits[1:]] == [c["item_id"] for c in commits[:-1]]
    order = by_item(events)
    for e in done:
        kinds = order[e["item_id"]]
        head = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
        assert kinds[:5] == head
        assert kinds[-1] == COMPLETED and set(kinds[5:-1]) == {DELTA}  # deltas before completed
        deltas = [d["delta"] for d in events if d["type"] == DELTA and d["item_id"] == e["item_id"]]
        assert "".join(deltas) == e["transcript"]
        assert e["usage"]["type"] == "tokens" and e["usage"]["input_tokens"] > 0


def test_server_vad_beta_dialect_by_header(lenient_server, speech):
    three = speech.pcm[:int(speech.segments[2][1] * 24000) + 24000].tobytes()
    update = {"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16", "input_audio_transcription": {"model": "gpt-4o-transcribe"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}
    events = asyncio.run(transcribe_vad(lenient_server.url, three, 3, {"OpenAI-Beta": "realtime=v1"},
                                        update))
    assert events[0]["type"] == "transcription_session.created"
    assert events[1]["type"] == "transcription_session.updated"
    kinds = {e["type"] for e in events}
    assert "conversation.item.created" in kinds and "conversation.item.added" not in kinds
    done = [e for e in events if e["type"] == COMPLETED]
    wer = jiwer.wer([norm(t) for t in speech.texts[:3]], [norm(e["transcript"]) for e in done])
    assert len(done) == 3 and wer <= 0.35


def test_manual_commit_with_turn_detection_null(server, speech):
    async def run():
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update(None))
        assert (await c.recv())["session"]["audio"]["input"]["turn_detection"] is None
        texts = []
        for s, e, _ in speech.segments[:3]:
            await c.stream(speech.pcm[int((s - 0.3) * 24000):int((e + 0.4) * 24000)].tobytes())
            await c.send({"type": "input_audio_buffer.commit", "event_id": "commit"})
            evs = await c.until(COMPLETED)
            kinds = [x["type"] for x in evs]
            assert "input_audio_buffer.speech_started" not in kinds
            assert kinds.index("input_audio_buffer.committed") < kinds.index(COMPLETED)
            texts.append(evs[-1]["transcript"])
        await c.close()
        return texts
    texts = asyncio.run(run())
    assert jiwer.wer([norm(t) for t in speech.texts[:3]], [norm(t) for t in texts]) <= 0.35


def test_live_deltas_arrive_before_commit_for_realtime_whisper(det_server, speech):
    async def run():
        c = await Client.open(det_server.url)
        await c.recv()
        await c.send(ga_update(None, transcription={"model": "gpt-realtime-whisper"}))
        await c.recv()
        s, e, _ = speech.segments[0]
        await c.stream(speech.pcm[int((s - 0.3) * 24000):int((e + 0.4) * 24000)].tobytes())
        await c.send({"type": "input_audio_buffer.commit"})
        evs = await c.until(COMPLETED)
        await c.close()
        return evs
    evs = asyncio.run(run())
    kinds = [e["type"] for e in evs]
    commit = kinds.index("input_audio_buffer.committed")
    assert DELTA in kinds[:commit], kinds  # live: words while audio still arrives
    assert norm(evs[-1]["transcript"])


def test_whisper1_single_delta_and_logprobs(server, one_sentence):
    async def run():
        c = await Client.open(server.url)
        await c.recv()
        upd = ga_update({"type": "server_vad", "silence_duration_ms": 500},
                        transcription={"model": "whisper-1"})
        upd["session"]["include"] = ["item.input_audio_transcription.logprobs"]
        await c.send(upd)
        await c.recv()
        await c.stream(one_sentence)
        evs = await c.until(COMPLETED)
        await c.close()
        return evs
    evs = asyncio.run(run())
    deltas = [e for e in evs if e["type"] == DELTA]
    done = evs[-1]
    assert len(deltas) == 1 and deltas[0]["delta"] == done["transcript"]
    assert done["usage"]["type"] == "duration" and 3.0 < done["usage"]["seconds"] < 4.0
    assert len(done["logprobs"]) == len(done["transcript"].split())
    assert all(lp["logprob"] <= 0 and lp["bytes"] == list(lp["token"].encode())
               for lp in done["logprobs"])


def test_deterministic_mode_repeats_exactly(det_server, speech):
    two = speech.pcm[:int(speech.segments[1][1] * 24000) + 24000].tobytes()

    async def run():
        return await transcribe_vad(det_server.url, two, 2)
    a, b = asyncio.run(run()), asyncio.run(run())
    assert a == b
    assert a[0]["session"]["id"] == "sess_000001" and a[0]["event_id"] == "event_000001"
    assert a[0]["session"]["expires_at"] == 1_700_000_000 + 3600


def test_g711_ulaw_end_to_end(server, speech, tmp_path):
    three = speech.pcm[:int((speech.segments[2][1] + 1.0) * 24000)].tobytes()
    raw = tmp_path / "s.raw"
    raw.write_bytes(three)
    ulaw = subprocess.run(["sox", "-D", "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r",
                           "24000", str(raw), "-t", "raw", "-e", "u-law", "-r", "8000", "-"],
                          check=True, capture_output=True).stdout

    async def run():
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500},
                               format={"type": "audio/pcmu"}))
        assert (await c.recv())["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        await c.stream(ulaw, 800)
        done = []
        for _ in range(3):
            done.append((await c.until(COMPLETED))[-1])
        await c.close()
        return done
    done = asyncio.run(run())
    # narrowband speech through a wideband model: worse than pcm16 (see docs/server.md)
    wer = jiwer.wer([norm(t) for t in speech.texts[:3]], [norm(e["transcript"]) for e in done])
    assert wer <= 0.5, [e["transcript"] for e in done]


def test_idle_timeout_commits_silence(server):
    async def run():
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update({"type": "server_vad", "idle_timeout_ms": 5000}))
        await c.recv()
        await c.stream(silence(5300))
        evs = await c.until(COMPLETED)
        await c.close()
        return evs
    evs = asyncio.run(run())
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["input_audio_buffer.timeout_triggered", "input_audio_buffer.committed"]
    assert evs[0]["audio_start_ms"] == 0 and evs[0]["audio_end_ms"] >= 5000
    assert evs[-1]["item_id"] == evs[0]["item_id"] and evs[-1]["transcript"] == ""


@pytest.mark.parametrize("chunk_ms", [20, 250])
def test_chunk_size_does_not_change_segmentation(det_server, speech, chunk_ms):
    pcm = speech.pcm[:int(speech.segments[1][1] * 24000) + 24000].tobytes()

    async def run(chunk):
        c = await Client.open(det_server.url)
        await c.recv()
        await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500}))
        await c.recv()
        await c.stream(pcm, chunk)
        evs = []
        for _ in range(2):
            evs += await c.until(COMPLETED, 60)
        await c.close()
        return [(e["type"], e.get("audio_start_ms"), e.get("audio_end_ms"), e.get("transcript"))
                for e in evs if "speech" in e["type"] or e["type"] == COMPLETED]
    ref = asyncio.run(run(4800))
    assert asyncio.run(run(48 * chunk_ms)) == ref
