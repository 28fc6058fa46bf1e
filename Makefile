# The two commands: `make run` (set up and start the app) and `make test` (set up and run every test).
# `make serve` runs it for a team: on the network, with sign-in (see README, "Running it for a team").
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

ADDRESS ?= 0.0.0.0
PORT ?= 8501

.PHONY: run serve worker test bench setup browser postgres clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium and its driver for the real-browser test (Playwright drives /usr/bin/chromium; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || echo "could not install chromium"; }

# Debian's PostgreSQL server binaries, for the tests that run the queue against a real PostgreSQL (each test starts
# a throw-away server in a temp folder; nothing is configured system-wide).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ (apt-get update -qq && apt-get install -y -qq postgresql) || echo "could not install postgresql"; }

# WORKERS: auto (one training worker per GPU, else one on the CPU), a number of CPU workers, or 0 (workers elsewhere).
WORKERS ?= auto

# Local mode: one person, this machine only (127.0.0.1), no sign-in; its training workers start and stop with it.
run: $(STAMP)
	$(BIN)/python -m cf_core fetch
	COLLAB_STUDIO_MODE=local $(BIN)/python -m cf_core up --workers $(WORKERS) -- \
		$(BIN)/streamlit run server.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.allowedHosts localhost --server.allowedHosts 127.0.0.1 --server.allowedHosts ::1

# Team mode: listens on $(ADDRESS):$(PORT) and asks everyone to sign in (users: python -m cf_core users add NAME).
# HOSTS: the host names people use to reach it (DNS-rebinding guard), e.g. make serve HOSTS="recs.example.com".
HOSTS ?= *
serve: $(STAMP)
	$(BIN)/python -m cf_core fetch
	COLLAB_STUDIO_MODE=team $(BIN)/python -m cf_core up --workers $(WORKERS) -- \
		$(BIN)/streamlit run server.py --server.address $(ADDRESS) --server.port $(PORT) \
		$(foreach h,$(HOSTS),--server.allowedHosts '$(h)')

# A training worker on this machine against a shared store (COLLAB_STUDIO_DB, COLLAB_STUDIO_RUNS): DEVICE=cuda:1 etc.
DEVICE ?= auto
worker: $(STAMP)
	$(BIN)/python -m cf_core worker --device $(DEVICE)

test: $(STAMP) browser postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs tests

bench: $(STAMP)
	$(BIN)/python bench/bench_ml100k.py

clean:
	rm -rf $(VENV)
