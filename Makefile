# The two commands a user needs: `make app` and `make test`. Both create or refresh .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1

.PHONY: setup app test lab bench clean

setup: $(STAMP)

# Re-runs only when the dependency lists change; the torch build is chosen in requirements-torch.txt.
$(STAMP): pyproject.toml requirements-torch.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-torch.txt
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

app: setup
	$(BIN)/python app.py --host $(HOST)

test: setup
	LLADA_PLAY_QUICK=1 $(BIN)/python -m pytest

# As root (a container, a lab VM) Jupyter refuses to start without --allow-root: it is added then. Kernels wait
# passively between OpenMP tasks: spinning threads made a notebook 10x slower while anything else ran (app.py).
lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name llada-play --display-name "llada-play" >/dev/null
	OMP_WAIT_POLICY=PASSIVE $(BIN)/jupyter lab --ip $(HOST) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

bench: setup
	$(BIN)/python benchmarks/sampler_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
