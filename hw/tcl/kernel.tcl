# Package the DPUCZDX8G RTL of the Vitis AI 2.5 DPU TRD, with the generated dpu_conf.vh, as the Vitis RTL
# kernel DPUCZDX8G (dpu.xo). Fixed and board-agnostic; the part and kernel name come from the generated
# parameter file (dpupose.hwbuild.params), the RTL and kernel.xml from the TRD the user supplies.
#
#   vivado -mode batch -source kernel.tcl -tclargs <params.tcl> <TRD folder> <dpu_conf.vh> <dpu.xo>
#
# The TRD folder holds dpu_ip/ (DPUCZDX8G_v4_0_0/ and Vitis/dpu/) and prj/Vitis/kernel_xml/dpu/kernel.xml.
# Kernel interfaces: aclk (1x: M_AXI_GP0 instructions, M_AXI_HP0 / M_AXI_HP2 data, S_AXI_CONTROL
# registers), ap_clk_2 (2x, DSP array) with its reset ap_rst_n_2.

if {[llength $argv] != 4} {
    error "usage: vivado -mode batch -source kernel.tcl -tclargs <params.tcl> <TRD folder> <dpu_conf.vh> <dpu.xo>"
}
lassign $argv params_file trd dpu_conf xo_file
source $params_file
foreach key {part vivado_version kernel_name} {
    if {![info exists dpupose($key)]} {
        error "$params_file does not set dpupose($key); regenerate it with `dpupose hw build --to generate`"
    }
}
if {![string match "$dpupose(vivado_version)*" [version -short]]} {
    error "this flow needs Vivado $dpupose(vivado_version); this is Vivado [version -short]"
}
if {[file tail $dpu_conf] ne "dpu_conf.vh"} {
    error "the DPU RTL includes `dpu_conf.vh` by that name; got $dpu_conf"
}

# Files the TRD must provide; each pattern (in folder dir) has to match at least one file. The folder goes
# to glob as -directory, taken as it is: in the pattern, brackets and braces of its path would be patterns.
proc trd_files {dir pattern} {
    set found [lsort [glob -nocomplain -directory $dir $pattern]]
    if {[llength $found] == 0} {
        error "the DPU TRD has no $dir/$pattern; is this the Vitis AI 2.5 DPUCZDX8G TRD?"
    }
    return $found
}
set ip_dirs [glob -nocomplain -type d -directory $trd dpu_ip/DPUCZDX8G_v*]
if {[llength $ip_dirs] != 1} {
    error "expected exactly one dpu_ip/DPUCZDX8G_v* folder in $trd, found [llength $ip_dirs]"
}
set ip_dir [lindex $ip_dirs 0]
set rtl [concat \
    [trd_files $trd dpu_ip/Vitis/dpu/hdl/*.v] \
    [trd_files $trd dpu_ip/Vitis/dpu/inc/*.vh] \
    [trd_files $ip_dir hdl/DPUCZDX8G_*_dpu.sv] \
    [trd_files $ip_dir inc/arch_para.vh] \
    [trd_files $ip_dir inc/function.vh] \
    [list [file normalize $dpu_conf]]]
set ttcl [trd_files $ip_dir ttcl/*_json.ttcl]
set xdc [trd_files $trd dpu_ip/Vitis/dpu/xdc/*.xdc]
set kernel_xml [lindex [trd_files $trd prj/Vitis/kernel_xml/dpu/kernel.xml] 0]
set packaged ./packaged_kernel

# A throw-away project holding the RTL, packaged as an IP with the Vitis kernel properties --------------
create_project -force kernel_pack ./kernel_project -part $dpupose(part)
add_files -norecurse $rtl
add_files -norecurse -force $ttcl
add_files -norecurse -fileset constrs_1 $xdc
update_compile_order -fileset sources_1
set_property PROCESSING_ORDER LATE [get_files timing_clocks.xdc]
set ttcl_names {}  ;# get_files by file name: a path would be a pattern (brackets in it match other names)
foreach f $ttcl {
    lappend ttcl_names [file tail $f]
}
set_property file_type TCL [get_files $ttcl_names]
ipx::package_project -root_dir $packaged -vendor xilinx.com -library RTLKernel -taxonomy /KernelIP \
    -import_files -set_current false
ipx::unload_core $packaged/component.xml
ipx::edit_ip_in_project -upgrade true -name kernel_edit -directory $packaged $packaged/component.xml
set core [ipx::current_core]
# The TRD's block-design hooks for the IP (parameter propagation), when this TRD release has them.
set bd_script $trd/dpu_ip/Vitis/dpu/bd/bd.tcl
if {[file exists $bd_script]} {
    file mkdir $packaged/bd
    file copy -force $bd_script $packaged/bd/bd.tcl
    set bd_group [ipx::get_file_groups xilinx_blockdiagram -of_objects $core]
    if {$bd_group eq ""} {
        set bd_group [ipx::add_file_group -type xilinx_blockdiagram "" $core]
    }
    set_property type tclSource [ipx::add_file bd/bd.tcl $bd_group]
}
set_property core_revision 0 $core
# No customisation GUI: the configuration is fixed by dpu_conf.vh.
ipgui::remove_page -component $core [ipgui::get_pagespec -name "Page 0" -component $core]
set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
foreach group {xilinx_anylanguagesynthesis xilinx_anylanguagebehavioralsimulation} {
    set_property type ttcl [ipx::get_files src/*.ttcl -of_objects [ipx::get_file_groups $group -of_objects $core]]
}
ipx::create_xgui_files $core
foreach busif {M_AXI_GP0 M_AXI_HP0 M_AXI_HP2 S_AXI_CONTROL} {
    ipx::associate_bus_interfaces -busif $busif -clock aclk $core
}
ipx::infer_bus_interface ap_clk_2 xilinx.com:signal:clock_rtl:1.0 $core
ipx::infer_bus_interface ap_rst_n_2 xilinx.com:signal:reset_rtl:1.0 $core
set_property xpm_libraries {XPM_CDC XPM_MEMORY XPM_FIFO} $core
set_property supported_families {} $core
set_property auto_family_support_level level_2 $core
ipx::update_checksums $core
ipx::save_core $core
close_project -delete

package_xo -xo_path $xo_file -kernel_name $dpupose(kernel_name) -ip_directory $packaged \
    -kernel_xml $kernel_xml
puts "dpupose: wrote $xo_file"
