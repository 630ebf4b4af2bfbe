# spear_lab — the two commands of the README:
#   make demo   the main job: the realtime_asr guest transcribes the bundled speech through
#               the embedded local server (no key, no network)
#   make test   everything the tests need, then the tests (pytest + nbval notebooks), then
#               the distributions: wheel + sdist built, the wheel installed into a fresh
#               venv outside the checkout and used from another folder
#               (scripts/check_installed.sh)
# Both do all the set-up on a fresh Debian machine: Debian packages (installed when run as
# root, else the exact apt-get line is printed), a virtual environment in .venv, the package.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEB_PACKAGES := clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt espeak-ng sox \
                pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 \
                pocketsphinx-testdata chromium
PYTEST_ARGS ?=

.PHONY: demo test deps venv guests clean-venv bench serve

demo: venv
	$(VENV)/bin/spear-lab demo

test: venv guests
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider $(PYTEST_ARGS)
	PY=$(PY) PYTHON=$(PYTHON) bash scripts/check_installed.sh

deps:
	@$(PYTHON) scripts/ensure_deb.py $(DEB_PACKAGES)

$(VENV)/.installed: pyproject.toml setup.py | deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,whisper,distributed]'
	touch $@

venv: deps $(VENV)/.installed

guests: deps
	$(MAKE) -C guests

bench: venv
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

serve: venv
	$(VENV)/bin/spear-lab serve

clean-venv:
	rm -rf $(VENV)
