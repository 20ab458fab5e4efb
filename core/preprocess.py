"""Photo -> the image the TL-Octree image encoder sees: 128x128 grayscale, object centred.

Offline and dependency-light (Pillow, NumPy, OpenCV; no torch, no pyrender, no bpy) so Blender
can call it. Steps:

1. Open and validate (clear :class:`ImageError` for a missing / empty / truncated / non-image /
   enormous file), apply the EXIF orientation, convert odd modes: CMYK -> RGB, 16/32-bit
   grayscale (``I;16``, ``I``, ``F``) scaled from their actual range to 8 bits, palette images
   (``P``; a transparent palette entry becomes alpha), ``LA``/``RGBA`` keep their alpha.
   Animated images (GIF, APNG, WebP) use their **first frame**.
2. Mask: the alpha channel when there is one that is not fully opaque; otherwise OpenCV
   GrabCut on a copy downscaled to <= 400 px, initialised with the border as background and a
   centred rectangle as "probably object"; then cleaned (largest connected components, holes
   filled) and scaled back up.
3. :func:`frame_object`: crop a square around the mask's bounding box with a margin, centre
   the object, keep the aspect ratio, resize to ``size`` and composite onto the training
   background (:data:`BACKGROUND`, white). The renderer (``training.render``) runs exactly this
   function on its renders, so photos and training views share the framing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, ImageSequence

from ..lego.errors import Image2LegoError
from ..lego.fileio import check_path_text

SIZE = 128
MARGIN = 0.08  # fraction of the object's longer side left free on each side
BACKGROUND = 255  # training background (white)
MAX_PIXELS = 64_000_000  # larger images are refused (decompression-bomb guard)
GRABCUT_MAX_SIDE = 400
GRABCUT_ITERATIONS = 4
MIN_MASK_FRACTION = 0.002  # a mask smaller than this share of the image counts as empty


class ImageError(Image2LegoError, ValueError):
    """The input cannot be turned into a model input; the message says why."""


@dataclass
class Preprocessed:
    image: np.ndarray  # (size, size) uint8 grayscale, object on BACKGROUND
    mask: np.ndarray  # (size, size) bool, the object in ``image``
    bbox: tuple[int, int, int, int]  # (left, top, right, bottom) of the object in the source
    original_size: tuple[int, int]  # (width, height) of the source after EXIF orientation
    mask_source: str = "alpha"  # "alpha" | "given" | "grabcut" | "grabcut+rect" | "grabcut+centre"


# --------------------------------------------------------------------------- framing


def frame_object(
    gray: np.ndarray,
    alpha: np.ndarray,
    size: int = SIZE,
    margin: float = MARGIN,
    background: float | np.ndarray = BACKGROUND,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Crop to the object, centre it in a square with ``margin``, resize, composite.

    ``gray``: (H, W) image, any real dtype in 0..255. ``alpha``: (H, W) bool or float 0..1
    coverage of the object. ``background``: a value, or a (size, size) array (texture).
    Returns ``(image uint8 (size, size), mask bool (size, size), bbox (l, t, r, b))``.
    Shared by photo preprocessing and the training renderer, so both frame identically.
    """
    gray = np.asarray(gray, dtype=np.float32)
    a = np.asarray(alpha, dtype=np.float32)
    if gray.ndim != 2 or a.shape != gray.shape:
        raise ValueError(f"gray {gray.shape} and alpha {a.shape} must be equal 2D shapes")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    on = a > 0.5
    if not on.any():
        raise ImageError("no object found: the mask is empty")
    rows = np.flatnonzero(on.any(axis=1))
    cols = np.flatnonzero(on.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(bottom - top, right - left) / (1 - 2 * margin)
    # OpenCV puts pixel centres on integer coordinates: the box centre in those coordinates
    cx, cy = (left + right - 1) / 2, (top + bottom - 1) / 2
    scale = side / size  # source pixels per output pixel
    src: list[np.ndarray] = [gray * a, a]  # premultiplied, so edges blend into any background
    if scale > 2:  # area-average first so thin parts do not alias away
        f = int(np.floor(scale / 1.5))
        h, w = gray.shape
        nw, nh = max(1, w // f), max(1, h // f)
        src = [cv2.resize(c, (nw, nh), interpolation=cv2.INTER_AREA) for c in src]
        sx, sy = w / nw, h / nh
        cx, cy = (cx + 0.5) / sx - 0.5, (cy + 0.5) / sy - 0.5
        scale = scale / sx  # square pixels: sx ~ sy
    half = (size - 1) / 2
    m = np.array([[scale, 0, cx - scale * half], [0, scale, cy - scale * half]], np.float64)
    out = [
        cv2.warpAffine(
            c,
            m,
            (size, size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0,),
        )
        for c in src
    ]
    premult, cover = out[0], np.clip(out[1], 0, 1)
    bg = np.broadcast_to(np.asarray(background, dtype=np.float32), (size, size))
    img = premult + (1 - cover) * bg
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, cover > 0.5, (int(left), int(top), int(right), int(bottom))


# --------------------------------------------------------------------------- loading


#: No image within :data:`MAX_PIXELS` needs more (64 Mpx of 16-bit RGBA, uncompressed, is 512 MiB)
MAX_IMAGE_FILE_BYTES = 2**29 + 2**20


def _read_if_image(p: Path) -> bytes:
    """The file's bytes, read only once Pillow recognised its header (a big file that is no
    image is refused after a few kilobytes, not read whole)."""
    with open(p, "rb") as f:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                Image.open(f)  # reads the header only
            except Image.UnidentifiedImageError as e:
                raise ImageError(f"not an image file (format not recognised): {p}") from e
            except Exception:  # noqa: BLE001 - anything else is reported by the full read below
                pass
        f.seek(0)
        return f.read()


def _open(src) -> Image.Image:
    if isinstance(src, Image.Image):
        w, h = src.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"image is too large: {w}x{h} pixels (limit {MAX_PIXELS:,})")
        if w == 0 or h == 0:
            raise ImageError(f"image is empty ({w}x{h} pixels)")
        if getattr(src, "n_frames", 1) > 1:
            src.seek(0)  # first frame of an animation
        src.load()
        return src
    if isinstance(src, bytes | bytearray):
        data = bytes(src)
        name = "<bytes>"
    else:
        try:
            p = check_path_text(src, "image file name")
        except ValueError as e:
            raise ImageError(str(e)) from None
        name = str(p)
        if not p.exists():
            raise ImageError(f"image file not found: {p}")
        if p.is_dir():
            raise ImageError(f"{p} is a folder, not an image file")
        size = p.stat().st_size
        if size == 0:
            raise ImageError(f"image file is empty (0 bytes): {p}")
        if size > MAX_IMAGE_FILE_BYTES:
            raise ImageError(
                f"image file is {size:,} bytes, over the {MAX_IMAGE_FILE_BYTES:,}-byte limit "
                f"(no photo within {MAX_PIXELS:,} pixels is that big): {p}"
            )
        data = _read_if_image(p)
    if not data:
        raise ImageError(f"image is empty (0 bytes): {name}")
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL warns above this (made an error here)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img: Image.Image = Image.open(io.BytesIO(data))
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ImageError(f"image is too large (limit {MAX_PIXELS:,} pixels): {name}") from e
            except Image.UnidentifiedImageError as e:
                raise ImageError(f"not an image file (format not recognised): {name}") from e
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"image is too large: {w}x{h} = {w * h:,} pixels (limit {MAX_PIXELS:,}): {name}"
                )
            if getattr(img, "n_frames", 1) > 1:
                img = next(ImageSequence.Iterator(img)).copy()  # first frame of an animation
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                img.load()
            except (OSError, SyntaxError, ValueError) as e:
                raise ImageError(f"image file is truncated or corrupt ({e}): {name}") from e
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return img


def _to_gray_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (gray float32 0..255, alpha float32 0..1 or None) for every Pillow mode we accept."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        img = img.convert("RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            g = np.zeros(a.shape, np.float32)
        elif mode.startswith("I;16") or (lo >= 0 and hi <= 65535 and hi > 255):
            full = 65535.0 if hi > 255 else 255.0
            g = (a / full * 255).astype(np.float32)
        else:
            g = ((a - lo) / (hi - lo) * 255).astype(np.float32)
        return g, None
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "La":
        img = img.convert("LA")
    alpha = None
    if img.mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    if img.mode not in ("RGB", "L"):
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as e:
            raise ImageError(f"unsupported image mode {mode!r}") from e
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    if alpha is not None and alpha.min() >= 254.5 / 255:
        alpha = None  # fully opaque alpha carries no mask
    return gray, alpha


def _rgb_for_grabcut(img: Image.Image) -> np.ndarray | None:
    img = ImageOps.exif_transpose(img)
    if img.mode not in ("RGB", "L"):
        if img.mode.startswith("I") or img.mode == "F":
            return None  # caller falls back to the gray image
        img = img.convert("RGBA").convert("RGB") if "A" in img.getbands() else img.convert("RGB")
    return np.asarray(img.convert("RGB"))


# --------------------------------------------------------------------------- masks


def clean_mask(mask: np.ndarray, keep_fraction: float = 0.2) -> np.ndarray:
    """Keep the largest connected component and any other at least ``keep_fraction`` of its
    size; fill holes (regions not connected to the image border)."""
    m = np.asarray(mask, dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(m.shape, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= keep_fraction * areas.max())
    out = np.isin(labels, keep)
    # holes: background pixels not reachable from the border
    inv = (~out).astype(np.uint8)
    n2, lab2 = cv2.connectedComponents(inv, connectivity=4)
    border = np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]]))
    holes = (inv > 0) & ~np.isin(lab2, border)
    return out | holes


def check_rect(rect, width: int, height: int) -> tuple[int, int, int, int]:
    """A crop rectangle ``(left, top, right, bottom)`` in source pixels, checked: inside the
    image (after EXIF orientation) and at least 8 pixels each way."""
    try:
        left, top, right, bottom = (int(round(float(v))) for v in rect)
    except (TypeError, ValueError):
        raise ImageError(
            f"crop rectangle must be 4 numbers left,top,right,bottom, got {rect!r}"
        ) from None
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ImageError(
            f"crop rectangle {left},{top},{right},{bottom} is not inside the {width}x{height} image"
        )
    if right - left < 8 or bottom - top < 8:
        raise ImageError(f"crop rectangle {left},{top},{right},{bottom} is smaller than 8x8 pixels")
    return left, top, right, bottom


def grabcut_mask(
    rgb: np.ndarray,
    iterations: int = GRABCUT_ITERATIONS,
    rect: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Foreground mask of an RGB uint8 image with OpenCV GrabCut (downscaled for speed).

    ``rect`` (left, top, right, bottom in ``rgb`` pixels): the object lies inside it, the
    rest is background for certain (a user's crop, for photos whose clutter defeats the
    default initialisation: border = background, everything else = probably object)."""
    h, w = rgb.shape[:2]
    f = min(1.0, GRABCUT_MAX_SIDE / max(h, w))
    # (interpolation by keyword: the third positional argument of cv2.resize is ``dst``)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    if min(sh, sw) < 8:
        raise ImageError(f"image is too small ({w}x{h}) to find an object in")
    if rect is not None:
        left, top, right, bottom = check_rect(rect, w, h)
        x0, y0 = int(left * f), int(top * f)
        x1, y1 = max(x0 + 2, round(right * f)), max(y0 + 2, round(bottom * f))
        gc = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        gc[y0:y1, x0:x1] = cv2.GC_PR_FGD
    else:
        gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
        by, bx = max(1, sh // 20), max(1, sw // 20)
        gc[by:-by, bx:-bx] = cv2.GC_PR_FGD
        gc[:by] = gc[-by:] = cv2.GC_BGD
        gc[:, :bx] = gc[:, -bx:] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: keep results reproducible
    try:
        cv2.grabCut(
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            gc,
            (0, 0, sw, sh),  # the rectangle counts only with GC_INIT_WITH_RECT; the mask rules
            bgd,
            fgd,
            iterations,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error as e:  # e.g. a uniform image: one GMM gets no samples
        raise ImageError(f"no object found: background removal failed ({e.err})") from e
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    fg = clean_mask(fg)
    if f < 1:
        fg = cv2.resize(fg.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127
    return fg


def load_mask(src) -> np.ndarray:
    """A user's object mask (path, bytes or PIL image): white / opaque = object. An image with
    an alpha channel uses the alpha, any other is converted to grey and thresholded at 50 %.
    Returns bool (H, W) after EXIF orientation, to be passed as ``mask=``."""
    img = _open(src)
    gray, alpha = _to_gray_alpha(img)
    m = alpha > 0.5 if alpha is not None else gray > 127.5
    if not m.any():
        raise ImageError("the mask file marks no object (it is all black / transparent)")
    return m


def parse_rect(text: str) -> tuple[int, int, int, int]:
    """``"left,top,right,bottom"`` (pixels) -> a tuple; a clear error otherwise."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        vals = tuple(int(round(float(t))) for t in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise ImageError(
            f"crop must be left,top,right,bottom in pixels, e.g. 40,30,600,420, not {text!r}"
        )
    return vals


# --------------------------------------------------------------------------- entry point


def preprocess_image(
    src: str | Path | Image.Image | bytes,
    size: int = SIZE,
    margin: float = MARGIN,
    *,
    mask: np.ndarray | None = None,
    rect: tuple[int, int, int, int] | None = None,
) -> Preprocessed:
    """A photo (path, bytes or PIL image) -> :class:`Preprocessed` (128^2 gray + mask).

    ``mask`` (bool, the image's size after EXIF orientation) skips background removal.
    ``rect`` (left, top, right, bottom, source pixels after EXIF orientation): the object is
    inside it; GrabCut starts from it (and an alpha mask is cut to it). When the default
    GrabCut finds nothing, it is retried once from a centred rectangle (the middle 80 %)
    before giving up, so an empty first mask is not the end of the road.
    Raises :class:`ImageError` (a ``ValueError``) with a specific message for bad input.
    """
    img = _open(src)
    gray, alpha = _to_gray_alpha(img)
    h, w = gray.shape
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (h, w):
            raise ValueError(f"mask shape {m.shape} does not match the image ({h}, {w})")
        cover, how = m.astype(np.float32), "given"
    elif alpha is not None:
        cover, how = alpha, "alpha"
        if rect is not None:
            left, top, right, bottom = check_rect(rect, w, h)
            cover = np.zeros_like(alpha)
            cover[top:bottom, left:right] = alpha[top:bottom, left:right]
    else:
        rgb = _rgb_for_grabcut(img)
        if rgb is None:
            g8 = np.clip(gray, 0, 255).astype(np.uint8)
            rgb = np.repeat(g8[..., None], 3, axis=2)
        how = "grabcut" if rect is None else "grabcut+rect"
        try:
            cover = grabcut_mask(rgb, rect=rect).astype(np.float32)
        except ImageError:
            if rect is not None:
                raise
            cover = np.zeros((h, w), np.float32)
        if rect is None and (cover > 0.5).sum() < max(1.0, MIN_MASK_FRACTION * h * w):
            central = (round(0.1 * w), round(0.1 * h), round(0.9 * w), round(0.9 * h))
            if central[2] - central[0] >= 8 and central[3] - central[1] >= 8:
                cover = grabcut_mask(rgb, rect=central).astype(np.float32)
                how = "grabcut+centre"
    if (cover > 0.5).sum() < max(1.0, MIN_MASK_FRACTION * h * w):
        raise ImageError(
            f"no object found: the {how} mask is empty (under {MIN_MASK_FRACTION:.1%} of the "
            "image); mark the object with --mask FILE or --crop LEFT,TOP,RIGHT,BOTTOM"
        )
    image, out_mask, bbox = frame_object(gray, cover, size, margin, BACKGROUND)
    return Preprocessed(image, out_mask, bbox, (w, h), how)
