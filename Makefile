# dpupose: the verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DPUPOSE := $(BIN)/dpupose

.PHONY: help setup lint format test test-all demo bench compare run clean

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

BENCH_ARGS ?=
bench: $(STAMP) ## the original study's table on this machine -> build/bench/bench.json (BENCH_ARGS="--plan DIR ...")
	$(DPUPOSE) bench --out build/bench/bench.json $(BENCH_ARGS)

# The model `make compare` predicts FPS for: override with MODEL=path/to/dpu_part.onnx. By default the pose
# network's DPU part is exported with random weights (the performance does not depend on the weights).
MODEL ?= build/compare/pose_dpu.onnx
BOARD ?= ultra96v2

build/compare/pose_dpu.onnx: $(STAMP)
	$(DPUPOSE) zoo export pose_dpu --out $@

compare: $(STAMP) $(MODEL) ## compare DPU configurations for the pose model (predicted FPS, fit) -> build/compare/
	$(DPUPOSE) dpu compare --board $(BOARD) --model $(MODEL) --plot build/compare/$(BOARD).png
	$(DPUPOSE) dpu compare --board $(BOARD) --model $(MODEL) --sweep --json > build/compare/$(BOARD)-sweep.json.tmp
	mv build/compare/$(BOARD)-sweep.json.tmp build/compare/$(BOARD)-sweep.json

RUN_BACKEND ?= emulate
RUN_OUT ?= build/run
run: $(STAMP) ## split inference: make run PLAN=DIR SOURCE=images|video|camera:N [RUN_BACKEND=emulate|cpu|vart]
	@test -n "$(PLAN)" -a -n "$(SOURCE)" || { echo "usage: make run PLAN=<plan folder> SOURCE=<images, video or camera:N>"; exit 2; }
	$(DPUPOSE) run --plan $(PLAN) --source $(SOURCE) --backend $(RUN_BACKEND) --out $(RUN_OUT) --pipeline

clean: ## remove build outputs (keeps .venv and runs/)
	rm -rf build .pytest_cache .ruff_cache
