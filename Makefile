# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates its virtual environment from nothing, with the exact versions of constraints.txt.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

# Debian packages beyond a minimal Debian 12 (.ci/system-packages installs the missing ones as root, else names
# them): Python 3.11 with venv, and the GL / EGL / GLib libraries that the wheels of opencv (cv2) and mediapipe
# link against. The tests add a C++ compiler and Python's headers (DeepSpeed builds its CPU op on first use) and
# Chromium with its driver (the browser tests).
SYSTEM_PACKAGES := python3.11 python3.11-venv libgl1 libegl1 libgles2 libglib2.0-0
TEST_PACKAGES := g++ python3.11-dev chromium chromium-driver

.PHONY: demo test lint clean test-packages bench wheel-check resolve-check

$(BIN)/.installed: pyproject.toml constraints.txt
	.ci/system-packages $(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	# Meta's ImageBind model code, the reference of tests/fidelity (CC BY-NC-SA: installed for tests, never vendored).
	# --no-deps: its data code's requirements (torchaudio, pytorchvideo, decord) do not fit torch 2.14; its model
	# modules need only what the `reference` extra installs.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt imagebind-unofficial
	touch $@

demo: $(BIN)/.installed
	$(BIN)/microemo demo --output-dir runs/demo

test-packages:
	.ci/system-packages $(TEST_PACKAGES)

test: test-packages $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest
	$(MAKE) wheel-check
	$(MAKE) resolve-check

# The installed package is whole: the wheel, installed outside the repository (dependencies borrowed from
# $(VENV)), runs demo --quick, predict, evaluate and app --export-space (about 3 minutes on 2 cores).
wheel-check: $(BIN)/.installed
	.ci/wheel-check $(VENV)

# pyproject's ranges without constraints.txt resolve to no known-broken set (a pip dry run; needs the index).
resolve-check: $(BIN)/.installed
	.ci/resolve-check $(VENV)

# Every benchmark, one report: BENCHMARKS.md and benchmarks/results.json (about 25 minutes on 2 cores).
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs
