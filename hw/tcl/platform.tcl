# Vivado platform (extensible XSA) for the DPUCZDX8G RTL kernel. Fixed and board-agnostic: every board or
# configuration fact comes from the generated parameter file (dpupose.hwbuild.params).
#
#   vivado -mode batch -source platform.tcl -tclargs <params.tcl> <board-files repo> <platform.xsa>
#
# Design: Zynq UltraScale+ PS with the board preset; a clock wizard from pl_clk0 with one output per
# platform clock (clk_out<N+1> = platform clock id N); one proc_sys_reset per clock, held until the clock
# wizard locks; an AXI interrupt controller on M_AXI_HPM0_LPD into pl_ps_irq0; constant PL outputs (fan);
# PFM.CLOCK / PFM.AXI_PORT / PFM.IRQ so that v++ can connect the DPU. The PS slave ports offered to v++
# are set to 128 bits and left switched off: v++ switches on the ones prj_config connects.

if {[llength $argv] != 3} {
    error "usage: vivado -mode batch -source platform.tcl -tclargs <params.tcl> <board-files repo> <platform.xsa>"
}
lassign $argv params_file board_repo xsa_file
source $params_file
foreach key {config board part board_part vivado_version design_name pfm_name pl_clk0_mhz clocks_mhz
             default_clock_id slave_ports control_ports irq_inputs constant_outputs} {
    if {![info exists dpupose($key)]} {
        error "$params_file does not set dpupose($key); regenerate it with `dpupose hw build --to generate`"
    }
}
if {![string match "$dpupose(vivado_version)*" [version -short]]} {
    error "this flow needs Vivado $dpupose(vivado_version); this is Vivado [version -short]"
}
set design $dpupose(design_name)
set xdc_file [file join [file dirname [file normalize $params_file]] platform.xdc]

# Project -------------------------------------------------------------------------------------------
set_param board.repoPaths [list $board_repo]
create_project -force platform ./project -part $dpupose(part)
set_property board_part $dpupose(board_part) [current_project]
set_property platform.extensible true [current_project]
create_bd_design $design

# Processing system: board preset first, then the platform's changes on top ----------------------------
create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e ps
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} [get_bd_cells ps]
set ps_config [list \
    CONFIG.PSU__FPGA_PL0_ENABLE 1 \
    CONFIG.PSU__USE__FABRIC__RST 1 \
    CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $dpupose(pl_clk0_mhz) \
    CONFIG.PSU__USE__IRQ0 1 \
    CONFIG.PSU__USE__M_AXI_GP0 0 \
    CONFIG.PSU__USE__M_AXI_GP1 0 \
    CONFIG.PSU__USE__M_AXI_GP2 1 \
    CONFIG.PSU__MAXIGP2__DATA_WIDTH 32]
foreach port $dpupose(slave_ports) {
    lassign $port tag interface gp_index bits
    lappend ps_config CONFIG.PSU__USE__S_AXI_GP${gp_index} 0 CONFIG.PSU__SAXIGP${gp_index}__DATA_WIDTH $bits
}
set_property -dict $ps_config [get_bd_cells ps]

# Clocks: clk_out<N+1> runs at platform clock N --------------------------------------------------------
set clocks $dpupose(clocks_mhz)
create_bd_cell -type ip -vlnv xilinx.com:ip:clk_wiz clk_wiz_0
set clk_config [list \
    CONFIG.PRIM_IN_FREQ $dpupose(pl_clk0_mhz) \
    CONFIG.USE_RESET true \
    CONFIG.RESET_TYPE ACTIVE_LOW \
    CONFIG.RESET_PORT resetn \
    CONFIG.USE_LOCKED true \
    CONFIG.NUM_OUT_CLKS [llength $clocks]]
for {set id 0} {$id < [llength $clocks]} {incr id} {
    set n [expr {$id + 1}]
    lappend clk_config CONFIG.CLKOUT${n}_USED true CONFIG.CLKOUT${n}_REQUESTED_OUT_FREQ [lindex $clocks $id]
}
set_property -dict $clk_config [get_bd_cells clk_wiz_0]
connect_bd_net [get_bd_pins ps/pl_clk0] [get_bd_pins clk_wiz_0/clk_in1]
connect_bd_net [get_bd_pins ps/pl_resetn0] [get_bd_pins clk_wiz_0/resetn]

# One reset per clock, released after the clock wizard locks ------------------------------------------
set pfm_clocks ""
for {set id 0} {$id < [llength $clocks]} {incr id} {
    set n [expr {$id + 1}]
    set reset proc_sys_reset_$id
    create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset $reset
    connect_bd_net [get_bd_pins clk_wiz_0/clk_out$n] [get_bd_pins $reset/slowest_sync_clk]
    connect_bd_net [get_bd_pins ps/pl_resetn0] [get_bd_pins $reset/ext_reset_in]
    connect_bd_net [get_bd_pins clk_wiz_0/locked] [get_bd_pins $reset/dcm_locked]
    set default [expr {$id == $dpupose(default_clock_id) ? "true" : "false"}]
    append pfm_clocks "clk_out$n {id \"$id\" is_default \"$default\" proc_sys_reset \"/$reset\" status \"fixed\"} "
}
set ctrl_clock clk_wiz_0/clk_out[expr {$dpupose(default_clock_id) + 1}]
set ctrl_reset proc_sys_reset_$dpupose(default_clock_id)

# Interrupts: axi_intc (on M_AXI_HPM0_LPD, default clock) -> pl_ps_irq0 ------------------------------
create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc axi_intc_0
set_property -dict [list CONFIG.C_IRQ_CONNECTION 1 CONFIG.C_IRQ_IS_LEVEL 1] [get_bd_cells axi_intc_0]
create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect ctrl_interconnect
set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI 1] [get_bd_cells ctrl_interconnect]
connect_bd_intf_net [get_bd_intf_pins ps/M_AXI_HPM0_LPD] [get_bd_intf_pins ctrl_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M00_AXI] [get_bd_intf_pins axi_intc_0/s_axi]
connect_bd_net [get_bd_pins $ctrl_clock] [get_bd_pins ps/maxihpm0_lpd_aclk]
connect_bd_net [get_bd_pins $ctrl_clock] [get_bd_pins ctrl_interconnect/aclk]
connect_bd_net [get_bd_pins $ctrl_clock] [get_bd_pins axi_intc_0/s_axi_aclk]
connect_bd_net [get_bd_pins $ctrl_reset/interconnect_aresetn] [get_bd_pins ctrl_interconnect/aresetn]
connect_bd_net [get_bd_pins $ctrl_reset/peripheral_aresetn] [get_bd_pins axi_intc_0/s_axi_aresetn]
connect_bd_net [get_bd_pins axi_intc_0/irq] [get_bd_pins ps/pl_ps_irq0]

# Constant PL outputs (pins and I/O standards are in platform.xdc) ---------------------------------------
foreach output $dpupose(constant_outputs) {
    lassign $output port value
    create_bd_cell -type ip -vlnv xilinx.com:ip:xlconstant ${port}_const
    set_property -dict [list CONFIG.CONST_WIDTH 1 CONFIG.CONST_VAL $value] [get_bd_cells ${port}_const]
    create_bd_port -dir O $port
    connect_bd_net [get_bd_pins ${port}_const/dout] [get_bd_ports $port]
}
add_files -fileset constrs_1 -norecurse [list $xdc_file]  ;# a list of files: one path, blanks and all

# Platform interfaces for v++ ---------------------------------------------------------------------------
set pfm_axi ""
foreach interface $dpupose(control_ports) {
    append pfm_axi "$interface {memport \"M_AXI_GP\"} "
}
foreach port $dpupose(slave_ports) {
    lassign $port tag interface gp_index bits
    set memport [expr {[string match HPC* $tag] ? "S_AXI_HPC" : "S_AXI_HP"}]
    append pfm_axi "$interface {memport \"$memport\" sptag \"$tag\" memory \"ps ${tag}_DDR_LOW\"} "
}
set_property PFM.AXI_PORT $pfm_axi [get_bd_cells ps]
set_property PFM.CLOCK $pfm_clocks [get_bd_cells clk_wiz_0]
set_property PFM.IRQ "intr {id \"0\" range \"$dpupose(irq_inputs)\"}" [get_bd_cells axi_intc_0]

set_property platform.board_id $dpupose(board) [current_project]
set_property platform.name $design [current_project]
set_property platform.vendor dpupose [current_project]
set_property platform.version 1.0 [current_project]
set_property platform.default_output_type sd_card [current_project]
set_property platform.design_intent.embedded true [current_project]
set_property platform.design_intent.server_managed false [current_project]
set_property platform.design_intent.external_host false [current_project]
set_property platform.design_intent.datacenter false [current_project]
set_property platform.uses_pr false [current_project]

# Validate, wrap, generate, export ------------------------------------------------------------------------
assign_bd_address
validate_bd_design
save_bd_design
set bd_file [get_files $design.bd]
set_property PFM_NAME $dpupose(pfm_name) $bd_file
make_wrapper -files $bd_file -top -import
set_property top ${design}_wrapper [current_fileset]
generate_target all $bd_file
update_compile_order -fileset sources_1
write_hw_platform -hw -force -file $xsa_file
puts "dpupose: wrote $xsa_file"
