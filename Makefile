# onair — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench soak clean node-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/onair serve

node-deps:
	@if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; fi

# Coverage of the whole suite, modules below 100% listed; [tool.coverage.report] sets the floor
# (a subset cannot reach it: `make test COV= PYTEST_ARGS=tests/unit` runs one without coverage).
COV ?= --cov=onair --cov-report=term:skip-covered
test: $(STAMP) node-deps
	$(BIN)/python -m pytest $(COV) $(PYTEST_ARGS)

# Each line prints JSON; methods and targets are in each script's docstring. Every benchmark
# also measures a calibration floor in the same run and prints ratio_to_floor (the machine may be
# shared: compare ratios, not raw rates). Fan-out figures are medians of --runs.
bench: $(STAMP)
	$(BIN)/python bench/hub_flush.py
	$(BIN)/python bench/tokens.py builder
	$(BIN)/python bench/tokens.py http
	$(BIN)/python bench/tokens.py limiter
	$(BIN)/python bench/chat.py
	$(BIN)/python bench/fanout.py --subs 1000 --rate 100 --runs 3
	$(BIN)/python bench/fanout.py --subs 5000 --rate 20 --runs 3
	$(BIN)/python bench/fanout.py --subs 5000 --rate 100 --runs 3
	$(BIN)/python bench/fanout.py --subs 1000 --rate 3000 --runs 3
	$(BIN)/python bench/fanout.py --idle 10000
	$(BIN)/python bench/broker.py
	$(BIN)/python bench/telemetry.py
	$(BIN)/python bench/cache.py --runs 3
	$(BIN)/python bench/table_size.py --db both
	$(BIN)/python bench/frames.py
	$(BIN)/python bench/reactions.py --viewers 5000 --rate 1 --duration 20 --runs 3

# Minutes of churn against `onair serve`; RSS, tables and metric series must stay flat.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --seconds 300

clean:
	rm -rf $(VENV) onair-data .pytest_cache test-output
