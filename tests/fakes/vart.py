"""Fake `vart` (Vitis AI 2.5 Python runner module): see fakeboard.py."""

from fakeboard import Runner

__all__ = ["Runner"]
