# netsculpt — two commands on a fresh machine: `make demo` and `make test`.
# The virtual environment lives outside the work tree, keyed by a hash of the dependency pins, so CI
# and later checkouts on the same machine reuse it while a fresh machine builds it once.
PYTHON ?= python3
LOCK := requirements/lock.txt
PIN_HASH := $(shell cat $(LOCK) | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/netsculpt/venv-$(PIN_HASH)
PY := $(VENV)/bin/python
RUN := PYTHONPATH=$(CURDIR)/src $(PY)
PYTEST_ARGS ?=

.PHONY: venv demo test lint format bench bench-deps clean-venv venv-path

$(VENV)/.complete: $(LOCK)
	@bash tools/make_venv.sh "$(PYTHON)" "$(VENV)" "$(LOCK)"

venv: $(VENV)/.complete

venv-path:
	@echo $(VENV)

demo: venv
	$(RUN) -m netsculpt compress

test: venv
	$(RUN) -m ruff check src tests benchmarks examples tools
	$(RUN) -m ruff format --check src tests benchmarks examples tools
	# two processes: a long serial run that had loaded OpenVINO and inductor segfaulted later, at random
	# places; the runtime tests get a process of their own (exit 5 = nothing selected by PYTEST_ARGS)
	$(RUN) -m pytest $(PYTEST_ARGS) -m "not runtimes" || [ $$? -eq 5 ]
	$(RUN) -m pytest $(PYTEST_ARGS) -m runtimes || [ $$? -eq 5 ]

lint: venv
	$(RUN) -m ruff check src tests benchmarks examples tools

format: venv
	$(RUN) -m ruff format src tests benchmarks examples tools
	$(RUN) -m ruff check --fix src tests benchmarks examples tools

bench-deps: venv
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt

bench: bench-deps
	@failed=""; for f in benchmarks/[!_]*.py; do echo "== $$f"; $(RUN) $$f || failed="$$failed $$f"; done; \
	if [ -n "$$failed" ]; then echo "missed their bars or failed:$$failed"; exit 1; fi

clean-venv:
	rm -rf "$(VENV)"
