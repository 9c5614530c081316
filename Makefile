# renkei — the two commands in README.md are `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
SIZE ?= small
# the suite runs on this many processes (pytest-xdist); CI machines have 2 cores
TEST_WORKERS ?= 2

.PHONY: run test check lint typecheck setup browser migrate demo clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (renkei needs Python 3.11)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's chromium for the Playwright UI tests (never a browser downloaded by Playwright).
browser:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || missing="$$missing fonts-ipafont-gothic"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the browser tests"; \
	  SUDO=""; [ "$$(id -u)" = "0" ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

migrate: $(STAMP)
	$(BIN)/renkei db upgrade

demo: migrate
	$(BIN)/renkei demo load --size $(SIZE) --if-empty

run: demo
	$(BIN)/renkei serve --host $(HOST) --port $(PORT) --print-demo-login

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard src tests bench)
	$(BIN)/ruff format --check $(wildcard src tests bench)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) renkei.db renkei.db-wal renkei.db-shm .renkei-demo-login
