# f0mesh — every target installs what it needs itself (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
DEB_PACKAGES := postgresql chromium coturn iputils-ping nftables iproute2 procps

.PHONY: .venv deps test test-heavy demo bench lint lock clean

.venv: $(VENV)/.installed

# The runtime dependencies at requirements.lock's versions, so the tests run what the image ships.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,sim,postgres]' -c requirements.lock
	touch $@

# Debian packages for the tests and the demo; apt runs only when one is missing.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: deps .venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

# The larger sizes of the reliability tests (12 nodes killing 3, 3x16 MiB stalled chunks, 6 kill -9
# rounds): the same properties as their lighter variants in `make test`, at a size CI's time cannot hold.
test-heavy: deps .venv
	$(BIN)/python -m pytest -m heavy $(ARGS)

demo: .venv
	$(BIN)/f0mesh demo $(ARGS)

bench: deps .venv
	$(BIN)/python -m bench $(ARGS)

lint: .venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# requirements.lock pins what the image installs (deploy/Dockerfile): every runtime dependency and
# the postgres extra, resolved by pip in a throwaway venv from pyproject's ranges.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q '.[postgres]'
	{ echo "# pip freeze of '.[postgres]' on Python $$(.lock-venv/bin/python -c 'import platform; print(platform.python_version())'): make lock"; \
	  .lock-venv/bin/python -m pip freeze --exclude f0mesh; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache build *.egg-info
