"""Compatibility matrix: install the extension zip from disk into several bpy versions and run
one full Image → LEGO and one Brickify Selected in each, then the rest of what a user meets
(see _compat_child.py); prints a Markdown table.

Each bpy lives in its own venv holding only bpy (and the numpy it needs): the add-on's other
dependencies must come from the zip's bundled wheels, as in a user's Blender.

    python benchmarks/blender_compat.py --zip dist/image2lego-0.1.0-linux_x64.zip \\
        /work/venvs/blender-4.2/bin/python /work/venvs/blender-4.5/bin/python \\
        .venv/bin/python /work/venvs/blender-5.2/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_compat_child.py")
COLUMNS = (
    "install_enable",
    "image_to_lego",
    "brickify_selected",
    "animate_build",
    "instructions",
    "ldraw_io",
    "more_builds",
    "ui",
    "esc_child",
    "update_remove",
    "disable",
)


def run_one(python: str, zip_path: Path, image: Path, mesh: Path, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="i2l-compat-") as tmp:
        env = dict(os.environ, BLENDER_USER_RESOURCES=tmp, PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)  # only the zip's wheels, never this checkout's venv
        try:
            proc = subprocess.run(
                [python, str(CHILD), str(zip_path), str(image), str(mesh)],
                capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"python_exe": python, "install_enable": f"FAIL timeout {timeout}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {"python_exe": python, "install_enable": "FAIL " + " | ".join(tail)}
    res = json.loads(lines[-1][len("RESULT ") :])
    res["python_exe"] = python
    return res


def table(rows: list[dict]) -> str:
    head = "| Blender (bpy) | Python | " + " | ".join(COLUMNS) + " |"
    out = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = []
        for c in COLUMNS:
            v = str(r.get(c, "—")).replace("|", "/")
            sec = r.get("seconds", {}).get(c)
            cells.append(f"{v[:70]}" + (f" {sec:.0f} s" if sec is not None else ""))
        out.append(
            f"| {r.get('blender', '?')} | {r.get('python', '?')} | " + " | ".join(cells) + " |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pythons", nargs="+", help="Python executables that have bpy installed")
    ap.add_argument("--zip", type=Path, required=True)
    ap.add_argument("--image", type=Path, default=REPO / "examples" / "chair.png")
    ap.add_argument(
        "--mesh",
        type=Path,
        default=REPO.parent / "shared" / "data" / "textured_small" / "kaolin" / "fox.obj",
    )
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args(argv)
    rows = []
    for py in args.pythons:
        r = run_one(py, args.zip.resolve(), args.image.resolve(), args.mesh.resolve(), args.timeout)
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "tracebacks"}), flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(str(r.get("image_to_lego", "")).startswith("OK") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
