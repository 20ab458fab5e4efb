"""Layering rules: lego/ never imports bpy or torch; core/ never imports bpy at module level."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from .conftest import REPO


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    top, nested = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        for n in names:
            (top if node in tree.body else nested).add(n)
    return top, nested


def _py(folder):
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, folder
    return files


@pytest.mark.parametrize("path", _py("lego"), ids=lambda p: str(p.relative_to(REPO)))
def test_lego_never_imports_bpy_or_torch(path):
    top, nested = _imports(path)
    assert not {"bpy", "torch"} & (top | nested)


# What lego/ may import besides the standard library and itself: numerical libraries only
# (ARCHITECTURE.md). Pillow, OpenCV and the like belong in core/ (the booklet lives there).
LEGO_THIRD_PARTY = {"numpy", "scipy", "sklearn", "skimage", "networkx"}


@pytest.mark.parametrize("path", _py("lego"), ids=lambda p: str(p.relative_to(REPO)))
def test_lego_imports_only_numerical_libraries(path):
    top, nested = _imports(path)
    foreign = (top | nested) - set(sys.stdlib_module_names) - LEGO_THIRD_PARTY
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


# What each other layer may import besides the standard library (ARCHITECTURE.md's table).
THIRD_PARTY = {
    "core": {"numpy", "scipy", "skimage", "PIL", "cv2", "safetensors", "torch", "mediapipe",
             "tokenizers"},
    "blender": {"bpy", "bpy_extras", "mathutils", "numpy", "PIL"},
    "operators": {"bpy", "bpy_extras", "mathutils", "numpy", "PIL"},
    "panels": {"bpy"},
    "training": {"numpy", "scipy", "sklearn", "PIL", "torch", "safetensors", "tqdm", "pyrender",
                 "trimesh", "MinkowskiEngine"},
}  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [p for layer in THIRD_PARTY for p in _py(layer)],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_each_layer_imports_only_its_libraries(path):
    layer = path.relative_to(REPO).parts[0]
    top, nested = _imports(path)
    foreign = (top | nested) - set(sys.stdlib_module_names) - THIRD_PARTY[layer] - {"image2lego"}
    assert not foreign, f"{path.name} ({layer}/) imports {sorted(foreign)}"


@pytest.mark.parametrize("path", _py("core"), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_bpy(path):
    top, nested = _imports(path)
    assert "bpy" not in top | nested


def _package_imports(path, rel=None):
    """Every image2lego subpackage ``path`` imports, absolute or relative (``..training``);
    ``rel`` is its place in the package (default: where it lies in the repository)."""
    rel = path.relative_to(REPO) if rel is None else rel
    parts = list(rel.parent.parts)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            mod = [*base, *(node.module.split(".") if node.module else [])]
            if node.level - 1 > len(parts):
                continue
            found.add(mod[0] if mod else "")
            if not mod:  # from .. import training
                found.update(a.name for a in node.names)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("image2lego.")
        ):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("image2lego.")
            )
    return found


_RUNTIME = [*_py("core"), *_py("lego"), *_py("blender"), *_py("operators"), *_py("panels")]


@pytest.mark.parametrize("path", _RUNTIME, ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_never_imports_training_or_its_renderer(path):
    top, nested = _imports(path)
    assert not {"pyrender", "trimesh", "OpenGL"} & (top | nested)
    assert "training" not in _package_imports(path)


def test_training_check_sees_relative_imports(tmp_path):
    from pathlib import PurePath

    bad, rel = tmp_path / "probe.py", PurePath("core/probe.py")
    bad.write_text("from ..training.render import View\n")
    assert _package_imports(bad, rel) == {"training"}
    bad.write_text("from .. import training\n")
    assert "training" in _package_imports(bad, rel)
    bad.write_text("from .camera import View\nimport image2lego.lego.bricks\n")
    assert _package_imports(bad, rel) == {"core", "lego"}


def test_root_package_imports_without_bpy():
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'bpy': raise ImportError('bpy blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import image2lego, image2lego.lego, image2lego.core.pipeline, image2lego.cli\n"
        "assert 'bpy' not in sys.modules and 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_layering_check_catches_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n")
    top, nested = _imports(bad)
    assert "torch" in nested and not top
