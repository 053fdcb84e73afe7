#!/usr/bin/env bash
# `make gpu-check` on the GPU machine (bench/README.md "GPU check"): install what .gpu_bundle/ carries
# (make gpu-bundle fills it here) over the machine's own torch / transformers / lightning, put ftlab on
# PYTHONPATH (its pyproject pins Python 3.11 and torch 2.13, so no `pip install -e .` over the
# machine's 3.12 and 2.11), point ftlab at the carried data and tokenizer, and run
# `python -m bench.gpu_check`. Reports go to $OUT (the device tool's folder that comes back), else
# bench/results. Extra arguments go to bench.gpu_check (--dry-run, --reps, --budget, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUNDLE=${GPU_BUNDLE:-.gpu_bundle}
SITE=${GPU_SITE:-/tmp/ftlab-gpu-site}
if [ ! -d "$BUNDLE/wheels" ]; then
  echo "error: $BUNDLE/wheels is missing: run make gpu-bundle on the development machine and carry $BUNDLE" >&2
  exit 2
fi
BUNDLE=$(cd "$BUNDLE" && pwd)
started=$(date +%s)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  "$BUNDLE"/wheels/*.whl 2>&1 | grep -v "Running pip as the 'root' user" || true
test -d "$SITE/hydra" || { echo "error: the bundle's wheels did not install into $SITE" >&2; exit 2; }
echo "[gpu-check] installed $(ls "$BUNDLE"/wheels | wc -l) carried wheels into $SITE in $(( $(date +%s) - started )) s" \
     "($(du -sh "$BUNDLE" | cut -f1) bundle)"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FTLAB_DATA_DIR="$BUNDLE/data" FTLAB_CACHE_DIR=${FTLAB_CACHE_DIR:-/tmp/ftlab-gpu-cache}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec "$PY" -m bench.gpu_check --tokenizer "$BUNDLE/tokenizer" --out "${OUT:-bench/results}" "$@"
