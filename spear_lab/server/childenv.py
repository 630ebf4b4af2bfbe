"""The environment a recognition worker process gets: an allowlist, minus credentials.

Workers run third-party model code and never need a credential, so they get only
what running Python and the engines needs: the exact names in :data:`PASS_NAMES`,
the prefixes in :data:`PASS_PREFIXES`, and nothing whose name looks like a
credential (:func:`looks_secret`: a ``_``-separated part such as ``KEY``,
``TOKEN``, ``SECRET``, ``PASSWORD``, or a part ending in ``KEY``/``TOKEN``), even
under an allowed prefix. So no variable any backend names as its credential
(``OPENAI_API_KEY``, a ``credential_env`` from a backends file, the server's own
``SPEAR_LAB_SERVER_API_KEY``) reaches a worker, and the rule needs no list of
backends: the server imports nothing from the host side. ``extra_drop`` removes
more names, for a caller that knows some.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

__all__ = ["worker_environ", "looks_secret", "PASS_NAMES", "PASS_PREFIXES"]

PASS_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM",
    "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR",
    "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX",
    "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED", "PYTHONWARNINGS", "PYTHONFAULTHANDLER", "PYTHONNOUSERSITE",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
})
PASS_PREFIXES = ("LC_", "SPEAR_LAB_", "CT2_", "OMP_", "KMP_", "ORT_", "XDG_CACHE", "HF_HUB_OFFLINE")
_SECRET_PARTS = {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "PWD",
                 "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "PRIVATE", "SIGNATURE"}


def looks_secret(name: str) -> bool:
    """True when a variable name looks like it holds a credential."""
    parts = name.upper().split("_")
    return any(p in _SECRET_PARTS or p.endswith(("KEY", "TOKEN", "SECRET")) for p in parts if p)


def worker_environ(environ: Mapping[str, str] | None = None,
                   extra_drop: Iterable[str] = ()) -> dict[str, str]:
    """The scrubbed copy of ``environ`` (default ``os.environ``) for a worker."""
    env = os.environ if environ is None else environ
    drop = set(extra_drop)
    return {k: v for k, v in env.items()
            if (k in PASS_NAMES or k.startswith(PASS_PREFIXES))
            and k not in drop and not looks_secret(k)}
