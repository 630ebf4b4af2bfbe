#!/usr/bin/env bash
# Virtual microphone for tests and headless demos: a private PulseAudio daemon whose
# default source hears what is played into its null sink (spear_vsink).
#
#   scripts/virtual_mic.sh start        # start it; prints export lines for clients
#   eval "$(scripts/virtual_mic.sh env)"  # PULSE_SERVER + XDG_CONFIG_HOME (ALSA -> pulse)
#   scripts/virtual_mic.sh play FILE.wav  # play a WAV into the virtual microphone
#   scripts/virtual_mic.sh status | stop
#
# Options before the command: --dir DIR (default $SPEAR_VMIC_DIR, else .pulse/ in the
# checkout), --rate HZ, --channels N.  Needs the Debian packages
# pulseaudio pulseaudio-utils libasound2-plugins; works as root without systemd.
# The logic lives in spear_lab/audio/virtual_mic.py (standard library only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py=python3; fi
fi
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m spear_lab.audio.virtual_mic "$@"
