"""Caption → LEGO, offline: a sentence such as "a small red car" → the class's typical shape
from the shipped autoencoder → the normal brick pipeline.

The paper puts a text-to-image model in front of image → LEGO. No such model can be had or
run here (no model hubs, a 2-core CPU), so this is the honest offline version: the caption
picks a **class** (a word table of the classes the network was trained on, with synonyms and
plurals), a **colour** (any LEGO colour name: "dark red", "light bluish grey", "tan"), a
**size** ("small"/"tiny"/"little" → 16³, otherwise 32³) and a **variant** (the seed); the
class latents (``weights/class_latents.safetensors``, made by
``python -m image2lego.training.class_latents`` from the training data with the shipped
autoencoder: per class the medoids of 3 k-means clusters of its models' latents) are decoded
by the shipped decoder. Words it does not know are ignored; a caption without a known object
is refused with the list of objects it knows.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..lego.colors import LDRAW_COLORS
from ..lego.errors import Image2LegoError
from .weightsmeta import AE_FILE, default_weights_dir

LATENTS_FILE = "class_latents.safetensors"
MAX_CAPTION = 500

#: class → the words that name it (singular; plurals are understood), longest phrases first
CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "airplane": ("airplane", "aeroplane", "airliner", "aircraft", "plane", "jet"),
    "bathtub": ("bathtub", "bath tub", "bath", "tub"),
    "bed": ("bed",),
    "bench": ("bench",),
    "cabinet": ("cabinet", "cupboard", "wardrobe"),
    "car": ("car", "automobile", "auto", "sedan", "taxi", "jeep", "racecar", "race car"),
    "chair": ("chair", "armchair"),
    "desk": ("desk",),
    "display": ("display", "screen", "television", "tv"),
    "dresser": ("dresser", "chest of drawers"),
    "lamp": ("lamp", "lantern"),
    "loudspeaker": ("loudspeaker", "speaker"),
    "monitor": ("monitor", "computer"),
    "night_stand": ("night stand", "nightstand", "bedside table"),
    "rifle": ("rifle", "gun"),
    "sofa": ("sofa", "couch", "settee"),
    "table": ("table",),
    "telephone": ("telephone", "smartphone", "phone"),
    "toilet": ("toilet",),
    "watercraft": ("watercraft", "sailboat", "boat", "ship", "yacht", "canoe"),
}
SMALL_WORDS = ("small", "tiny", "little", "mini")
#: phrases that ask for a mix of the first two objects named
BLEND_WORDS = ("in the style of", "style of", "cross between", "between", "mix of", "blend of",
               "shaped like", "looks like", "like a")  # fmt: skip
#: colour words that are no LEGO colour's name (every name in lego.colors is understood too)
COLOR_ALIASES = {"grey": 71, "silver": 71, "beige": 19}


class CaptionError(Image2LegoError, ValueError):
    """A caption that names no known object, or class latents that do not fit the weights."""


@dataclass(frozen=True)
class Caption:
    text: str
    label: str
    color: int | None = None  # LDraw code, None: the converter's default
    resolution: int = 32
    variant: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: "a chair in the style of a sofa", "a cross between a car and a boat": the second class,
    #: whose latent is mixed in half and half
    blend: str | None = None


def _norm(text: str) -> str:
    t = " ".join(re.findall(r"[a-z]+", text.lower().replace("gray", "grey")))
    return f" {t} "


def _find(text: str, phrase: str) -> int:
    """Position of ``phrase`` (or its plural) as whole words in normalised ``text``, or -1."""
    m = re.search(rf" {re.escape(phrase)}(?:s|es)? ", text)
    return m.start() if m else -1


def parse_caption(text: str, seed: int = 0) -> Caption:
    """What the caption asks for (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise CaptionError("the caption is empty; say what to build, e.g. 'a red car'")
    if len(text) > MAX_CAPTION:
        raise CaptionError(f"the caption is {len(text)} characters long (at most {MAX_CAPTION})")
    t = _norm(text)
    spans = []  # (start, end, label) of every class word found
    for label, words in CLASS_WORDS.items():
        for w in words:
            p = _find(t, w)
            if p >= 0:
                spans.append((p, p + len(w) + 1, label))
    # a word inside a longer phrase ("table" in "bedside table") is not an object of its own
    spans = [a for a in spans if not any(b[0] <= a[0] and a[1] <= b[1] and b != a
                                         and b[2] != a[2] for b in spans)]  # fmt: skip
    first: dict[str, int] = {}  # each class at its first mention
    for start, _end, label in sorted(spans):
        first.setdefault(label, start)
    hits: list[tuple[int, str]] = sorted((start, label) for label, start in first.items())
    if not hits:
        known = ", ".join(sorted(w for ws in CLASS_WORDS.values() for w in ws[:1]))
        raise CaptionError(f"no object I know in {text.strip()!r}; I can build: {known}")
    label = hits[0][1]
    notes = []
    blend: str | None = None
    if len(hits) > 1:
        if any(_find(t, w) >= 0 for w in BLEND_WORDS):
            blend = hits[1][1]
        else:
            notes.append(f"several objects named; building the first: {label}")
    color = None
    colour_words = [(_norm(c.name).strip(), code) for code, c in LDRAW_COLORS.items()]
    colour_words += [(w, code) for w, code in COLOR_ALIASES.items() if code in LDRAW_COLORS]
    best = None
    for word, code in colour_words:  # the first colour named; of two starting there, the longer
        p = _find(t, word)
        if p >= 0 and (best is None or p < best[0] or (p == best[0] and len(word) > best[2])):
            best = (p, code, len(word))
    if best is not None:
        color = int(best[1])
    small = any(_find(t, w) >= 0 for w in SMALL_WORDS)
    res = 16 if small else 32
    return Caption(text.strip(), label, color, res, int(seed), tuple(notes), blend)


def load_class_latents(weights_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """``{label: float32 [variants, latent]}``, checked against the autoencoder beside it."""
    from safetensors import safe_open

    d = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    path = d / LATENTS_FILE
    if not path.is_file():
        raise CaptionError(
            f"{path} is missing; make it with `python -m image2lego.training.class_latents`"
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            lat = {k: np.asarray(f.get_tensor(k), np.float32) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        raise CaptionError(f"{path} is not a readable class-latents file: {exc}") from None
    sha = hashlib.sha256((d / AE_FILE).read_bytes()).hexdigest()
    if meta.get("ae_sha256") != sha:
        raise CaptionError(
            f"{path} was made for other autoencoder weights; remake it with "
            "`python -m image2lego.training.class_latents`"
        )
    for k, v in lat.items():
        if v.ndim != 2 or not np.all(np.isfinite(v)):
            raise CaptionError(f"{path}: latents of {k!r} have shape {v.shape} or are not finite")
    return lat


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=2)
def _loaded(d: Path, _ae: tuple[int, int], _lat: tuple[int, int]):
    """The checked latents and the numpy autoencoder of ``d``, kept while their files stay
    the same (the stamps are part of the key): a caption does not reload and re-hash 10 MB."""
    from .npnet import load_net

    return load_class_latents(d), load_net(d, parts=("autoencoder",))


def caption_voxels(
    caption: Caption, weights_dir: str | Path | None = None
) -> tuple[np.ndarray, dict]:
    """The caption's shape as a bool voxel grid at ``caption.resolution`` and what was used."""
    d = (Path(weights_dir) if weights_dir is not None else default_weights_dir()).resolve()
    if not (d / LATENTS_FILE).is_file() or not (d / AE_FILE).is_file():
        load_class_latents(d)  # raises the clear error for what is missing
    lat, net = _loaded(d, _stamp(d / AE_FILE), _stamp(d / LATENTS_FILE))
    if caption.label not in lat:
        raise CaptionError(
            f"the class latents have no {caption.label!r}; known: {', '.join(sorted(lat))}"
        )
    z = lat[caption.label]
    v = caption.variant % len(z)
    zv = z[v : v + 1]
    if caption.blend is not None and caption.blend in lat:
        other = lat[caption.blend]
        zv = 0.5 * (zv + other[caption.variant % len(other)][None])
    thr = dict(net.thresholds)
    logits = net.decode(zv, thr, caption.resolution)[caption.resolution]
    grid = logits[0, 0] > thr.get(caption.resolution, 0.0)
    info = {
        "caption": caption.text,
        "class": caption.label,
        "blend": caption.blend,
        "variant": v,
        "variants": len(z),
        "color": caption.color,
        "resolution": caption.resolution,
        "notes": list(caption.notes),
        "cells": int(grid.sum()),
    }
    return grid, info


def caption_to_lego_steps(text: str, options=None, seed: int = 0, weights_dir=None):
    """Caption → bricks, as steps (:mod:`.pipeline`'s protocol): returns its
    ``PipelineResult``, with ``model.meta["caption"]`` saying what was understood."""
    from dataclasses import replace

    from ..lego.progress import Progress
    from .pipeline import PipelineOptions, voxels_to_lego_steps

    opt = options if options is not None else PipelineOptions()
    yield Progress(0.0, "Reading the caption")
    cap = parse_caption(text, seed)
    yield Progress(0.05, f"Decoding a {cap.label.replace('_', ' ')}")
    grid, info = caption_voxels(cap, weights_dir if weights_dir is not None else opt.weights_dir)
    if not grid.any():
        raise CaptionError(f"the {cap.label} shape decoded empty; try another --seed")
    if cap.color is not None:
        opt = replace(opt, convert=replace(opt.convert, color_mode="single", color=cap.color))
    result = yield from voxels_to_lego_steps(grid, opt)
    result.model.meta["caption"] = info
    for note in cap.notes:
        result.model.meta.setdefault("warnings", []).append(note)
    return result
