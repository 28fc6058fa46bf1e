# The two commands: `make run` (set up and start the app) and `make test` (set up and run every test).
# `make serve` runs it for a team: on the network, with sign-in (see README, "Running it for a team").
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

ADDRESS ?= 0.0.0.0
PORT ?= 8501

.PHONY: run serve test bench setup browser clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium and its driver for the real-browser test (Playwright drives /usr/bin/chromium; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || echo "could not install chromium"; }

# Local mode: one person, this machine only (127.0.0.1), no sign-in.
run: $(STAMP)
	$(BIN)/python -m cf_core fetch
	COLLAB_STUDIO_MODE=local $(BIN)/streamlit run server.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.allowedHosts localhost --server.allowedHosts 127.0.0.1 --server.allowedHosts ::1

# Team mode: listens on $(ADDRESS):$(PORT) and asks everyone to sign in (users: python -m cf_core users add NAME).
# HOSTS: the host names people use to reach it (DNS-rebinding guard), e.g. make serve HOSTS="recs.example.com".
HOSTS ?= *
serve: $(STAMP)
	$(BIN)/python -m cf_core fetch
	COLLAB_STUDIO_MODE=team $(BIN)/streamlit run server.py --server.address $(ADDRESS) --server.port $(PORT) \
		$(foreach h,$(HOSTS),--server.allowedHosts '$(h)')

test: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/bench_ml100k.py

clean:
	rm -rf $(VENV)
