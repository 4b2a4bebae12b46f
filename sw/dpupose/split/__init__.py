"""Split plans: which parts of the pose model run on the DPU and which on the CPU.

`dpupose.split.plan` (the plan schema, loading and saving) is board-safe: standard library only. The
partitioner that writes plans is host-only (onnx): `graph` (QDQ graph -> units and Q/DQ pairs), `assign`
(device per unit, subgraphs), `extract` (one ONNX file per subgraph), `a53` and `cost` (predicted stage
times), `optimize` (`--optimize`), `partition` (`dpupose split`), `compare` (best split per
configuration). See docs/split.md.
"""
