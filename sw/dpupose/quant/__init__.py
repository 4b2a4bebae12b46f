"""Power-of-two INT8 quantization for the DPU (host only, needs torch): calibration, constraints, QDQ
export, QAT, the vai_q_pytorch adapter and ONNX Runtime static INT8 for CPU subgraphs."""
