# The two commands: `make run` (set up and start the app) and `make test` (set up and run every test).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench setup browser clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium and its driver for the real-browser test (Playwright drives /usr/bin/chromium; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || echo "could not install chromium"; }

run: $(STAMP)
	$(BIN)/python -m cf_core fetch
	$(BIN)/streamlit run app.py --server.port 8501

test: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/bench_ml100k.py

clean:
	rm -rf $(VENV)
