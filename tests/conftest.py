"""Shared fixtures: a Host torn down after each test, and a forwarding guest."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from wasm_util import Caller  # noqa: E402

from spear_lab import Host  # noqa: E402


@pytest.fixture
def host():
    h = Host()
    yield h
    h.shutdown()


@pytest.fixture
def guest():
    c = Caller()
    yield c
    c.close()
