"""Photo preprocessing: conversions, masks, framing, and a clear error for every bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from image2lego.core import preprocess as P
from image2lego.core.preprocess import BACKGROUND, SIZE, ImageError, preprocess_image


def _photo(w=200, h=160, box=(60, 40, 140, 130), fg=(40, 60, 90), seed=0) -> np.ndarray:
    """An RGB 'photo': a dark object (ellipse) on a light, slightly noisy background."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(225, 6, (h, w, 3)), 0, 255)
    yy, xx = np.mgrid[:h, :w]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    inside = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
    img[inside] = fg
    return img.astype(np.uint8), inside


def _save(tmp_path, img: Image.Image, name: str, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


def _check(res, size=SIZE):
    assert res.image.shape == (size, size) and res.image.dtype == np.uint8
    assert res.mask.shape == (size, size) and res.mask.dtype == bool
    assert 0.1 < res.mask.mean() < 0.95
    # the object is centred
    rows, cols = np.nonzero(res.mask)
    assert abs((rows.min() + rows.max()) / 2 - (size - 1) / 2) <= 1.5
    assert abs((cols.min() + cols.max()) / 2 - (size - 1) / 2) <= 1.5
    # background is the training background
    assert (res.image[~res.mask] >= BACKGROUND - 60).mean() > 0.95


# --------------------------------------------------------------------------- good inputs


def test_rgb_photo_grabcut_finds_the_object(tmp_path):
    arr, truth = _photo()
    p = _save(tmp_path, Image.fromarray(arr), "photo.png")
    res = preprocess_image(p)
    _check(res)
    assert res.mask_source == "grabcut"
    assert res.original_size == (200, 160)
    left, top, right, bottom = res.bbox
    assert abs(left - 60) <= 3 and abs(top - 40) <= 3
    assert abs(right - 140) <= 3 and abs(bottom - 130) <= 3
    # the object's grey level survives (dark ellipse)
    assert res.image[res.mask].mean() < 100


def test_large_photo_is_downscaled_for_grabcut_but_framed_in_full(tmp_path):
    arr, _ = _photo(w=2400, h=1800, box=(700, 500, 1700, 1500))
    res = preprocess_image(Image.fromarray(arr))
    _check(res)
    assert res.original_size == (2400, 1800)
    assert abs(res.bbox[0] - 700) <= 12 and abs(res.bbox[2] - 1700) <= 12


def test_alpha_channel_is_the_mask(tmp_path):
    arr, inside = _photo()
    rgba = np.dstack([arr, np.where(inside, 255, 0).astype(np.uint8)])
    res = preprocess_image(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
    assert res.mask_source == "alpha"
    _check(res)
    assert (res.image[~res.mask] == BACKGROUND).mean() > 0.97  # composited on white


def test_fully_opaque_alpha_falls_back_to_grabcut():
    arr, _ = _photo()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    res = preprocess_image(Image.fromarray(rgba, "RGBA"))
    assert res.mask_source == "grabcut"
    _check(res)


def test_la_image_uses_its_alpha():
    arr, inside = _photo()
    gray = Image.fromarray(arr).convert("L")
    la = Image.merge("LA", [gray, Image.fromarray(np.where(inside, 255, 0).astype(np.uint8))])
    res = preprocess_image(la)
    assert res.mask_source == "alpha"
    _check(res)


def test_palette_with_transparency_becomes_alpha(tmp_path):
    arr, inside = _photo()
    img = Image.fromarray(np.where(inside[..., None], arr, 0).astype(np.uint8)).quantize(16)
    pal_idx = np.asarray(img)
    bg_index = int(np.bincount(pal_idx[~inside]).argmax())
    img.info["transparency"] = bg_index
    p = _save(tmp_path, img, "p.png", transparency=bg_index)
    res = preprocess_image(p)
    assert Image.open(p).mode == "P"
    assert res.mask_source == "alpha"
    _check(res)


def test_palette_without_transparency_is_converted(tmp_path):
    arr, _ = _photo()
    p = _save(tmp_path, Image.fromarray(arr).quantize(32), "p.gif")
    res = preprocess_image(p)
    _check(res)


def test_cmyk_jpeg(tmp_path):
    arr, _ = _photo()
    p = _save(tmp_path, Image.fromarray(arr).convert("CMYK"), "c.jpg", quality=95)
    assert Image.open(p).mode == "CMYK"
    res = preprocess_image(p)
    _check(res)
    assert res.image[res.mask].mean() < 110  # dark object stays dark (no inverted CMYK)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_and_32_bit_grayscale(tmp_path, mode):
    arr, inside = _photo()
    g = np.asarray(Image.fromarray(arr).convert("L"), dtype=np.float64) / 255
    if mode == "I;16":
        img = Image.fromarray((g * 65535).astype(np.uint16))
        assert img.mode == "I;16"
    else:
        img = Image.fromarray((g * 65535).astype(np.int32))
        assert img.mode == "I"
    p = _save(tmp_path, img, "g16.png" if mode == "I;16" else "g32.tif")
    assert Image.open(p).mode == mode
    res = preprocess_image(p)
    _check(res)
    # full range mapped to 8 bits, not clipped to white
    assert 20 < res.image[res.mask].mean() < 110


def test_animated_gif_uses_the_first_frame(tmp_path):
    a1, _ = _photo(box=(20, 30, 90, 120))
    a2, _ = _photo(box=(110, 30, 180, 120))
    frames = [Image.fromarray(a).quantize(32) for a in (a1, a2)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(p).n_frames == 2
    res = preprocess_image(p)
    assert res.bbox[0] < 40 and res.bbox[2] < 100, "the object of frame 1 (left)"


def test_exif_orientation_is_applied(tmp_path):
    arr, _ = _photo(w=200, h=160, box=(10, 20, 60, 140))  # object at the left
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = _save(tmp_path, img, "r.jpg", exif=exif, quality=95)
    res = preprocess_image(p)
    assert res.original_size == (160, 200), "width/height swapped"
    left, top, right, bottom = res.bbox
    assert top < 70 and bottom < 70, "the left side is at the top after a clockwise turn"


def test_bytes_and_given_mask():
    arr, inside = _photo()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    res = preprocess_image(buf.getvalue(), mask=inside)
    assert res.mask_source == "given"
    _check(res)
    with pytest.raises(ValueError, match="mask shape"):
        preprocess_image(buf.getvalue(), mask=inside[:10])


def test_other_sizes_and_margin():
    arr, inside = _photo()
    res = preprocess_image(Image.fromarray(arr), size=64, margin=0.2, mask=inside)
    _check(res, 64)
    rows, cols = np.nonzero(res.mask)
    assert abs(max(rows.ptp(), cols.ptp()) + 1 - 64 * 0.6) <= 2


# --------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        preprocess_image(tmp_path / "nope.png")


def test_folder(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        preprocess_image(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        preprocess_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageError, match="not an image"):
        preprocess_image(p)


def test_file_too_big_for_any_image_is_refused_by_size(tmp_path):
    p = tmp_path / "huge.png"
    with open(p, "wb") as f:  # sparse: 3 GiB on paper, nothing on disk
        f.truncate(3 * 2**30)
    with pytest.raises(ImageError, match="over the .*-byte limit"):
        preprocess_image(p)


def test_big_non_image_is_refused_by_its_header_not_read_whole(tmp_path):
    import tracemalloc

    p = tmp_path / "big.png"
    with open(p, "wb") as f:
        f.write(b"this is not a picture\n" * 1000)
        f.truncate(64 * 2**20)  # under the size limit
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="not an image"):
            preprocess_image(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # the 64 MiB were never read into memory


def test_image_with_trailing_bytes_is_still_read(tmp_path):
    arr, _ = _photo()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    p = tmp_path / "padded.png"
    p.write_bytes(buf.getvalue() + bytes(2**20))
    assert preprocess_image(p).mask.any()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, fmt):
    arr, _ = _photo()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        preprocess_image(p)


def test_enormous_image_is_refused(tmp_path):
    p = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(p)  # 81 MP, tiny file
    with pytest.raises(ImageError, match="too large"):
        preprocess_image(p)
    assert isinstance(ImageError("x"), ValueError)
    with pytest.raises(ImageError, match="too large"):
        preprocess_image(Image.new("1", (9000, 9000)))
    with pytest.raises(ImageError, match="empty"):
        preprocess_image(Image.new("RGB", (0, 0)))


def test_uniform_image_has_no_object(tmp_path):
    p = _save(tmp_path, Image.new("RGB", (120, 90), (200, 200, 200)), "flat.png")
    # an empty mask is not the end of the road: the one-line error says how the user helps
    with pytest.raises(ImageError, match=r"no object.*--mask FILE or --crop") as e:
        preprocess_image(p)
    assert "\n" not in str(e.value)


def test_transparent_image_has_no_object():
    with pytest.raises(ImageError, match="no object"):
        preprocess_image(Image.new("RGBA", (50, 40), (255, 0, 0, 0)))


def test_frame_object_validates():
    g = np.zeros((10, 10))
    with pytest.raises(ValueError, match="equal 2D"):
        P.frame_object(g, np.zeros((10, 9)))
    with pytest.raises(ImageError, match="empty"):
        P.frame_object(g, np.zeros((10, 10)))
    with pytest.raises(ValueError, match="margin"):
        P.frame_object(g, np.ones((10, 10)), margin=0.6)


def test_clean_mask_keeps_big_parts_and_fills_holes():
    m = np.zeros((60, 60), bool)
    m[10:40, 10:40] = True
    m[20:25, 20:25] = False  # a hole
    m[50, 50] = True  # a speck
    out = P.clean_mask(m)
    assert out[22, 22] and not out[50, 50]
    assert out.sum() == 900


# --------------------------------------------------------------------------- renders


@pytest.fixture(scope="module")
def rendered():
    pytest.importorskip("pyrender")
    from image2lego.training import render as R

    try:
        r = R.Renderer()
    except Exception as e:
        pytest.skip(f"no offscreen OpenGL context: {e}")
    g = np.zeros((32, 32, 32), bool)
    g[8:24, 10:22, 0:3] = True
    g[8:11, 10:13, 0:14] = g[21:24, 19:22, 0:14] = True
    g[8:24, 10:22, 12:15] = True
    g[8:24, 19:22, 12:28] = True  # a little chair
    gray, mask = r.raw(*R.voxel_surface(g), R.SET_POSE)
    yield R, r, g, gray, mask
    r.close()


def test_render_through_preprocess_with_alpha_is_identical(rendered):
    R, r, g, gray, mask = rendered
    view = r.frame(gray, mask, R.SET_POSE)
    rgba = Image.merge(
        "LA",
        [
            Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8)),
            Image.fromarray(mask.astype(np.uint8) * 255),
        ],
    )
    res = preprocess_image(rgba)
    assert np.abs(res.image.astype(int) - view).max() <= 1


def test_rendered_view_through_grabcut_comes_back_nearly_identical(rendered):
    R, r, g, gray, mask = rendered
    view = R.render_voxels(g, renderer=r)
    res = preprocess_image(Image.fromarray(view))
    assert res.mask_source == "grabcut"
    diff = np.abs(res.image.astype(int) - view)
    assert diff.mean() < 4, diff.mean()
    obj = view < BACKGROUND - 3
    iou = (obj & res.mask).sum() / (obj | res.mask).sum()
    assert iou > 0.85, iou


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_crop_rectangle_rescues_a_cluttered_photo():
    """A bright 'window' and a dark 'shelf' touching the object's surroundings: the user's
    rectangle around the object keeps the clutter out of the mask."""
    img, inside = _photo(w=240, h=200, box=(90, 70, 160, 150))
    img[10:190, 5:60] = (250, 250, 250)  # window
    img[20:60, 170:235] = (30, 25, 20)  # shelf
    rect = (80, 60, 170, 160)
    res = preprocess_image(Image.fromarray(img), rect=rect)
    assert res.mask_source == "grabcut+rect"
    left, top, right, bottom = res.bbox
    assert left >= rect[0] and top >= rect[1] and right <= rect[2] and bottom <= rect[3]
    full = P.grabcut_mask(img, rect=rect)
    assert _iou(full, inside) > 0.85
    assert not full[:, :60].any() and not full[:, 170:].any(), "clutter outside the rectangle"


@pytest.mark.parametrize(
    "rect, msg",
    [
        ((0, 0, 500, 10), "not inside"),
        ((10, 10, 14, 90), "smaller than 8x8"),
        ((1, 2, 3), "4 numbers"),
    ],
)
def test_bad_crop_rectangle_is_a_clear_error(rect, msg):
    img, _ = _photo()
    with pytest.raises(ImageError, match=msg):
        preprocess_image(Image.fromarray(img), rect=rect)


def test_empty_grabcut_retries_from_the_centre(monkeypatch):
    img, inside = _photo()
    real = P.grabcut_mask
    calls = []

    def first_empty(rgb, iterations=P.GRABCUT_ITERATIONS, rect=None):
        calls.append(rect)
        if rect is None:
            return np.zeros(rgb.shape[:2], bool)
        return real(rgb, iterations, rect=rect)

    monkeypatch.setattr(P, "grabcut_mask", first_empty)
    res = preprocess_image(Image.fromarray(img))
    assert res.mask_source == "grabcut+centre"
    assert calls[0] is None and calls[1] == (20, 16, 180, 144)
    assert res.mask.sum() > 0.2 * res.mask.size


def test_crop_rectangle_cuts_an_alpha_mask():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[10:40, 10:40, 3] = 255  # object
    rgba[60:90, 60:90, 3] = 255  # a second thing the user crops away
    res = preprocess_image(Image.fromarray(rgba, "RGBA"), rect=(0, 0, 50, 50))
    assert res.mask_source == "alpha" and res.bbox == (10, 10, 40, 40)
