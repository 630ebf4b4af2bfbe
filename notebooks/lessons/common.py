"""Shared pieces of the lesson sources: cell constructors and the setup cell."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell

SETUP = '''\
import logging
import time

from spear_lab.session import Session

logging.getLogger("spear_lab").setLevel(logging.ERROR)
%matplotlib inline'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))

