"""Running engines off the event loop: worker processes or threads.

A :class:`Recognizer` hands out one :class:`Lane` per session; everything done on
a lane runs strictly in order, and different lanes run in parallel (see
:mod:`.lanes`, the interface).

* :class:`ProcessRecognizer` (default): ``N`` worker processes
  (``python -m spear_lab.server.worker``), in :mod:`.process_recognizer`.
* :class:`ThreadRecognizer`: a thread pool in this process, for engines that release
  the GIL or engine objects that cannot be rebuilt in another process (tests), in
  :mod:`.thread_recognizer`.

Errors: a failed stream's ``result`` future raises
:class:`~spear_lab.server.engines.RecognitionError`. A worker that dies fails its
open streams that way and is replaced in the background.
"""

from __future__ import annotations

from .lanes import Lane, PartialCallback, Recognizer, Stream  # noqa: F401 - PartialCallback: was defined here
from .process_recognizer import ProcessRecognizer
from .thread_recognizer import ThreadRecognizer

__all__ = ["Stream", "Lane", "Recognizer", "ProcessRecognizer", "ThreadRecognizer"]
