# dpupose: the verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DPUPOSE := $(BIN)/dpupose

.PHONY: help setup lint format test test-all demo clean sdcard deploy

help: ## list the verbs
	@echo "dpupose: MobileNetV2 pose estimation on the Ultra96-V2 (DPU + Cortex-A53)"
	@echo
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[host,dev]'
	touch $@

setup: $(STAMP) ## create .venv and install the package with host and dev extras (pinned)

lint: $(STAMP) ## ruff lint and format check (fails on any finding)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## rewrite the code in ruff's format
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) ## run the tests (tool- and board-only tests excluded)
	$(BIN)/pytest -q

test-all: $(STAMP) ## run the tests including the slow ones' full sizes
	$(BIN)/pytest -q -m 'not vivado and not vitis_ai and not board'

demo: $(STAMP) ## the main job on the shipped model with the emulated DPU; output in build/demo/
	$(BIN)/python -m dpupose.demo --out build/demo

# SD card and board (use 2). IMAGE: a PYNQ image (.img, .img.xz, .zip); DEVICE: the card (/dev/sdX) or an
# image file to write; OVERLAY (dpu.bit/.hwh/.xclbin folder) and MODEL (compiled model folder): when given,
# they are staged onto a copy of IMAGE (build/sdcard/staged.img) and that copy is written.
IMAGE ?=
DEVICE ?=
OVERLAY ?=
MODEL ?=
BOARD_HOST ?= pynq
BOARD_USER ?= xilinx
STAGED := build/sdcard/staged.img
# Writing a block device needs root; image files and staging do not.
FLASH_SUDO = $(if $(filter /dev/%,$(DEVICE)),$(if $(filter 0,$(shell id -u)),,sudo))

sdcard: $(STAMP) ## flash a PYNQ image: make sdcard IMAGE=x.img.xz DEVICE=/dev/sdX [OVERLAY=dir MODEL=dir]
	@test -n "$(IMAGE)" || { echo "usage: make sdcard IMAGE=pynq.img.xz DEVICE=/dev/sdX [OVERLAY=dir MODEL=dir]" >&2; exit 2; }
	@test -n "$(DEVICE)$(OVERLAY)" || { echo "make sdcard: give DEVICE=/dev/sdX, or OVERLAY= MODEL= to stage" >&2; exit 2; }
	@test -z "$(OVERLAY)$(MODEL)" || { test -n "$(OVERLAY)" && test -n "$(MODEL)"; } || { echo "make sdcard: give both OVERLAY= and MODEL=" >&2; exit 2; }
ifneq ($(OVERLAY)$(MODEL),)
	$(DPUPOSE) sdcard stage "$(IMAGE)" --overlay "$(OVERLAY)" --model "$(MODEL)" --out $(STAGED)
endif
ifneq ($(DEVICE),)
	$(FLASH_SUDO) $(DPUPOSE) sdcard flash "$(if $(OVERLAY)$(MODEL),$(STAGED),$(IMAGE))" --device "$(DEVICE)"
endif

deploy: $(STAMP) ## copy overlay, model and package to a board: make deploy BOARD_HOST=pynq OVERLAY=dir MODEL=dir
	@test -n "$(OVERLAY)" && test -n "$(MODEL)" || { echo "usage: make deploy BOARD_HOST=pynq OVERLAY=dir MODEL=dir" >&2; exit 2; }
	$(DPUPOSE) deploy --host "$(BOARD_HOST)" --user "$(BOARD_USER)" --overlay "$(OVERLAY)" --model "$(MODEL)"

clean: ## remove build outputs (keeps .venv and runs/)
	rm -rf build .pytest_cache .ruff_cache
