"""A virtual microphone: a private PulseAudio daemon whose default source hears what is
played into its null sink.  For tests and headless demos; works as root without systemd.

Layout (all under one directory, default ``$SPEAR_VMIC_DIR``, else ``.pulse/`` in the
repository checkout, else ``/tmp/spear-vmic-<uid>``)::

    runtime/native   the daemon's socket (PULSE_SERVER=unix:...)
    runtime/pid      its pid file
    state/ home/     PULSE_STATE_PATH and HOME
    config/alsa/asoundrc     ALSA's default PCM -> pulse (XDG_CONFIG_HOME)
    config/pulse/daemon.conf sample spec, no idle exit
    default.pa       the modules: native protocol on the private socket, a null sink
                     ``spear_vsink`` with ``norewinds=1`` (without it captured audio is
                     scrambled), a remap source ``spear_vmic`` on its monitor, both default
    pulse.log        the daemon's log

Debian packages: ``pulseaudio pulseaudio-utils libasound2-plugins`` (and
``libportaudio2`` for sounddevice).  Clients (sounddevice through ALSA, paplay) need
``PULSE_SERVER`` and ``XDG_CONFIG_HOME`` from :meth:`VirtualMic.client_env`.

Command line::

    python -m spear_lab.audio.virtual_mic [--dir DIR] start | stop | status | env | play FILE

``env`` prints ``export`` lines for a shell: ``eval "$(... env)"``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping

log = logging.getLogger(__name__)

SINK = "spear_vsink"
SOURCE = "spear_vmic"
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins"
_SOCKET_MAX = 107  # sun_path limit on Linux, minus the NUL


class VirtualMicError(RuntimeError):
    """The virtual microphone cannot be started, used or stopped; says why."""


def default_dir() -> Path:
    """``$SPEAR_VMIC_DIR``, else ``<repo>/.pulse`` in a checkout, else a /tmp directory."""
    env = os.environ.get("SPEAR_VMIC_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / ".git").exists() and os.access(repo, os.W_OK):
        return repo / ".pulse"
    return Path("/tmp") / f"spear-vmic-{os.getuid()}"


class VirtualMic:
    """One private PulseAudio daemon (``rate`` Hz, ``channels`` ch, s16le null sink)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, rate: int = 48000,
                 channels: int = 2) -> None:
        self.dir = Path(directory) if directory is not None else default_dir()
        self.dir = self.dir.absolute()
        self.rate, self.channels = rate, channels
        self.socket = self.dir / "runtime" / "native"
        if len(str(self.socket)) > _SOCKET_MAX:
            raise VirtualMicError(f"socket path too long for a unix socket: {self.socket}")

    # -- environment ----------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The ``PULSE_SERVER`` value."""
        return f"unix:{self.socket}"

    def env(self) -> dict[str, str]:
        """Every variable the daemon runs with (private paths only)."""
        return {
            "PULSE_RUNTIME_PATH": str(self.dir / "runtime"),
            "PULSE_STATE_PATH": str(self.dir / "state"),
            "PULSE_SERVER": self.server,
            "HOME": str(self.dir / "home"),
            "XDG_CONFIG_HOME": str(self.dir / "config"),
        }

    def client_env(self) -> dict[str, str]:
        """Variables a client process needs: the server and ALSA's config (asoundrc)."""
        e = self.env()
        return {k: e[k] for k in ("PULSE_SERVER", "XDG_CONFIG_HOME")}

    def _proc_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env())
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        return env

    @contextlib.contextmanager
    def activated(self) -> Iterator["VirtualMic"]:
        """Set :meth:`client_env` in ``os.environ`` for this process; restore on exit."""
        saved = {k: os.environ.get(k) for k in self.client_env()}
        os.environ.update(self.client_env())
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # -- lifecycle ------------------------------------------------------------------------

    def _write_config(self) -> None:
        for sub in ("runtime", "state", "home", "config/alsa", "config/pulse"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "runtime", 0o700)
        (self.dir / "config" / "alsa" / "asoundrc").write_text(
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n")
        (self.dir / "config" / "pulse" / "daemon.conf").write_text(
            "exit-idle-time = -1\n"
            f"default-sample-rate = {self.rate}\n"
            "default-sample-format = s16le\n"
            f"default-sample-channels = {self.channels}\n")
        (self.dir / "config" / "pulse" / "client.conf").write_text("autospawn = no\n")
        (self.dir / "default.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate={self.rate} "
            f"channels={self.channels} format=s16le norewinds=1 "
            "sink_properties=device.description=spear-virtual-sink\n"
            f"load-module module-remap-source source_name={SOURCE} master={SINK}.monitor "
            "source_properties=device.description=spear-virtual-mic\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SOURCE}\n")

    @staticmethod
    def _require(*programs: str) -> None:
        missing = [p for p in programs if shutil.which(p) is None]
        if missing:
            raise VirtualMicError(f"{', '.join(missing)} not found: install the Debian packages "
                                  f"`apt-get install {PACKAGES}`")

    def running(self) -> bool:
        """True when the daemon answers on its socket."""
        if not self.socket.exists() or shutil.which("pactl") is None:
            return False
        r = subprocess.run(["pactl", "info"], env=self._proc_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10, check=False)
        return r.returncode == 0

    def pid(self) -> int | None:
        """The daemon's pid from its pid file, or None."""
        try:
            return int((self.dir / "runtime" / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, timeout: float = 15.0) -> "VirtualMic":
        """Start the daemon (no-op when already running) and wait until it answers."""
        self._require("pulseaudio", "pactl", "paplay")
        if self.running():
            return self
        self._write_config()
        cmd = ["pulseaudio", "--daemonize=yes", "--use-pid-file=yes", "--system=false",
               "--exit-idle-time=-1", "--disallow-exit=no", "--realtime=no",
               "--high-priority=no", "-n", "-F", str(self.dir / "default.pa"),
               f"--log-target=file:{self.dir / 'pulse.log'}"]
        r = subprocess.run(cmd, env=self._proc_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                log.info("virtual microphone running (%s)", self.server)
                return self
            time.sleep(0.05)
        tail = ""
        with contextlib.suppress(OSError):
            tail = (self.dir / "pulse.log").read_text()[-2000:]
        raise VirtualMicError(f"pulseaudio did not start (exit {r.returncode}): "
                              f"{r.stdout.decode(errors='replace')[-1000:]}{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon and wait for it to exit (SIGKILL after ``timeout``)."""
        pid = self.pid()
        if shutil.which("pulseaudio") is not None and self.socket.exists():
            subprocess.run(["pulseaudio", "--kill"], env=self._proc_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout, check=False)
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        sent_term = False
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                break
            if not sent_term and time.monotonic() > deadline - timeout / 2:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
                sent_term = True
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            (self.dir / "runtime" / "pid").unlink()

    def play(self, path: str | os.PathLike[str], wait: bool = True,
             timeout: float | None = None) -> subprocess.Popen:
        """Play a WAV into the virtual sink with ``paplay -d spear_vsink``.  With ``wait``
        returns after playback ends (VirtualMicError when paplay fails)."""
        self._require("paplay")
        proc = subprocess.Popen(["paplay", "-d", SINK, os.fspath(path)], env=self._proc_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if wait:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise VirtualMicError(f"paplay failed ({proc.returncode}): "
                                      f"{err.decode(errors='replace').strip()}")
        return proc

    def __enter__(self) -> "VirtualMic":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<VirtualMic {self.server}>"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _export_lines(env: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="virtual_mic", description=__doc__.split("\n")[0])
    p.add_argument("--dir", help="state directory (default: %(default)s)", default=None)
    p.add_argument("--rate", type=int, default=48000, help="null-sink rate, Hz")
    p.add_argument("--channels", type=int, default=2, help="null-sink channels")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start", help="start the daemon")
    sub.add_parser("stop", help="stop the daemon")
    sub.add_parser("status", help="exit 0 when running")
    sub.add_parser("env", help="print export lines for clients")
    play = sub.add_parser("play", help="play a WAV into the virtual microphone")
    play.add_argument("file")
    args = p.parse_args(argv)
    vm = VirtualMic(args.dir, args.rate, args.channels)
    try:
        if args.cmd == "start":
            vm.start()
            sys.stdout.write(_export_lines(vm.client_env()))
        elif args.cmd == "stop":
            vm.stop()
        elif args.cmd == "status":
            up = vm.running()
            sys.stdout.write(f"{'running' if up else 'stopped'} {vm.server}\n")
            return 0 if up else 1
        elif args.cmd == "env":
            sys.stdout.write(_export_lines(vm.client_env()))
        elif args.cmd == "play":
            vm.play(args.file)
    except VirtualMicError as exc:
        sys.stderr.write(f"virtual_mic: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
