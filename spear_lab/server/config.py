"""Transcription session configuration: defaults, validation, both wire shapes.

:class:`SessionConfig` is the effective configuration of one session in one
canonical form. :func:`apply_ga` / :func:`apply_beta` validate an update's
``session`` object and return a new config (the old one is untouched if anything
is invalid); :meth:`SessionConfig.render_ga` / :meth:`SessionConfig.render_beta`
produce the ``session`` object of ``session.created``/``session.updated`` and
``transcription_session.created``/``.updated``.

Only fields present in an update change, at every level (the OpenAI profile): a
``transcription`` object changes only the members it names; a ``turn_detection``
object of the current ``type`` (or without ``type``) changes only its members, one
of another type starts from that type's defaults; ``null`` turns it off. With
``lenient=True`` (legacy clients) an object replaces the previous one (missing
members take their defaults) and model names are not checked. Invalid updates
raise :class:`ConfigError`, which carries OpenAI's error ``code`` and ``param``
(``close``: OpenAI also closes the connection, code 4000).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from .audio import FORMAT_TO_GA, FORMATS, GA_TO_FORMAT

__all__ = ["ConfigError", "SessionConfig", "apply_ga", "apply_beta", "SEMANTIC_WAITS_MS",
           "LOGPROBS_INCLUDE", "VAD_PROBABILITIES", "DEFAULT_SILENCE_MS", "DOCUMENTED_SILENCE_MS",
           "TRANSCRIPTION_MODELS", "MANUAL_COMMIT_MODELS"]

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
VAD_PROBABILITIES = "spear.vad.probabilities"
"""spear_lab's wire extension: this ``include`` value asks for events of this type
(per-frame speech probability, outside OpenAI's namespace; see docs/server.md)."""
DEFAULT_SILENCE_MS = 200
"""Default server_vad silence: the value OpenAI's session objects show (observed)."""
DOCUMENTED_SILENCE_MS = 500
"""The default the OpenAI reference text states; selectable per server."""
SEMANTIC_WAITS_MS = {"low": (1500, 8000), "medium": (800, 4000), "high": (400, 2000),
                     "auto": (800, 4000)}
"""semantic_vad approximation: eagerness -> (wait after a complete-sounding phrase,
maximum wait) in ms. The maxima are OpenAI's documented 8/4/2 s (auto = medium)."""

_VAD_FIELDS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms",
               "idle_timeout_ms", "create_response", "interrupt_response", "eagerness"}
_TRANSCRIPTION_FIELDS = {"model", "language", "prompt", "languages", "keywords", "delay"}
_DELAYS = ("minimal", "low", "medium", "high", "xhigh")
_BETA_IGNORED = {"modalities", "instructions", "voice", "output_audio_format", "tools",
                 "tool_choice", "temperature", "max_response_output_tokens", "model", "speed",
                 "tracing", "client_secret", "object", "id", "expires_at"}


TRANSCRIPTION_MODELS = ("whisper-1", "gpt-transcribe", "gpt-live-transcribe",
                        "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15",
                        "gpt-4o-transcribe", "gpt-4o-transcribe-diarize", "gpt-realtime-whisper")
"""The transcription models of the OpenAI spec (openapi.yaml ``AudioTranscription.model``)."""
MANUAL_COMMIT_MODELS = frozenset({"gpt-realtime-whisper"})
"""Models that need ``turn_detection: null`` (openapi.yaml ``RealtimeTurnDetection``)."""
DEFAULT_MODEL = "gpt-4o-transcribe"


class ConfigError(ValueError):
    """An invalid session update: ``code`` and ``param`` as OpenAI reports them;
    ``close``: OpenAI ends the session after this error (close code 4000)."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None,
                 close: bool = False):
        super().__init__(message)
        self.code, self.param, self.close = code, param, close


@dataclass(frozen=True)
class SessionConfig:
    """Effective session configuration (canonical form)."""

    format: str = "pcm16"
    transcription: dict | None = field(default_factory=lambda: {
        "model": DEFAULT_MODEL, "language": None, "prompt": ""})
    turn_detection: dict | None = None
    noise_reduction: dict | None = None
    include: tuple[str, ...] = ()

    @classmethod
    def default(cls, silence_ms: int = DEFAULT_SILENCE_MS, model: str | None = None,
                transcription: bool = True) -> SessionConfig:
        """Server VAD on; transcription with ``model`` (default gpt-4o-transcribe),
        or off (``null``, as OpenAI's GA sessions start) when ``transcription`` is
        false and no ``model`` is given."""
        cfg = cls(turn_detection=_vad({"type": "server_vad"}, "", silence_ms))
        if model:
            cfg = replace(cfg, transcription={**cfg.transcription, "model": model})
        elif not transcription:
            cfg = replace(cfg, transcription=None)
        return cfg

    @property
    def logprobs(self) -> bool:
        return LOGPROBS_INCLUDE in self.include

    @property
    def vad_probabilities(self) -> bool:
        return VAD_PROBABILITIES in self.include

    def echoed_include(self) -> list[str]:
        """``include`` as the session object shows it: OpenAI's values only (the
        extension is acknowledged by its events, so SDK clients can parse the echo)."""
        return [v for v in self.include if v != VAD_PROBABILITIES]

    def render_ga(self, session_id: str, expires_at: int) -> dict:
        fmt = {"type": FORMAT_TO_GA[self.format]}
        if self.format == "pcm16":
            fmt["rate"] = 24000
        return {"type": "transcription", "object": "realtime.transcription_session",
                "id": session_id, "expires_at": expires_at,
                "audio": {"input": {"format": fmt,
                                    "transcription": copy.deepcopy(self.transcription),
                                    "noise_reduction": copy.deepcopy(self.noise_reduction),
                                    "turn_detection": copy.deepcopy(self.turn_detection)}},
                "include": self.echoed_include()}

    def render_beta(self, session_id: str, expires_at: int, obj: str) -> dict:
        tr = None if self.transcription is None else {
            k: v for k, v in self.transcription.items() if k in ("model", "language", "prompt")}
        return {"id": session_id, "object": obj, "expires_at": expires_at,
                "input_audio_format": self.format, "input_audio_transcription": tr,
                "turn_detection": copy.deepcopy(self.turn_detection),
                "input_audio_noise_reduction": copy.deepcopy(self.noise_reduction),
                "include": self.echoed_include(), "client_secret": None}


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def _expect(v: Any, types: tuple, what: str, param: str) -> None:
    ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"Invalid type for '{param}': expected {what}, but got "
                          f"{_type_name(v)} instead.", "invalid_type", param)


def _no_unknown(obj: dict, allowed: set, param: str) -> None:
    for k in obj:
        if k not in allowed:
            raise ConfigError(f"Unknown parameter: '{param}.{k}'.", "unknown_parameter", f"{param}.{k}")


def _vad(td: Any, param: str, default_silence: int, base: dict | None = None) -> dict | None:
    """Validate a turn_detection object; merged over ``base`` when it is of the same type."""
    if td is None:
        return None
    _expect(td, (dict,), "an object", param)
    _no_unknown(td, _VAD_FIELDS, param)
    if base is not None and td.get("type", base["type"]) == base["type"]:
        td = {**{k: v for k, v in base.items() if v is not None}, **td}
    kind = td.get("type")
    if kind not in ("server_vad", "semantic_vad"):
        raise ConfigError(f"Invalid value: '{kind}'. Supported values are: 'server_vad' and "
                          "'semantic_vad'.", "invalid_value", f"{param}.type")
    out: dict[str, Any] = {"type": kind}
    if kind == "server_vad":
        thr = td.get("threshold", 0.5)
        _expect(thr, (int, float), "a number", f"{param}.threshold")
        if not 0.0 <= thr <= 1.0:
            raise ConfigError("threshold must be between 0.0 and 1.0.", "invalid_value",
                              f"{param}.threshold")
        out["threshold"] = float(thr)
        for name, dflt in (("prefix_padding_ms", 300), ("silence_duration_ms", default_silence)):
            v = td.get(name, dflt)
            _expect(v, (int,), "an integer", f"{param}.{name}")
            if not 0 <= v <= 60000:
                raise ConfigError(f"{name} must be between 0 and 60000.", "invalid_value",
                                  f"{param}.{name}")
            out[name] = v
        idle = td.get("idle_timeout_ms")
        if idle is not None:
            _expect(idle, (int,), "an integer", f"{param}.idle_timeout_ms")
            if not 5000 <= idle <= 30000:
                raise ConfigError("idle_timeout_ms must be between 5000 and 30000.",
                                  "invalid_value", f"{param}.idle_timeout_ms")
        out["idle_timeout_ms"] = idle
    else:
        eager = td.get("eagerness", "auto")
        if not isinstance(eager, str) or eager not in SEMANTIC_WAITS_MS:
            raise ConfigError(f"Invalid value: '{eager}'. Supported values are: 'low', 'medium', "
                              "'high' and 'auto'.", "invalid_value", f"{param}.eagerness")
        out["eagerness"] = eager
    for flag in ("create_response", "interrupt_response"):
        if flag in td:
            _expect(td[flag], (bool,), "a boolean", f"{param}.{flag}")
            out[flag] = td[flag]
    return out


def _transcription(tr: Any, param: str, base: dict | None = None,
                   check_model: bool = False) -> dict | None:
    """Validate a transcription object; merged over ``base`` when given."""
    if tr is None:
        return None
    _expect(tr, (dict,), "an object", param)
    _no_unknown(tr, _TRANSCRIPTION_FIELDS, param)
    if base is not None:
        tr = {**base, **tr}
    out: dict[str, Any] = {"model": tr.get("model", DEFAULT_MODEL),
                           "language": tr.get("language"), "prompt": tr.get("prompt", "")}
    _expect(out["model"], (str,), "a string", f"{param}.model")
    if check_model and out["model"] not in TRANSCRIPTION_MODELS:
        # observed: livekit/agents-js#1756 (error, then close 4000)
        raise ConfigError(f'Model "{out["model"]}" is not supported in transcription mode.',
                          "invalid_model", f"{param}.model", close=True)
    for name in ("language", "prompt"):
        if out[name] is not None:
            _expect(out[name], (str,), "a string", f"{param}.{name}")
    for name in ("languages", "keywords"):
        if name in tr:
            v = tr[name]
            _expect(v, (list,), "an array", f"{param}.{name}")
            for i, s in enumerate(v):
                _expect(s, (str,), "a string", f"{param}.{name}[{i}]")
            out[name] = list(v)
    if "delay" in tr:
        if tr["delay"] not in _DELAYS:
            raise ConfigError(f"Invalid value: '{tr['delay']}'. Supported values are: "
                              + ", ".join(f"'{d}'" for d in _DELAYS) + ".",
                              "invalid_value", f"{param}.delay")
        out["delay"] = tr["delay"]
    return out


def _noise(nr: Any, param: str) -> dict | None:
    if nr is None:
        return None
    _expect(nr, (dict,), "an object", param)
    _no_unknown(nr, {"type", "strength"}, param)
    if nr.get("type") not in ("near_field", "far_field"):
        raise ConfigError(f"Invalid value: '{nr.get('type')}'. Supported values are: "
                          "'near_field' and 'far_field'.", "invalid_value", f"{param}.type")
    return dict(nr)


def _include(inc: Any, param: str) -> tuple[str, ...]:
    if inc is None:
        return ()
    _expect(inc, (list,), "an array", param)
    for i, v in enumerate(inc):
        if v != LOGPROBS_INCLUDE and v != VAD_PROBABILITIES:  # the extension is not advertised
            raise ConfigError(f"Invalid value: '{v}'. Supported values are: "
                              f"'{LOGPROBS_INCLUDE}'.", "invalid_value", f"{param}[{i}]")
    return tuple(inc)


def _rate_error(rate: Any, param: str, lenient: bool) -> ConfigError:
    if lenient or not isinstance(rate, int) or isinstance(rate, bool):
        return ConfigError("Only a 24kHz sample rate is supported for 'audio/pcm'.",
                           "invalid_value", param)
    # observed code (issue 13); the message follows OpenAI's integer-range wording
    below = rate < 24000
    return ConfigError(f"Invalid '{param}': integer {'below minimum' if below else 'above maximum'} "
                       f"value. Expected a value {'>=' if below else '<='} 24000, but got {rate} "
                       "instead.", "integer_below_min_value" if below else "integer_above_max_value",
                       param)


def _merge_rules(cfg: SessionConfig, changes: dict, tr_param: str, td_param: str,
                 lenient: bool) -> SessionConfig:
    """The updated config; OpenAI profile: a manual-commit model (gpt-realtime-whisper)
    has no turn detection (omitted in the update means off; given means an error)."""
    new = replace(cfg, **changes)
    if lenient or new.transcription is None or new.turn_detection is None \
            or new.transcription["model"] not in MANUAL_COMMIT_MODELS:
        return new
    if "turn_detection" in changes:
        # observed message: livekit/agents#5779
        raise ConfigError("Turn detection is not supported for this transcription model.",
                          "invalid_value", td_param)
    return replace(new, turn_detection=None)


def apply_ga(cfg: SessionConfig, session: Any, default_silence: int,
             lenient: bool = False) -> SessionConfig:
    """Apply a GA ``session.update``'s ``session`` object; raises :class:`ConfigError`.
    Nested objects merge unless ``lenient`` (see the module docstring)."""
    _expect(session, (dict,), "an object", "session")
    if "type" not in session:
        raise ConfigError("Missing required parameter: 'session.type'.",
                          "missing_required_parameter", "session.type")
    if session["type"] != "transcription":
        raise ConfigError(f"Invalid value: '{session['type']}'. This server only supports "
                          "'transcription' sessions.", "invalid_value", "session.type")
    _no_unknown(session, {"type", "audio", "include", "id", "object", "expires_at"}, "session")
    changes: dict[str, Any] = {}
    if "include" in session:
        changes["include"] = _include(session["include"], "session.include")
    audio = session.get("audio")
    if audio is not None:
        _expect(audio, (dict,), "an object", "session.audio")
        _no_unknown(audio, {"input"}, "session.audio")
        inp = audio.get("input")
        if inp is not None:
            p = "session.audio.input"
            _expect(inp, (dict,), "an object", p)
            _no_unknown(inp, {"format", "transcription", "noise_reduction", "turn_detection"}, p)
            if "format" in inp:
                fmt = inp["format"]
                _expect(fmt, (dict,), "an object", f"{p}.format")
                _no_unknown(fmt, {"type", "rate"}, f"{p}.format")
                if not isinstance(fmt.get("type"), str) or fmt["type"] not in GA_TO_FORMAT:
                    raise ConfigError(f"Invalid value: '{fmt.get('type')}'. Supported values are: "
                                      "'audio/pcm', 'audio/pcmu' and 'audio/pcma'.",
                                      "invalid_value", f"{p}.format.type")
                if fmt["type"] == "audio/pcm" and fmt.get("rate", 24000) != 24000:
                    raise _rate_error(fmt["rate"], f"{p}.format.rate", lenient)
                changes["format"] = GA_TO_FORMAT[fmt["type"]]
            if "transcription" in inp:
                changes["transcription"] = _transcription(
                    inp["transcription"], f"{p}.transcription",
                    None if lenient else cfg.transcription, not lenient)
            if "noise_reduction" in inp:
                changes["noise_reduction"] = _noise(inp["noise_reduction"], f"{p}.noise_reduction")
            if "turn_detection" in inp:
                changes["turn_detection"] = _vad(inp["turn_detection"], f"{p}.turn_detection",
                                                 default_silence,
                                                 None if lenient else cfg.turn_detection)
    return _merge_rules(cfg, changes, "session.audio.input.transcription",
                        "session.audio.input.turn_detection", lenient)


def apply_beta(cfg: SessionConfig, session: Any, default_silence: int,
               lenient: bool = False) -> SessionConfig:
    """Apply a beta ``transcription_session.update`` (or beta ``session.update``)
    ``session`` object; conversation-only fields are accepted and ignored."""
    _expect(session, (dict,), "an object", "session")
    _no_unknown(session, {"input_audio_format", "input_audio_transcription", "turn_detection",
                          "input_audio_noise_reduction", "include"} | _BETA_IGNORED, "session")
    changes: dict[str, Any] = {}
    if "input_audio_format" in session:
        fmt = session["input_audio_format"]
        if not isinstance(fmt, str) or fmt not in FORMATS:
            raise ConfigError(f"Invalid value: '{fmt}'. Supported values are: 'pcm16', "
                              "'g711_ulaw' and 'g711_alaw'.", "invalid_value",
                              "session.input_audio_format")
        changes["format"] = fmt
    if "input_audio_transcription" in session:
        changes["transcription"] = _transcription(
            session["input_audio_transcription"], "session.input_audio_transcription",
            None if lenient else cfg.transcription, not lenient)
    if "turn_detection" in session:
        changes["turn_detection"] = _vad(session["turn_detection"], "session.turn_detection",
                                         default_silence, None if lenient else cfg.turn_detection)
    if "input_audio_noise_reduction" in session:
        changes["noise_reduction"] = _noise(session["input_audio_noise_reduction"],
                                            "session.input_audio_noise_reduction")
    if "include" in session:
        changes["include"] = _include(session["include"], "session.include")
    return _merge_rules(cfg, changes, "session.input_audio_transcription",
                        "session.turn_detection", lenient)
