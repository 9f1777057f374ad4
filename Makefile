# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates its virtual environment from nothing, with the exact versions of constraints.txt.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/microemo demo --output-dir runs/demo

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs
