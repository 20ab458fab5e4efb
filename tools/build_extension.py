"""Build the installable Blender extension zips, exactly as ``blender --command extension build``.

Blender is not installed here, but its Python module (``bpy`` from PyPI) ships the very script
that command runs (``bl_pkg/cli/blender_ext.py``); we run that script, so the manifest is
validated and ``[build] paths_exclude_pattern`` is honoured with Blender's own semantics.

By default every dependency the add-on needs in Blender (everything but numpy, which Blender
ships) is bundled as unmodified PyPI wheels, for Linux x86_64, Windows x64 and macOS arm64 /
x86_64, for Python 3.11 (Blender 4.2-5.0) and 3.13 (5.1+): the manifest of a staged copy gets
``platforms`` and ``wheels``, and Blender's builder writes one zip per platform
(``--split-platforms``). Wheels are downloaded once with pip into
``$IMAGE2LEGO_CACHE/blender-wheels`` (pins from ``requirements.lock``).

    python tools/build_extension.py [--output-dir dist] [--platforms linux-x64,...] [--no-wheels]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: What lego/ and core/ import at run time in Blender, with their own dependencies (numpy
#: excluded: Blender ships it; torch excluded: the numpy runtime replaces it).
RUNTIME_PACKAGES = (
    "scipy",
    "scikit-learn",
    "joblib",
    "cloudpickle",
    "threadpoolctl",
    "narwhals",
    "scikit-image",
    "networkx",
    "ImageIO",
    "tifffile",
    "lazy-loader",
    "packaging",
    "pillow",
    "opencv-python-headless",
    "safetensors",
)
#: Blender's platform names → pip platform tags accepted (oldest OS first). macOS: up to 13.0,
#: because the pinned OpenCV has no older macOS wheel; the zips need macOS 13+.
PLATFORMS = {
    "linux-x64": [
        "manylinux2014_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux_2_24_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_28_x86_64",
    ],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64"],
    "macos-x64": [
        "macosx_10_9_x86_64",
        "macosx_10_13_x86_64",
        "macosx_10_14_x86_64",
        "macosx_10_15_x86_64",
        "macosx_11_0_x86_64",
        "macosx_12_0_x86_64",
        "macosx_13_0_x86_64",
    ],
}
PYTHONS = ("3.11", "3.13")  # Blender 4.2-5.0, Blender 5.1+
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "dist", "build", "__pycache__", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "wheels", "*.zip", "*.egg-info", "out",
)  # fmt: skip


def blender_ext_script() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bpy is not installed: run `bash tools/bootstrap.sh` first")
    root = Path(next(iter(spec.submodule_search_locations)))
    hits = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise SystemExit(f"Blender's extension CLI was not found under {root}")
    return hits[-1]


def manifest() -> dict:
    return tomllib.loads((REPO / "blender_manifest.toml").read_text())


def zip_name(platform: str | None = None) -> str:
    m = manifest()
    tail = f"-{platform.replace('-', '_')}" if platform else ""
    return f"{m['id']}-{m['version']}{tail}.zip"


def pins() -> list[str]:
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, ver = line.split("==", 1)
            lock[name.strip().lower()] = f"{name.strip()}=={ver.strip()}"
    missing = [p for p in RUNTIME_PACKAGES if p.lower() not in lock]
    if missing:
        raise SystemExit(f"requirements.lock has no pin for {missing}")
    return [lock[p.lower()] for p in RUNTIME_PACKAGES]


def wheel_cache() -> Path:
    root = Path(os.environ.get("IMAGE2LEGO_CACHE", Path.home() / ".cache" / "image2lego"))
    return root / "blender-wheels"


def download_wheels(platform: str, python: str) -> list[Path]:
    """The pinned runtime wheels for one platform and Python (cached)."""
    dest = wheel_cache() / f"{platform}-cp{python.replace('.', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for tag in PLATFORMS[platform]:
        cmd += ["--platform", tag]
    cmd += ["--dest", str(dest), *pins()]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip download for {platform} / Python {python} failed:\n{proc.stderr}")
    wanted = {p.split("==")[0].lower().replace("-", "_") for p in pins()}
    versions = {p.split("==")[0].lower().replace("-", "_"): p.split("==")[1] for p in pins()}
    out = []
    for whl in sorted(dest.glob("*.whl")):
        name, ver = whl.name.split("-")[:2]
        key = name.lower()
        if key in wanted and ver == versions[key]:
            out.append(whl)
    if len(out) != len(wanted):
        have = {w.name.split("-")[0].lower() for w in out}
        raise SystemExit(f"missing wheels for {platform} / {python}: {sorted(wanted - have)}")
    return out


def _manifest_with_wheels(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest text plus top-level ``platforms`` and ``wheels`` (before the first table)."""
    lines = text.splitlines()
    first_table = next(i for i, ln in enumerate(lines) if ln.startswith("["))
    add = [f"platforms = [{', '.join(repr(p).replace(chr(39), chr(34)) for p in platforms)}]"]
    add += ["wheels = ["] + [f'  "./wheels/{w}",' for w in wheels] + ["]", ""]
    return "\n".join(lines[:first_table] + add + lines[first_table:]) + "\n"


def _run_builder(source: Path, output_dir: Path, split: bool) -> str:
    cmd = [sys.executable, str(blender_ext_script()), "build"]
    cmd += ["--source-dir", str(source), "--output-dir", str(output_dir)]
    if split:
        cmd.append("--split-platforms")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"extension build failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def build(output_dir: Path, wheels: bool = True, platforms: list[str] | None = None) -> list[Path]:
    """Build the zip(s); returns their paths (one per platform with wheels, else one)."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    if not wheels:
        log = _run_builder(REPO, output_dir, split=False)
        out = output_dir / zip_name()
        if not out.is_file():
            raise SystemExit(f"extension build reported success but {out} is missing:\n{log}")
        return [out]
    platforms = platforms or list(PLATFORMS)
    unknown = sorted(set(platforms) - set(PLATFORMS))
    if unknown:
        raise SystemExit(f"unknown platform(s) {unknown}; choose from {list(PLATFORMS)}")
    with tempfile.TemporaryDirectory(prefix="image2lego-ext-") as tmp:
        stage = Path(tmp) / "image2lego"
        shutil.copytree(REPO, stage, ignore=_IGNORE, symlinks=False)
        (stage / "wheels").mkdir()
        names: set[str] = set()
        for plat in platforms:
            for py in PYTHONS:
                for whl in download_wheels(plat, py):
                    if whl.name not in names:
                        shutil.copy2(whl, stage / "wheels" / whl.name)
                        names.add(whl.name)
        text = (REPO / "blender_manifest.toml").read_text()
        (stage / "blender_manifest.toml").write_text(
            _manifest_with_wheels(text, platforms, sorted(names))
        )
        log = _run_builder(stage, output_dir, split=True)
    outs = [output_dir / zip_name(p) for p in platforms]
    missing = [p for p in outs if not p.is_file()]
    if missing:
        raise SystemExit(f"extension build reported success but {missing} are missing:\n{log}")
    return outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, default=REPO / "dist")
    ap.add_argument(
        "--no-wheels",
        action="store_true",
        help="one zip without bundled wheels (for tests; needs the dependencies installed)",
    )
    ap.add_argument("--platforms", help=f"comma-separated subset of {','.join(PLATFORMS)}")
    args = ap.parse_args(argv)
    plats = [p.strip() for p in args.platforms.split(",")] if args.platforms else None
    for path in build(args.output_dir, wheels=not args.no_wheels, platforms=plats):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
