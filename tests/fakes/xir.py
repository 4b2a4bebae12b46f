"""Fake `xir` (Vitis AI 2.5 graph module): see fakeboard.py."""

from fakeboard import Graph, Subgraph, Tensor

__all__ = ["Graph", "Subgraph", "Tensor"]
