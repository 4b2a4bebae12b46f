"""Fake `pynq_dpu` 2.5.1 (DPU-PYNQ): see fakeboard.py."""

from fakeboard import DpuOverlay

__version__ = "2.5.1"
__all__ = ["DpuOverlay"]
