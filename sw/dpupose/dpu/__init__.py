"""DPU architecture model (host only): configurations, fingerprint, resources, performance, file writers.

Everything the project knows about a DPUCZDX8G configuration comes from here. Configurations are TOML
files in ``hw/dpu/configs/``; board records are ``hw/boards/<board>/board.toml``.

Public API (import from the submodules; this package imports no onnx/torch):

    from dpupose.dpu.config import load_config, list_configs, config_from_arch, DpuConfig, Arch
    from dpupose.dpu.board import load_board, list_boards, default_config_name, Board
    from dpupose.dpu.fingerprint import fingerprint, fingerprint_hex, decode
    from dpupose.dpu.resources import core_resources, dpu_resources, check_fit
    from dpupose.dpu.writers import write_dpu_conf_vh, write_prj_config, write_arch_json
    from dpupose.dpu.perf import estimate, Estimate          (needs the onnx package)
    from dpupose.dpu.compare import compare                  (onnx; matplotlib for plots)
    from dpupose.dpu.zoo import export                       (torch)
"""
