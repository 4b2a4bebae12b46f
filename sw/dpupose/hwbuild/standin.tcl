# Recording stand-in for the Vivado Tcl commands the hw/tcl scripts use (dpupose.hwbuild.standin).
#
# Every modelled Vivado command records its name and arguments and returns an object name shaped like
# Vivado's ("/cell", "/cell/pin"); queries fail when the object was never created. Any other command
# that is not plain Tcl fails ("unknown Vivado command"), so a script that starts using a new command
# cannot pass the check silently. Nothing touches the file system: file writes are recorded, not done;
# exec and exit fail.
#
# IP packager bus interfaces: after ipx::package_project only the interfaces the packager infers from the
# DPUCZDX8G RTL's port names exist (the ones the TRD's own packaging script uses without inferring them);
# others exist once ipx::infer_bus_interface makes them. Looking one up before that returns nothing, as in
# Vivado, and using nothing as an object fails, as in Vivado.
#
#   tclsh standin.tcl <result.json> <script.tcl> [script args...]
# or, from Python's tkinter.Tcl(): source this file, then ::standin::run <script> <args> <result.json>.

namespace eval ::ipx {}
namespace eval ::ipgui {}
namespace eval ::standin {
    variable calls {}
    variable output ""
    variable version 2022.1
    variable cells; array set cells {}
    variable ports; array set ports {}
    variable files {}
    variable groups {xilinx_anylanguagesynthesis xilinx_anylanguagebehavioralsimulation}
    # Bus interfaces ipx::package_project infers from the DPUCZDX8G RTL (the TRD's package_dpu_kernel.tcl
    # associates these without inferring them, and infers ap_clk_2 / ap_rst_n_2 itself).
    variable packager_busifs {aclk M_AXI_GP0 M_AXI_HP0 M_AXI_HP2 S_AXI_CONTROL}
    variable busifs {}
}

# The options each modelled command takes in Vivado 2022.1 ("=" marks one that takes a value): UG835 for
# the documented commands; for the ipx::/ipgui:: packager commands, which UG835 does not list, the ones
# Xilinx's own RTL-kernel packaging scripts use. A positional argument may also be given by its name
# (write_hw_platform -file, make_wrapper -files), as Vivado allows. -quiet and -verbose go with every
# command. An option not listed here fails, as it would in Vivado.
variable ::standin::syntax {
    set_param {}
    create_project {-part= -force -in_memory -ip -rtl_kernel}
    set_property {-dict=}
    version {-short}
    current_project {}
    current_fileset {-constrset -simset}
    create_bd_design {-dir= -cell= -mode= -bdsource=}
    create_bd_cell {-vlnv= -type= -reference=}
    create_bd_port {-dir= -from= -to= -type= -freq_hz=}
    apply_bd_automation {-rule= -dict= -opts= -config=}
    connect_bd_net {-net=}
    connect_bd_intf_net {-intf_net= -boundary_type=}
    get_bd_cells {-regexp -hierarchical -filter= -of_objects=}
    get_bd_pins {-regexp -hierarchical -filter= -of_objects=}
    get_bd_intf_pins {-regexp -hierarchical -filter= -of_objects=}
    get_bd_ports {-regexp -filter= -of_objects=}
    assign_bd_address {-target_address_space= -offset= -range= -export_to_file= -export_gui_to_file=
                       -dict= -import_from_file= -boundary -force -external -combine_segments}
    validate_bd_design {-force -design=}
    save_bd_design {-design=}
    make_wrapper {-top -testbench -inst_template -fileset= -import -force -files=}
    generate_target {-force}
    update_compile_order {-fileset=}
    add_files {-fileset= -of_objects= -cell= -norecurse -copy_to= -force -scan_for_includes -files=}
    get_files {-regexp -nocase -filter= -of_objects= -compile_order= -used_in= -references -all}
    write_hw_platform {-fixed -force -include_bit -include_sim_content -minimal -hw -hw_emu -file=}
    close_project {-delete}
    package_xo {-kernel_name= -force -kernel_xml= -output_kernel_xml= -design_xml= -ip_directory=
                -parent_ip_directory= -kernel_files= -kernel_xml_args= -kernel_xml_pipes=
                -kernel_xml_connections= -ctrl_protocol= -xo_path=}
    ipx::package_project {-root_dir= -vendor= -library= -name= -version= -taxonomy= -import_files
                          -set_current= -force -force_update_compile_order -generated_files -module=}
    ipx::unload_core {}
    ipx::edit_ip_in_project {-upgrade= -name= -directory=}
    ipx::current_core {}
    ipx::get_file_groups {-of_objects=}
    ipx::add_file_group {-type=}
    ipx::add_file {}
    ipx::get_files {-of_objects=}
    ipx::get_bus_interfaces {-of_objects=}
    ipx::get_bus_parameters {-of_objects=}
    ipx::associate_bus_interfaces {-busif= -clock= -remove}
    ipx::infer_bus_interface {}
    ipx::create_xgui_files {}
    ipx::update_checksums {}
    ipx::save_core {}
    ipgui::get_pagespec {-name= -component=}
    ipgui::remove_page {-component=}
}

proc ::standin::check_options {name arguments} {
    variable syntax
    if {![dict exists $syntax $name]} {
        error "$name: the stand-in knows no option list for it (add one to dpupose/hwbuild/standin.tcl)"
    }
    set spec [concat [dict get $syntax $name] -quiet -verbose]
    for {set i 0} {$i < [llength $arguments]} {incr i} {
        set arg [lindex $arguments $i]
        if {![string match -* $arg] || [string is double -strict $arg]} {
            continue
        }
        if {[lsearch -exact $spec $arg=] >= 0} {
            incr i
        } elseif {[lsearch -exact $spec $arg] < 0} {
            error "$name has no option $arg in Vivado 2022.1"
        }
    }
}

proc ::standin::record {name arguments} {
    variable calls
    if {$name ni {file exec exit}} {
        check_options $name $arguments
    }
    lappend calls [linsert $arguments 0 $name]
}

proc ::standin::norm {path} {
    return "/[string trim $path /]"
}

# Plain names only: options such as -hierarchical or -filter are not modelled and fail.
proc ::standin::names {cmd arguments} {
    set out {}
    foreach arg $arguments {
        foreach item $arg {
            if {[string match -* $item]} {
                error "$cmd $item: option not modelled by the stand-in"
            }
            lappend out $item
        }
    }
    if {[llength $out] == 0} {
        error "$cmd: no object named (the stand-in models lookups by name only)"
    }
    return $out
}

proc ::standin::option {arguments flag} {
    set i [lsearch -exact $arguments $flag]
    if {$i < 0 || $i + 1 >= [llength $arguments]} {
        return ""
    }
    return [lindex $arguments [expr {$i + 1}]]
}

# Commands that only record ----------------------------------------------------------------------------
foreach cmd {
    set_param create_project apply_bd_automation connect_bd_net connect_bd_intf_net
    assign_bd_address validate_bd_design save_bd_design make_wrapper generate_target
    update_compile_order write_hw_platform close_project package_xo
    ipx::unload_core ipx::edit_ip_in_project
    ipx::create_xgui_files ipx::update_checksums ipx::save_core
    ipgui::remove_page
} {
    proc ::$cmd {args} [format {::standin::record %s $args; return ""} [list $cmd]]
}

# Vivado refuses set_property without an object ([Common 17-55] 'set_property' expects at least one object).
proc ::set_property {args} {
    ::standin::record set_property $args
    set words {}
    set dict 0
    for {set i 0} {$i < [llength $args]} {incr i} {
        set arg [lindex $args $i]
        if {$arg eq "-dict"} {
            set dict 1
            incr i
        } elseif {$arg ni {-quiet -verbose}} {
            lappend words $arg
        }
    }
    set objects [expr {$dict ? [lindex $words end] : [lrange $words 2 end]}]
    if {[llength [join $objects]] == 0} {
        error "set_property: no object to set [expr {$dict ? {the -dict values} : [lindex $words 0]}] on\
               (Vivado: 'set_property' expects at least one object)"
    }
    return ""
}

# Commands that return objects ---------------------------------------------------------------------------
proc ::version {args} {
    ::standin::record version $args
    if {$args ne "-short"} {
        error "version $args: only `version -short` is modelled"
    }
    return $::standin::version
}
proc ::current_project {args} {
    ::standin::record current_project $args
    return project
}
proc ::current_fileset {args} {
    ::standin::record current_fileset $args
    return fileset:sources_1
}
proc ::create_bd_design {args} {
    ::standin::record create_bd_design $args
    lappend ::standin::files "[lindex $args end].bd"
    return [lindex $args end]
}
proc ::create_bd_cell {args} {
    ::standin::record create_bd_cell $args
    set path [::standin::norm [lindex $args end]]
    if {[info exists ::standin::cells($path)]} {
        error "create_bd_cell: a cell $path exists already"
    }
    set ::standin::cells($path) [::standin::option $args -vlnv]
    return $path
}
proc ::create_bd_port {args} {
    ::standin::record create_bd_port $args
    set path [::standin::norm [lindex $args end]]
    set ::standin::ports($path) 1
    return $path
}
proc ::get_bd_cells {args} {
    ::standin::record get_bd_cells $args
    set out {}
    foreach name [::standin::names get_bd_cells $args] {
        set path [::standin::norm $name]
        if {![info exists ::standin::cells($path)]} {
            error "get_bd_cells: no cell $path"
        }
        lappend out $path
    }
    return $out
}
proc ::standin::pins {cmd arguments} {
    set out {}
    foreach name [::standin::names $cmd $arguments] {
        set path [::standin::norm $name]
        if {![info exists ::standin::cells([file dirname $path])]} {
            error "$cmd: no cell [file dirname $path] for $path"
        }
        lappend out $path
    }
    return $out
}
proc ::get_bd_pins {args} {
    ::standin::record get_bd_pins $args
    return [::standin::pins get_bd_pins $args]
}
proc ::get_bd_intf_pins {args} {
    ::standin::record get_bd_intf_pins $args
    return [::standin::pins get_bd_intf_pins $args]
}
proc ::get_bd_ports {args} {
    ::standin::record get_bd_ports $args
    set out {}
    foreach name [::standin::names get_bd_ports $args] {
        set path [::standin::norm $name]
        if {![info exists ::standin::ports($path)]} {
            error "get_bd_ports: no port $path"
        }
        lappend out $path
    }
    return $out
}
proc ::add_files {args} {
    ::standin::record add_files $args
    foreach arg $args {
        foreach item $arg {
            if {![string match -* $item] && $item ne "constrs_1" && $item ne "sources_1"} {
                lappend ::standin::files $item
            }
        }
    }
    return ""
}
proc ::get_files {args} {
    ::standin::record get_files $args
    set out {}
    foreach pattern [::standin::names get_files $args] {
        set hits {}
        foreach f $::standin::files {
            if {[string match $pattern $f] || [string match $pattern [file tail $f]]} {
                lappend hits file:$f
            }
        }
        if {[llength $hits] == 0} {
            error "get_files: no project file matches $pattern"
        }
        lappend out {*}$hits
    }
    return $out
}

# IP packager queries --------------------------------------------------------------------------------------
proc ::ipx::current_core {args} {
    ::standin::record ipx::current_core $args
    return ipcore
}
proc ::ipx::get_file_groups {args} {
    ::standin::record ipx::get_file_groups $args
    set name [lindex $args 0]
    if {[lsearch -exact $::standin::groups $name] < 0} {
        return ""
    }
    return filegroup:$name
}
proc ::ipx::add_file_group {args} {
    ::standin::record ipx::add_file_group $args
    set type [::standin::option $args -type]
    lappend ::standin::groups $type
    return filegroup:$type
}
proc ::ipx::add_file {args} {
    ::standin::record ipx::add_file $args
    return ipfile:[lindex $args 0]
}
proc ::ipx::get_files {args} {
    ::standin::record ipx::get_files $args
    return ipfiles:[lindex $args 0]
}
proc ::ipx::package_project {args} {
    ::standin::record ipx::package_project $args
    set ::standin::busifs $::standin::packager_busifs
    return ""
}
proc ::ipx::infer_bus_interface {args} {
    ::standin::record ipx::infer_bus_interface $args
    lappend ::standin::busifs [lindex $args 0]
    return ""
}
proc ::ipx::get_bus_interfaces {args} {
    ::standin::record ipx::get_bus_interfaces $args
    set name [lindex $args 0]
    if {[lsearch -exact $::standin::busifs $name] < 0} {
        return ""
    }
    return busif:$name
}
proc ::ipx::associate_bus_interfaces {args} {
    ::standin::record ipx::associate_bus_interfaces $args
    foreach flag {-busif -clock} {
        set name [::standin::option $args $flag]
        if {[lsearch -exact $::standin::busifs $name] < 0} {
            error "ipx::associate_bus_interfaces $flag $name: the IP has no bus interface $name (yet)"
        }
    }
    return ""
}
proc ::ipgui::get_pagespec {args} {
    ::standin::record ipgui::get_pagespec $args
    return pagespec:[::standin::option $args -name]
}
proc ::ipx::get_bus_parameters {args} {
    ::standin::record ipx::get_bus_parameters $args
    set i [lsearch -exact $args -of_objects]
    if {$i >= 0 && [llength [join [lindex $args [expr {$i + 1}]]]] == 0} {
        error "ipx::get_bus_parameters [lindex $args 0]: -of_objects names no object (Vivado: invalid option\
               value '' for 'objects'); was the bus interface looked up before it existed?"
    }
    return busparam:[lindex $args 0]
}

# Tcl commands with side effects ---------------------------------------------------------------------------
rename ::file ::standin::_file
proc ::file {sub args} {
    switch -- $sub {
        mkdir - copy - delete - rename - link - attributes - mtime - atime {
            ::standin::record file [linsert $args 0 $sub]
            return ""
        }
        default {
            return [::standin::_file $sub {*}$args]
        }
    }
}
rename ::puts ::standin::_puts
proc ::puts {args} {
    set newline [expr {[lindex $args 0] ne "-nonewline"}]
    if {!$newline} {
        set args [lrange $args 1 end]
    }
    if {[llength $args] == 2 && [lindex $args 0] ni {stdout stderr}} {
        return [::standin::_puts {*}[expr {$newline ? {} : {-nonewline}}] {*}$args]
    }
    append ::standin::output [lindex $args end] [expr {$newline ? "\n" : ""}]
    return ""
}
proc ::exec {args} {
    ::standin::record exec $args
    error "exec is not allowed under the stand-in"
}
if {[llength [info commands ::exit]]} {
    rename ::exit ::standin::_exit
}
proc ::exit {args} {
    ::standin::record exit $args
    error "the script called exit $args"
}
proc ::unknown {cmd args} {
    if {[auto_load $cmd]} {
        return [uplevel 1 [list $cmd {*}$args]]
    }
    error "unknown Vivado command under the stand-in: $cmd (model it in dpupose/hwbuild/standin.tcl)"
}

# Result as JSON ------------------------------------------------------------------------------------------
proc ::standin::json {s} {
    set s [string map [list \\ \\\\ \" \\\" \n \\n \r \\r \t \\t] $s]
    if {[regexp {[\x00-\x1f]} $s]} {
        set out ""
        foreach ch [split $s ""] {
            scan $ch %c code
            append out [expr {$code < 32 ? [format "\\u%04x" $code] : $ch}]
        }
        set s $out
    }
    return "\"$s\""
}

proc ::standin::run {script arguments result} {
    set ::argv $arguments
    set ::argc [llength $arguments]
    set ::argv0 $script
    set failed [catch {uplevel #0 [list source $script]} message]
    set records {}
    foreach call $::standin::calls {
        set words {}
        foreach word $call {
            lappend words [::standin::json $word]
        }
        lappend records "\[[join $words ,]\]"
    }
    set error [expr {$failed ? [::standin::json $message] : "null"}]
    set f [open $result w]
    fconfigure $f -encoding utf-8
    ::standin::_puts $f "\{\"calls\": \[[join $records ",\n"]\],"
    ::standin::_puts $f "\"error\": $error, \"output\": [::standin::json $::standin::output]\}"
    close $f
    return $failed
}

if {[info exists ::argv0] && [::standin::_file normalize $::argv0] eq [::standin::_file normalize [info script]]} {
    set result [lindex $::argv 0]
    set script [lindex $::argv 1]
    ::standin::run $script [lrange $::argv 2 end] $result
    ::standin::_exit 0
}
