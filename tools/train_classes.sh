#!/usr/bin/env bash
# Issue #16's round "v7-13c": the shipped weights fine-tuned on 13+ classes (ShapeNetVox32's 13,
# ModelNet10's 7 new ones, ModelNet40 airplanes, plus the chairs/monitors/beds) with
# class-balanced sampling and photo-like views. Exactly the commands of the round measured in
# MODEL_CARD.md ("13+ classes"), in order; each stage resumes / is skipped when done.
#
#   RUNS=/work/runs/learn bash tools/train_classes.sh      # checkpoints (default: runs/)
#   WEIGHTS_OUT=/tmp/w13 ...                               # candidate weights (default runs/…)
#   AE_MIN=50 IMG_MIN=35 ...                               # wall-time budgets per stage
#
# Two networks train at once: the decoder alone (the encoder frozen, so its latents stay the
# shipped ones) and the image encoder on those latents. Both use 1 thread under nice; on a
# GPU machine the same commands use it (training.train picks CUDA when there is one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-runs}
PY=${PY:-.venv/bin/python}
CACHE=${CACHE:-$HOME/.cache/image2lego}
AE_CACHE=$CACHE/learn13ae    # voxels only: up to 1,500 training models per class, every rotation
IMG_CACHE=$CACHE/learn13     # voxels + views: up to 400 training models per class, 4 rotations
WEIGHTS_OUT=${WEIGHTS_OUT:-$RUNS/weights13}
AE_MIN=${AE_MIN:-50}
IMG_MIN=${IMG_MIN:-35}
SETS="chairs monitors beds shapenet modelnet10 airplanes40"
CFG='{"conv3_max_res": 8, "bottleneck_max_res": 16, "bottleneck": 32}'
T=(nice -n 10 "$PY" -m image2lego.training.train)

[[ -f $AE_CACHE/voxels32.npz ]] || "$PY" -m image2lego.training.data build --cache "$AE_CACHE" \
    --sets $SETS --max-train-models 1500 --max-val-models 100
[[ -f $IMG_CACHE/voxels32.npz ]] || "$PY" -m image2lego.training.data build --cache "$IMG_CACHE" \
    --sets $SETS --max-train-models 400 --max-val-models 100 --train-rotations 1 4 7 10
# set pose + one photo-like view per row (~12 min on one core); reused when already rendered
nice -n 10 "$PY" -m image2lego.training.data render --cache "$IMG_CACHE" --views 2 --style photo

[[ -f $RUNS/v6/ae_final.pt ]] || "${T[@]}" import --out "$RUNS/v6"   # the shipped weights

"${T[@]}" ae --out "$RUNS/ae7" --cache "$AE_CACHE" --init "$RUNS/v6/ae_final.pt" --lr 5e-4 \
    --epochs 2 --max-minutes "$AE_MIN" --flip --freeze-below 2 --balance 0.5 --threads 1 \
    --config "$CFG" &
AE_PID=$!
"${T[@]}" image --out "$RUNS/img7" --cache "$IMG_CACHE" --ae "$RUNS/v6/ae_final.pt" \
    --init-image "$RUNS/v6/image_final.pt" --epochs-image 4 --max-minutes "$IMG_MIN" \
    --balance 0.5 --set-pose-fraction 0.3 --threads 1
wait "$AE_PID"
# a run stopped by its time budget leaves ae_last.pt: recalibrate the decoder's BatchNorm
# (a frozen encoder keeps its statistics) into ae_final.pt
[[ -f $RUNS/ae7/ae_final.pt ]] || "${T[@]}" recal --out "$RUNS/ae7" --cache "$AE_CACHE"
"${T[@]}" export --out "$RUNS/img7" --cache "$IMG_CACHE" --ae "$RUNS/ae7/ae_final.pt" \
    --image "$RUNS/img7/image_last.pt" --weights-out "$WEIGHTS_OUT"
"$PY" benchmarks/eval_classes.py --cache "$IMG_CACHE" --weights "$WEIGHTS_OUT" --tag v7-13c
