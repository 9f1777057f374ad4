# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates its virtual environment from nothing, with the exact versions of constraints.txt.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean browser bench wheel-check resolve-check

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	# Meta's ImageBind model code, the reference of tests/fidelity (CC BY-NC-SA: installed for tests, never vendored).
	# --no-deps: its data code's requirements (torchaudio, pytorchvideo, decord) do not fit torch 2.14; its model
	# modules need only what the `reference` extra installs.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt imagebind-unofficial
	touch $@

demo: $(BIN)/.installed
	$(BIN)/microemo demo --output-dir runs/demo

# The browser tests drive Debian's Chromium (selenium + chromedriver); installed here when missing and root.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "note: no chromium/chromedriver (apt-get install chromium chromium-driver); the browser tests will skip"

test: $(BIN)/.installed browser
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
