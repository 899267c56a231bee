# The two commands: `make demo` and `make test`. Both create .venv with Python 3.11 when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint lock audit bench-solomon bench-storm bench-redispatch bench-scale bench-intake bench-quality \
	bench-fanout bench-relay bench-sync bench-storm-load clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# -c: the exact versions of requirements.lock, so every install (CI's included) gets what was tested and audited.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# Rewrites requirements.lock from what .venv has installed (see its header for moving a pin).
lock: $(BIN)/python
	$(BIN)/python tools/lock_deps.py

# Known advisories against requirements.lock: pip-audit when its service answers, else tools/advisories/.
audit: $(STAMP)
	$(BIN)/python tools/audit_deps.py

demo: $(STAMP)
	$(BIN)/gridcrew demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench-solomon: $(STAMP)
	$(BIN)/python bench/solomon.py --solver all --time-limit 10

bench-storm: $(STAMP)
	$(BIN)/python bench/storm.py --seed 1

bench-redispatch: $(STAMP)
	$(BIN)/python bench/redispatch.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

bench-intake: $(STAMP)
	$(BIN)/python bench/intake.py

bench-quality: $(STAMP)
	$(BIN)/python bench/quality.py

bench-fanout: $(STAMP)
	$(BIN)/python bench/fanout.py

bench-relay: $(STAMP)
	$(BIN)/python bench/relay.py

bench-sync: $(STAMP)
	$(BIN)/python bench/sync.py --devices 1000 --duration 60 --workers 2 --processes 2

bench-storm-load: $(STAMP)  # STORM_ARGS="--scale 0.1 --minutes 2" for a tenth
	$(BIN)/python bench/storm_load.py $(STORM_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
