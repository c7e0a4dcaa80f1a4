# The two commands of the README. Both run the idempotent set-up first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

setup:
	@./scripts/setup.sh

# The main job end to end on built-in defaults: the offline 65k vocabulary.
demo: setup
	$(BIN)/bvvtok build-vocab --preset 65k --out artifacts/vocab-65k --force
	$(BIN)/bvvtok encode --vocab artifacts/vocab-65k "hello the test, 你好世界"

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/compression.py
