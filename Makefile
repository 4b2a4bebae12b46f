# dpupose: the verbs. `make help` lists them.
# This Makefile, by the name make was given it (test-board-py's own make reads it again): the last file make has
# read, here before any other; the first one make read may be another (MAKEFILES=extra.mk, make -f a.mk -f Makefile).
SELF := $(lastword $(MAKEFILE_LIST))
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BOARD_VENV := .venv-board
# BOARD_VENV: the board Python's venv (make test-board-py, below). make names files by words: a VENV with a
# blank cannot be a target (its stamp), `python -m venv` would make a venv of each word (one of them in the
# checkout), and an empty one would make BIN /bin. Their paths are written unquoted in the recipes ($(BIN)/pip)
# and in $(shell) below: a quote broke the shell line with a syntax error, and a character the shell reads ran
# as shell code (VENV='v;x' ran x, 'v>f' made the file f, 'v$$(x)' ran x) or stopped make itself (a ; or : in
# a rule's target). Checked here, before either path is used.
lparen := (
rparen := )
VENV_SHELL_CHARS := ; & | $(lparen) $(rparen) $$ ` < > \ * ? [ { } : \#
VENV_BAD := $(strip $(foreach c,$(VENV_SHELL_CHARS),$(findstring $c,$(VENV)$(BOARD_VENV))))
ifneq ($(words $(VENV)) $(words $(BOARD_VENV))$(findstring ',$(VENV)$(BOARD_VENV))$(findstring ",$(VENV)$(BOARD_VENV))$(VENV_BAD),1 1)
$(error VENV=$(VENV) BOARD_VENV=$(BOARD_VENV): each must name one folder, by a path without blanks, quotes or any of $(VENV_SHELL_CHARS) (make cannot take a file name with a blank, and its recipes write these paths as they are))
endif
# A leading ~ that reached make unexpanded (VENV='~/venvs/dp', quoted) is read two ways: make takes a target
# ~/... as the home folder's, the shell expands it where a recipe writes the path bare, but not where it is
# quoted, so setup's check that VENV is no folder of the user's looked at ./~/venvs/dp and the venv was made
# over $HOME/venvs/dp whatever it held. Refused here, as the characters above are.
ifneq ($(filter ~%,$(VENV) $(BOARD_VENV)),)
$(error VENV=$(VENV) BOARD_VENV=$(BOARD_VENV): a path that starts with ~ reached make unexpanded (quoted), and make and the shell read it apart: write $$HOME/... or an absolute path)
endif
BIN := $(VENV)/bin
# PYTHON: the interpreter `make setup` builds the venv with. Not given, it is the one the existing venv was
# made with (so a venv of python3.12 is not remade with python3 when the pins change), else python3. Given
# empty (PYTHON=$(MY_PYTHON) with it unset) it is that default too, as the verbs' variables are.
ifeq ($(strip $(PYTHON)),)
override PYTHON := $(or $(shell $(BIN)/python -c 'import sys; print(sys._base_executable)' 2>/dev/null),python3)
endif
STAMP := $(VENV)/.installed
DPUPOSE := $(BIN)/dpupose
# $(call q,NAME): variable NAME's value as one shell word, in single quotes (a quote, backtick, '!' or blank in
# a path is the path's, not the shell's). It takes the variable's name: a value's commas would split $(call).
esc = $(subst ','\'',$($(1)))
q = '$(call esc,$(1))'

.PHONY: help setup lint format test test-board-py demo bench compare quantize run sdcard deploy hw hw-check clean

help: ## list the verbs
	@echo "dpupose: MobileNetV2 pose estimation on the Ultra96-V2 (DPU + Cortex-A53)"
	@echo
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# PyPI's Linux torch wheels are CUDA builds (several GB); PyTorch's CPU index has the same release as
# +cpu, which the constraint torch==X matches. Used when it can be reached (else pip takes what PyPI has).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_ARG = $(shell $(PYTHON) -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/', timeout=10)" \
	>/dev/null 2>&1 && echo --extra-index-url $(TORCH_INDEX))

# PYTHON must run and be 3.10 or newer (pip would only say the package "requires a different Python"). A
# venv made by another Python is made again: `python -m venv` over it keeps the old interpreter's links.
PY_VERSION = import sys; print("%d.%d" % sys.version_info[:2])

$(STAMP): pyproject.toml constraints.txt
	@v=$$($(PYTHON) -c '$(PY_VERSION)' 2>/dev/null) || { \
		echo "make setup: PYTHON=$(PYTHON) does not run; give a Python 3.10 or newer: make setup PYTHON=python3.12" >&2; exit 2; }; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
		echo "make setup: PYTHON=$(PYTHON) is Python $$v; dpupose needs 3.10 or newer: make setup PYTHON=python3.12" >&2; exit 2; }; \
	if [ -e $(call q,VENV) ] && [ ! -f $(call q,VENV)/pyvenv.cfg ] && [ -n "$$(ls -A $(call q,VENV) 2>&1)" ]; then \
		echo "make setup: VENV=$(VENV) exists and is no virtual environment (it has no pyvenv.cfg), which setup would remove and make again: give another VENV" >&2; exit 2; \
	fi; \
	if [ -f $(call q,VENV)/pyvenv.cfg ] && [ "$$($(BIN)/python -c '$(PY_VERSION)' 2>/dev/null)" != "$$v" ]; then \
		echo "make setup: $(VENV) was made by another Python than PYTHON=$(PYTHON) ($$v); making it again"; rm -rf -- $(call q,VENV); \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt $(TORCH_INDEX_ARG) -e '.[host,dev]'
	touch $@

setup: $(STAMP) ## create .venv (VENV=.venv PYTHON=python3.10 to 3.13) and install the package with host and dev extras (pinned; TORCH_INDEX=url: another torch build)

lint: $(STAMP) ## ruff lint and format check (fails on any finding)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## rewrite the code in ruff's format
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) ## run the tests (tool- and board-only tests excluded)
	$(BIN)/pytest -q

# The board's Python (PYNQ 3.0.1: 3.10, numpy 1.x, onnxruntime, OpenCV; no torch, no onnx) in a venv of its
# own, with the base install and the versions in constraints-board.txt: the tests marked board_py (`dpupose
# run` and the notebook on the shipped plan, sources, sinks, file output) run there for real. Python 3.10 is
# PY310=path, else python3.10 on PATH, else pyenv's (whose shim runs only where 3.10 is selected).
PY310 ?=
BOARD_STAMP := $(BOARD_VENV)/.installed
# test-board-py's own make asks for the stamp by BOARD_STAMP_GOAL=1, not by its name: make reads a goal with
# an = (BOARD_VENV=venvs/py=3.10) as a variable's assignment, and made its default goal, help, in its place.
# (this Makefile, SELF, by the name make was given it: make -f path/Makefile test-board-py from elsewhere)
ifdef BOARD_STAMP_GOAL
.DEFAULT_GOAL := $(BOARD_STAMP)
endif
FIND_PY310 = for p in $(if $(PY310),$(call q,PY310),python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1 && { echo "$$p"; break; }; \
	done
# Whether pip's index answers: without it the venv cannot be built (pip would only report a resolver conflict).
INDEX_PROBE = import os, urllib.request as u; \
	u.urlopen((os.environ.get('PIP_INDEX_URL') or 'https://pypi.org/simple').rstrip('/') + '/pip/', timeout=10)

$(BOARD_STAMP): pyproject.toml constraints-board.txt
	@test -n $(call q,PY310) || { echo "make $@: give PY310=<a Python 3.10>, or run make test-board-py" >&2; exit 2; }
	@if [ -e $(call q,BOARD_VENV) ] && [ ! -f $(call q,BOARD_VENV)/pyvenv.cfg ] && [ -n "$$(ls -A $(call q,BOARD_VENV) 2>&1)" ]; then \
		echo "make $@: BOARD_VENV=$(BOARD_VENV) exists and is no virtual environment (it has no pyvenv.cfg), which this would remove and make again: give another BOARD_VENV" >&2; exit 2; \
	fi
	[ ! -f $(call q,BOARD_VENV)/pyvenv.cfg ] || rm -rf -- $(call q,BOARD_VENV)
	$(call q,PY310) -m venv $(BOARD_VENV)
	$(BOARD_VENV)/bin/pip install -q --upgrade pip
	$(BOARD_VENV)/bin/pip install -q -c constraints-board.txt -e . 'numpy<2' opencv-python-headless pytest pytest-benchmark pytest-timeout
	touch $@

test-board-py: ## the board-safe tests under Python 3.10 without torch or onnx, in .venv-board (BOARD_VENV=.venv-board PY310=path; skipped without 3.10)
	@py=$$($(FIND_PY310)); if [ -z "$$py" ]; then $(if $(PY310), \
		echo 'make test-board-py: PY310='$(call q,PY310)' is not a Python 3.10: give the path of one as PY310=/usr/bin/python3.10 or leave PY310 out to look for one' >&2; exit 2;, \
		echo "make test-board-py: skipped: no Python 3.10 (neither python3.10 on PATH nor pyenv's); install one or give PY310=path"; exit 0;) \
	fi; \
	if ! $(MAKE) -f $(call q,SELF) -q --no-print-directory BOARD_STAMP_GOAL=1 PY310="$$py" && ! "$$py" -c $(call q,INDEX_PROBE) >/dev/null 2>&1; then \
		echo "make test-board-py: skipped: .venv-board needs building and the package index (PIP_INDEX_URL, else PyPI) cannot be reached"; \
		exit 0; \
	fi; \
	$(MAKE) -f $(call q,SELF) --no-print-directory BOARD_STAMP_GOAL=1 PY310="$$py" && DPUPOSE_BOARD_PY=1 $(BOARD_VENV)/bin/pytest -q -m board_py

demo: $(STAMP) ## the main job on the shipped model with the emulated DPU; output in build/demo/
	$(BIN)/python -m dpupose.demo --out build/demo

BENCH_ARGS ?=
bench: $(STAMP) ## the original study's table on this machine -> build/bench/bench.json (BENCH_ARGS="--plan DIR ...")
	$(DPUPOSE) bench --out build/bench/bench.json $(BENCH_ARGS)

# The model `make compare` predicts FPS for: override with MODEL=path/to/dpu_part.onnx. By default the pose
# network's DPU part is exported with random weights (the performance does not depend on the weights).
MODEL ?= build/compare/pose_dpu.onnx
# A variable with a default given empty on make's command line (RUN_OUT=$(MY_OUT) with it unset) is that
# default, as an empty BOARD is for make hw: dpupose refuses an empty --out, --user or --config.
override MODEL := $(or $(MODEL),build/compare/pose_dpu.onnx)
BOARD ?= ultra96v2
# compare's board: an empty BOARD= (BOARD=$(MY_BOARD) with it unset) is the default, as it is for make hw
COMPARE_BOARD := $(or $(BOARD),ultra96v2)

build/compare/pose_dpu.onnx: | $(STAMP)
	$(DPUPOSE) zoo export pose_dpu --out $@

COMPARE_ARGS ?=
# DPU=my.toml on make's command line (as for make hw) adds that configuration to the comparison; DPU's default
# (make hw's configuration, set below) is not added. Read here, before the override below sets it.
COMPARE_DPU := $(if $(filter command line,$(origin DPU)),$(DPU))
# The default MODEL is made by the rule above; a MODEL given is not a make target (a name with a space would be two).
compare: $(STAMP) $(filter build/compare/pose_dpu.onnx,$(MODEL)) ## compare DPU configurations (predicted FPS, fit) -> build/compare/ (MODEL=x.onnx, default the pose network's DPU part; BOARD=ultra96v2 COMPARE_ARGS=--sweep; DPU, given: also compare that configuration, a .toml path or shipped name)
	$(DPUPOSE) dpu compare --board $(call q,COMPARE_BOARD) --model $(call q,MODEL) $(if $(COMPARE_DPU),--config $(call q,COMPARE_DPU)) --plot 'build/compare/$(call esc,COMPARE_BOARD).png' $(COMPARE_ARGS)
	tmp='build/compare/$(call esc,COMPARE_BOARD)-sweep.json.tmp'; trap 'rm -f -- "$$tmp"' EXIT; \
	$(DPUPOSE) dpu compare --board $(call q,COMPARE_BOARD) --model $(call q,MODEL) $(if $(COMPARE_DPU),--config $(call q,COMPARE_DPU)) --sweep --json > "$$tmp" && \
	mv -- "$$tmp" 'build/compare/$(call esc,COMPARE_BOARD)-sweep.json'

QUANT_OUT ?= build/quantized/model
override QUANT_OUT := $(or $(QUANT_OUT),build/quantized/model)
QUANT_ARGS ?=
quantize: $(STAMP) ## INT8 for the DPU: make quantize CHECKPOINT=path [CALIB=synthetic|mpii DATA_ROOT=dir QUANT_OUT=build/quantized/model QUANT_ARGS=...]
	@test -n $(call q,CHECKPOINT) || { echo "usage: make quantize CHECKPOINT=<checkpoint> [CALIB=synthetic|mpii DATA_ROOT=dir]" >&2; exit 2; }
	$(DPUPOSE) quantize --checkpoint $(call q,CHECKPOINT) --calib-data $(or $(CALIB),synthetic) \
		$(if $(DATA_ROOT),--data-root $(call q,DATA_ROOT)) --out $(call q,QUANT_OUT) $(QUANT_ARGS)

RUN_BACKEND ?= emulate
override RUN_BACKEND := $(or $(RUN_BACKEND),emulate)
RUN_OUT ?= build/run
override RUN_OUT := $(or $(RUN_OUT),build/run)
RUN_ARGS ?=
run: $(STAMP) ## split inference: make run PLAN=DIR SOURCE=images|image|video|camera:N [RUN_BACKEND=emulate|cpu|vart OVERLAY=dir RUN_OUT=build/run RUN_ARGS=...]
	@test -n $(call q,PLAN) -a -n $(call q,SOURCE) || { echo "usage: make run PLAN=<plan folder> SOURCE=<image folder, image, video or camera:N>" >&2; exit 2; }
	$(DPUPOSE) run --plan $(call q,PLAN) --source $(call q,SOURCE) --backend $(call q,RUN_BACKEND) --out $(call q,RUN_OUT) --pipeline \
		$(if $(OVERLAY),--overlay $(call q,OVERLAY)) $(RUN_ARGS)

# SD card and board (use 2). IMAGE: a PYNQ image (.img, .img.xz, .zip); DEVICE: the card (/dev/sdX) or an
# image file to write; OVERLAY (dpu.bit/.hwh/.xclbin folder) and MODEL_DIR (a split plan folder, the one holding
# plan.json: dpupose split's --out, or models/dpupose-synth/split): when given, they are staged onto a copy of
# IMAGE (build/sdcard/staged.img) and that copy is written.
IMAGE ?=
DEVICE ?=
OVERLAY ?=
MODEL_DIR ?=
BOARD_HOST ?= pynq
override BOARD_HOST := $(or $(BOARD_HOST),pynq)
BOARD_USER ?= xilinx
override BOARD_USER := $(or $(BOARD_USER),xilinx)
STAGED := build/sdcard/staged.img
# Writing a block device needs root; image files and staging do not, an image file on /dev/shm (a tmpfs) neither.
FLASH_SUDO = $(if $(filter /dev/%,$(filter-out /dev/shm/%,$(DEVICE))),$(if $(filter 0,$(shell id -u)),,sudo))

sdcard: $(STAMP) ## flash a PYNQ image: make sdcard IMAGE=x.img.xz DEVICE=/dev/sdX [OVERLAY=dir MODEL_DIR=dir]; no DEVICE: stage only -> build/sdcard/staged.img
	@test -n $(call q,IMAGE) || { echo "usage: make sdcard IMAGE=pynq.img.xz DEVICE=/dev/sdX [OVERLAY=dir MODEL_DIR=dir]" >&2; exit 2; }
	@test -n $(call q,DEVICE)$(call q,OVERLAY) || { echo "make sdcard: give DEVICE=/dev/sdX, or OVERLAY= MODEL_DIR= to stage" >&2; exit 2; }
	@test -z $(call q,OVERLAY)$(call q,MODEL_DIR) || { test -n $(call q,OVERLAY) && test -n $(call q,MODEL_DIR); } || { echo "make sdcard: give both OVERLAY= and MODEL_DIR=" >&2; exit 2; }
ifneq ($(OVERLAY)$(MODEL_DIR),)
	$(DPUPOSE) sdcard stage $(call q,IMAGE) --overlay $(call q,OVERLAY) --model $(call q,MODEL_DIR) --out $(STAGED)
endif
ifneq ($(DEVICE),)
	$(FLASH_SUDO) $(DPUPOSE) sdcard flash $(if $(OVERLAY)$(MODEL_DIR),$(STAGED),$(call q,IMAGE)) --device $(call q,DEVICE)
endif

DEPLOY_ARGS ?=
deploy: $(STAMP) ## copy overlay, model and package to a board: make deploy BOARD_HOST=pynq OVERLAY=dir MODEL_DIR=dir [BOARD_USER=xilinx DEPLOY_ARGS=--dry-run]
	@test -n $(call q,OVERLAY) && test -n $(call q,MODEL_DIR) || { echo "usage: make deploy BOARD_HOST=pynq OVERLAY=dir MODEL_DIR=dir" >&2; exit 2; }
	$(DPUPOSE) deploy --host $(call q,BOARD_HOST) --user $(call q,BOARD_USER) --overlay $(call q,OVERLAY) --model $(call q,MODEL_DIR) $(DEPLOY_ARGS)

# Hardware build (docs/hardware.md): DPU=<configuration> [BOARD=<board>] DPU_TRD=<DPUCZDX8G.tar.gz or folder>
# BOARD_REPO=<board files checkout> [I_KNOW=1: accept clocks above the board's safe limit]
# [HW_FLAGS="--from link --to report --force"]. BOARD is passed only when given on the command line.
DPU ?= u96v2-b1600-pynq
override DPU := $(or $(DPU),u96v2-b1600-pynq)
HW_ARGS = --config $(call q,DPU) $(if $(and $(filter command line,$(origin BOARD)),$(BOARD)),--board $(call q,BOARD)) \
	$(if $(DPU_TRD),--trd $(call q,DPU_TRD)) $(if $(BOARD_REPO),--board-repo $(call q,BOARD_REPO)) $(if $(I_KNOW),--i-know)

hw: $(STAMP) ## build build/hw/<DPU>/ dpu.bit .hwh .xclbin arch.json: make hw DPU_TRD=tar.gz BOARD_REPO=dir [DPU=u96v2-b1600-pynq BOARD (default: the configuration's) I_KNOW=1 HW_FLAGS=...] (Vivado/Vitis 2022.1; docs/hardware.md)
	$(DPUPOSE) hw build $(HW_ARGS) $(HW_FLAGS)

hw-check: $(STAMP) ## check a hardware build before the long tool run: config, fit, clocks, Tcl, tool versions, inputs (make hw's variables)
	$(DPUPOSE) hw check $(HW_ARGS)

clean: ## remove build/ -- hardware builds and SD images included (keeps .venv, .venv-board and runs/)
	rm -rf build .pytest_cache .ruff_cache
