"""The official openai package's GA realtime client talks to the server."""

from __future__ import annotations

import asyncio
import base64

import jiwer
import openai

from srvkit import norm


def test_openai_realtime_client_transcribes(server, speech):
    base = f"127.0.0.1:{server.port}/v1"
    n = 3
    pcm = speech.pcm[:int((speech.segments[n - 1][1] + 1.0) * 24000)].tobytes()

    async def run():
        client = openai.AsyncOpenAI(api_key="x", base_url=f"http://{base}",
                                    websocket_base_url=f"ws://{base}")
        events = []
        async with client.realtime.connect(
                extra_query={"intent": "transcription"},
                websocket_connection_options={"proxy": None}) as conn:
            first = await conn.recv()
            assert first.type == "session.created"
            assert first.session.type == "transcription"
            await conn.session.update(session={
                "type": "transcription",
                "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                       "prefix_padding_ms": 300, "silence_duration_ms": 500}}}})
            updated = await conn.recv()
            assert updated.type == "session.updated"
            assert updated.session.audio.input.turn_detection.silence_duration_ms == 500
            for i in range(0, len(pcm), 4800):
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + 4800]).decode())
            done = []
            async for ev in conn:
                events.append(ev)
                if ev.type == "conversation.item.input_audio_transcription.completed":
                    done.append(ev)
                    if len(done) == n:
                        break
        await client.close()
        return events, done

    events, done = asyncio.run(asyncio.wait_for(run(), 120))
    assert [e.type for e in events if e.type == "error"] == []
    assert any(e.type == "input_audio_buffer.speech_started" for e in events)
    assert any(e.type == "conversation.item.input_audio_transcription.delta" for e in events)
    assert all(d.usage.type == "tokens" for d in done)
    wer = jiwer.wer([norm(t) for t in speech.texts[:n]], [norm(d.transcript) for d in done])
    assert wer <= 0.35
