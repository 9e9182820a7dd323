#!/usr/bin/env bash
# The one short GPU check (issue 17, item 5): under 10 minutes on one 80 GiB GPU. Run from a checkout:
#   bash scripts/gpu_check.sh [OUT]          (default OUT: runs/gpu-check-<date>)
# Needs an environment with a CUDA build of torch and bitsandbytes (for NF4), e.g.
#   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 && pip install -e ".[dev]" bitsandbytes
# What it runs, each with its wall time into OUT/gpu-check.txt:
#   1. the test suite with CUDA visible (the CUDA-only tests run instead of skipping);
#   2. tli run --device cuda on the embedded model and lexicon, bf16, then NF4 (--quantization nf4), one seed each;
#   3. a 2-strategy tli compare (none, lora) on CUDA with the HF backend, then with backend: vllm when the vllm
#      package is installed, and whether their greedy summaries and XNLI choices are the same.
set -euo pipefail
OUT=${1:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.txt"
python - <<'PY' | tee "$LOG"
import torch
assert torch.cuda.is_available(), "no CUDA device visible: this script is for a GPU machine"
props = torch.cuda.get_device_properties(0)
print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, CUDA {torch.version.cuda}")
PY

step() {  # step NAME COMMAND...: run, time, and record the exit status
    local name=$1; shift
    local start=$SECONDS
    if "$@" > "$OUT/$name.log" 2>&1; then status=ok; else status="FAILED (exit $?)"; fi
    echo "$name: $status in $((SECONDS - start)) s  ($*)" | tee -a "$LOG"
}

step tests timeout 300 python -m pytest -q -x -p no:cacheprovider
step run-bf16 timeout 120 tli run --device cuda --dtype bfloat16 --seeds 0 --out "$OUT/run-bf16"
step run-nf4 timeout 120 tli run --device cuda --quantization nf4 --seeds 0 --out "$OUT/run-nf4"
cat > "$OUT/compare.yaml" <<'YAML'
name: gpu-check
models: [default]
strategies: [none, lora]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], max_new_tokens: 32, max_input_tokens: 256}
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw]}
train: {task: xlsum, language: sw}
budget: {steps: 12, batch_size: 4}
device: cuda
seeds: [0]
YAML
step compare-hf timeout 120 tli compare "$OUT/compare.yaml" --out "$OUT/compare-hf"
if python -c "import vllm" 2> /dev/null; then
    { cat "$OUT/compare.yaml"; echo "backend: vllm"; } > "$OUT/compare-vllm.yaml"
    step compare-vllm timeout 240 tli compare "$OUT/compare-vllm.yaml" --out "$OUT/compare-vllm"
    python - "$OUT" <<'PY' | tee -a "$LOG"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for cell in sorted((out / "compare-hf").glob("runs/*/*/seed-0/*/predictions.jsonl")):
    twin = out / "compare-vllm" / cell.relative_to(out / "compare-hf")
    a = [json.loads(x)["prediction"] for x in cell.open()]
    b = [json.loads(x)["prediction"] for x in twin.open()]
    print(f"{cell.parent.parent.parent.name}/{cell.parent.name}: {sum(x == y for x, y in zip(a, b))}/{len(a)} same predictions (HF vs vLLM)")
PY
else
    echo "compare-vllm: skipped (no vllm package)" | tee -a "$LOG"
fi
grep -h "GPU:\|: ok\|FAILED" "$LOG"
