#!/usr/bin/env bash
# The demo on a fresh machine: bootstrap, then the bundled example photo → LEGO model.
# Results land in out/demo/: model.ldr, model.mpd, parts.csv, bricklink.xml,
# rebrickable.csv, render.png, instructions/ (HTML + PDF booklet), model.blend, report.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh
.venv/bin/python -m image2lego examples/chair.png --out out/demo --color-mode photo -k 2 "$@"
echo "demo: results are in $(pwd)/out/demo"
