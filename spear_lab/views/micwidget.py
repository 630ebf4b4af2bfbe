"""The browser's microphone as a widget (anywidget): :class:`BrowserMic`.

Show it in a notebook and the page asks for the microphone, shows the permission state
and a level meter, and streams pcm16 chunks at ``rate`` Hz to the kernel (resampled in an
AudioWorklet; ``browser_mic.js``).  ``Session(mic="browser")`` (or ``mic=widget``) then
gives a guest's ``source:"device"`` this audio; see :mod:`spear_lab.audio.browser` for
framing, drops, errors and the jitter figure.

Works in JupyterLab 4 and Notebook 7 (the same widget manager).  The output also carries
a text/html copy of the state, updated when the state changes, so a notebook reopened
without its kernel still shows what the microphone did.
"""

from __future__ import annotations

import html
import logging
import uuid
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..audio.browser import BrowserFeed, set_current

log = logging.getLogger(__name__)

__all__ = ["BrowserMic", "browser_mic_html"]

_CSS = """
.spear-mic { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; }
.spear-mic-row { display: flex; align-items: center; gap: 8px; }
.spear-mic-meter { display: inline-block; width: 160px; height: 10px; background: #ddd;
  border-radius: 3px; overflow: hidden; }
.spear-mic-bar { display: block; height: 100%; width: 0; background: #2a9d4b;
  transition: width 60ms linear; }
.spear-mic-error { color: #b00020; margin-top: 4px; }
.spear-mic-info { color: #555; }
"""


def browser_mic_html(stats: dict[str, Any], closed: bool = False) -> str:
    """The static HTML of a microphone's state (``BrowserFeed.stats()``)."""
    state = stats.get("state", "idle")
    parts = [f"<b>browser microphone</b>: {html.escape(str(state))}{' (closed)' if closed else ''}"]
    if stats.get("device"):
        parts.append(f"device {html.escape(str(stats['device']))}")
    parts.append(f"{stats.get('rate')} Hz, {stats.get('seconds', 0):.1f} s received")
    if stats.get("gap_seconds"):
        parts.append(f"{stats['gap_seconds']:.2f} s missing in gaps")
    text = " · ".join(parts)
    if stats.get("error"):
        text += f'<div style="color:#b00020">{html.escape(str(stats["error"]))}</div>'
    return f'<div class="spear-mic-static" data-state="{html.escape(str(state))}">{text}</div>'


class BrowserMic(anywidget.AnyWidget):
    """The browser's microphone, streaming to the kernel.

    ``rate``: Hz the page resamples to (8000–96000; default 24000, the mic fd default);
    ``chunk_ms``: ms of audio per message (5–200); ``autostart``: ask for the microphone
    as soon as the widget is shown (else on the button).  ValueError for bad values.
    ``feed`` is what mic sources read (:class:`~spear_lab.audio.browser.BrowserFeed`);
    the newest widget is the one ``mic="browser"`` uses.
    """

    _esm = Path(__file__).with_name("browser_mic.js")
    _css = _CSS
    rate = traitlets.Int(24000).tag(sync=True)
    chunk_ms = traitlets.Int(20).tag(sync=True)
    autostart = traitlets.Bool(True).tag(sync=True)
    #: What the page last reported: idle, prompt, granted, denied, ended, error, stopped.
    state = traitlets.Unicode("idle").tag(sync=True)
    error = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    #: Names this widget's one capture in the page (however many views show it).
    capture_id = traitlets.Unicode().tag(sync=True)

    def __init__(self, rate: int = 24000, chunk_ms: int = 20, autostart: bool = True,
                 **kwargs: Any) -> None:
        if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or not 5 <= chunk_ms <= 200:
            raise ValueError(f"chunk_ms must be an integer in 5..200, got {chunk_ms!r}")
        feed = BrowserFeed(rate)  # validates the rate
        super().__init__(rate=rate, chunk_ms=chunk_ms, autostart=bool(autostart),
                         capture_id=uuid.uuid4().hex, **kwargs)
        self.feed = feed
        self.bad_messages = 0
        #: True once closed: displays show the static picture only.
        self.frozen = False
        self._display_ids: list[str] = []
        self.on_msg(self._on_page_message)
        set_current(feed)

    # -- from the page --------------------------------------------------------------------

    def _on_page_message(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        try:
            self.feed.receive(content, buffers)
        except ValueError as exc:
            self.bad_messages += 1
            log.warning("browser microphone: bad message from the page: %s", exc)
            return
        if isinstance(content, dict) and content.get("type") == "state":
            self.state, self.error = self.feed.state, self.feed.error
            self._refresh_static()

    # -- display --------------------------------------------------------------------------

    def _bundle(self) -> dict[str, Any]:
        return self._repr_mimebundle_()[0]

    def _static(self) -> dict[str, str]:
        return {"text/html": browser_mic_html(self.feed.stats(), closed=self.frozen),
                "text/plain": repr(self)}

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        if self.frozen:
            return self._static(), {}
        data, meta = super()._repr_mimebundle_(**kwargs)
        data = dict(data)
        data.update(self._static())
        return data, meta

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display_id = uuid.uuid4().hex
        self._display_ids.append(display_id)
        display(self._bundle(), raw=True, display_id=display_id)

    def _refresh_static(self) -> None:
        """Rewrite the text/html copy in every output showing this widget."""
        if not self._display_ids or self.frozen:
            return
        from IPython.display import update_display

        data = self._bundle()
        for display_id in self._display_ids:
            update_display(data, raw=True, display_id=display_id)

    def close(self) -> None:
        """Stop the page's capture, replace every display by the static picture (so the
        saved notebook shows it without widget state) and close the widget.  Idempotent."""
        if getattr(self, "frozen", True):  # closed already, or never fully made
            return
        self.frozen = True
        if self.comm is not None:
            self.send({"type": "stop"})
        if self._display_ids:
            from IPython.display import update_display

            data = self._static()
            for display_id in self._display_ids:
                update_display(data, raw=True, display_id=display_id)
        super().close()
        self.__dict__.pop("_repr_mimebundle_", None)  # ipywidgets blanks it; ours is static now

    freeze = close

    # -- for notebooks --------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 10.0) -> str:
        """Wait (without blocking the kernel) until the page answered the permission
        request or ``timeout`` s passed; returns the state (``granted`` when streaming)."""
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        while self.feed.state in ("idle", "prompt") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.feed.state

    def __repr__(self) -> str:
        s = self.feed.stats()
        closed = " closed" if getattr(self, "frozen", False) else ""
        return f"<BrowserMic {s['state']}{closed} {s['rate']} Hz {s['seconds']:.1f} s>"
