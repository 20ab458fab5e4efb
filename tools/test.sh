#!/usr/bin/env bash
# The whole test suite on a fresh machine: bootstrap, lint (ruff format + check), pytest.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k ldraw`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/bootstrap.sh
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== ruff check";          .venv/bin/ruff check .
echo "== pytest"
# MinkowskiEngine parity test (training backend): only with a wheel that needs no compiling
# (CI's budget has no room for its 15-85 min build); tests/test_minkowski.py skips otherwise.
ME_SITE="${IMAGE2LEGO_CACHE:-$HOME/.cache/image2lego}/wheels/me-site"
if bash tools/build_minkowski.sh --cached-only --install "$ME_SITE" >/dev/null 2>&1; then
    export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$ME_SITE"
    echo "(MinkowskiEngine found: the ME parity test runs)"
fi
# both cores (pytest-xdist; tests/conftest.py gives each worker one BLAS thread): the full suite
# 103 s instead of ~180 s serially on 2 cores. `-n 0` (or any -n given here) overrides it.
XDIST=()
case " $* " in *" -n "*|*" -n"[0-9]*|*" --numprocesses"*) ;; *)
    [ "$(nproc 2>/dev/null || echo 1)" -gt 1 ] && XDIST=(-n auto) ;;
esac
set +e
.venv/bin/python -m pytest -p no:cacheprovider "${XDIST[@]}" "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit $rc
