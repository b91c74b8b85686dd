# TFL: every target sets itself up first, so each works alone on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins packages that clash with the trader's, so it lives in its own virtualenv.
TOOLS  := .venv-tools
TSTAMP := $(TOOLS)/.installed
TEMPLATE := infra/tfl-infrastructure.yaml
DEMO_DATA := build/demo-data
DEMO_OUT  := build/demo

.PHONY: setup tools browser demo test lint typecheck infra-lint pytest bench clean

setup: $(STAMP)

# Re-install only when the dependency pins or the project metadata change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

tools: $(TSTAMP)

$(TSTAMP): constraints-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -c constraints-tools.txt checkov
	@touch $(TSTAMP)

# The report's browser tests drive Debian's chromium (Playwright's own download is not used).
SUDO := $(shell test "$$(id -u)" -eq 0 || echo sudo)
browser:
	@test -x /usr/bin/chromium || ( $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium )

demo: setup
	@test -d $(DEMO_DATA)/15min || $(BIN)/tfl data synth --out $(DEMO_DATA) --symbols 40 --days 500 --seed 7
	$(BIN)/tfl backtest --data $(DEMO_DATA) --start 2023-06-01 --end 2024-12-31 --out $(DEMO_OUT)
	@echo "open $(DEMO_OUT)/report.html in a browser"

lint: setup
	$(BIN)/ruff check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

# The CloudFormation template: cfn-lint with the informational checks, then checkov
# (offline). A finding fails the build unless the template suppresses it with a reason.
infra-lint: setup tools
	$(BIN)/cfn-lint --include-checks I --regions ap-south-1 -- $(TEMPLATE)
	$(TOOLS)/bin/checkov --skip-download --quiet --compact --framework cloudformation -f $(TEMPLATE)

pytest: setup browser
	$(BIN)/pytest -n 2 -q

test: lint typecheck infra-lint pytest

bench: setup
	$(BIN)/python benchmarks/bench_backtest.py

clean:
	rm -rf $(VENV) $(TOOLS) build .pytest_cache .mypy_cache .ruff_cache
