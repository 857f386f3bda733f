# onair — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench clean node-deps

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

test: $(STAMP) node-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Each line prints one JSON object; methods and targets are in each script's docstring.
bench: $(STAMP)
	$(BIN)/python bench/tokens.py builder
	$(BIN)/python bench/tokens.py http
	$(BIN)/python bench/chat.py
	$(BIN)/python bench/fanout.py --subs 1000 --rate 100
	$(BIN)/python bench/fanout.py --subs 5000 --rate 20
	$(BIN)/python bench/fanout.py --idle 10000
	$(BIN)/python bench/broker.py
	$(BIN)/python bench/telemetry.py

clean:
	rm -rf $(VENV) onair-data .pytest_cache test-output
