# Set-up and checks. `make run` opens the app on the demo project, `make napari` the napari plugin on it,
# `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo-project
# torch is pinned and installed first: pip would otherwise resolve monai's torch requirement to the newest
# build, which on Linux brings several GB of CUDA packages. 2.13.0 is the CPU build our machines carry.
TORCH  ?= torch==2.13.0

.PHONY: install run napari demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: install
	$(VENV)/bin/im2im-active demo --project $(DEMO)

# napari comes with the dev extra (its tests run in `make test`); users install `im2im-active[napari]`
napari: install
	$(PY) -m app.napari $(DEMO) --demo

lint: install
	$(VENV)/bin/ruff check app annotation im2im_engine tests benchmarks resources
	$(VENV)/bin/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
