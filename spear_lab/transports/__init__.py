"""Transports that carry an rtasr fd's audio: the stub and the realtime WebSocket client."""
