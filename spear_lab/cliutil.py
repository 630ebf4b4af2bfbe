"""Plumbing of the ``spear-lab`` command line: one-line errors, the installed version.

- :class:`ArgumentParser`: a bad flag is ``spear-lab run: error: … (see spear-lab run
  --help)`` and exit status 2, not a usage block;
- :func:`guarded`: runs a sub-command; any exception becomes one line on stderr and exit
  status 1 (2 for :class:`UsageError`, 130 for Ctrl-C); with ``verbose`` the traceback
  comes first;
- :func:`installed_version`: the version in the installed distribution's metadata.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

__all__ = ["ArgumentParser", "UsageError", "guarded", "has_verbose", "installed_version"]


class UsageError(Exception):
    """A bad command-line value; the message says which and why."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line that names the command and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def installed_version() -> str:
    """``spear_lab``'s version from the installed metadata (``__version__ (not installed)``
    when the package is imported from a bare source tree)."""
    try:
        return metadata.version("spear_lab")
    except metadata.PackageNotFoundError:
        from . import __version__

        return f"{__version__} (not installed)"


def has_verbose(argv: Sequence[str]) -> bool:
    """Whether ``-v``/``--verbose`` (or ``-vv``…) is among ``argv``."""
    return any(a == "--verbose" or (len(a) > 1 and a[0] == "-" and set(a[1:]) == {"v"})
               for a in argv)


def _plain(exc: BaseException) -> bool:
    """Errors whose message is enough: the OS's, bad values, spear_lab's own."""
    return (isinstance(exc, (OSError, ValueError, RuntimeError))
            or type(exc).__module__.startswith("spear_lab"))


def guarded(command: str, call: Callable[[], int], verbose: bool, err=None) -> int:
    """``call()``'s exit status; an exception is reported as
    ``spear-lab COMMAND: error: MESSAGE`` on ``err`` (stderr) instead of a traceback."""
    err = sys.stderr if err is None else err
    try:
        return call()
    except KeyboardInterrupt:
        print(f"spear-lab {command}: interrupted", file=err)
        return 130
    except Exception as exc:  # noqa: BLE001 — every failure ends as one clear line
        if verbose:
            traceback.print_exc(file=err)
        text = " ".join(str(exc).split()) or "(no message)"
        what = text if _plain(exc) else f"{type(exc).__name__}: {text}"
        hint = "" if verbose else " (-v shows the traceback)"
        print(f"spear-lab {command}: error: {what}{hint}", file=err)
        return 2 if isinstance(exc, UsageError) else 1
