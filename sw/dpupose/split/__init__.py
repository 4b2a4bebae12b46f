"""Split plans: which parts of the pose model run on the DPU and which on the CPU.

`dpupose.split.plan` (the plan schema, loading and saving) is board-safe: standard library only. The
partitioner that writes plans (ONNX graph + DPU configuration -> plan + subgraph files) is host-only.
"""
