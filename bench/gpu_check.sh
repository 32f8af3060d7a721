#!/usr/bin/env bash
# The GPU check of issue 24, prepared for a machine with CUDA (none was lent to this project yet).
#
# Usage: bash bench/gpu_check.sh [OUT] [EPOCHS]      (OUT default gpu-check, EPOCHS default 12)
#
# 1. Trains ResNet-18 DMUE on the FER2013 Training split at 112 px on cuda:0 with mixed precision
#    (`curate run ... --device cuda --amp on`); the run's log records images/s per epoch.
# 2. Scores the same faces with torchrun on every GPU (NCCL is not used by scoring: the shards meet
#    once through gloo) and checks the sharded file against the run's own scores.
# 3. Prints the detection figures against the FERPlus crowd (bench/score_quality.py).
# Everything goes to OUT; nothing is downloaded (the backbone trains from scratch).
set -euo pipefail
OUT=${1:-gpu-check}
EPOCHS=${2:-12}
LABELS=../shared/data/ferplus/labels.csv
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_check: no CUDA device (torch.cuda.device_count() = 0); run it on a GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"

/usr/bin/time -v curate run "$LABELS" --split Training --backbone resnet18 --image-size 112 \
    --epochs "$EPOCHS" --device cuda --amp on --workers 8 --no-load --out "$OUT/r18-112" 2> "$OUT/run.time"
grep -E "Elapsed|Maximum resident" "$OUT/run.time"

torchrun --nproc_per_node "$GPUS" -m curate score "$OUT/r18-112" "$LABELS" --split Training \
    --out "$OUT/sharded.parquet"
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
