"""Face photo → 3D LEGO bust (core/face.py, python -m image2lego face).

The geometry and colour tests run on a synthetic face (no mediapipe needed); the detection,
pipeline and CLI tests need the optional mediapipe extra (requirements-face.lock) and skip
cleanly without it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from image2lego.core import face as F
from image2lego.lego.colors import LDRAW_COLORS, rgb_to_lab

# --------------------------------------------------------------------------- synthetic face

CX, CY, RX, RY = 100.0, 100.0, 40.0, 52.0
LIPS = (100.0, 128.0, 6.0, 3.0)  # centre x, y, half width, half height (pixels)


def synthetic_face(n_ring: int = 48, n_in: int = 400, seed: int = 0):
    """An ellipsoidal face with a nose: landmarks (ring first, in order), the oval indices,
    the lip landmark indices and a photo (skin gradient, dark hair, small red lips)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * math.pi, n_ring, endpoint=False)
    ring = np.stack([CX + RX * np.cos(t), CY + RY * np.sin(t)], axis=1)
    r = np.sqrt(rng.random(n_in)) * 0.97
    a = rng.random(n_in) * 2 * math.pi
    inner = np.stack([CX + RX * r * np.cos(a), CY + RY * r * np.sin(a)], axis=1)
    lx, ly, lw, lh = LIPS
    tl = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    lips = np.stack([lx + lw * np.cos(tl), ly + lh * np.sin(tl)], axis=1)
    xy = np.concatenate([ring, inner, lips])
    u, v = (xy[:, 0] - CX) / RX, (xy[:, 1] - CY) / RY
    depth = -30.0 * np.sqrt(np.clip(1 - u**2 - v**2, 0, 1))
    depth -= 12.0 * np.exp(-((u / 0.12) ** 2 + ((v - 0.1) / 0.25) ** 2))  # the nose
    lm = np.concatenate([xy, depth[:, None]], axis=1)
    box = (lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max())
    face = F.Face(lm, box)
    oval = list(range(n_ring))
    lip_idx = list(range(n_ring + n_in, len(lm)))
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float64)
    photo = np.zeros((200, 200, 3))
    shade = (xx - 60) / 80  # light to shaded skin from left to right
    photo[...] = np.stack([0.95 - 0.5 * shade, 0.75 - 0.5 * shade, 0.6 - 0.425 * shade], -1)
    photo[yy < 72] = (0.2, 0.12, 0.08)  # hair
    lips_px = ((xx - lx) / lw) ** 2 + ((yy - ly) / lh) ** 2 <= 1
    photo[lips_px] = (0.75, 0.1, 0.15)
    photo = (np.clip(photo, 0, 1) * 255).round().astype(np.uint8)
    return photo, face, oval, lip_idx


def _red(code: int) -> bool:
    lab = rgb_to_lab(np.array([LDRAW_COLORS[code].rgb]))[0]
    return lab[1] > 35 and lab[0] < 60  # strongly red, not pink


def test_bust_is_one_closed_solid_that_stands_on_a_flat_plinth():
    photo, face, oval, lips = synthetic_face()
    fg = F.build_face_grid(photo, face, oval, F.FaceOptions(size=20), [lips])
    v = fg.voxels
    assert v.shape[0] == 20
    _, n = ndimage.label(v)  # 6-connected
    assert n == 1
    assert (ndimage.binary_fill_holes(v) == v).all()  # closed: no cavity inside
    assert v[:, :, 0].all()  # the plinth's bottom: the whole footprint on the ground
    # the back is flat: whatever is seen from the front reaches the same back plane
    assert (v[:, -1, :] == v.any(axis=1)).all()
    # in the head (above neck and plinth) the nose is the frontmost part, mid-face
    head = v[:, :, v.shape[2] - fg.front.shape[1] :]
    xs, zs = np.nonzero(head[:, 0, :])
    assert xs.size and abs(xs.mean() - 9.5) < 2
    # the face's sides recede: the oval's edge cells are deeper than its centre
    depth = np.argmax(head, axis=1).astype(float)  # [x, z] first occupied y
    mid_z = int(np.median(zs))
    assert head[1, :, mid_z].any() and depth[1, mid_z] > depth[10, mid_z] + 3


def test_bust_keeps_proportions_and_colours_every_cell_in_at_most_k_lego_colours():
    photo, face, oval, lips = synthetic_face()
    for k in (2, 4, 6):
        fg = F.build_face_grid(photo, face, oval, F.FaceOptions(size=16, k=k), [lips])
        assert 1 <= len(fg.codes) <= k
        rgbs = {tuple(np.round(c, 6)) for c in fg.colors[fg.voxels]}
        assert rgbs <= {tuple(np.round(LDRAW_COLORS[c].rgb, 6)) for c in fg.codes}
        assert not fg.colors[~fg.voxels].any()
    # a face 104 px tall and 80 px wide: rows = 16 * 104 / 80 (+ neck and plinth)
    fg = F.build_face_grid(photo, face, oval, F.FaceOptions(size=16), [lips])
    assert fg.front.shape == (16, math.ceil(16 * 2 * RY / (2 * RX)))
    # at the paper's scale a voxel is a 1.2-stud-tall brick: fewer, taller rows
    from image2lego.core.pipeline import PipelineOptions
    from image2lego.lego.convert import ConvertOptions

    paper = F.FaceOptions(size=16, pipeline=PipelineOptions(convert=ConvertOptions(scale="paper")))
    fg2 = F.build_face_grid(photo, face, oval, paper, [lips])
    assert fg2.front.shape[1] == math.ceil(16 * 2 * RY / (2 * RX) / 1.2)


def test_small_features_keep_their_colour_because_they_weigh_more_in_the_kmeans(monkeypatch):
    photo, face, oval, lips = synthetic_face()
    opt = F.FaceOptions(size=24, k=4)
    fg = F.build_face_grid(photo, face, oval, opt, [lips])
    assert any(_red(c) for c in fg.codes), fg.codes
    # the lips' cells on the front are red
    lx, ly = LIPS[:2]
    cx = int((lx - face.box[0]) / fg.cell_px)
    row = int((ly - face.box[1]) / fg.cell_px)
    z = fg.voxels.shape[2] - 1 - row
    y = int(np.argmax(fg.voxels[cx, :, z]))
    lab = rgb_to_lab(fg.colors[cx, y, z][None])[0]
    assert lab[1] > 35
    # without the weighting the four colours go to skin shades and hair: no red at all
    monkeypatch.setattr(F, "FEATURE_WEIGHT", 1)
    fg1 = F.build_face_grid(photo, face, oval, opt, [lips])
    assert not any(_red(c) for c in fg1.codes), fg1.codes


def test_pick_face_errors_and_the_largest_of_several():
    photo, face, oval, lips = synthetic_face()
    with pytest.raises(F.FaceError, match="no face found"):
        F.pick_face([])
    small = F.Face(face.landmarks * 0.5, tuple(v * 0.5 for v in face.box))
    chosen, notes = F.pick_face([face, small])
    assert chosen is face and notes and "2 faces found; using the largest" in notes[0]
    with pytest.raises(F.FaceError, match="too small: 40 px wide, at least 64"):
        F.pick_face([small])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"size": 4}, "size must be 8..96"),
        ({"size": 12.5}, "size must be an integer"),
        ({"k": 0}, "k .* must be 1..16"),
        ({"back": -1}, "back must be a fraction"),
        ({"palette": [99999]}, "99999"),
    ],
)
def test_bad_options_are_one_line_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        F.FaceOptions(**kw).validate()


def test_chain_orders_the_oval_edges_into_one_loop():
    edges = {(3, 1), (1, 0), (0, 2), (2, 3)}
    loop = F._chain(edges)
    assert sorted(loop) == [0, 1, 2, 3] and len(loop) == 4
    assert all((a, b) in edges or (b, a) in edges for a, b in zip(loop, loop[1:] + loop[:1]))
    with pytest.raises(F.FaceError, match="not one loop"):
        F._chain({(0, 1), (1, 2), (5, 6), (6, 7), (7, 5), (2, 0)})


# --------------------------------------------------------------------------- with mediapipe

needs_mediapipe = pytest.mark.skipif(
    not F.mediapipe_available(), reason="the optional mediapipe extra is not installed"
)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@needs_mediapipe
def test_mediapipe_finds_the_astronauts_face(astronaut):
    faces = F.detect_faces(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (478, 3)
    left, top, right, bottom = f.box
    assert 160 < left < 200 and 250 < right < 290 and 50 < top < 90 and 160 < bottom < 200
    oval = F.face_oval()
    assert len(oval) == 36
    nose = f.landmarks[1]  # mediapipe's nose tip is among the frontmost landmarks
    assert nose[2] <= np.percentile(f.landmarks[:, 2], 2)


@needs_mediapipe
def test_astronaut_face_to_lego_is_one_stable_piece_in_four_colours(astronaut):
    from image2lego.core.pipeline import run

    res = run(F.face_to_lego_steps(astronaut, F.FaceOptions(size=12)))
    model = res.model
    info = model.meta["face"]
    assert info["landmarks"] == 478 and info["faces_found"] == 1
    assert 1 <= len(info["colors"]) <= 4
    assert {b.color for b in model.bricks} <= set(info["colors"])
    assert res.stability is not None and res.stability.stable
    assert res.stability.after.n_components == 1
    # the skin (the front's most common colour) is a warm light colour, not grey or blue
    v = res.grid.voxels
    y = np.argmax(v, axis=1)
    xs, zs = np.nonzero(res.grid.front)
    zs = v.shape[2] - 1 - zs
    front = res.grid.colors[xs, y[xs, zs], zs]
    lab = rgb_to_lab(np.median(front, axis=0)[None])[0]
    assert lab[0] > 45 and lab[1] > 5 and lab[2] > 10, lab


@needs_mediapipe
def test_two_faces_take_the_largest_and_say_so(astronaut, tmp_path):
    from PIL import Image

    head = astronaut[20:240, 110:340]
    small = np.asarray(Image.fromarray(head).resize((184, 176), Image.Resampling.BOX))
    img = np.full((220, 240 + 184, 3), 255, np.uint8)
    img[:, :230] = head
    img[:176, 240:] = small
    faces = F.detect_faces(img)
    assert len(faces) == 2 and faces[0].box[0] < 230 <= faces[1].box[0]
    face, notes = F.pick_face(faces)
    assert face is faces[0] and "2 faces found" in notes[0]


@needs_mediapipe
def test_mirrored_photo_gives_the_mirrored_bust(astronaut):
    """A rendering of the same face seen in a mirror: the bust mirrors too (same shape)."""
    opt = F.FaceOptions(size=16)
    grids = []
    for img in (astronaut, np.ascontiguousarray(astronaut[:, ::-1])):
        face = F.detect_faces(img)[0]
        grids.append(F.build_face_grid(img, face, F.face_oval(), opt, F.face_features()))
    a, b = grids[0].voxels, grids[1].voxels[::-1]
    n = min(a.shape[1], b.shape[1]), min(a.shape[2], b.shape[2])
    a, b = a[:, : n[0], : n[1]], b[:, : n[0], : n[1]]
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.9, iou


@needs_mediapipe
def test_no_face_and_too_small(astronaut):
    from PIL import Image
    from skimage import data

    with pytest.raises(F.FaceError, match="no face found"):
        F.pick_face(F.detect_faces(data.coffee()))
    tiny = np.asarray(Image.fromarray(astronaut).resize((200, 200), Image.Resampling.BOX))
    with pytest.raises(F.FaceError, match="too small"):
        F.pick_face(F.detect_faces(tiny))


@needs_mediapipe
def test_cli_face_writes_the_main_commands_products(astronaut, tmp_path, capsys):
    from PIL import Image

    from image2lego.cli import main

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    out = tmp_path / "out"
    argv = ["face", str(photo), "-o", str(out), "--size", "10"]
    rc = main(argv + ["--no-render", "--no-instructions", "--no-blend"])
    assert rc == 0, capsys.readouterr()
    for name in ("model.ldr", "model.mpd", "parts.csv", "bricklink.xml", "rebrickable.csv"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["face"]["landmarks"] == 478 and report["connected"]
    assert set(report["face"]["seconds"]) == {"landmarks", "grid", "bricks"}
    assert Image.open(out / "input.png").size[0] == 10
    printed = capsys.readouterr().out
    assert "478 landmarks" in printed and "Stability: stable" in printed


@needs_mediapipe
def test_cli_face_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from image2lego.cli import main

    photo = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    out = tmp_path / "out"
    assert main(["face", str(photo), "-o", str(out), "--no-render"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("image2lego face: error: no face found") and "\n" not in err
    assert not out.exists()
    assert main(["face", str(photo), "-o", str(out), "--size", "200"]) == 2
    assert "size must be 8..96" in capsys.readouterr().err


@pytest.mark.data
def test_leocad_builds_the_bust_exactly(tmp_path, ldraw_library):
    """The bust (the synthetic face at 10 studs, through the normal pipeline) opens in LeoCAD
    with every brick where we put it."""
    import shutil

    from image2lego.core.pipeline import PipelineOptions, run, voxels_to_lego_steps
    from image2lego.lego import ldraw
    from image2lego.lego.convert import ConvertOptions

    from .test_leocad import expected_boxes, obj_pieces, run_leocad

    if not (shutil.which("leocad") and shutil.which("xvfb-run")):
        pytest.skip("leocad and xvfb-run are not installed")
    photo, face, oval, lips = synthetic_face()
    fg = F.build_face_grid(photo, face, oval, F.FaceOptions(size=10), [lips])
    convert = ConvertOptions(color_mode="photo", k=len(fg.codes), palette=fg.codes)
    model = run(
        voxels_to_lego_steps(fg.voxels, PipelineOptions(convert=convert), colors=fg.colors)
    ).model
    path = ldraw.write_ldr(model, tmp_path / "bust.ldr")
    run_leocad(ldraw_library, path, "-obj", str(tmp_path / "bust.obj"))
    pieces = obj_pieces(tmp_path / "bust.obj")
    assert len(pieces) == len(model)
    boxes = sorted(box for _, box, _ in pieces)
    assert boxes == sorted(tuple(round(float(c), 1) for c in b) for _, b in expected_boxes(model))
