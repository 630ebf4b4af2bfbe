"""fd families: realtime ASR, microphone, segmentation (sans-I/O state machines)."""
