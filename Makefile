# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-pure test-fast lint format bench peers system-deps viewer viewer-for-tests browse clean

$(STAMP): pyproject.toml setup.py $(wildcard pacscore/_ext/*.pyx)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

system-deps:
	@sh scripts/system-deps.sh

demo: $(STAMP)
	$(PY) -m benchmarks.demo --archive demo-archive

# The OHIF viewer that `pacscore serve web --viewer` serves (docs/viewer.md): Debian's npm when
# it is missing (as root), then the pinned build into the per-user cache (`pacscore viewer path`).
viewer: $(STAMP)
	@sh scripts/system-deps.sh npm
	$(VENV)/bin/pacscore viewer install

# The demo archive in the viewer: builds it once (`make demo` rebuilds it), then serves it.
BROWSE_PORT ?= 8042
browse: viewer
	test -d demo-archive || $(MAKE) demo
	@echo "open http://127.0.0.1:$(BROWSE_PORT)/ in a browser (Ctrl-C stops the server)"
	$(VENV)/bin/pacscore serve web --archive demo-archive --viewer --port $(BROWSE_PORT)

# tests/test_viewer_browser.py needs the viewer: fetched before the tests wherever npm is
# (system-deps installs it as root on Debian); a failed fetch fails the run, never a silent skip.
viewer-for-tests: $(STAMP) system-deps
	@if command -v npm >/dev/null 2>&1; then $(VENV)/bin/pacscore viewer install; \
	else echo "note: npm is missing, so the viewer is not fetched; the browser tests will skip"; fi

# ruff (lint) and mypy (types of pacscore/), as configured in pyproject.toml; both keep caches
# (.ruff_cache, .mypy_cache), so a second run checks only what changed.
lint: $(STAMP)
	$(VENV)/bin/ruff check pacscore benchmarks tests
	$(VENV)/bin/ruff format --check pacscore benchmarks tests
	$(VENV)/bin/mypy

# Rewrites files in place: not part of `test`.
format: $(STAMP)
	$(VENV)/bin/ruff format pacscore benchmarks tests

# The whole suite twice, as msgpack does: with the compiled twins live, then with PACSCORE_PURE=1
# (the pure-Python twins: matcher, codec, readers, adapters and stores included).
test: lint $(STAMP) system-deps viewer-for-tests
	$(PY) -m pytest -q tests
	PACSCORE_PURE=1 $(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not interop and not slow" tests

bench: $(STAMP)
	$(PY) -m benchmarks.run --instances 50000

peers: $(STAMP)
	$(PY) -m benchmarks.peers --instances 50000

clean:
	rm -rf build dist *.egg-info demo-archive demo-data .pytest_cache .hypothesis
	find pacscore -name '*.so' -delete; find pacscore/_ext -name '*.c' -delete
