# evse-gatekeeper: `make run` plays a vehicle session on the mock board; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSDEPS := $(VENV)/.sysdeps
CSMS := tests/csms/node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-unit test-integration lint format bench bench-storm bench-flood bench-slac bench-sep2 bench-approvals bench-ocpp bench-ocpp-flood bench-meter diagram clean install-system uninstall-system unit-check hil hil-virtual

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e '.[dev]' && touch $(STAMP)

# nftables (the bridge gate's filter) is a system package: installed here when missing and
# we are root with apt (the bridge tests skip with that reason otherwise)
$(SYSDEPS):
	@command -v nft >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q nftables >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nftables >/dev/null 2>&1; } || \
	      echo "make: could not install nftables: the bridge tests will skip"; \
	  else echo "make: nft not found and not root with apt: the bridge tests will skip"; fi; }
	@mkdir -p $(VENV) && touch $@

# the test CSMS (Node, ocpp-rpc) from its lock file; without npm the OCPP tests skip
$(CSMS): tests/csms/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/csms --silent --no-audit --no-fund && touch $@; \
	else echo "make: npm not found: the OCPP tests and make run's OCPP phase will skip"; fi

venv: $(STAMP) $(SYSDEPS) $(CSMS) ## create the venv with the dev extras (and nftables, the test CSMS)

run: $(STAMP) $(CSMS) ## start the firmware in mock mode and play a scripted vehicle session
	$(BIN)/python -m demo --config config/mock.toml

# The suites marked `parallel` (long, mostly waiting on the daemon's reactions, no timing of
# their own) run beside the rest on the second core; their output follows the main run's.
# pytest's exit 5 (no tests collected) counts as a failure in either half.
test: $(STAMP) $(SYSDEPS) $(CSMS) ## run the whole test suite (no tests collected counts as a failure)
	@side=$$(mktemp -d); \
	$(BIN)/python -m pytest -m parallel --basetemp="$$side/tmp" >"$$side/log" 2>&1 & pid=$$!; \
	$(BIN)/python -m pytest -m "not parallel"; rc=$$?; \
	wait $$pid; prc=$$?; \
	echo "--- the parallel suites (pytest -m parallel) ---"; cat "$$side/log"; rm -rf "$$side"; \
	for code in $$rc $$prc; do if [ $$code -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; done; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$prc

test-unit: $(STAMP) ## only the pure unit tests (fast)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP) ## interlock latency under a busy event loop (p50/p99/max)
	$(BIN)/python -m bench.interlock --config config/mock.toml

bench-storm: $(STAMP) ## interlock latency under the storm: CPU hogs, 2M-entry lists, 2030.5 flood
	$(BIN)/python -m bench.interlock --config config/mock.toml --load storm

bench-flood: $(STAMP) ## interlock latency while the PLC socket is flooded (needs root)
	$(BIN)/python -m bench.interlock --config config/mock.toml --load flood

bench-sep2: $(STAMP) ## 2030.5 over loopback TLS: handshake, GET /dcap, PUT DERSettings, RSS
	$(BIN)/python -m bench.sep2

bench-approvals: $(STAMP) ## approval lists of 100k, 1M and 5M entries: install, switch, stalls, lookup, RSS
	@rc=0; for n in 100000 1000000 5000000; do $(BIN)/python -m bench.approvals --entries $$n || rc=1; done; exit $$rc

bench-ocpp: $(STAMP) $(CSMS) ## CSMS setpoint -> DERControl published -> vehicle's Response, over loopback
	$(BIN)/python -m bench.ocpp

bench-ocpp-flood: $(STAMP) ## how long a hostile CSMS's floods hold the event loop (p50/p99/max)
	$(BIN)/python -m bench.ocpp_flood

bench-meter: $(STAMP) ## the meter's Modbus RTU poll at 9600/19200 baud (p50/p99/max) and the interlock with it
	$(BIN)/python -m bench.meter

bench-slac: $(STAMP) ## SLAC timings over veth in network namespaces (needs root)
	$(BIN)/python -m bench.slac --runs 50

hil: $(STAMP) ## the HIL suite on a physical rig: make hil PORT=/dev/ttyUSB0 [HIL_ARGS="--config F --control S"]
	@test -n "$(PORT)" || { echo "make hil: PORT is required (make hil PORT=/dev/ttyUSB0)" >&2; exit 2; }
	$(BIN)/python -m hil run --port $(PORT) $(HIL_ARGS)

hil-virtual: $(STAMP) ## the HIL scenario suite against the mock board's virtual rig (report in reports/)
	$(BIN)/python -m hil run --virtual

diagram: $(STAMP) ## regenerate docs/charger-machine.md from the state machine
	$(BIN)/python -m firmware.charger.diagram > docs/charger-machine.md

unit-check: $(STAMP) ## systemd-analyze verify + the unit's security exposure (<= 2.5)
	$(BIN)/python systemd/check_unit.py

install-system: ## on the board, as root: venv in /opt, config in /etc, the unit enabled
	sh systemd/install.sh

uninstall-system: ## remove the unit and the venv (keeps /etc/evse-gatekeeper and the state)
	sh systemd/install.sh --uninstall

clean: ## remove the venv, caches and the mock state directory
	rm -rf $(VENV) tests/csms/node_modules .state .pytest_cache .mypy_cache .ruff_cache .hypothesis reports
