"""dpupose: MobileNetV2 pose estimation split between the Xilinx DPU and the Cortex-A53 CPU.

Importing the package is cheap and torch-free, so the board runtime (Python 3.10, numpy,
onnxruntime, opencv, pynq_dpu) can import it.
"""

__version__ = "0.1.0"
