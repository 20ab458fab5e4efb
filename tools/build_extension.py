"""Build the installable Blender extension zip, exactly as ``blender --command extension build``.

Blender is not installed here, but its Python module (``bpy`` from PyPI) ships the very script
that command runs (``bl_pkg/cli/blender_ext.py``); we run that script, so the manifest is
validated and ``[build] paths_exclude_pattern`` is honoured with Blender's own semantics.

    python tools/build_extension.py [--output-dir dist]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def blender_ext_script() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bpy is not installed: run `bash tools/bootstrap.sh` first")
    root = Path(next(iter(spec.submodule_search_locations)))
    hits = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise SystemExit(f"Blender's extension CLI was not found under {root}")
    return hits[-1]


def zip_name() -> str:
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    return f"{manifest['id']}-{manifest['version']}.zip"


def build(output_dir: Path) -> Path:
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(blender_ext_script()),
        "build",
        "--source-dir",
        str(REPO),
        "--output-dir",
        str(output_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"extension build failed:\n{proc.stdout}{proc.stderr}")
    out = output_dir / zip_name()
    if not out.is_file():
        raise SystemExit(f"extension build reported success but {out} is missing:\n{proc.stdout}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, default=REPO / "dist")
    args = ap.parse_args(argv)
    print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
