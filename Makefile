# dass_nb: one-command install, train, test, docs, lab and benchmarks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install train data test docs reports lab bench export clean-nbs help
help:
	@echo "make install | train | test | docs | reports | lab | bench"

# Re-runs only when pyproject.toml or constraints.txt changes, so a second `make install` takes a second.
# constraints.txt holds the exact torch/torchvision tested; pyproject.toml only their range.
install: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The built-in synthetic benchmark, written in the real datasets' on-disk layouts.
data: install
	$(PY) -m data_prep.make_benchmark --root data

# The main job: train and evaluate one recipe on the built-in benchmark (papermill parameters in nbs/train.ipynb).
# --log-output prints the notebook's output as it runs: the stages, a progress line every 30 s and the results;
# TQDM_MININTERVAL: each progress bar redraws at most every 30 s, so its lines do not flood the terminal.
RECIPE ?= spcl-cpu
train: data
	mkdir -p runs
	TQDM_MININTERVAL=30 $(VENV)/bin/papermill nbs/train.ipynb runs/train-$(RECIPE).ipynb -p recipe $(RECIPE) --cwd nbs --log-output

# Every notebook through nbdev_test, plus the integration tests in tests/.
test: install
	bash tests/setup_test_deps.sh
	$(VENV)/bin/pytest

# A static, browsable docs site in _site/ built offline from the notebooks (nbdev_docs needs Quarto).
docs: install
	$(VENV)/bin/dass_site --dest _site
	@echo "open _site/index.html"

# The analysis notebooks executed on the runs in runs/ and stored with their outputs as docs pages (nbs/reports/).
reports: install
	$(VENV)/bin/dass_reports --runs_dir runs --dest nbs/reports

lab: install
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --no-browser $(ROOT_FLAG)

bench: install
	$(PY) bench/run.py

# Regenerate dass_nb/*.py from the notebooks and strip notebook noise.
export: install
	$(VENV)/bin/nbdev_export && $(VENV)/bin/nbdev_clean
