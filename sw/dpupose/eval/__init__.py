"""Metrics (numpy, board-safe), evaluation loops and benchmark tables."""
