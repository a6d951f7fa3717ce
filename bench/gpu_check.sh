#!/usr/bin/env bash
# The GPU check, as run on a lent CUDA machine (no network there). The wheels this project
# needs beyond that machine's own PyTorch image travel in .whl/; the Lee corpus, the SmolLM2
# architecture (config + tokenizer, no weights: the 64 MiB a call may carry cannot hold them)
# and a small 4-layer Llama with SmolLM2's tokenizer travel in .devdata/.
#   tests   the library's device tests (engine, optimizer, parity preflight on CUDA vs CPU)
#   bench   bench/sweep.py on CUDA and on the machine's CPU, random-weight SmolLM2 architecture
#   claims  a reduced claims grid with --device cuda on that architecture
#   tiny    every claim (C10's SAE training and C12's random-init control included) with
#           --device cuda on the small Llama
# Usage: bash bench/gpu_check.sh [step ...]   (all four by default); compare each claims run with
# the same command on a CPU through `mcis-claims compare`.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
STEPS=${*:-tests bench claims tiny}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MCIS_CLAIMS_CACHE=$PWD/.devdata/cache HF_HUB_OFFLINE=1
MODEL=random:.devdata/smollm2-arch
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, transformer_lens; print('torch', torch.__version__, 'transformers', transformers.__version__)"
for step in $STEPS; do
  case $step in
    tests)
      python3 -m pytest tests/test_device.py tests/test_sweep.py tests/test_parity.py tests/test_optimize.py -q \
          -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -4 ;;
    bench)
      python3 bench/sweep.py --model "$MODEL" --device cuda --prompts 1024 --naive-prompts 8 2>&1 | tee "$OUT/bench-cuda.log"
      python3 bench/sweep.py --model "$MODEL" --device cpu --prompts 64 --naive-prompts 4 2>&1 | tee "$OUT/bench-cpu.log" ;;
    claims)
      python3 -m pytest claims/ -p no:cacheprovider --models "$MODEL" --layers 1,15 --n-prompts 64 \
          -k "not C10 and not C12" --device cuda --report-dir /tmp/claims-gpu 2>&1 | tee "$OUT/claims.log" | tail -30
      cp /tmp/claims-gpu/results.json "$OUT/results.json" ;;  # figures stay: at most 8 files come back
    tiny)
      python3 -m pytest claims/ -p no:cacheprovider --models .devdata/tiny-llama --n-prompts 64 \
          --device cuda --report-dir /tmp/tiny-gpu 2>&1 | tee "$OUT/tiny.log" | tail -45
      cp /tmp/tiny-gpu/results.json "$OUT/tiny-results.json" ;;
  esac
done
