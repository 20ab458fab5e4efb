#!/usr/bin/env bash
# Remake the shipped weights: every training round that led to weights/, in order (v2 from
# scratch, each later round fine-tunes the one before), then export and the Table 1 benchmark.
# About 10.5 hours on 2 CPU cores. Needs the caches of `training.data build` and `training.data render`.
#
# Restartable: each finished stage leaves a `.done-<stage>` marker in its run folder and is
# skipped next time; an interrupted stage resumes from its last checkpoint (every 3 minutes).
#   RUNS=/big/disk/runs bash tools/train_shipped.sh      # checkpoints (default: runs/)
#   WEIGHTS_OUT=/tmp/w bash tools/train_shipped.sh       # export elsewhere (default: weights/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-runs}
WEIGHTS_OUT=${WEIGHTS_OUT:-weights}
PY=${PY:-.venv/bin/python}
CFG='{"conv3_max_res": 8, "bottleneck_max_res": 16, "bottleneck": 32}'

stage() {  # stage <run folder> <name> <train arguments…>: run once
    local dir=$1 name=$2
    shift 2
    if [[ -f $dir/.done-$name ]]; then
        echo "== $dir $name: done before, skipped"
        return
    fi
    echo "== $dir $name: $(date -u)"
    "$PY" -m image2lego.training.train "$@"
    mkdir -p "$dir"
    touch "$dir/.done-$name"
}

round() {  # round <n> <minutes AE> <lr> <minutes image> [extra AE arguments…]
    local n=$1 ae_min=$2 lr=$3 img_min=$4 prev=$(($1 - 1))
    shift 4
    local ae=$RUNS/ae$n img=$RUNS/img$n init=() init_img=()
    if ((n > 2)); then
        init=(--init "$RUNS/ae$prev/ae_final.pt")
        init_img=(--init-image "$RUNS/img$prev/image_last.pt")
    fi
    stage "$ae" ae ae --out "$ae" "${init[@]}" --lr "$lr" --epochs 12 --max-minutes "$ae_min" \
        --flip --config "$CFG" "$@"
    stage "$ae" recal recal --out "$ae"
    stage "$img" image image --out "$img" --ae "$ae/ae_final.pt" "${init_img[@]}" \
        --epochs-image 8 --max-minutes "$img_min"
}

round 2 100 2e-3 27
round 3 95 1e-3 27
round 4 100 1e-3 27
round 5 90 5e-4 20
round 6 110 5e-4 10 --epochs 14 --freeze-below 2  # the decoder alone
LAST=6
stage "$RUNS/img$LAST" export export --out "$RUNS/img$LAST" --ae "$RUNS/ae$LAST/ae_final.pt" \
    --image "$RUNS/img$LAST/image_last.pt" --weights-out "$WEIGHTS_OUT"
"$PY" benchmarks/eval_model.py --weights "$WEIGHTS_OUT" \
    --fp32-checkpoint "$RUNS/ae$LAST/ae_final.pt" --carve
