# mmlab: two commands on a fresh clone.
#   make lab    set up .venv (if needed) and open the workbook in JupyterLab
#   make test   set up .venv (if needed) and run the whole test suite
#   make book   build the course as a website in _build/book/html (FAST=1: from FAST runs)
# Options: PORT=8888 (lab), NO_BROWSER=1 (lab, headless), PYTEST_ARGS="-k welcome" (test).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
# JupyterLab refuses to run as root unless told; containers and CI often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# This machine keeps the CPU build of torch 2.13.0 as a local wheel; use it when present.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: lab lab-args test install assign book clean-venv sandbox browser

install: $(STAMP) sandbox browser

# `mmlab grade` runs each submission in a bubblewrap sandbox (docs/instructor.md) and
# refuses to grade without it. Install it when we can (root with apt), else say how.
sandbox:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing bubblewrap (sandbox for mmlab grade)"; \
	  apt-get install -y -q bubblewrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; }; \
	else \
	  echo "NOTE: bubblewrap (bwrap) is not installed: 'mmlab grade' will refuse to grade until it is."; \
	  echo "      Install it with: sudo apt-get install bubblewrap   (or your system's package manager)"; \
	fi

# The dashboard's browser tests drive Debian's chromium through Playwright (never
# `playwright install`, which downloads a browser). Install it when we can, else say how.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (browser tests of mmlab dashboard)"; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	else \
	  echo "NOTE: chromium is not installed: the dashboard's browser tests will be skipped."; \
	  echo "      Install it with: sudo apt-get install chromium   (or your system's package manager)"; \
	fi

# Re-install only when the dependency list changes; a repeated `make test` starts at once.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(FIND_LINKS) "torch==2.13.0"
	$(PIP) install -q $(FIND_LINKS) -e ".[lab,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mmlab)" >/dev/null
	@touch $(STAMP)

# JupyterLab at the project root (chapters, exercises, your work/ folder and the book all
# reachable), opening START_HERE.md first (rendered: lab-settings/overrides.json). tests/test_lab_browser.py runs the same flags
# (`make -s lab-args`).
LAB_ARGS = --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/START_HERE.md \
	--LabApp.app_settings_dir=lab-settings \
	--ip=127.0.0.1 --port=$(PORT) $(if $(NO_BROWSER),--no-browser) $(ALLOW_ROOT)
lab: install
	$(BIN)/jupyter lab $(LAB_ARGS)

lab-args:
	@echo $(LAB_ARGS)

# Two pytest workers (one per core), each single-threaded: oversubscribed BLAS/torch threads
# made some fits 20x slower on 2 cores. Override with PYTEST_ARGS="-n 0" for one process.
PYTEST_ARGS ?= -n 2
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
test: install
	MPLBACKEND=Agg $(THREADS) $(BIN)/python -m pytest $(PYTEST_ARGS)

assign: install
	$(BIN)/mmlab assign

# The course as a static website (Sphinx + MyST-NB): chapters executed with papermill and
# cached in _build/cache (a rebuild re-runs only chapters whose code changed). FAST=1 builds
# it from FAST runs (CI); JOBS=N runs N chapters at once.
JOBS ?= 1
book: install
	$(THREADS) $(BIN)/mmlab book $(if $(FAST),--fast) -j $(JOBS)

clean-venv:
	rm -rf $(VENV)
