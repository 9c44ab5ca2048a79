# lamina developer entry points.
#   make run    set up a virtualenv and start the server on $(HOST):$(PORT)
#   make test   set up, lint, type-check and run the whole test suite
#   make lint | make bench | make clean | make distclean
# Everything below is overridable: make test PY=python3.12 PYTEST_ARGS='-k deploy'

VENV ?= .venv
PY ?= python3
HOST ?= 127.0.0.1
PORT ?= 9000
DATA_DIR ?= ./.lamina
PYTEST_ARGS ?=
# Debian packages the tests need, installed when missing and we are root with apt-get:
# curl for the shell custom-runtime test, nodejs for the nodejs runtimes.
APT_PACKAGES ?= curl nodejs
BENCH_APT_PACKAGES ?= wrk
APT_GET ?= apt-get

MIN_PYTHON := 3.11
VPY := $(VENV)/bin/python
# Setup reruns when pyproject.toml is newer than this; it lives in the venv so deleting the venv resets it.
STAMP := $(VENV)/.lamina-setup.stamp
# ruff rejects paths that do not exist, and git does not keep empty directories.
LINT_PATHS = $(wildcard src tests bench)

.DELETE_ON_ERROR:
.PHONY: setup apt run test lint bench clean distclean

# $(call apt_ensure,packages): install the Debian packages among these that are missing.
# Off Debian, or when not root, it only says what is missing: tests needing them will tell.
define apt_ensure
	@missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v $(firstword $(APT_GET)) >/dev/null 2>&1; then \
			echo "Installing Debian packages:$$missing"; \
			$(APT_GET) update && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y --no-install-recommends $$missing; \
		else \
			echo "warning: missing Debian packages:$$missing (not root or no apt-get; install them yourself)" >&2; \
		fi; \
	fi
endef

setup: apt $(STAMP)

apt:
	$(call apt_ensure,$(APT_PACKAGES))

$(STAMP): pyproject.toml
	@if [ ! -x "$(VPY)" ]; then \
		command -v "$(PY)" >/dev/null 2>&1 || { echo "error: $(PY) not found; install Python >= $(MIN_PYTHON) or pass PY=/path/to/python3.x" >&2; exit 1; }; \
	fi
	@py="$(PY)"; [ -x "$(VPY)" ] && py="$(VPY)"; \
	"$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: lamina needs Python >= $(MIN_PYTHON); $$py is $$("$$py" -V 2>&1)." >&2; \
		echo "       Pass PY=python3.12 (or another >= $(MIN_PYTHON)); if $(VENV) was made with it, make distclean first." >&2; \
		exit 1; }
	@# Debian splits venv/ensurepip out of python3; fetch it rather than fail on a fresh machine.
	@if [ ! -x "$(VPY)" ] && ! "$(PY)" -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory apt APT_PACKAGES="python$$("$(PY)" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"; \
	fi
	@[ -x "$(VPY)" ] || { echo "Creating $(VENV) with $$("$(PY)" -V 2>&1)"; "$(PY)" -m venv "$(VENV)"; }
	@# A venv made without pip (uv, --without-pip, an interrupted run) gets one.
	@"$(VPY)" -m pip --version >/dev/null 2>&1 || "$(VPY)" -m ensurepip --upgrade
	@echo "Installing lamina (editable) and its test tools into $(VENV)…"
	"$(VPY)" -m pip install --disable-pip-version-check --quiet -e '.[test]'
	@touch "$@"

run: setup
	exec "$(VENV)/bin/lamina" serve --host "$(HOST)" --port "$(PORT)" --data-dir "$(DATA_DIR)"

test: setup
	"$(VENV)/bin/ruff" check $(LINT_PATHS)
	"$(VENV)/bin/mypy"
	@# pytest exits 5 when it collected nothing; that is a broken suite, not a pass.
	@echo '$(VENV)/bin/pytest -q $(PYTEST_ARGS)'
	@"$(VENV)/bin/pytest" -q $(PYTEST_ARGS) || { rc=$$?; \
		[ $$rc -ne 5 ] || echo "error: pytest collected no tests" >&2; exit $$rc; }

lint: setup
	"$(VENV)/bin/ruff" check $(LINT_PATHS)
	"$(VENV)/bin/ruff" format --check $(LINT_PATHS)
	"$(VENV)/bin/mypy"

bench: setup
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	"$(VPY)" bench/run.py

# Build and tool litter only; the server's data ($(DATA_DIR)) is never touched.
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src tests $(wildcard bench) -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
