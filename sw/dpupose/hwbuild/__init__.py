"""Hardware build (host only): DPU configuration -> dpu.bit, dpu.hwh, dpu.xclbin, arch.json for the board.

The proven DPU-PYNQ route, driven from Python: a Vivado platform from the fixed, board-agnostic
hw/tcl/platform.tcl; the Vitis AI 2.5 DPU TRD RTL packaged with the configuration's dpu_conf.vh as the
DPUCZDX8G RTL kernel (hw/tcl/kernel.tcl); `v++ -l` with the generated prj_config. Everything that
depends on the board or the configuration reaches the Tcl through a generated, data-only params.tcl.
Before any tool runs, `check.preflight` checks the configuration, the generated files, the Tcl (under a
recording stand-in for Vivado, no tools needed), the tools' versions and the user's inputs.

Modules (one concern each):
    platform   hw/boards/<board>/platform.toml: board files pin, PS clock, constant outputs (fan)
    params     params.tcl and platform.xdc text (pure) and writers
    commands   the vivado / v++ command lines (pure functions of the build paths)
    layout     build/hw/<config>/ folder layout
    runner     run_tool: PATH check, check=True, log file, expected outputs verified
    tools      Vivado / v++ / XRT presence and version (2022.1)
    inputs     DPU TRD archive or folder, board files repository
    standin    run a Tcl script under the recording Vivado stand-in (standin.tcl); replay into a design
    pfmcheck   checks on the recorded platform design       tclcheck  platform + kernel Tcl checks
    tcllist    Tcl list parsing                             reports   utilization / timing report readers
    check      preflight findings                           flow      steps, stamps, resume
    collect    gather, check timing, publish, build_info.json
"""
