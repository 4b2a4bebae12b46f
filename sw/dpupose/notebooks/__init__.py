"""Jupyter notebooks for the board, delivered the PYNQ way: `pynq get-notebooks dpupose` copies this
folder's notebooks (registered under the `pynq.notebooks` entry point)."""
