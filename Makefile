# Quick start: `make run` (set up + start the assistant), `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q

.PHONY: install install-test run test test-fast check train eval bench bench-scale clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0   # the CPU build, before anything that depends on torch
	$(PIP) install -e '.[st,test]'
	touch $@

install: $(VENV)/.installed

# Debian's Chromium drives the browser tests (Playwright's own download does not work offline);
# a Chinese font (WenQuanYi Micro Hei) lets the reader tests write real PDFs.
install-test: install
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)
	@fc-list :lang=zh | grep -q wqy-microhei || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fontconfig fonts-wqy-microhei >/dev/null)

run: install
	$(VENV)/bin/duty-assistant ui

# Lint, format, types and the import contracts (the core never reaches up; no cycles).
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install-test check
	$(PY) -m pytest -q

# What needs no index, no real documents and no subprocesses: about half a minute.
test-fast: install-test
	$(PY) -m pytest -q -m "not index and not slow"

# Re-fit the learned intent and relevance models on the train split (threshold chosen on dev).
train: install
	$(VENV)/bin/duty-assistant train

eval: install
	$(VENV)/bin/duty-assistant eval --split test

bench: install
	$(PY) benchmarks/bench_core.py

# 2, 50 and 500 townships (synthetic, from the real lists); ~20 min on 2 cores.
bench-scale: install
	$(PY) benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) var reports artifacts
