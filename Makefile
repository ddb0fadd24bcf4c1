# The two commands a newcomer needs (see README.md):
#   make demo   set everything up, then run the demo on an embedded SQLite store
#   make test   set everything up, then run ruff, mypy and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# every channel adapter is its own distribution (adapters/<name>/pyproject.toml), installed
# editable beside the core with its test extras, so `make test` tests them all
ADAPTERS := $(sort $(dir $(wildcard adapters/*/pyproject.toml)))

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml $(addsuffix pyproject.toml,$(ADAPTERS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach a,$(ADAPTERS),-e '$(a)[test]')
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/oohcore demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench adapters
	$(BIN)/ruff format --check src tests bench adapters

typecheck: $(STAMP)
	$(BIN)/mypy src/oohcore $(wildcard adapters/*/src)

# The PostgreSQL tests need a server: scripts/postgres-for-tests starts a throwaway one for the run
# (installing PostgreSQL first if it is missing and we are root), exports OOHCORE_TEST_POSTGRES_URL
# and stops it afterwards, even when pytest fails. Where it cannot, those tests skip and say why,
# or fail under OOHCORE_REQUIRE_POSTGRES=1 (CI). A URL already in the environment is used as is.
# Real peers from Debian's packages (OpenSSL for S/MIME, xmllint for the feed's XSD, headless
# Chromium for the HTML reports) are installed when missing (scripts/ensure-debian-packages).
DEBIAN_PEERS := openssl=openssl xmllint=libxml2-utils xmlsec1=xmlsec1 chromium=chromium

pytest: $(STAMP)
	scripts/ensure-debian-packages $(DEBIAN_PEERS)
	scripts/postgres-for-tests run -- $(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python bench/decide.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
