#!/usr/bin/env bash
# Build (once) and cache a CPU-only MinkowskiEngine 0.5.4 wheel for the training backend
# (training/minkowski.py). The runtime never needs it: Blender users and the CLI run plain torch.
#
#   tools/build_minkowski.sh                     # build or reuse; prints the wheel's path
#   tools/build_minkowski.sh --install DIR       # ... and unpack it into DIR (pip --target),
#                                                #     then run with PYTHONPATH=DIR
#   tools/build_minkowski.sh --cached-only ...   # reuse a cached/seed wheel, never compile
#
# Environment: PYTHON (default .venv/bin/python: the interpreter whose torch the wheel links
# against), IMAGE2LEGO_CACHE (default ~/.cache/image2lego; wheels go to wheels/torch-<ver>/),
# MAX_JOBS (compile jobs, default 2), ME_SEED_DIR (a folder with a prebuilt wheel to reuse,
# default ../shared/wheels beside the repository).
#
# What the build does (MinkowskiEngine 0.5.4 from the PyPI sdist; ~15 min on an idle 2-core
# machine, 85 min on a loaded one): needs g++ and libopenblas-dev (Debian: apt-get install -y
# libopenblas-dev; at run time libopenblas0), ninja and wheel; replaces
# `from collections import Sequence` (removed in Python 3.10) by `collections.abc`; builds with
# `--cpu_only --blas=openblas`; strips the extension's debug info (72.7 MB -> 1.2 MB).
# It never installs into the interpreter's own site-packages (torch==2.13.0 / numpy<2 stay).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CACHE="${IMAGE2LEGO_CACHE:-$HOME/.cache/image2lego}"
SEED_DIR="${ME_SEED_DIR:-$ROOT/../shared/wheels}"
VERSION=0.5.4
INSTALL=""
CACHED_ONLY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --install) INSTALL="${2:?--install needs a folder}"; shift 2 ;;
        --cached-only) CACHED_ONLY=1; shift ;;  # never compile (CI: reuse a wheel or give up)
        *) echo "usage: $0 [--install DIR] [--cached-only]" >&2; exit 2 ;;
    esac
done

TORCH="$("$PYTHON" -c 'import torch; print(torch.__version__)')"
PYTAG="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
OUT="$CACHE/wheels/torch-$TORCH"
NAME="minkowskiengine-$VERSION-$PYTAG-$PYTAG-linux_x86_64.whl"
mkdir -p "$OUT"

if [[ ! -f "$OUT/$NAME" ]]; then
    # a prebuilt wheel for the same Python tag is reused only if it was built for this torch
    # (the seed folder's README says so; a mismatch fails at import, which we check below)
    if [[ -f "$SEED_DIR/$NAME" ]] && grep -q "torch $TORCH\|torch ${TORCH%+*}" "$SEED_DIR"/README* 2>/dev/null; then
        cp "$SEED_DIR/$NAME" "$OUT/$NAME.tmp" && mv "$OUT/$NAME.tmp" "$OUT/$NAME"
        echo "reused $SEED_DIR/$NAME" >&2
    elif [[ $CACHED_ONLY == 1 ]]; then
        echo "no cached MinkowskiEngine wheel for torch $TORCH / $PYTAG" >&2
        exit 3
    else
        command -v g++ >/dev/null || { echo "g++ is needed to build MinkowskiEngine" >&2; exit 1; }
        if ! ls /usr/include/*/cblas.h /usr/include/cblas.h /usr/include/*/openblas*/cblas.h \
                >/dev/null 2>&1; then
            echo "OpenBLAS headers missing: apt-get install -y libopenblas-dev" >&2
            exit 1
        fi
        WORK="$(mktemp -d "${TMPDIR:-/tmp}/build_minkowski.XXXXXX")"
        trap 'rm -rf "$WORK"' EXIT
        "$PYTHON" -m pip install -q ninja wheel
        SETUPTOOLS_USE_DISTUTILS=stdlib "$PYTHON" -m pip download -q --no-deps \
            --no-build-isolation --no-binary :all: "minkowskiengine==$VERSION" -d "$WORK"
        tar -xzf "$WORK"/[Mm]inkowski[Ee]ngine-"$VERSION".tar.gz -C "$WORK"
        SRC="$(echo "$WORK"/[Mm]inkowski[Ee]ngine-"$VERSION")"
        grep -rl "from collections import Sequence" "$SRC/MinkowskiEngine" \
            | xargs -r sed -i 's/from collections import Sequence/from collections.abc import Sequence/'
        (cd "$SRC" && MAX_JOBS="${MAX_JOBS:-2}" "$PYTHON" setup.py -q bdist_wheel \
            --cpu_only --blas=openblas)
        BUILT="$(ls "$SRC"/dist/*.whl)"
        # strip the extension's debug info (repack so the wheel's RECORD stays right)
        "$PYTHON" -m wheel unpack -d "$WORK/unpacked" "$BUILT"
        find "$WORK/unpacked" -name '*.so' -exec strip --strip-debug {} +
        "$PYTHON" -m wheel pack -d "$WORK/packed" "$WORK"/unpacked/*
        mv "$WORK"/packed/*.whl "$OUT/$NAME.tmp" && mv "$OUT/$NAME.tmp" "$OUT/$NAME"
    fi
fi

if [[ -n "$INSTALL" ]]; then
    "$PYTHON" -m pip install -q --no-deps --target "$INSTALL" "$OUT/$NAME"
    PYTHONPATH="$INSTALL" "$PYTHON" -W ignore -c \
        "import MinkowskiEngine as ME; assert ME.__version__ == '$VERSION'" \
        || { echo "the wheel does not import with this torch ($TORCH)" >&2; exit 1; }
fi
echo "$OUT/$NAME"
