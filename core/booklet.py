"""The instruction booklet: step renders + parts callouts → HTML folder and multi-page PDF.

Pure Python + Pillow (no bpy): the Blender side renders the images
(:mod:`image2lego.blender.instructions`) and hands their paths here.

Layout follows printed LEGO instructions: a cover with the finished model, the title and the
brick count; then one page per step with a big step number, a pale blue "parts needed in this
step" callout (a picture of each part with ``2x`` under it, its colour named under the count)
and the model picture (each step's render frames that step, so it is shown as big as the page
allows); a page with the finished model from the front and from behind; the last page(s) list
every part with its picture, colour, name and count. Every page but the cover is numbered.
Pages are A4 landscape. Text uses the font bundled with Pillow
(``ImageFont.load_default(size=...)``), so nothing outside the package is needed.

Every file goes through :mod:`.fileio` (temporary file + rename). The PDF is written one page
at a time (Pillow's ``append=True``) into a temporary file, so memory stays at one page even
for books of hundreds of steps.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..lego.catalogue import ALL_PARTS
from ..lego.colors import LDRAW_COLORS
from ..lego.fileio import atomic_path, atomic_write_text

#: A4 landscape at 120 dpi.
PAGE_DPI = 120
PAGE_SIZE = (round(297 / 25.4 * PAGE_DPI), round(210 / 25.4 * PAGE_DPI))  # (1403, 992)

BACKGROUND = (255, 255, 255)
CALLOUT_FILL = (221, 236, 250)  # the pale blue of LEGO parts callouts
CALLOUT_BORDER = (96, 140, 200)
TEXT = (20, 20, 20)
MUTED = (120, 120, 120)

PartKey = tuple[str, int]


# --------------------------------------------------------------------------- naming


def part_name(part_id: str) -> str:
    p = ALL_PARTS.get(part_id)
    return " ".join(p.name.split()) if p is not None else f"Part {part_id}"


def color_name(code: int) -> str:
    c = LDRAW_COLORS.get(int(code))
    return c.name if c is not None else f"Colour {code}"


def color_rgb255(code: int) -> tuple[int, int, int]:
    c = LDRAW_COLORS.get(int(code))
    rgb = c.rgb if c is not None else (0.63, 0.65, 0.64)
    r, g, b = (round(v * 255) for v in rgb)
    return r, g, b


def _sorted_parts(parts: Mapping[PartKey, int]) -> list[tuple[PartKey, int]]:
    """Largest parts first (as LEGO callouts do), then by part and colour."""

    def key(item):
        (pid, col), _n = item
        p = ALL_PARTS.get(pid)
        size = (p.studs * p.height) if p is not None else 0
        return (-size, pid, col)

    return sorted(parts.items(), key=key)


def substep_labels(step_layers: Sequence[int]) -> list[str]:
    """Labels for steps that share a layer: a layer with more bricks than one step shows is
    split into sub-steps (:mod:`.steps`); its pages say ``layer 7 · part 2 of 3``. Steps that
    are a whole layer get ``""``. ``step_layers[i]``: the layer (bottom plate height) of step
    ``i``; consecutive steps with the same value are one layer."""
    out = [""] * len(step_layers)
    i, layer_no = 0, 0
    while i < len(step_layers):
        j = i
        while j + 1 < len(step_layers) and step_layers[j + 1] == step_layers[i]:
            j += 1
        layer_no += 1
        if j > i:
            n = j - i + 1
            for k in range(i, j + 1):
                out[k] = f"layer {layer_no} · part {k - i + 1} of {n}"
        i = j + 1
    return out


def _validate(step_images, step_parts) -> None:
    if len(step_images) == 0:
        raise ValueError("a booklet needs at least one step image")
    if len(step_images) != len(step_parts):
        raise ValueError(f"{len(step_images)} step images but parts for {len(step_parts)} steps")
    for p in step_images:
        if not Path(p).is_file():
            raise ValueError(f"step image {p} does not exist")


# --------------------------------------------------------------------------- drawing


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _open_rgba(path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGBA")


def _fit(im: Image.Image, box_w: int, box_h: int, max_scale: float = 2.0) -> Image.Image:
    s = min(box_w / im.width, box_h / im.height, max_scale)
    size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
    return im.resize(size, Image.Resampling.LANCZOS) if size != im.size else im


def _crop_to_content(im: Image.Image, pad: int = 4) -> Image.Image:
    """Trim transparent borders (renders are framed with a margin)."""
    bbox = im.getchannel("A").getbbox() if im.mode == "RGBA" else None
    if not bbox:
        return im
    x0, y0, x1, y1 = bbox
    return im.crop(
        (max(0, x0 - pad), max(0, y0 - pad), min(im.width, x1 + pad), min(im.height, y1 + pad))
    )


def _swatch(code: int, size: int) -> Image.Image:
    """Stand-in when a part has no thumbnail: a plain tile in the part's colour."""
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    m = size // 6
    d.rounded_rectangle(
        (m, m, size - m, size - m),
        radius=m,
        fill=(*color_rgb255(code), 255),
        outline=(60, 60, 60, 255),
        width=2,
    )
    return im


def _part_extent(part_id: str) -> float:
    """Rough visual size of a part (diagonal of its box, in studs)."""
    p = ALL_PARTS.get(part_id)
    if p is None:
        return 2.0
    return (p.length**2 + p.width**2 + (p.height * 0.4) ** 2) ** 0.5


def _part_tile(
    key: PartKey,
    count: int | None,
    thumbs: Mapping[PartKey, os.PathLike],
    cell: int,
    rel: float = 1.0,
) -> Image.Image:
    """A part picture with ``3x`` under it, on a transparent tile ``cell`` wide.

    ``rel`` (0..1] shrinks the picture so parts in one callout keep their relative sizes.
    """
    label_h = max(14, cell // 5) if count is not None else 0
    name_h = max(11, cell // 9) if count is not None else 0
    tile = Image.new("RGBA", (cell, cell + label_h + name_h), (0, 0, 0, 0))
    src = thumbs.get(key)
    pic = (
        _crop_to_content(_open_rgba(src)) if src and Path(src).is_file() else _swatch(key[1], cell)
    )
    side = max(8, round((cell - 8) * rel))
    pic = _fit(pic, side, side, max_scale=3.0)
    tile.alpha_composite(pic, ((cell - pic.width) // 2, (cell - pic.height) // 2))
    if count is not None:
        d = ImageDraw.Draw(tile)
        f = _font(label_h)
        d.text((cell // 2, cell + label_h // 2), f"{count}x", font=f, fill=TEXT, anchor="mm")
        name = _fit_text(d, color_name(key[1]), _font(name_h), cell)
        d.text((cell // 2, cell + label_h + name_h // 2), name, font=_font(name_h), fill=MUTED,
               anchor="mm")  # fmt: skip
    return tile


def _fit_text(d: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if d.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and d.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _callout(
    parts: Mapping[PartKey, int], thumbs: Mapping[PartKey, os.PathLike], max_w: int, max_h: int
) -> Image.Image:
    """The rounded pale-blue box with every part of the step and its count."""
    items = _sorted_parts(parts)
    n = max(1, len(items))
    pad, gap = 14, 10
    # Largest cell that fits all items in the box (at most 130 px, at least 40 px).
    cell = 130
    while cell > 40:
        cols = max(1, (max_w - 2 * pad + gap) // (cell + gap))
        rows = -(-n // cols)
        if rows * (cell + cell // 5 + max(11, cell // 9) + gap) - gap + 2 * pad <= max_h:
            break
        cell -= 6
    cols = max(1, min(n, (max_w - 2 * pad + gap) // (cell + gap)))
    rows = -(-n // cols)
    label = max(14, cell // 5) + max(11, cell // 9)
    w = cols * (cell + gap) - gap + 2 * pad
    h = rows * (cell + label + gap) - gap + 2 * pad
    box = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(box)
    d.rounded_rectangle(
        (0, 0, w - 1, h - 1),
        radius=16,
        fill=(*CALLOUT_FILL, 255),
        outline=(*CALLOUT_BORDER, 255),
        width=3,
    )
    biggest = max((_part_extent(k[0]) for k, _n in items), default=1.0)
    for i, (key, count) in enumerate(items):
        r, c = divmod(i, cols)
        # Gentle relative sizing (a 1x1 smaller than a 2x4, but still easy to see).
        rel = min(1.0, max(0.45, (_part_extent(key[0]) / biggest) ** 0.6))
        tile = _part_tile(key, count, thumbs, cell, rel)
        box.alpha_composite(tile, (pad + c * (cell + gap), pad + r * (cell + label + gap)))
    return box


def _footer(page: Image.Image, title: str, page_no: int, n_pages: int) -> None:
    d = ImageDraw.Draw(page)
    W, H = page.size
    f = _font(20)
    d.text((40, H - 30), title, font=f, fill=MUTED, anchor="lm")
    d.text((W - 40, H - 30), f"{page_no} / {n_pages}", font=f, fill=MUTED, anchor="rm")


def compose_step_page(
    step_no: int,
    n_steps: int,
    image,
    parts: Mapping[PartKey, int],
    thumbs: Mapping[PartKey, os.PathLike] | None = None,
    *,
    title: str = "",
    page_no: int | None = None,
    n_pages: int | None = None,
    size: tuple[int, int] = PAGE_SIZE,
    crop: tuple[int, int, int, int] | None = None,
    sublabel: str = "",
) -> Image.Image:
    """One instruction page: big step number, parts callout, the step render.

    ``sublabel``: a line under the step number (e.g. ``layer 7 · part 2 of 3`` for a sub-step).

    ``crop`` is the box cut out of the render; give every page the same one (see
    :func:`common_crop`) so the model keeps its size and place from page to page, as the
    fixed instruction camera intends. ``None`` trims this image's own empty border.
    """
    thumbs = thumbs or {}
    W, H = size
    page = Image.new("RGBA", size, (*BACKGROUND, 255))
    d = ImageDraw.Draw(page)
    margin = 40
    num_font = _font(110)
    label, sub = str(step_no), sublabel
    d.text((margin, margin - 10), label, font=num_font, fill=TEXT, anchor="la")
    num_box = d.textbbox((margin, margin - 10), label, font=num_font, anchor="la")
    num_w = num_box[2]
    sub_h = 0
    if sub:
        sub_font = _font(22)
        sub_w = round(d.textlength(sub, font=sub_font))
        d.text((margin, num_box[3] + 14), sub, font=sub_font, fill=MUTED, anchor="la")
        num_w = max(num_w, margin + sub_w)
        sub_h = 40
    callout = _callout(parts, thumbs, max_w=int(W - num_w - 3 * margin), max_h=int(H * 0.32))
    cx = int(num_w + margin)
    page.alpha_composite(callout, (cx, margin))
    top = margin + max(callout.height, 110 + sub_h) + 20
    pic = _open_rgba(image)
    pic = _crop_to_content(pic, pad=10) if crop is None else pic.crop(crop)
    pic = _fit(pic, W - 2 * margin, H - top - 60, max_scale=2.5)
    page.alpha_composite(pic, ((W - pic.width) // 2, top + (H - top - 60 - pic.height) // 2))
    if page_no is not None:
        _footer(page, title, page_no, n_pages or page_no)
    return page.convert("RGB")


#: A step with at most this many kinds of part may share its page with its neighbour.
SMALL_STEP_KINDS = 4


def page_groups(
    step_parts: Sequence[Mapping[PartKey, int]],
    per_page: int = 2,
    small_kinds: int = SMALL_STEP_KINDS,
) -> list[list[int]]:
    """Steps (0-based) per page, in order: consecutive small steps (at most ``small_kinds``
    kinds of part each) share a page, up to ``per_page`` side by side, as printed LEGO and
    LPub3D booklets do; a bigger step gets a page of its own."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    groups: list[list[int]] = []
    for i, parts in enumerate(step_parts):
        small = len(parts) <= small_kinds
        last = groups[-1] if groups else None
        if (
            small
            and last is not None
            and len(last) < per_page
            and all(len(step_parts[j]) <= small_kinds for j in last)
        ):
            last.append(i)
        else:
            groups.append([i])
    return groups


def compose_steps_page(
    steps: Sequence[tuple[int, object, Mapping[PartKey, int], str]],
    n_steps: int,
    thumbs: Mapping[PartKey, os.PathLike] | None = None,
    *,
    title: str = "",
    page_no: int | None = None,
    n_pages: int | None = None,
    size: tuple[int, int] = PAGE_SIZE,
) -> Image.Image:
    """Several steps on one page, side by side: ``steps`` = ``[(step_no, image, parts,
    sublabel)]``, each in its own panel (number, parts callout, render), divided by a rule.
    One step gives :func:`compose_step_page`'s page."""
    if len(steps) == 1:
        no, image, parts, sub = steps[0]
        return compose_step_page(
            no, n_steps, image, parts, thumbs, title=title, page_no=page_no,
            n_pages=n_pages, size=size, sublabel=sub,
        )  # fmt: skip
    thumbs = thumbs or {}
    W, H = size
    page = Image.new("RGBA", size, (*BACKGROUND, 255))
    d = ImageDraw.Draw(page)
    margin = 40
    panel_w = (W - margin * (len(steps) + 1)) // len(steps)
    num_font = _font(90)
    bottom = H - 60
    for k, (no, image, parts, sub) in enumerate(steps):
        x0 = margin + k * (panel_w + margin)
        if k:
            d.line([(x0 - margin // 2, margin), (x0 - margin // 2, bottom)], fill=MUTED, width=2)
        d.text((x0, margin - 10), str(no), font=num_font, fill=TEXT, anchor="la")
        num_box = d.textbbox((x0, margin - 10), str(no), font=num_font, anchor="la")
        sub_h, right = 0, num_box[2]
        if sub:
            sub_font = _font(20)
            d.text((x0, num_box[3] + 12), sub, font=sub_font, fill=MUTED, anchor="la")
            right = max(right, x0 + d.textlength(sub, font=sub_font))
            sub_h = 34
        cx = int(right) + 24
        callout = _callout(parts, thumbs, max_w=int(x0 + panel_w - cx), max_h=int(H * 0.3))
        page.alpha_composite(callout, (cx, margin))
        top = margin + max(callout.height, 95 + sub_h) + 20
        pic = _crop_to_content(_open_rgba(image), pad=10)
        pic = _fit(pic, panel_w, bottom - top, max_scale=2.0)
        page.alpha_composite(
            pic, (x0 + (panel_w - pic.width) // 2, top + (bottom - top - pic.height) // 2)
        )
    if page_no is not None:
        _footer(page, title, page_no, n_pages or page_no)
    return page.convert("RGB")


def _image_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def common_crop(images: Sequence, pad: int = 10) -> tuple[int, int, int, int] | None:
    """The union of the non-transparent boxes of ``images`` (all the same size), padded."""
    box = None
    size = None
    for p in images:
        with Image.open(p) as im:
            size = im.size
            bb = im.getchannel("A").getbbox() if im.mode == "RGBA" else (0, 0, *im.size)
        if bb:
            box = bb if box is None else (
                min(box[0], bb[0]), min(box[1], bb[1]), max(box[2], bb[2]), max(box[3], bb[3])
            )  # fmt: skip
    if box is None or size is None:
        return None
    return (
        max(0, box[0] - pad),
        max(0, box[1] - pad),
        min(size[0], box[2] + pad),
        min(size[1], box[3] + pad),
    )


def compose_cover(
    title: str,
    cover_image,
    n_bricks: int,
    n_steps: int,
    n_parts: int,
    *,
    size: tuple[int, int] = PAGE_SIZE,
) -> Image.Image:
    """Cover: the finished model, the title, brick / step / part counts."""
    W, H = size
    page = Image.new("RGBA", size, (*BACKGROUND, 255))
    d = ImageDraw.Draw(page)
    band = 150
    d.rectangle((0, 0, W, band), fill=(200, 16, 46, 255))  # LEGO red title band
    tf = _font(72)
    d.text((W // 2, band // 2), title, font=tf, fill=(255, 255, 255), anchor="mm")
    sub = f"{n_bricks} bricks  ·  {n_parts} different parts  ·  {n_steps} steps"
    d.text((W // 2, H - 60), sub, font=_font(36), fill=TEXT, anchor="mm")
    if cover_image is not None and Path(cover_image).is_file():
        pic = _crop_to_content(_open_rgba(cover_image), pad=10)
        pic = _fit(pic, W - 160, H - band - 160, max_scale=3.0)
        page.alpha_composite(pic, ((W - pic.width) // 2, band + (H - band - 120 - pic.height) // 2))
    return page.convert("RGB")


def compose_finished_page(
    front,
    back,
    *,
    title: str = "",
    page_no: int | None = None,
    n_pages: int | None = None,
    size: tuple[int, int] = PAGE_SIZE,
) -> Image.Image:
    """The finished model from the front and from behind, side by side."""
    W, H = size
    page = Image.new("RGBA", size, (*BACKGROUND, 255))
    d = ImageDraw.Draw(page)
    margin, head = 40, 120
    d.text((margin, 40), "Finished!", font=_font(54), fill=TEXT, anchor="la")
    pics = [(p, lab) for p, lab in ((front, "front"), (back, "back")) if p is not None]
    pics = [(p, lab) for p, lab in pics if Path(p).is_file()]
    if pics:
        box_w = (W - 2 * margin - (len(pics) - 1) * margin) // len(pics)
        box_h = H - head - 110
        for i, (p, lab) in enumerate(pics):
            pic = _fit(_crop_to_content(_open_rgba(p), pad=10), box_w, box_h, max_scale=3.0)
            x0 = margin + i * (box_w + margin)
            page.alpha_composite(
                pic, (x0 + (box_w - pic.width) // 2, head + (box_h - pic.height) // 2)
            )
            d.text((x0 + box_w // 2, head + box_h + 20), lab, font=_font(26), fill=MUTED,
                   anchor="mm")  # fmt: skip
    if page_no is not None:
        _footer(page, title, page_no, n_pages or page_no)
    return page.convert("RGB")


_PARTS_CELL = (250, 220, 120)  # cell width, cell height, picture size (px)


def _parts_grid(size: tuple[int, int]) -> tuple[int, int]:
    """Columns and rows of the parts-list grid (40 px margins, 110 px heading, footer)."""
    W, H = size
    return max(1, (W - 80) // _PARTS_CELL[0]), max(1, (H - 110 - 70) // _PARTS_CELL[1])


def compose_parts_pages(
    parts: Mapping[PartKey, int],
    thumbs: Mapping[PartKey, os.PathLike] | None = None,
    *,
    title: str = "",
    first_page_no: int | None = None,
    n_pages: int | None = None,
    size: tuple[int, int] = PAGE_SIZE,
) -> list[Image.Image]:
    """The full parts list: picture, count, colour and name of every (part, colour)."""
    thumbs = thumbs or {}
    W, H = size
    margin, head = 40, 110
    cell_w, cell_h, pic = _PARTS_CELL
    cols, rows = _parts_grid(size)
    per_page = cols * rows
    items = _sorted_parts(parts)
    chunks = [items[i : i + per_page] for i in range(0, len(items), per_page)] or [[]]
    total = sum(parts.values())
    pages = []
    f_name, f_count = _font(16), _font(30)
    for k, chunk in enumerate(chunks):
        page = Image.new("RGBA", size, (*BACKGROUND, 255))
        d = ImageDraw.Draw(page)
        heading = "Parts list" + (f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else "")
        d.text((margin, 40), heading, font=_font(54), fill=TEXT, anchor="la")
        d.text(
            (W - margin, 60),
            f"{total} bricks, {len(items)} kinds",
            font=_font(26),
            fill=MUTED,
            anchor="ra",
        )
        for i, (key, count) in enumerate(chunk):
            r, c = divmod(i, cols)
            x, y = margin + c * cell_w, head + r * cell_h
            d.rounded_rectangle(
                (x + 6, y + 6, x + cell_w - 6, y + cell_h - 6),
                radius=12,
                fill=CALLOUT_FILL,
                outline=CALLOUT_BORDER,
                width=2,
            )
            tile = _part_tile(key, None, thumbs, pic)
            page.alpha_composite(tile, (x + (cell_w - pic) // 2, y + 10))
            d.text(
                (x + cell_w // 2, y + pic + 28), f"{count}x", font=f_count, fill=TEXT, anchor="mm"
            )
            d.text(
                (x + cell_w // 2, y + pic + 56),
                f"{part_name(key[0])}",
                font=f_name,
                fill=TEXT,
                anchor="mm",
            )
            d.text(
                (x + cell_w // 2, y + pic + 74),
                f"{color_name(key[1])}  ·  {key[0]}",
                font=f_name,
                fill=MUTED,
                anchor="mm",
            )
        if first_page_no is not None:
            _footer(page, title, first_page_no + k, n_pages or first_page_no + k)
        pages.append(page.convert("RGB"))
    return pages


def n_parts_pages(n_kinds: int, size: tuple[int, int] = PAGE_SIZE) -> int:
    """How many pages the parts list of ``n_kinds`` (part, colour) pairs takes."""
    cols, rows = _parts_grid(size)
    return max(1, -(-n_kinds // (cols * rows)))


# --------------------------------------------------------------------------- outputs


def write_pdf(pages, path, *, title: str = "", dpi: int = PAGE_DPI, quality: int = 90) -> Path:
    """Write pages (an iterable of PIL images, consumed one at a time) as one PDF, atomically.

    Each page is one JPEG image (``quality``) filling a page of its size at ``dpi``. Written
    here, streaming, rather than with Pillow's PDF writer: its ``append=True`` re-reads the
    whole file for every page (55 pages: 1.2 s vs 0.3 s, growing with the square of the page
    count) and ``save_all`` holds every page in memory at once (4 MB each); img2pdf, the
    library for this, needs pikepdf (qpdf, C++), too heavy to bundle in the Blender zip.
    """
    import io

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        offsets: list[int] = []

        def obj(body: bytes, stream: bytes | None = None) -> int:
            offsets.append(f.tell())
            f.write(b"%d 0 obj\n" % len(offsets) + body)
            if stream is not None:
                f.write(b"\nstream\n" + stream + b"\nendstream")
            f.write(b"\nendobj\n")
            return len(offsets)

        f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        # objects 1 and 2 (catalog, page tree) are written last, at the offsets kept here
        offsets += [0, 0]
        kids: list[int] = []
        for page in pages:
            im = page.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=int(quality))
            w, h = im.size
            pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
            img = obj(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB"
                b" /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>" % (w, h, buf.tell()),
                buf.getvalue(),
            )
            content = b"q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q" % (pw, ph)
            cs = obj(b"<< /Length %d >>" % len(content), content)
            kids.append(
                obj(
                    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f]"
                    b" /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                    % (pw, ph, img, cs)
                )
            )
        if not kids:
            raise ValueError("a PDF needs at least one page")
        for num, body in (
            (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
            (2, b"<< /Type /Pages /Count %d /Kids [%s] >>"
             % (len(kids), b" ".join(b"%d 0 R" % k for k in kids))),
        ):  # fmt: skip
            offsets[num - 1] = f.tell()
            f.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
        info = obj(b"<< /Title %s /Producer (Image2LEGO) >>" % _pdf_string(title))
        xref = f.tell()
        f.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        f.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
        f.write(
            b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(offsets) + 1, info, xref)
        )
    return path


def _pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with a byte-order mark, hex-encoded (any title is safe)."""
    return b"<" + ("\ufeff" + text).encode("utf-16-be").hex().upper().encode() + b">"


def _rel(p, base: Path) -> str:
    return Path(os.path.relpath(Path(p).resolve(), base.resolve())).as_posix()


def write_html(
    path,
    *,
    title: str,
    cover,
    step_images: Sequence,
    step_parts: Sequence[Mapping[PartKey, int]],
    thumbnails: Mapping[PartKey, os.PathLike],
    n_bricks: int,
    back=None,
    step_labels: Sequence[str] | None = None,
) -> Path:
    """A self-contained HTML page (images referenced relative to its folder)."""
    path = Path(path)
    base = path.parent
    esc = html.escape
    total: dict[PartKey, int] = {}
    for d in step_parts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v

    def part_fig(key, count, cls):
        src = thumbnails.get(key)
        alt = f"{count}x {part_name(key[0])}, {color_name(key[1])}"
        if src is not None and Path(src).is_file():
            img = f'<img src="{esc(_rel(src, base))}" alt="{esc(alt)}">'
        else:
            r, g, b = color_rgb255(key[1])
            img = f'<span class="swatch" style="background:rgb({r},{g},{b})"></span>'
        return (
            f'<figure class="{cls}">{img}<figcaption><b>{count}x</b>'
            f"<small>{esc(part_name(key[0]))}<br>{esc(color_name(key[1]))}</small>"
            "</figcaption></figure>"
        )

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)} – building instructions</title>",
        "<style>",
        "body{font-family:system-ui,sans-serif;margin:0;background:#f3f5f8;color:#141414}",
        "section{background:#fff;max-width:1100px;margin:24px auto;padding:24px 32px;",
        "box-shadow:0 1px 4px #0002;border-radius:6px}",
        ".cover h1{background:#c8102e;color:#fff;margin:-24px -32px 16px;padding:28px;",
        "text-align:center;font-size:2.4em;border-radius:6px 6px 0 0}",
        ".cover p{text-align:center;font-size:1.3em}",
        ".step header{display:flex;align-items:flex-start;gap:24px}",
        ".num{font-size:5em;font-weight:700;line-height:1;min-width:1.2em}",
        ".num .sub{font-size:.2em;font-weight:400;color:#777;white-space:nowrap}",
        ".callout{display:flex;flex-wrap:wrap;gap:8px;background:#ddecfa;",
        "border:3px solid #608cc8;border-radius:14px;padding:10px}",
        "figure{margin:0;text-align:center}",
        ".callout figure img{width:90px;height:90px;object-fit:contain}",
        "figcaption b{display:block;font-size:1.2em}",
        ".callout small{display:none}",
        ".model{display:block;margin:16px auto 0;max-width:100%}",
        ".views{display:flex;gap:16px}.views figure{flex:1}",
        ".parts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}",
        ".parts figure{background:#ddecfa;border:2px solid #608cc8;border-radius:10px;",
        "padding:8px}",
        ".parts img{width:110px;height:110px;object-fit:contain}",
        ".swatch{display:inline-block;width:70px;height:70px;border-radius:10px;",
        "border:2px solid #3c3c3c;margin:10px}",
        "</style></head><body>",
        '<section class="cover">',
        f"<h1>{esc(title)}</h1>",
    ]
    if cover is not None and Path(cover).is_file():
        out.append(f'<img class="model" src="{esc(_rel(cover, base))}" alt="The finished model">')
    out.append(
        f"<p>{n_bricks} bricks · {len(total)} different parts · {len(step_images)} steps</p>"
    )
    out.append("</section>")
    labels = list(step_labels) if step_labels is not None else [""] * len(step_images)
    for i, (img, parts) in enumerate(zip(step_images, step_parts, strict=True)):
        figs = "".join(part_fig(k, n, "part") for k, n in _sorted_parts(parts))
        sub = f'<div class="sub">{esc(labels[i])}</div>' if labels[i] else ""
        out.append(
            f'<section class="step" id="step-{i + 1}"><header><div class="num">{i + 1}{sub}</div>'
            f'<div class="callout">{figs}</div></header>'
            f'<img class="model" src="{esc(_rel(img, base))}" alt="Step {i + 1}"></section>'
        )
    views = [(p, lab) for p, lab in ((cover, "front"), (back, "back")) if p is not None]
    views = [(p, lab) for p, lab in views if Path(p).is_file()]
    if views:
        imgs = "".join(
            f'<figure><img class="model" src="{esc(_rel(p, base))}" alt="The finished model, '
            f'{lab}"><figcaption>{lab}</figcaption></figure>'
            for p, lab in views
        )
        out.append(f'<section class="finished"><h2>Finished!</h2><div class="views">{imgs}</div>'
                   "</section>")  # fmt: skip
    figs = "".join(part_fig(k, n, "part") for k, n in _sorted_parts(total))
    out.append(
        f'<section class="partslist"><h2>Parts list</h2>'
        f"<p>{sum(total.values())} bricks, {len(total)} kinds</p>"
        f'<div class="parts">{figs}</div></section>'
    )
    out.append("</body></html>")
    return atomic_write_text(path, "\n".join(out) + "\n")


def build_booklet(
    out_dir,
    *,
    title: str,
    cover,
    step_images: Sequence,
    step_parts: Sequence[Mapping[PartKey, int]],
    thumbnails: Mapping[PartKey, os.PathLike] | None = None,
    n_bricks: int | None = None,
    basename: str = "instructions",
    back=None,
    step_labels: Sequence[str] | None = None,
    steps_per_page: int = 2,
) -> tuple[Path, Path]:
    """Write ``<basename>.html`` and ``<basename>.pdf`` into ``out_dir``; return both paths.

    In the PDF, consecutive small steps share a page, up to ``steps_per_page`` side by side
    (:func:`page_groups`; 1: a page per step); the HTML has one section per step.

    ``step_images[i]`` is the render of step ``i + 1``; ``step_parts[i]`` maps
    ``(part_id, colour)`` to how many of it step ``i + 1`` adds; ``thumbnails`` maps the same
    keys to part pictures (missing ones are drawn as colour tiles). ``back``: a picture of
    the finished model from behind for the "finished" page (beside ``cover``).
    ``step_labels[i]``: a line under step ``i + 1``'s number (see :func:`substep_labels`).

    Each step page shows its own render trimmed to its content (the renders frame each step,
    see :mod:`image2lego.blender.instructions`).
    """
    _validate(step_images, step_parts)
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} does not exist")
    thumbs = dict(thumbnails or {})
    total: dict[PartKey, int] = {}
    for d in step_parts:
        for k, v in d.items():
            if v <= 0:
                raise ValueError(f"part count for {k} must be positive, got {v}")
            total[k] = total.get(k, 0) + v
    n_bricks = sum(total.values()) if n_bricks is None else int(n_bricks)
    n_steps = len(step_images)
    groups = page_groups(step_parts, per_page=steps_per_page)
    n_pages = 1 + len(groups) + 1 + n_parts_pages(len(total))
    labels = list(step_labels) if step_labels is not None else [""] * n_steps
    if len(labels) != n_steps:
        raise ValueError(f"{len(labels)} step labels for {n_steps} steps")

    def pages():
        yield compose_cover(title, cover, n_bricks, n_steps, len(total))
        for g, group in enumerate(groups):
            yield compose_steps_page(
                [(i + 1, step_images[i], step_parts[i], labels[i]) for i in group], n_steps,
                thumbs, title=title, page_no=g + 2, n_pages=n_pages,
            )  # fmt: skip
        yield compose_finished_page(
            cover, back, title=title, page_no=len(groups) + 2, n_pages=n_pages
        )
        yield from compose_parts_pages(
            total, thumbs, title=title, first_page_no=len(groups) + 3, n_pages=n_pages
        )

    pdf_path = write_pdf(pages(), out_dir / f"{basename}.pdf", title=title)
    html_path = write_html(
        out_dir / f"{basename}.html",
        title=title,
        cover=cover,
        step_images=step_images,
        step_parts=step_parts,
        thumbnails=thumbs,
        n_bricks=n_bricks,
        back=back,
        step_labels=labels,
    )
    return html_path, pdf_path


def pdf_page_count(path) -> int:
    """Number of pages of a PDF (via Pillow's own PDF parser)."""
    from PIL import PdfParser

    p = PdfParser.PdfParser(str(path))
    try:
        return len(p.pages)
    finally:
        p.close()
