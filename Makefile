# The one command surface for people and CI. `make help` lists the targets.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install build demo lint test test-fast test-rust test-python test-versions wheel sizes-baseline bench bench-peers bench-compare clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python  ## create .venv, install shoal (release build of the Rust core) with dev deps
	$(BIN)/pip install -q "maturin>=1.7,<2"
	$(BIN)/pip install -q -e ".[dev]"  # maturin builds the Rust extension (release profile)
	touch $(VENV)/.installed

build:  ## rebuild the Rust extension in place (release)
	$(BIN)/maturin develop --release -q

demo: install  ## set up and run the example workflow end to end
	$(BIN)/shoal run examples/tree_reduction.py

lint:  ## ruff, mypy, clippy -D warnings, rustfmt --check, .pyi check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest shoal._core --allowlist .stubtest-allowlist
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check

test: test-rust test-python  ## cargo tests + the whole pytest suite, slow tests included (CI)

# A fresh clone's `make test` installs first; later runs reuse the venv (after a change to the
# Rust core, `make build` rebuilds the extension).
$(VENV)/.installed: pyproject.toml Cargo.toml
	$(MAKE) install
	touch $@

test-fast: $(VENV)/.installed  ## pytest without the slow tests (what plain `pytest` runs)
	$(BIN)/pytest $(PYTEST_ARGS)

test-rust:
	cargo test --workspace -q

# pyproject's addopts deselect slow tests; this later -m selects them again.
test-python: $(VENV)/.installed
	$(BIN)/pytest -m "slow or not slow" $(PYTEST_ARGS)

# The wheel a user would install (abi3: one build for every Python >= 3.11), and the sdist. Zig
# (the ziglang package) links it against glibc 2.17, so it is a real manylinux2014 wheel, not
# one tied to this machine's glibc; maturin finds zig as `python3 -m ziglang` on PATH.
wheel: $(BIN)/python  ## build the release wheel (manylinux2014, x86_64) and the sdist into dist/
	$(BIN)/pip install -q "maturin>=1.7,<2" "ziglang>=0.13"
	rm -rf dist
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/maturin build --release --zig \
	  --compatibility manylinux2014 --sdist -q -o dist

# Each other Python gets a fresh venv with the built wheel (not the source tree) and runs the
# whole suite against it. PYTHONS names the interpreters; a missing one fails under CI=true.
PYTHONS ?= 3.12 3.13
test-versions: wheel  ## the built wheel in a fresh venv per Python in PYTHONS, whole suite each
	@for v in $(PYTHONS); do \
	  py=$$(tools/find-python $$v) || { if [ -n "$$CI" ]; then exit 1; else continue; fi; }; \
	  echo "== Python $$v ($$py)"; rm -rf .venv-$$v; $$py -m venv .venv-$$v || exit 1; \
	  .venv-$$v/bin/pip install -q --upgrade pip && \
	  .venv-$$v/bin/pip install -q "$$(ls dist/shoal-*.whl)[dev]" && \
	  .venv-$$v/bin/python -c "import shoal, sys; assert 'site-packages' in shoal.__file__, shoal.__file__" && \
	  .venv-$$v/bin/pytest -p no:cacheprovider -m "slow or not slow" $(PYTEST_ARGS) || exit 1; \
	done

sizes-baseline: $(VENV)/.installed  ## record the encoded sizes of the standard graphs (tests/encoded_sizes.json)
	SHOAL_UPDATE_SIZES=1 $(BIN)/pytest -q -p no:cacheprovider tests/test_encoded_sizes.py -rs

# Each run is saved by commit (pytest-benchmark's storage: bench-results/history/<machine>/
# NNNN_<commit>_<date>.json, with machine and commit info and each bench's extra_info).
bench: install  ## benchmarks against Dask (installs the bench extra), each run saved by commit
	$(BIN)/pip install -q -e ".[dev,bench]"
	mkdir -p bench-results
	$(BIN)/pytest benches -q -s --benchmark-autosave \
	  --benchmark-storage=file://bench-results/history --benchmark-json=bench-results/latest.json

# Ray binds the host's interface address: the peer bench runs in a network namespace that has
# only loopback (root; `ip netns`), so every engine binds 127.0.0.1.
bench-peers: install  ## shoal vs Ray and Dask in one run, engines interleaved (in a loopback-only netns)
	$(BIN)/pip install -q -e ".[dev,bench]"
	ip netns add shoal-bench 2>/dev/null || true
	ip netns exec shoal-bench ip link set lo up
	ip netns exec shoal-bench $(BIN)/pytest benches/test_peers.py -q -s -p no:cacheprovider \
	  --benchmark-disable; rc=$$?; ip netns delete shoal-bench; exit $$rc

bench-compare:  ## the last two saved bench runs side by side (make bench saves one)
	@runs=$$(ls -t bench-results/history/*/*.json 2>/dev/null | head -2 | tac); \
	if [ "$$(echo "$$runs" | grep -c json)" -lt 2 ]; then \
	  echo "bench-compare needs two saved runs in bench-results/history: run make bench" >&2; \
	  exit 1; fi; \
	$(BIN)/pytest-benchmark compare $$runs --group-by=fullname --sort=name \
	  --columns=median,min,max,rounds

clean:
	rm -rf target dist .pytest_cache .mypy_cache .ruff_cache bench-results
