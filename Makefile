# The two commands of the README. Both run the idempotent set-up first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo experiment test bench

setup:
	@./scripts/setup.sh

# The main job end to end on built-in defaults: the offline 65k vocabulary, its glyph substrate (1024-dim as
# published, and 256-dim for the tiny model), verified; then the tiny model trained on it, frozen, on Debian's
# English and Chinese fortunes, and a sample generated from it.
demo: setup
	$(BIN)/bvvtok build-vocab --preset 65k --out artifacts/vocab-65k --force
	$(BIN)/bvvtok embed artifacts/vocab-65k
	$(BIN)/bvvtok embed artifacts/vocab-65k --dim 256 --out artifacts/vocab-65k-256 --force
	$(BIN)/bvvtok show artifacts/vocab-65k A the 中 -o artifacts/vocab-65k-glyphs.png --force
	$(BIN)/bvvtok encode --vocab artifacts/vocab-65k "hello the test, 你好世界"
	$(BIN)/bvvtok verify artifacts/vocab-65k
	$(BIN)/bvvtok verify artifacts/vocab-65k-256
	$(BIN)/python scripts/fortunes_corpus.py artifacts/corpus
	$(BIN)/bvvtok train --substrate artifacts/vocab-65k-256 --corpus artifacts/corpus --out artifacts/run-tiny --preset tiny --force
	$(BIN)/bvvtok generate artifacts/run-tiny --prompt "The meaning of life is" --max-new-tokens 60 --top-k 40 --seed 0

# The papers' ablation at the tiny scale: 5 arms x 3 seeds, trained, evaluated and reported (docs/experiment.md).
experiment: setup
	$(BIN)/python scripts/fortunes_corpus.py artifacts/corpus
	$(BIN)/bvvtok experiment run experiments/ablation-tiny.toml --out artifacts/ablation

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/compression.py
	$(BIN)/python bench/glyph_substrate.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/tokenizer_table.py
