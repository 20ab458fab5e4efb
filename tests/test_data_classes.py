"""Issue #16's training sets in the one canonical frame: ShapeNetVox32 (13 classes, Y up),
ModelNet10 and ModelNet40 airplanes; whole-model splits, per-class caps, class balancing.

The frame is proved on the data itself (needs ../shared/data, skips without it): the up axis
by occupancy (height and bottom-heavy profiles), the front by classes whose front is known
from their shape (a chair's backrest is behind the sitter; an airplane's tail fin is aft)."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.training import data as D
from image2lego.training.train import class_weights, epoch_order


class _OneRank:
    world, rank = 1, 0


def _extent(v: np.ndarray, axis: int) -> np.ndarray:
    occ = v.any(axis=tuple(a for a in (1, 2, 3) if a != axis + 1))
    lo = occ.argmax(axis=1)
    hi = occ.shape[1] - occ[:, ::-1].argmax(axis=1)
    return hi - lo


def _top_offset(v: np.ndarray, top: float = 0.7) -> np.ndarray:
    """Per grid: (x, y) centre of the cells above ``top`` of its height minus the whole's."""
    out = []
    for g in v:
        nz = np.nonzero(g)
        z = nz[2]
        up = z >= z.min() + top * (z.max() - z.min())
        out.append([nz[0][up].mean() - nz[0].mean(), nz[1][up].mean() - nz[1].mean()])
    return np.array(out)


@pytest.fixture(scope="module")
def shapenet(shared_data):
    return D.load_shapenet(shared_data, limit=60)


@pytest.mark.data
def test_shapenet_classes_grounded_and_upright(shapenet):
    assert sorted(set(shapenet.label)) == sorted(D.SHAPENET_CLASSES)
    assert shapenet.voxels.shape[1:] == (32, 32, 32)
    z_lo = np.array([np.nonzero(g.any(axis=(0, 1)))[0][0] for g in shapenet.voxels])
    assert (z_lo == 0).all(), "every grid rests on z = 0"
    by = {c: shapenet.voxels[shapenet.label == c] for c in ("chair", "car", "airplane", "lamp")}
    # Z is up: chairs and lamps are tall, cars and airplanes are flat, whatever their size
    assert np.median(_extent(by["chair"], 2)) >= 28
    assert np.median(_extent(by["lamp"], 2)) >= 24
    for c in ("car", "airplane"):
        h = np.median(_extent(by[c], 2))
        assert h <= 16, (c, h)
        assert np.median(np.maximum(_extent(by[c], 0), _extent(by[c], 1))) >= 28


@pytest.mark.data
def test_shapenet_front_is_minus_y(shapenet):
    chairs = shapenet.voxels[shapenet.label == "chair"]
    off = _top_offset(chairs)
    # the backrest (top of a chair) is behind the sitter: +Y when the chair faces -Y
    assert np.median(off[:, 1]) > 2.5 and abs(np.median(off[:, 0])) < 1.0
    assert (off[:, 1] > 0).mean() > 0.8
    planes = shapenet.voxels[shapenet.label == "airplane"]
    # fuselage along Y, nose -Y: the tail fin (top 15 %) sits aft, at +Y
    assert np.median(_extent(planes, 1)) >= np.median(_extent(planes, 0)) - 2
    assert (_top_offset(planes, 0.85)[:, 1] > 0).mean() > 0.75


@pytest.mark.data
def test_modelnet40_airplanes_share_the_shapenet_frame(shared_data, shapenet):
    mn = D.load_airplanes40(shared_data, limit=120)
    assert set(mn.label) == {"airplane"} and mn.voxels.shape[1:] == (32, 32, 32)
    assert np.median(_extent(mn.voxels, 2)) <= 12, "flat: Z is up"
    # the wing slab: the x-profile of an airplane whose fuselage runs along Y peaks sharply
    for vs in (mn.voxels, shapenet.voxels[shapenet.label == "airplane"]):
        px = vs.sum(axis=(2, 3)).mean(0)
        py = vs.sum(axis=(1, 3)).mean(0)
        assert px.max() / px.mean() > py.max() / py.mean(), "fuselage along Y"
    assert (_top_offset(mn.voxels, 0.85)[:, 1] > 0).mean() > 0.6, "tail fin aft (+Y)"


@pytest.mark.data
def test_modelnet10_leaves_out_duplicates_and_faces_minus_y(shared_data):
    mn = D.load_modelnet10(shared_data, limit=40)
    labs = set(mn.label)
    assert not labs & set(D.MODELNET10_DUPLICATES), "chairs/monitors/beds come from their files"
    assert labs == {"bathtub", "desk", "dresser", "night_stand", "sofa", "table", "toilet"}
    assert mn.voxels.any(axis=(1, 2, 3)).all(), "empty grids dropped"
    assert len(set(mn.model_id)) == len(mn), "one id per model"
    sofas = mn.voxels[mn.label == "sofa"]
    toilets = mn.voxels[mn.label == "toilet"]
    # a sofa's back and a toilet's tank are behind: +Y; sofas are wide along X
    assert np.median(_top_offset(sofas, 0.6)[:, 1]) > 0.5
    assert np.median(_top_offset(toilets, 0.6)[:, 1]) > 1.0
    assert np.median(_extent(sofas, 0)) > np.median(_extent(sofas, 1))


@pytest.mark.data
@pytest.mark.slow
def test_build_caps_whole_models_and_keeps_the_chair_split(shared_data, tmp_path):
    """Capping happens after the split: the validation chairs stay the model card's 89 x 12,
    a capped class keeps whole models, and no model is in both splits."""
    out = D.build_voxel_cache(
        shared_data,
        tmp_path,
        sets=("chairs", "airplanes40"),
        max_train_models=30,
        max_val_models=None,
        train_rotations=(1, 4),
        log=lambda *a: None,
    )
    vs = D.load_voxels(out)
    ch = vs.subset(vs.label == "chair")
    assert (ch.split == "val").sum() == 12 * 89
    tr = ch.subset(ch.split == "train")
    assert len(set(tr.model_id)) == 30 and set(tr.rotation.tolist()) == {1, 4}
    pl = vs.subset(vs.label == "airplane")
    assert len(set(pl.model_id[pl.split == "train"])) == 30
    assert (pl.split == "val").sum() == int(np.ceil(0.1 * 626)) - 0  # no airplane is empty
    for sub in (ch, pl):
        assert not set(sub.model_id[sub.split == "train"]) & set(sub.model_id[sub.split == "val"])
    # the same split as an uncapped build: capping only removes rows
    full = D.concat([D.load_chairs(shared_data)])
    D.assign_split(full)
    val_full = set(full.model_id[full.split == "val"])
    assert set(ch.model_id[ch.split == "val"]) == val_full
    with pytest.raises(ValueError, match="unknown data sets"):
        D.build_voxel_cache(shared_data, tmp_path, sets=("chairs", "cats"))


def _matrix(fn) -> np.ndarray:
    """The 3x3 matrix of an index map: where a step along each source axis goes."""

    def where(idx):
        g = np.zeros((32, 32, 32), bool)
        g[idx] = True
        return np.argwhere(fn(g))[0]

    c = where((16, 16, 16))
    m = np.zeros((3, 3))
    for i in range(3):
        idx = [16, 16, 16]
        idx[i] += 3
        m[:, i] = (where(tuple(idx)) - c) / 3
    return m


def test_canonical_maps_are_proper_rotations():
    """Each frame change is a rotation (det +1), never a mirror, and maps axes as documented:
    ShapeNet new x = -old z, new y = -old x, new z = old y; ModelNet40 airplanes new x =
    -old x, new y = old z, new z = old y."""
    sn = _matrix(D.shapenet_to_canonical)
    assert np.array_equal(sn, [[0, 0, -1], [-1, 0, 0], [0, 1, 0]])
    mn = _matrix(D.airplane40_to_canonical)
    assert np.array_equal(mn, [[-1, 0, 0], [0, 0, 1], [0, 1, 0]])
    for m in (sn, mn):
        assert np.isclose(np.linalg.det(m), 1.0)


def test_class_weights_balance_classes():
    labels = np.array(["chair"] * 900 + ["car"] * 90 + ["mug"] * 10)
    share = lambda w, c: w[labels == c].sum()  # noqa: E731
    eq = class_weights(labels, 0.0)
    assert np.isclose(eq.sum(), 1) and all(
        np.isclose(share(eq, c), 1 / 3) for c in ("chair", "car", "mug")
    )
    none = class_weights(labels, 1.0)
    assert np.allclose(none, 1 / len(labels))
    root = class_weights(labels, 0.5)
    assert share(root, "chair") == pytest.approx(30 / (30 + np.sqrt(90) + np.sqrt(10)))
    with pytest.raises(ValueError, match="power"):
        class_weights(labels, 1.5)
    order = epoch_order(len(labels), 3, 7, _OneRank(), eq)
    assert len(order) == len(labels)
    got = {c: (labels[order] == c).mean() for c in ("chair", "car", "mug")}
    assert all(abs(v - 1 / 3) < 0.06 for v in got.values()), got
    assert np.array_equal(order, epoch_order(len(labels), 3, 7, _OneRank(), eq)), "resumable"
    assert not np.array_equal(order, epoch_order(len(labels), 4, 7, _OneRank(), eq))


def test_class_share_pins_a_class_and_balances_the_rest():
    labels = np.array(["chair"] * 900 + ["car"] * 90 + ["mug"] * 10)
    share = lambda w, c: w[labels == c].sum()  # noqa: E731
    w = class_weights(labels, 0.5, {"chair": 0.4})
    assert np.isclose(w.sum(), 1) and share(w, "chair") == pytest.approx(0.4)
    # the others split 0.6 by sqrt(n), as --balance 0.5 alone would among themselves
    assert share(w, "car") / share(w, "mug") == pytest.approx(3.0)
    assert share(w, "car") + share(w, "mug") == pytest.approx(0.6)
    rows = w[labels == "chair"]
    assert np.allclose(rows, rows[0]), "rows inside a class stay equally likely"
    for bad, msg in (({"boat": 0.2}, "unknown class"), ({"chair": 1.0}, "sum below 1"),
                     ({"chair": 0.5, "car": 0.3, "mug": 0.1}, "leave at least one")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            class_weights(labels, 0.5, bad)


def test_class_share_option_parses_and_rejects():
    from image2lego.training.train import build_parser, main

    args = build_parser().parse_args(
        [
            "image",
            "--out",
            "x",
            "--balance",
            "0.5",
            "--class-share",
            "chair=0.4",
            "--class-share",
            "airplane=0.07",
        ]  # fmt: skip
    )
    assert dict(args.class_share_items) == {"chair": 0.4, "airplane": 0.07}
    for bad in ("chair", "chair=1.5", "=0.2", "chair=x"):
        with pytest.raises(SystemExit):
            main(["image", "--out", "x", "--class-share", bad])


# ------------------------------------------------------------------ one size convention


def _longest(g: np.ndarray) -> int:
    nz = np.nonzero(g)
    return max(int(a.max() - a.min() + 1) for a in nz)


def test_normalise_size_scales_the_longest_side_and_keeps_the_frame():
    box = np.zeros((32, 32, 32), bool)
    box[0:32, 8:24, 0:8] = True  # 32 x 16 x 8: a ShapeNet-sized slab
    g, f = D.normalise_size(box)
    assert f == pytest.approx(24 / 32)
    nz = np.nonzero(g)
    ext = [int(a.max() - a.min() + 1) for a in nz]
    assert ext == [24, 12, 6]
    assert nz[2].min() == 0, "grounded"
    assert (31 - nz[0].max()) - nz[0].min() in (0, 1) and (31 - nz[1].max()) - nz[1].min() in (0, 1)
    # a grid already in the convention is only grounded/centred, never resampled
    chairlike = np.zeros((32, 32, 32), bool)
    chairlike[3:19, 5:21, 2:26] = True
    again, f2 = D.normalise_size(chairlike)
    assert f2 == 1.0 and again.sum() == chairlike.sum() and _longest(again) == 24
    # small objects grow to the convention too (a 12-cell stool)
    small = np.zeros((32, 32, 32), bool)
    small[10:22, 10:22, 0:12] = True
    assert _longest(D.normalise_size(small)[0]) == 24
    assert not D.normalise_size(np.zeros((32, 32, 32), bool))[0].any()
    with pytest.raises(ValueError, match="non-empty"):
        D.rescale_grid(np.zeros((4, 4, 4), bool), 2.0)


def test_to_shapenet_frame_inverts_the_convention():
    """Our 24-cell grid -> ShapeNet's: longest side 32, bounding box centred in x, y and z."""
    box = np.zeros((32, 32, 32), bool)
    box[0:32, 8:24, 10:22] = True  # ShapeNet placement: centred vertically, not grounded
    ours, _ = D.normalise_size(box)
    back = D.to_shapenet_frame(ours)
    assert (back & box).sum() / (back | box).sum() > 0.9
    nz = np.nonzero(back)
    assert [(int(a.min()) + int(a.max()) + 1) / 2 for a in nz] == [16, 16, 16]


@pytest.mark.data
def test_every_source_shares_one_size(shared_data, tmp_path):
    """Measured before the rule: chairs/ModelNet 24 cells, ShapeNet/monitors/beds 32. After
    the build every source's median longest side is CANON_LONGEST, and almost every row
    is within a cell of it (thin shapes can lose a speck that set their bounding box)."""
    sets = [
        D.load_chairs(shared_data, limit=10),
        D.load_monitors(shared_data, limit=20),
        D.load_beds(shared_data, limit=20),
        D.load_shapenet(shared_data, limit=8),
        D.load_airplanes40(shared_data, limit=20),
    ]
    raw = {s.source[0] + "/" + s.label[0]: np.median([_longest(g) for g in s.voxels]) for s in sets}
    assert raw["shapenet/airplane"] == 32 and raw["modelnet40/chair"] == 24, raw
    vs = D.normalise_set(D.concat(sets))
    longest = np.array([_longest(g) for g in vs.voxels])
    for key in sorted(set(zip(vs.source.tolist(), vs.label.tolist(), strict=True))):
        m = (vs.source == key[0]) & (vs.label == key[1])
        assert abs(np.median(longest[m]) - D.CANON_LONGEST) <= D.SIZE_TOLERANCE, key
    assert np.mean(np.abs(longest - D.CANON_LONGEST) <= D.SIZE_TOLERANCE) >= 0.95
    z_lo = np.array([np.nonzero(g.any(axis=(0, 1)))[0][0] for g in vs.voxels])
    assert (z_lo == 0).all()


@pytest.mark.data
def test_shapenet_round_trip_ceiling(shared_data):
    """ShapeNet voxels -> our convention -> ShapeNet's: what the benchmark can reach at most
    with a perfect prediction (measured 0.74 mean on 195 models; airplane/rifle lowest)."""
    sn = D.load_shapenet(shared_data, limit=3)
    ious = []
    for g in sn.voxels:
        native = np.zeros_like(g)
        c = g[tuple(slice(a.min(), a.max() + 1) for a in np.nonzero(g))]
        st = [(32 - n) // 2 for n in c.shape]
        native[
            st[0] : st[0] + c.shape[0], st[1] : st[1] + c.shape[1], st[2] : st[2] + c.shape[2]
        ] = c
        back = D.to_shapenet_frame(D.normalise_size(g)[0])
        ious.append((back & native).sum() / (back | native).sum())
    assert 0.6 < np.mean(ious) < 0.95


def _box_set(ids, rots, split, side=30):
    """A tiny rotated set: one box grid (longest side ``side``) per (model, rotation)."""
    rows = [(m, r) for m in ids for r in rots]
    g = np.zeros((len(rows), 32, 32, 32), dtype=bool)
    for i, (_, r) in enumerate(rows):
        g[i, 1 : 1 + side, 4 : 4 + 8 + r, 0:10] = True  # the rotation changes the grid
    vs = D._make_set(
        g, ["chair"] * len(rows), ["modelnet40"] * len(rows), [m for m, _ in rows],
        [r for _, r in rows],
    )  # fmt: skip
    vs.split = np.full(len(rows), split, dtype="<U5")
    return vs


def test_add_train_rotations_appends_only_the_missing_training_rows():
    """The v9 cache step: the training chairs get their missing rotations appended after the
    old rows (so rendered views stay aligned); validation models and the cap are untouched."""
    old = D.concat(
        [_box_set(["a", "b"], (1, 4), "train", 24), _box_set(["v"], range(1, 13), "val", 24)]
    )
    full = D.concat([_box_set(["a", "b", "c", "v"], range(1, 13), "train")])  # source: no split
    new, added = D.add_train_rotations(old, full, range(1, 13))
    assert added == 2 * 10 == len(new) - len(old)
    for f in ("model_id", "rotation", "split"):
        assert np.array_equal(getattr(new, f)[: len(old)], getattr(old, f)), f
    assert np.array_equal(new.voxels[: len(old)], old.voxels)
    tail = new.subset(np.arange(len(new)) >= len(old))
    assert set(tail.model_id) == {"a", "b"}, "no capped-out model, no validation model"
    assert (tail.split == "train").all()
    for m in ("a", "b"):
        assert sorted(new.rotation[new.model_id == m].tolist()) == list(range(1, 13))
    assert all(_longest(g) == D.CANON_LONGEST for g in tail.voxels), "normalised to one size"
    r7 = tail.voxels[(tail.model_id == "a") & (tail.rotation == 7)][0]
    assert r7.sum() != tail.voxels[(tail.model_id == "a") & (tail.rotation == 2)][0].sum()
    again, none = D.add_train_rotations(new, full, range(1, 13))
    assert none == 0 and len(again) == len(new)
    few, n2 = D.add_train_rotations(old, full, (1, 2))
    assert n2 == 2 and set(few.rotation[len(old) :].tolist()) == {2}
    with pytest.raises(ValueError, match="1..12"):
        D.add_train_rotations(old, full, (0, 13))


def test_rotated_rows_train_only_on_views_near_the_set_pose_azimuth(tmp_path):
    """A 30-degree-step rotated chair seen from a camera turned beyond 15 degrees looks like
    its neighbour rotation: those views fall back to the set pose; unrotated rows keep all."""
    from image2lego.core.camera import SET_POSE, View
    from image2lego.training.sampling import rotated_view_mask, view_azimuth_offsets

    offs = [[0.0, 10.0, -14.0], [0.0, 16.0, -29.0], [0.0, 29.0, 350.0]]
    params = np.array(
        [[View(azimuth=SET_POSE.azimuth + a).as_array() for a in row] for row in offs],
        dtype=np.float32,
    )
    from dataclasses import fields

    np.savez(
        tmp_path / "views128.npz",
        views=params,
        view_fields=np.array([f.name for f in fields(View)]),
    )
    az = view_azimuth_offsets(str(tmp_path))
    assert np.allclose(az, [[0, 10, -14], [0, 16, -29], [0, 29, -10]], atol=1e-3), "wrapped"
    ok = rotated_view_mask(np.array([4, 7, 0]), az, 15.0)
    assert ok.tolist() == [[True, True, True], [True, False, False], [True, True, True]]
    assert rotated_view_mask(np.array([4, 7, 0]), az, 180.0).all()
    with pytest.raises(ValueError, match="azimuth limit"):
        rotated_view_mask(np.array([4, 7, 0]), az, -1.0)
    with pytest.raises(ValueError, match="rows of view parameters"):
        rotated_view_mask(np.array([4, 7]), az, 15.0)
    np.savez(tmp_path / "views128.npz", images=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no view parameters"):
        view_azimuth_offsets(str(tmp_path))
