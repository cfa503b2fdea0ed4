#!/usr/bin/env bash
# The multi-machine path, proven on one machine: two launchers, --num-machines 2, machine ranks 0
# and 1, both meeting at 127.0.0.1, train one model together (1 process each, DDP over gloo).
# Then the same training in one process with the same global batch, and the two models compared.
#
#   bash bench/multinode_local.sh MODEL_DIR [WORK_DIR]
#
# MODEL_DIR: any small BERT directory (e.g. one made by tests/conftest.py's tiny_model recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?give a model directory}
WORK=${2:-runs/multinode}
PYTHON=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false
rm -rf "$WORK" && mkdir -p "$WORK"
COMMON=(finetune --model "$MODEL" --train examples/sentiment/train.tsv --eval examples/sentiment/dev.tsv
        --epochs 3 --seed 1 --lr 1e-3 --max-length 48 --eval-batch-size 7)
MACHINES=(--num-processes 2 --num-machines 2 --main-process-ip 127.0.0.1 --main-process-port 29611)

start=$(date +%s)
"$PYTHON" -m bertkit "${COMMON[@]}" --batch-size 8 --output "$WORK/two-machines" "${MACHINES[@]}" --machine-rank 0 \
    > "$WORK/rank0.log" 2>&1 &
rank0=$!
"$PYTHON" -m bertkit "${COMMON[@]}" --batch-size 8 --output "$WORK/two-machines" "${MACHINES[@]}" --machine-rank 1 \
    > "$WORK/rank1.log" 2>&1
echo "machine rank 1 exit code: $?"
wait $rank0
echo "machine rank 0 exit code: $?  ($(( $(date +%s) - start )) s)"
OMP_NUM_THREADS=1 "$PYTHON" -m bertkit "${COMMON[@]}" --batch-size 16 --output "$WORK/one-process" > "$WORK/one.log" 2>&1
echo "one process exit code: $?"
"$PYTHON" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
work = Path(sys.argv[1])
for name in ("two-machines", "one-process"):
    m = json.loads((work / name / "metrics.json").read_text())
    print(f"{name:13s} steps {m['steps']}  accuracy {m['accuracy']:.4f}  macro_f1 {m['macro_f1']:.4f}  "
          f"evaluated {m['eval_examples']} examples from {m['eval_outputs']} outputs")
print("model directories:", sorted(p.name for p in (work / "two-machines").iterdir()))
print("rank 1 log lines:", len((work / "rank1.log").read_text().splitlines()))
a = load_file(str(work / "two-machines/model/model.safetensors"))
b = load_file(str(work / "one-process/model/model.safetensors"))
print("largest weight difference, two machines vs one process:", max(float((a[k] - b[k]).abs().max()) for k in a))
PY
