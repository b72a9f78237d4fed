# Two entry points (see README): `make book` sets up and builds the book; `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The CPU kernels the stored outputs were computed with (AVX2) are set in one place,
# tests/cpu_kernels.py, by every entry point that trains or executes chapters.

.PHONY: setup lint book test test-fast browser benchmark clean student

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

# ruff: lint and format check (pyproject.toml); the first step of `make test`.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Notebooks render from their stored outputs (CI re-executes them under nbval); warnings are errors.
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is built: open _build/html/index.html"

# Headless Chromium for the browser test of the built pages (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# Unit, parity and property tests, every chapter under nbval (strict), and the built pages in a browser,
# on two workers pinned to a core each (tests/workers.py: the chapters compute the same numbers);
# the 20 slowest tests are listed at the end, to keep an eye on the suite's time.
test: lint book browser
	$(BIN)/python -m pytest tests chapters --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider --durations=20 \
	    -n 2 $(PYTEST_ARGS)

# The Python tests alone, without notebooks, the browser or the tests marked slow (CI runs those too).
test-fast: setup
	$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

# The student edition: every chapter without its solutions, an empty answer cell per exercise, the check cells
# kept (tools/exercises.py), in _build/student/chapters/. The folder is a small Jupyter Book of its own
# (`jupyter-book build _build/student`); the Pages workflow publishes it at <site>/student/ and on the
# branch student-edition, which the notebooks' Colab badges open.
student: setup
	rm -rf _build/student
	$(BIN)/python tools/exercises.py --student _build/student chapters/[0-9][0-9]_*.ipynb

benchmark: setup
	$(BIN)/python benchmarks/encoder_throughput.py

clean:
	rm -rf _build
