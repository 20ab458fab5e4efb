"""Canonical frame, split and cache of the training voxels (needs ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.training import data as D

pytestmark = pytest.mark.data


# subsets keep the file fast; `python -m image2lego.training.data build` covers the full sets
N_CHAIRS, N_MONITORS, N_BEDS = 120, 200, 200


@pytest.fixture(scope="module")
def chairs(shared_data):
    return D.load_chairs(shared_data, limit=N_CHAIRS)


@pytest.fixture(scope="module")
def monitors(shared_data):
    return D.load_monitors(shared_data, limit=N_MONITORS)


@pytest.fixture(scope="module")
def beds(shared_data):
    return D.load_beds(shared_data, limit=N_BEDS)


def _ids(shared_data, name, key=None):
    with np.load(shared_data / name) as d:
        return [str(x) for x in d[key]] if key else list(range(int(d["shape"][0])))


def _z_profile(v: np.ndarray) -> np.ndarray:
    return v.sum(axis=(-3, -2)).mean(axis=0)


def _extent(v: np.ndarray, axis: int) -> np.ndarray:
    other = tuple(a for a in (1, 2, 3) if a != axis + 1)
    occ = v.any(axis=other)
    lo = occ.argmax(axis=1)
    hi = occ.shape[1] - occ[:, ::-1].argmax(axis=1)
    return hi - lo


def _upper_offset(v: np.ndarray) -> np.ndarray:
    """Per grid: (x, y) centre of mass of the top 40% of its height minus the whole's."""
    out = []
    for g in v:
        zs = np.nonzero(g.any(axis=(0, 1)))[0]
        cut = int(zs.min() + 0.6 * (zs.max() - zs.min()))
        up = g.copy()
        up[..., :cut] = False
        c_all = np.array([i.mean() for i in np.nonzero(g)[:2]])
        c_up = np.array([i.mean() for i in np.nonzero(up)[:2]]) if up.any() else c_all
        out.append(c_up - c_all)
    return np.array(out)


def test_shapes_and_counts(shared_data, chairs, monitors, beds):
    assert len(_ids(shared_data, D.CHAIR_FILE, "names")) == 888
    assert len(_ids(shared_data, D.MONITOR_FILE)) == 465
    assert len(_ids(shared_data, D.BED_FILE)) == 614
    assert chairs.voxels.shape == (N_CHAIRS * 12, 32, 32, 32)
    assert monitors.voxels.shape == (N_MONITORS, 32, 32, 32)
    assert beds.voxels.shape == (N_BEDS, 32, 32, 32)
    for vs in (chairs, monitors, beds):
        assert vs.voxels.dtype == bool
        assert vs.voxels.any(axis=(1, 2, 3)).all(), "an empty grid"
    assert sorted(set(chairs.rotation.tolist())) == list(range(1, 13))


def test_everything_grounded_and_centred(chairs, monitors, beds):
    for vs in (chairs, monitors, beds):
        v = vs.voxels
        assert v[..., 0].any(axis=(1, 2)).all(), "every shape rests on z = 0"
        for ax in (0, 1):
            other = tuple(a for a in (1, 2, 3) if a != ax + 1)
            occ = v.any(axis=other)
            lo = occ.argmax(axis=1)
            hi = 31 - occ[:, ::-1].argmax(axis=1)
            assert np.abs(lo - (31 - hi)).max() <= 1, "bounding box centred in x and y"


def test_chairs_z_up(chairs):
    prof = _z_profile(chairs.voxels[chairs.rotation == D.CHAIR_CANONICAL_ROTATION])
    top = np.nonzero(prof)[0].max()
    seat = int(prof.argmax())
    # legs: sparse bottom layers, a dense seat in the lower half, a backrest above it
    assert 0.2 * top < seat < 0.75 * top
    assert prof[0] < 0.5 * prof[seat]
    assert prof[seat + 4 : top].sum() > 0.2 * prof.sum(), "a backrest above the seat"
    # the horizontal profiles are not bottom-heavy like this
    assert _extent(chairs.voxels, 2).mean() > _extent(chairs.voxels, 0).mean()


def test_chair_rotations_turn_backrest_counterclockwise(chairs):
    for r in range(1, 13):
        off = np.median(_upper_offset(chairs.voxels[chairs.rotation == r][::8]), axis=0)
        ang = np.degrees(np.arctan2(off[1], off[0]))
        want = 30 * (r - 1)
        assert abs((ang - want + 180) % 360 - 180) < 8, (r, ang)
    # the canonical rotation has the backrest at +Y: the chair faces -Y
    off = _upper_offset(chairs.voxels[chairs.rotation == D.CHAIR_CANONICAL_ROTATION])
    assert (off[:, 1] > 0.5).mean() > 0.9
    assert abs(np.median(off[:, 0])) < 0.5


def test_beds_flat_headboard_at_plus_y(beds):
    v = beds.voxels
    # beds are longer (y) than wide (x) and wider than tall
    assert np.median(_extent(v, 1)) > np.median(_extent(v, 0)) > np.median(_extent(v, 2))
    off = _upper_offset(v)
    assert (off[:, 1] > 0).mean() > 0.8, "the tall headboard is at +Y"


def test_monitors_upright_facing_minus_y(monitors):
    v = monitors.voxels
    # width along x, thin along y, tall along z
    assert np.median(_extent(v, 0)) > np.median(_extent(v, 1))
    assert np.median(_extent(v, 2)) > np.median(_extent(v, 1))
    # the flat screen is the front face (-Y); stands and CRT backs stick out towards +Y
    ys = np.arange(32)
    mass_y = v.sum(axis=(1, 3))
    com_y = (mass_y * ys).sum(1) / mass_y.sum(1)
    occ = v.any(axis=(1, 3))
    mid = (occ.argmax(1) + 31 - occ[:, ::-1].argmax(1)) / 2
    assert np.median(com_y - mid) < 0  # mass towards the screen plane ...
    # ... and the screen plane (largest x-z slab) is in the front half
    front = np.array([np.argmax(g.sum(axis=(0, 2))) for g in v])
    assert np.mean(front <= mid) > 0.7


def test_pool2_threshold():
    g = np.zeros((4, 4, 4), bool)
    g[0, 0, 0] = True
    assert not D.pool2(g, 2).any()
    assert D.pool2(g, 1)[0, 0, 0]
    g[1, 1, 1] = True
    assert D.pool2(g, 2).sum() == 1
    with pytest.raises(ValueError, match="even"):
        D.pool2(np.zeros((3, 4, 4), bool))


def test_canonicalize_too_big_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        D.canonicalize(np.ones((40, 4, 4), bool))


def test_split_whole_models(shared_data):
    # metadata of the full sets (the split needs no voxels)
    chair_ids = _ids(shared_data, D.CHAIR_FILE, "names")
    n_rows = 12 * len(chair_ids) + 465 + 614
    vs = D._make_set(
        np.zeros((n_rows, 1), bool),
        ["chair"] * 12 * len(chair_ids) + ["monitor"] * 465 + ["bed"] * 614,
        ["modelnet40"] * 12 * len(chair_ids) + ["modelnet10"] * (465 + 614),
        [c for c in chair_ids for _ in range(12)]
        + [f"monitor_{i:04d}" for i in range(465)]
        + [f"bed_{i:04d}" for i in range(614)],
        list(range(1, 13)) * len(chair_ids) + [0] * (465 + 614),
    )
    D.assign_split(vs)
    train = set(zip(vs.source[vs.split == "train"], vs.model_id[vs.split == "train"], strict=True))
    val = set(zip(vs.source[vs.split == "val"], vs.model_id[vs.split == "val"], strict=True))
    assert not train & val, "a model in both splits"
    for lab, n_models in (("chair", 888), ("monitor", 465), ("bed", 614)):
        ids = np.unique(vs.model_id[(vs.label == lab) & (vs.split == "val")])
        assert len(ids) == int(np.ceil(0.1 * n_models))
    n_val_rows = (vs.split[vs.label == "chair"] == "val").sum()
    assert n_val_rows == 12 * 89, "all 12 rotations of a val chair are in val"
    before = vs.split.copy()
    D.assign_split(vs)
    assert (vs.split == before).all(), "the split is deterministic"


def test_cache_round_trip(tmp_path, monitors, beds):
    vs = D.concat([monitors, beds])
    D.assign_split(vs)
    path = D.save_voxels(vs, tmp_path / D.CACHE_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [D.CACHE_FILE], "no temp files left"
    back = D.load_voxels(tmp_path)
    assert (back.voxels == vs.voxels).all()
    for f in ("label", "source", "model_id", "rotation", "split", "mesh_path"):
        assert (getattr(back, f) == getattr(vs, f)).all(), f
    val_beds = D.load_voxels(path, split="val", labels="bed")
    assert set(val_beds.label) == {"bed"} and set(val_beds.split) == {"val"}
    assert len(val_beds) == ((vs.label == "bed") & (vs.split == "val")).sum()
    with pytest.raises(ValueError, match="split"):
        D.load_voxels(path, split="test")
    with pytest.raises(FileNotFoundError, match="build"):
        D.load_voxels(tmp_path / "nope")


# --------------------------------------------------------------------------- meshes

trimesh = pytest.importorskip("trimesh")


def test_voxelize_box_is_solid_and_exact():
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    g = D.voxelize_mesh(box, 32)
    assert g.shape == (32, 32, 32) and g.dtype == bool
    # longest side (x) fills the grid; 2:1:0.5 -> 32 x 16 x 8 voxels, centred, grounded
    assert g.sum() == 32 * 16 * 8
    assert g[:, 8:24, 0:8].all()
    g16 = D.voxelize_mesh(box, 16)
    assert g16.shape == (16, 16, 16) and g16.sum() == 16 * 8 * 4


def test_voxelize_fills_a_leaky_sphere():
    s = trimesh.creation.icosphere(subdivisions=4)
    s.update_faces(np.arange(len(s.faces)) >= 12)  # punch a small hole
    assert not s.is_watertight
    g = D.voxelize_mesh(s, 32)
    x, y, z = np.meshgrid(*(np.arange(32) + 0.5,) * 3, indexing="ij")
    ball = (x - 16) ** 2 + (y - 16) ** 2 + (z - 16) ** 2 <= 14**2
    assert g[ball].mean() > 0.99, "the interior is filled"
    assert not D.voxelize_mesh(s, 32, solid=False)[16, 16, 16]


def test_voxelize_bad_input(tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        D.voxelize_mesh(trimesh.creation.box(), 0)
    with pytest.raises(FileNotFoundError):
        D.voxelize_mesh(tmp_path / "missing.obj")
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(ValueError):
        D.voxelize_mesh(tmp_path / "empty.obj")


def _cone_along(axis: int, sign: int):
    """A cone whose wide base is at the -sign end of ``axis`` (it stands on its base)."""
    c = trimesh.creation.cone(radius=1.0, height=3.0, sections=32)  # base at z=0, tip at +z
    r = {0: [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], 1: [[1, 0, 0], [0, 0, -1], [0, 1, 0]]}
    m = np.eye(4)
    m[:3, :3] = np.asarray(r.get(axis, np.eye(3)), float).T  # z -> axis
    c.apply_transform(m)
    if sign < 0:
        c.apply_scale(-1)
    return c


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1, -1])
def test_long_rule_stands_cone_on_its_base(axis, sign):
    c = _cone_along(axis, sign)
    r = D.align_mesh_rotation(c, "long")
    assert np.isclose(np.linalg.det(r), 1), "a proper rotation (no mirroring)"
    g = D.voxelize_mesh(c, 32, rotation=r)
    prof = g.sum(axis=(0, 1))
    assert prof[:4].sum() > 3 * prof[-8:].sum(), "wide base at the bottom"


def test_axis_rules_and_facing():
    box = trimesh.creation.box(extents=(1.0, 3.0, 2.0))  # tall along y
    r = D.align_mesh_rotation(box, "y")
    ext = np.abs(r @ np.array([1.0, 3.0, 2.0]))
    assert ext[2] == pytest.approx(3.0), "y went up"
    assert ext[0] >= ext[1], "the longer horizontal side runs along x"
    r = D.align_mesh_rotation(box, "thin")
    assert np.abs(r @ np.array([1.0, 3.0, 2.0]))[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rule"):
        D.align_mesh_rotation(box, "diagonal")
    assert D.up_rule("Jet", "psb") == "thin" and D.up_rule("NonWheelChair", "psb") == "y"
    assert D.mesh_source("infomr/Jet/m1200.obj") == "psb"
    assert D.mesh_source("infomr/Car/D00168.obj") == "infomr"


def test_voxelize_up_auto_uses_the_class_rule(tmp_path):
    folder = tmp_path / "NonWheelChair"
    folder.mkdir()
    box = trimesh.creation.box(extents=(1.0, 3.0, 2.0))  # PSB files are y-up
    box.export(folder / "m1.obj")
    g = D.voxelize_mesh(folder / "m1.obj", 16, up="auto")
    ext = [
        np.ptp(np.nonzero(g.any(axis=tuple(j for j in range(3) if j != a)))[0]) + 1
        for a in range(3)
    ]
    assert ext[2] == 16 > ext[0] > ext[1]  # 3 : 2 : 1 with y up, long side along x
    with pytest.raises(ValueError, match="path"):
        D.voxelize_mesh(box, 16, up="auto")
    with pytest.raises(ValueError, match="either"):
        D.voxelize_mesh(folder / "m1.obj", 16, up="z", rotation=np.eye(3))
