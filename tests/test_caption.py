"""Caption → LEGO (core/caption.py, caption_cli.py, training/class_latents.py): both readers
(the all-MiniLM-L6-v2 embedding, skipped where the optional caption extra is absent, and the
word table it falls back to)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from image2lego import cli
from image2lego.core import caption as C
from image2lego.core import textembed
from image2lego.core.weightsmeta import default_weights_dir

HAVE_EMBEDDING = textembed.embedding_available()
needs_embedding = pytest.mark.skipif(
    not HAVE_EMBEDDING, reason=f"no sentence embedding: {textembed.embedding_unavailable_reason()}"
)
READERS = ["words", pytest.param("embedding", marks=needs_embedding)]


@pytest.mark.parametrize("reader", READERS)
def test_a_caption_gives_class_colour_size_and_variant(reader):
    c = C.parse_caption("A small dark red race cars!", seed=2, reader=reader)
    assert (c.label, c.color, c.resolution, c.variant) == ("car", 320, 16, 2)
    c = C.parse_caption("a light bluish gray couch", reader=reader)
    assert (c.label, c.color, c.resolution) == ("sofa", 71, 32)
    assert C.parse_caption("a grey boat", reader=reader).color == 71  # a plain colour word
    assert C.parse_caption("an aeroplane", reader=reader).color is None  # the default colour
    # the longer phrase wins: a bedside table is a night stand, not a table
    bedside = C.parse_caption("a bedside table", reader=reader)
    assert bedside.label == "night_stand" and bedside.notes == ()
    two = C.parse_caption("a table and two chairs", reader=reader)
    assert two.label == "table" and two.notes  # the first object, and it says so
    assert C.parse_caption("a black and white chair", reader=reader).notes == ()  # one object
    assert c.reader == (C.EMBEDDING if reader == "embedding" else C.WORD_TABLE)


@pytest.mark.parametrize("bad", ["", "   ", "a flying saucer", "x" * 600])
def test_a_caption_without_a_known_object_is_one_clear_error(bad):
    with pytest.raises(C.CaptionError) as e:
        C.parse_caption(bad, reader="words")
    assert "\n" not in str(e.value)


@needs_embedding
@pytest.mark.parametrize("bad", ["", "the meaning of life", "xyzzy plugh", "a red", "small",
                                 "x" * 600])  # fmt: skip
def test_the_embedding_refuses_a_caption_near_no_class_in_one_line(bad):
    with pytest.raises(C.CaptionError) as e:
        C.parse_caption(bad, reader="embedding")
    assert "\n" not in str(e.value)
    if bad.strip() and len(bad) < 100 and bad not in ("a red", "small"):
        assert "similarity" in str(e.value) and "I can build" in str(e.value)


UNKNOWN_WORDS = [
    ("a truck", "car"),
    ("a shotgun", "rifle"),
    ("a kayak", "watercraft"),
    ("a recliner", "chair"),
    ("a helicopter", "airplane"),
    ("a pistol", "rifle"),
]


@needs_embedding
@pytest.mark.parametrize("text, label", UNKNOWN_WORDS)
def test_the_embedding_reads_objects_the_word_table_does_not_know(text, label):
    c = C.parse_caption(text, reader="embedding")
    assert c.label == label and c.reader == C.EMBEDDING
    assert c.scores[0][0] == label and c.scores[0][1] >= C.MIN_SIMILARITY
    assert [s for _, s in c.scores] == sorted((s for _, s in c.scores), reverse=True)
    with pytest.raises(C.CaptionError):
        C.parse_caption(text, reader="words")


def test_without_the_embedding_auto_falls_back_to_the_word_table_and_says_so(monkeypatch):
    monkeypatch.setattr(C, "reader_unavailable_reason", lambda: "the package is not installed")
    c = C.parse_caption("a red chair")
    assert (c.label, c.color, c.reader) == ("chair", 4, C.WORD_TABLE)
    assert any("word table" in n and "not installed" in n for n in c.notes)
    with pytest.raises(C.CaptionError, match="not available: the package is not installed"):
        C.parse_caption("a red chair", reader="embedding")
    with pytest.raises(C.CaptionError, match="unknown caption reader"):
        C.parse_caption("a red chair", reader="telepathy")  # type: ignore[arg-type]


def test_a_caption_between_two_classes_is_blended_towards_the_nearer(monkeypatch):
    """The auto-blend rule on made-up similarities: equal → half and half, a gap of
    AUTO_BLEND_GAP or more → no blend, and the note says what was done."""
    labels = ("chair", "sofa", "car")
    table = {}

    def fake(texts, labs):
        return np.array([table[t] for t in texts], np.float32)

    monkeypatch.setattr(C, "class_similarities", fake)
    monkeypatch.setattr(C, "reader_unavailable_reason", lambda: None)
    gap = C.AUTO_BLEND_GAP
    for sims, blend, weight in [((0.6, 0.6, 0.1), "sofa", 0.5),
                                ((0.6, 0.6 - gap / 2, 0.1), "sofa", 0.25),
                                ((0.6, 0.6 - gap, 0.1), None, 0.5),
                                ((0.6, 0.3, 0.1), None, 0.5)]:  # fmt: skip
        table.clear()
        table["a seat"] = sims
        c = C.parse_caption("a seat", reader="embedding", labels=labels)
        assert (c.label, c.blend, c.blend_weight) == ("chair", blend, weight), sims
        assert bool(c.notes) == (blend is not None)
    table["a seat"] = (0.3, 0.2, 0.1)  # near nothing
    with pytest.raises(C.CaptionError, match="similarity 0.30 < 0.35"):
        C.parse_caption("a seat", reader="embedding", labels=labels)


def test_the_shipped_class_latents_fit_the_shipped_weights_and_every_class_decodes():
    lat = C.load_class_latents()  # refuses latents made for other weights
    assert set(lat) == set(C.CLASS_WORDS)
    for label in C.CLASS_WORDS:
        grid, info = C.caption_voxels(C.Caption(label, label))
        assert grid.shape == (32, 32, 32) and info["class"] == label
        assert grid.sum() >= 40, label
    small, _ = C.caption_voxels(C.Caption("small chair", "chair", resolution=16))
    assert small.shape == (16, 16, 16) and small.any()


def test_latents_for_other_weights_are_refused(tmp_path):
    from safetensors.numpy import save_file

    for f in default_weights_dir().iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    save_file({"car": np.zeros((1, 256), np.float32)}, str(tmp_path / C.LATENTS_FILE),
              metadata={"ae_sha256": "0" * 64})  # fmt: skip
    with pytest.raises(C.CaptionError, match="other autoencoder"):
        C.load_class_latents(tmp_path)
    (tmp_path / C.LATENTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(C.CaptionError, match="not a readable"):
        C.load_class_latents(tmp_path)
    (tmp_path / C.LATENTS_FILE).unlink()
    with pytest.raises(C.CaptionError, match="is missing"):
        C.load_class_latents(tmp_path)


def test_medoids_are_real_members_biggest_cluster_first():
    from image2lego.training.class_latents import class_latents

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [30, 12, 5]
    z = np.concatenate([c + rng.normal(0, 0.3, (n, 2)) for c, n in zip(centres, sizes)])
    labels = np.array(["x"] * len(z))
    grids = np.arange(len(z))  # stand-ins: encode looks the latent up by row

    def decode(lat):  # the third cluster decodes to almost nothing: left out
        return np.array([np.ones(100) * (la[1] < 5) for la in lat])

    out = class_latents(grids, labels, lambda g: z[g], decode, per_class=100, variants=3)
    got = out["x"]
    assert len(got) == 2
    for row in got:  # each variant is one of the inputs, not an average
        assert np.any(np.all(np.isclose(z, row), axis=1))
    assert np.linalg.norm(got[0] - centres[0]) < 1 and np.linalg.norm(got[1] - centres[1]) < 1


def test_cli_builds_a_caption_with_its_colour(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["caption", "a", "small", "red", "sofa", "-o", str(out)]
    rc = cli.main([*argv, "--no-render", "--no-instructions", "--no-blend", "-q"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["caption"]["class"] == "sofa" and rep["caption"]["resolution"] == 16
    assert rep["bricks"] > 10 and rep["colors"] == 1 and rep["connected"]
    codes = {ln.split()[1] for ln in (out / "model.ldr").read_text().splitlines()
             if ln.startswith("1 ")}  # fmt: skip
    assert codes == {"4"}  # Red
    assert (
        cli.main(["caption", "a", "spaceship", "--reader", "words", "-o", str(tmp_path / "x")]) == 2
    )
    assert "I can build" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    if HAVE_EMBEDDING:  # the embedding refuses only what is near no class
        assert cli.main(["caption", "xyzzy", "plugh", "-o", str(tmp_path / "y")]) == 2
        assert "I can build" in capsys.readouterr().err
        assert not (tmp_path / "y").exists()
    assert rep["caption"]["reader"] == (C.EMBEDDING if HAVE_EMBEDDING else C.WORD_TABLE)


@pytest.mark.parametrize("reader", READERS)
def test_in_the_style_of_blends_the_two_classes_latents(reader):
    c = C.parse_caption("a chair in the style of a sofa", reader=reader)
    assert (c.label, c.blend, c.blend_weight, c.notes) == ("chair", "sofa", 0.5, ())
    cross = C.parse_caption("a cross between a car and a boat", reader=reader)
    assert (cross.label, cross.blend) == ("car", "watercraft")
    mixed, info = C.caption_voxels(c)
    chair, _ = C.caption_voxels(C.parse_caption("a chair", reader=reader))
    sofa, _ = C.caption_voxels(C.parse_caption("a sofa", reader=reader))
    assert info["blend"] == "sofa" and mixed.any()
    assert not np.array_equal(mixed, chair) and not np.array_equal(mixed, sofa)

    # closer to each parent than the parents are to each other
    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert min(iou(mixed, chair), iou(mixed, sofa)) > iou(chair, sofa)


def test_text_is_the_same_command_as_caption(tmp_path):
    out = tmp_path / "t"
    assert cli.main(["text", "a", "lamp", "-o", str(out), "--no-render", "--no-instructions",
                     "--no-blend", "-q"]) == 0  # fmt: skip
    assert json.loads((out / "report.json").read_text())["caption"]["class"] == "lamp"


def test_the_blend_weight_moves_the_shape_from_one_class_to_the_other():
    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    chair, _ = C.caption_voxels(C.Caption("chair", "chair"))
    sofa, _ = C.caption_voxels(C.Caption("sofa", "sofa"))
    grids = [C.caption_voxels(C.Caption("x", "chair", blend="sofa", blend_weight=w))[0]
             for w in (0.0, 0.25, 0.5, 0.75, 1.0)]  # fmt: skip
    assert np.array_equal(grids[0], chair) and np.array_equal(grids[-1], sofa)
    to_sofa = [iou(g, sofa) for g in grids]
    assert to_sofa[0] < to_sofa[2] < to_sofa[-1] and to_sofa[1] < to_sofa[3]


def test_the_same_caption_and_seed_give_the_same_shape():
    a, ia = C.caption_voxels(C.parse_caption("a blue boat", seed=1))
    b, ib = C.caption_voxels(C.parse_caption("a blue boat", seed=1))
    assert np.array_equal(a, b) and ia == ib
    shapes = {C.caption_voxels(C.parse_caption("a blue boat", seed=s))[0].tobytes()
              for s in range(3)}  # fmt: skip
    assert len(shapes) == 3  # each seed its own variant


def test_reader_ready_only_once_the_embedding_is_loaded(monkeypatch):
    """Blender checks a caption on the main thread only when that is cheap."""
    if HAVE_EMBEDDING:
        C._class_space.cache_clear()
        assert not C.reader_ready()
        C.parse_caption("a chair")
        assert C.reader_ready()
    monkeypatch.setattr(C, "reader_unavailable_reason", lambda: "not installed")
    assert C.reader_ready()  # the word table costs nothing
    with pytest.raises(C.CaptionError, match="empty"):
        C.check_caption_text("  ")
    C.check_caption_text("xyzzy")  # only the free checks: no reading


@needs_embedding
@pytest.mark.parametrize(
    "text, pair",
    [
        ("something between a chair and a sofa", ("chair", "sofa")),
        ("half car half boat", ("car", "watercraft")),
        ("a lamp that looks like a rifle", ("lamp", "rifle")),
        ("a sofa meets a bed", ("sofa", "bed")),
        ("a bathtub shaped like a boat", ("bathtub", "watercraft")),
    ],
)
def test_the_ways_of_asking_for_a_blend(text, pair):
    c = C.parse_caption(text, reader="embedding")
    assert (c.label, c.blend, c.blend_weight) == (*pair, 0.5)


@needs_embedding
def test_a_blend_whose_sides_read_as_one_class_is_no_blend():
    c = C.parse_caption("a chair in the style of an armchair", reader="embedding")
    assert (c.label, c.blend) == ("chair", None) and "no blend" in c.notes[0]


@pytest.mark.parametrize("reader", READERS)
def test_any_text_is_read_or_refused_in_one_line(reader):
    """Hostile captions (any unicode, control characters, emoji, very long words): a Caption
    of a known class, or a one-line CaptionError — nothing else, and the same answer twice."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    odd = ["\x00chair", "🪑 a chair 🪑", "a " * 60, "ｃｈａｉｒ", "a CHAIR!!!", "x" * 501]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.text(max_size=120) | st.sampled_from(odd))
    def check(text):
        try:
            c = C.parse_caption(text, reader=reader)
        except C.CaptionError as e:
            assert "\n" not in str(e)
            return
        assert c.label in C.CLASS_WORDS and (c.blend is None or c.blend in C.CLASS_WORDS)
        assert 0.0 < c.blend_weight <= 0.5 and c.resolution in (16, 32)
        assert C.parse_caption(text, reader=reader) == c

    check()
