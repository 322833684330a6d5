# Two commands on a fresh machine: `make demo` runs the pipeline on local Kafka + Redis, `make test` the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-aggregate install-dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	deploy/local/install-deps.sh
	touch $@

$(VENV)/.aggregate: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install -q -e ".[aggregate,dashboard]"
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install -q -e ".[aggregate,dashboard,offline,loadtest,dev]"
	deploy/local/install-deps.sh --browser
	touch $@

install: $(VENV)/.runtime          ## the plain runtime: worker, produce, tail, topics, local Kafka and Redis
install-aggregate: $(VENV)/.aggregate  ## plus the aggregator (faust-streaming) and the dashboard
install-dev: $(VENV)/.dev          ## everything, including the offline stack (torch) and Chromium for tests

demo: install-aggregate            ## local Kafka + Redis, topics, 2 workers, aggregator, dashboard, sample posts
	$(BIN)/stream-ner demo

test: install-dev                  ## unit + integration tests on a real local Kafka broker and Redis
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check stream_ner tests loadtest
	$(BIN)/ruff format --check stream_ner tests loadtest
	$(BIN)/mypy

clean:
	rm -rf $(VENV) deploy/local/kafka/.libs deploy/local/.run
