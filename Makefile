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

# `make lowest`: a separate virtualenv with every direct dependency at its lower bound, and the fast tests
# (without the optional napari plugin, whose napari needs newer pydantic/scipy/superqt than the app does).
LOWEST ?= .venv-lowest
LPY    := $(LOWEST)/bin/python

.PHONY: install run napari demo test test-fast lint lowest clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The window needs the X11 libraries of Qt's xcb plugin: app.qt_deps names the Debian packages missing (and,
# as root with apt-get, installs them) before anything else is built.
run: install
	@$(PY) -m app.qt_deps --install
	$(VENV)/bin/im2im-active demo --project $(DEMO)

# napari comes with the dev extra (its tests run in `make test`); users install `im2im-active[napari]`
napari: install
	$(PY) -m app.napari $(DEMO) --demo

lint: install
	$(VENV)/bin/ruff check app annotation im2im_engine tests benchmarks resources
	$(VENV)/bin/lint-imports

# Two test processes, one torch thread each (OpenMP threads spin when cores are oversubscribed): 13.5 min for
# every test on 2 cores instead of 23 in one process. Tests that share a resource run in one process
# (`xdist_group` marks, `--dist loadgroup`). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup
test test-fast lowest: export OMP_NUM_THREADS ?= 1

test: lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q $(PYTEST_PARALLEL)

# The tests that train or start engine workers for more than a few seconds are marked slow: the rest.
test-fast: install
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q -m "not slow" $(PYTEST_PARALLEL)

lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LPY) -m pip install -q --upgrade pip
	$(PYTHON) .ci/lowest_constraints.py pyproject.toml > $(LOWEST)/constraints.txt
	$(LPY) -m pip install -q "$(TORCH)"
	$(LPY) -m pip install -q -c $(LOWEST)/constraints.txt -e ".[test]"
	$(LPY) -m pip check
	QT_QPA_PLATFORM=offscreen $(LPY) -m pytest -q -m "not slow" -p no:cacheprovider --ignore=tests/app/napari $(PYTEST_PARALLEL)

clean:
	rm -rf $(VENV) $(LOWEST) $(DEMO) .pytest_cache .ruff_cache
