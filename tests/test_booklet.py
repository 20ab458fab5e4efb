"""The instruction booklet (pure Python + Pillow): pages, HTML folder, multi-page PDF."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image2lego.core import booklet


def _img(path: Path, rgb, size=(160, 120)) -> Path:
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    a = np.asarray(im).copy()
    a[30:90, 40:120] = (*rgb, 255)
    Image.fromarray(a).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    steps = [_img(imgs / f"step_{i + 1:03d}.png", (40 * i, 100, 200)) for i in range(3)]
    cover = _img(imgs / "cover.png", (200, 0, 0))
    parts = [{("3001", 4): 2, ("3003", 1): 1}, {("3001", 4): 1}, {("3024", 0): 4}]
    thumbs = {("3001", 4): _img(imgs / "3001_4.png", (200, 0, 0), (64, 64))}  # others missing
    return steps, cover, parts, thumbs


def test_booklet_html_and_pdf(tmp_path, inputs):
    steps, cover, parts, thumbs = inputs
    out = tmp_path / "out"
    out.mkdir()
    html, pdf = booklet.build_booklet(
        out, title="Test <Model>", cover=cover, step_images=steps, step_parts=parts,
        thumbnails=thumbs,
    )  # fmt: skip
    assert html == out / "instructions.html" and pdf == out / "instructions.pdf"
    text = html.read_text()
    srcs = re.findall(r'src="([^"]+)"', text)
    for p in [*steps, cover, thumbs[("3001", 4)]]:
        rel = Path("..", "imgs", p.name).as_posix()
        assert rel in srcs, rel
    for s in srcs:  # every reference resolves relative to the HTML file
        assert (out / s).is_file(), s
    assert "Test &lt;Model&gt;" in text  # escaped
    assert 'id="step-3"' in text and 'id="step-4"' not in text
    assert "8 bricks" in text  # 2+1+1+4, counted from the parts when n_bricks is not given
    # cover, the step pages (three small steps: two on one page, one on the next), finished,
    # parts
    assert booklet.page_groups(parts) == [[0, 1], [2]]
    assert booklet.pdf_page_count(pdf) == 2 + 3
    assert pdf.read_bytes().startswith(b"%PDF")
    # No temporary files left behind.
    assert sorted(p.name for p in out.iterdir()) == ["instructions.html", "instructions.pdf"]


def test_step_page_draws_number_callout_and_model(inputs):
    steps, _cover, parts, thumbs = inputs
    page = booklet.compose_step_page(2, 3, steps[1], parts[0], thumbs, page_no=3, n_pages=5)
    assert page.size == booklet.PAGE_SIZE and page.mode == "RGB"
    a = np.asarray(page).astype(int)
    callout = np.all(np.abs(a - booklet.CALLOUT_FILL) <= 2, axis=-1)
    assert callout[: a.shape[0] // 3].sum() > 2000  # the pale-blue parts box at the top
    dark = (a.sum(-1) < 150)[:200, :200]
    assert dark.sum() > 500  # the big step number top-left
    model = np.all(np.abs(a - (40, 100, 200)) <= 3, axis=-1)
    assert model[a.shape[0] // 3 :].sum() > 10000  # the step render, scaled up, lower down


def test_parts_list_splits_over_pages_and_counts():
    many = {(pid, c): 1 for pid in ("3001", "3003", "3005", "3024") for c in range(40)}
    per = booklet.n_parts_pages(1)
    assert per == 1
    pages = booklet.compose_parts_pages(many)
    assert len(pages) == booklet.n_parts_pages(len(many)) > 1


def test_missing_or_mismatched_inputs_raise(tmp_path, inputs):
    steps, cover, parts, thumbs = inputs
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(ValueError, match="step images but parts"):
        booklet.build_booklet(out, title="t", cover=cover, step_images=steps, step_parts=parts[:2])
    with pytest.raises(ValueError, match="does not exist"):
        booklet.build_booklet(
            out, title="t", cover=cover, step_images=[tmp_path / "nope.png"], step_parts=[{}]
        )
    with pytest.raises(ValueError, match="at least one step"):
        booklet.build_booklet(out, title="t", cover=cover, step_images=[], step_parts=[])
    with pytest.raises(ValueError, match="does not exist"):
        booklet.build_booklet(
            tmp_path / "missing", title="t", cover=cover, step_images=steps, step_parts=parts
        )
    assert list(out.iterdir()) == []


def test_pdf_failure_leaves_nothing(tmp_path):
    out = tmp_path / "o"
    out.mkdir()

    def pages():
        yield Image.new("RGB", (100, 100), "white")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        booklet.write_pdf(pages(), out / "x.pdf")
    assert list(out.iterdir()) == []


def test_common_crop_is_the_union_so_the_model_stays_put(tmp_path):
    a = np.zeros((100, 200, 4), np.uint8)
    b = a.copy()
    a[10:20, 30:40] = 255
    b[50:60, 100:150] = 255
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    assert booklet.common_crop([pa, pb], pad=5) == (25, 5, 155, 65)
    assert booklet.common_crop([pa], pad=0) == (30, 10, 40, 20)


def test_substep_labels_name_the_parts_of_a_split_layer():
    # layers (bottom plate heights) of 6 steps: layer 0 alone, layer 3 split in 3, layer 6 in 2
    assert booklet.substep_labels([0, 3, 3, 3, 6, 6]) == [
        "",
        "layer 2 · part 1 of 3",
        "layer 2 · part 2 of 3",
        "layer 2 · part 3 of 3",
        "layer 3 · part 1 of 2",
        "layer 3 · part 2 of 2",
    ]
    assert booklet.substep_labels([]) == []


def test_sub_step_label_is_drawn_and_in_the_html(tmp_path, inputs):
    steps, cover, parts, thumbs = inputs
    plain = np.asarray(booklet.compose_step_page(2, 3, steps[1], parts[0], thumbs)).astype(int)
    sub = booklet.compose_step_page(
        2, 3, steps[1], parts[0], thumbs, sublabel="layer 2 · part 1 of 2"
    )
    a = np.asarray(sub).astype(int)
    below_number = (slice(150, 200), slice(30, 400))  # under the big step number
    assert (np.abs(a[below_number] - plain[below_number]).sum(-1) > 60).sum() > 100
    out = tmp_path / "out"
    out.mkdir()
    labels = ["", "layer 2 · part 1 of 2", "layer 2 · part 2 of 2"]
    html, _pdf = booklet.build_booklet(
        out, title="T", cover=cover, step_images=steps, step_parts=parts, thumbnails=thumbs,
        step_labels=labels,
    )  # fmt: skip
    assert html.read_text().count("part 2 of 2") == 1
    with pytest.raises(ValueError, match="step labels"):
        booklet.build_booklet(out, title="T", cover=cover, step_images=steps, step_parts=parts,
                              step_labels=["x"])  # fmt: skip


def test_pdf_pages_keep_their_size_and_order_and_any_title(tmp_path):
    from PIL import PdfParser

    sizes = [(1403, 992), (992, 1403), (300, 200)]
    pages = (Image.new("RGB", s, (40 * i, 90, 200)) for i, s in enumerate(sizes))
    pdf = booklet.write_pdf(pages, tmp_path / "b.pdf", title="Chaise «rouge» (1) \\ )", dpi=120)
    p = PdfParser.PdfParser(str(pdf))
    try:
        assert len(p.pages) == 3
        for page, (w, h) in zip(p.pages, sizes, strict=True):
            box = [float(v) for v in p.read_indirect(page)[b"MediaBox"]]
            assert box == pytest.approx([0, 0, w * 72 / 120, h * 72 / 120], abs=1e-3)
        assert bytes(p.info.Title).decode("utf-16") == "Chaise «rouge» (1) \\ )"
    finally:
        p.close()


def test_small_steps_share_pages_big_ones_stand_alone():
    small, big = {("3001", 4): 1}, {("3001", c): 1 for c in range(booklet.SMALL_STEP_KINDS + 1)}
    parts = [small, small, small, big, small, big, big, small, small]
    assert booklet.page_groups(parts) == [[0, 1], [2], [3], [4], [5], [6], [7, 8]]
    assert booklet.page_groups(parts, per_page=3) == [[0, 1, 2], [3], [4], [5], [6], [7, 8]]
    assert booklet.page_groups(parts, per_page=1) == [[i] for i in range(9)]
    with pytest.raises(ValueError):
        booklet.page_groups(parts, per_page=0)


def test_a_shared_page_shows_both_steps(inputs, tmp_path):
    steps, _cover, parts, thumbs = inputs
    one = np.asarray(booklet.compose_steps_page([(1, steps[0], parts[0], "")], 3, thumbs))
    two = np.asarray(
        booklet.compose_steps_page(
            [(1, steps[0], parts[0], ""), (2, steps[1], parts[1], "layer 2 · part 1 of 2")],
            3,
            thumbs,
        )  # fmt: skip
    )
    assert one.shape == two.shape == (booklet.PAGE_SIZE[1], booklet.PAGE_SIZE[0], 3)
    # each step's render colour appears, the second one in the right half only
    c0, c1 = np.array((0, 100, 200)), np.array((40, 100, 200))
    half = two.shape[1] // 2
    assert (np.abs(two[:, :half] - c0).sum(-1) < 8).sum() > 1000
    assert (np.abs(two[:, half:] - c1).sum(-1) < 8).sum() > 1000
    assert (np.abs(two[:, :half] - c1).sum(-1) < 8).sum() < 50
