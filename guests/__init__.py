"""Marks guests/ as the data package ``spear_lab.guests.sdk`` (see setup.py).

In the wheel this directory is ``spear_lab/guests/sdk/``: the C SDK header, the guest
sources, their Makefile and the prebuilt ``.wasm``.  Read it through
:mod:`spear_lab.guests`, never by a path relative to a checkout.
"""
