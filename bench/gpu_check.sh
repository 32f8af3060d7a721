#!/usr/bin/env bash
# The GPU check of issue 24: one prepared script for a machine with CUDA.
#
# Usage: bash bench/gpu_check.sh [OUT] [EPOCHS]      (OUT default gpu-check, EPOCHS default 12)
# Environment: LABELS (default ../shared/data/ferplus/labels.csv), DEVICE (default cuda),
#              AMP (default on), WORKERS (default 8).
#
# 1. Trains ResNet-18 DMUE on the FER2013 Training split at 112 px on the GPU with mixed precision
#    (`curate run ... --device cuda --amp on`); the log prints the training images/s.
# 2. Scores the same faces with torchrun on every GPU (the shards meet once through gloo) and
#    checks the sharded file against the run's own scores.
# 3. Prints the detection figures against the FERPlus crowd (bench/score_quality.py).
# Everything goes to OUT; nothing is downloaded (the backbone trains from scratch). `python -m
# curate` is used throughout, so the package may sit on PYTHONPATH instead of being installed.
set -euo pipefail
OUT=${1:-gpu-check}
EPOCHS=${2:-12}
LABELS=${LABELS:-../shared/data/ferplus/labels.csv}
DEVICE=${DEVICE:-cuda}
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$DEVICE" != cpu ] && [ "$GPUS" -lt 1 ]; then
    echo "gpu_check: no CUDA device (torch.cuda.device_count() = 0); run it on a GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT"
python -c "import torch, torchvision, faiss; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'faiss', faiss.__version__)"
if command -v nvidia-smi > /dev/null; then  # the GPU, then its load and memory every 2 s while the script runs
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 2 > "$OUT/gpu-load.csv" &
    trap 'kill %1 2> /dev/null || true' EXIT
fi

start=$(date +%s)
python -m curate run "$LABELS" --split Training --backbone resnet18 --image-size 112 \
    --epochs "$EPOCHS" --device "$DEVICE" --amp "${AMP:-on}" --workers "${WORKERS:-8}" --no-load \
    --out "$OUT/r18-112" 2>&1 | tee "$OUT/run.log"
echo "curate run: $(( $(date +%s) - start )) s wall"

start=$(date +%s)
python -m torch.distributed.run --nproc_per_node "$(( GPUS > 0 ? GPUS : 1 ))" -m curate score "$OUT/r18-112" "$LABELS" --split Training \
    --device "$DEVICE" --out "$OUT/sharded.parquet" 2>&1 | tee "$OUT/score.log"
echo "torchrun (torch.distributed.run) curate score: $(( $(date +%s) - start )) s wall"
python - "$OUT" <<'PY'
import sys
import numpy as np
from curate import records
out = sys.argv[1]
a = records.read_scores(f"{out}/r18-112/scores.parquet").set_index("sample_id")
b = records.read_scores(f"{out}/sharded.parquet").set_index("sample_id").loc[a.index]
diff = np.abs(a["mislabel_score"].to_numpy() - b["mislabel_score"].to_numpy()).max()
print(f"torchrun scores vs the run's own: max |mislabel_score difference| {diff:.2e}")
PY

python bench/score_quality.py "$OUT/r18-112" --labels "$LABELS" | tee "$OUT/quality.txt"
