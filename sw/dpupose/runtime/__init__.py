"""Runners and the split executor. Board-side: imports numpy and onnxruntime only, never torch."""
