"""Subcommands of `dpupose`. Modules here import only the standard library at top level."""
