"""LDraw export (``.ldr`` and ``.mpd``) and a parser for our own files (round trip).

Frames. Our lattice is Z up: ``x, y`` in studs (a brick's minimum corner), ``z`` in plates
above the ground. LDraw is −Y up, in LDraw units (LDU). We map a lattice point to LDraw by

    X = x · STUD_LDU,   Y = −z · PLATE_LDU,   Z = y · STUD_LDU

i.e. the rotation ``[[1, 0, 0], [0, 0, −1], [0, 1, 0]]`` (det +1: no mirroring) plus the
unit scale. An LDraw brick or plate has its origin at the centre of its top face (the body
extends to +Y) with its long side along X. ``Brick.rotated`` (long side along our y, LDraw
Z) is a 90° turn about LDraw Y. All dimensions come from :mod:`.units`.

Output is deterministic byte for byte (sorted bricks, integer/half-integer coordinates,
CR LF line ends as in the LDraw library), so two exporters can be compared with ``cmp``.

File layout::

    0 <title>
    0 Name: <file name>
    0 Author: <author>
    0 !LDRAW_ORG Unofficial_Model
    0 !LICENSE <licence>                      (only when given)
    0 !IMAGE2LEGO SHAPE <nx> <ny> <nz>        (lattice size, for the round trip)
    1 <colour> X Y Z a b c d e f g h i <part>.dat
    ...
    0 STEP                                    (after every build step)

The ``.mpd`` variant holds a main model that references one submodel per build step (the
step's bricks at their absolute positions) followed by ``0 STEP``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import warnings
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from .bricks import Brick, BrickModel
from .catalogue import ALL_PARTS
from .colors import LDRAW_COLORS
from .errors import Image2LegoError
from .fileio import atomic_write_bytes
from .units import PLATE_LDU, STUD_LDU

EOL = "\r\n"
DEFAULT_AUTHOR = "Image2LEGO"
SHAPE_META = "!IMAGE2LEGO SHAPE"

#: Rotation (LDraw frame) of an unrotated part and of a part turned 90° about LDraw Y.
IDENTITY = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
ROT_Y90 = ((0, 0, 1), (0, 1, 0), (-1, 0, 0))

#: Our lattice axes (x, y, z) expressed in LDraw axes (X, Y, Z): X = x, Y = −z, Z = y.
LATTICE_TO_LDRAW = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])


class LDrawError(Image2LegoError, ValueError):
    """A line of an LDraw file that is not a valid Image2LEGO model line."""


# ---------------------------------------------------------------------------------------------
# writing


def _num(v: Fraction) -> str:
    """Exact, deterministic decimal text for an LDU value (integers stay integers)."""
    if v.denominator == 1:
        return str(v.numerator)
    f = float(v)
    s = f"{f:.6f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def brick_transform(b: Brick) -> tuple[tuple[Fraction, Fraction, Fraction], tuple]:
    """LDraw position (of the part's origin, the top-face centre) and rotation of a brick."""
    nx, ny = b.size
    cx = Fraction(STUD_LDU) * (Fraction(b.x) + Fraction(nx, 2))
    cy = Fraction(STUD_LDU) * (Fraction(b.y) + Fraction(ny, 2))
    top = Fraction(PLATE_LDU) * (b.z + b.height)
    return (cx, -top, cy), (ROT_Y90 if b.rotated else IDENTITY)


_MAT_TEXT = {
    r: " ".join(str(v) for row in m for v in row) for r, m in ((False, IDENTITY), (True, ROT_Y90))
}


def _half_ldu(twice: int) -> str:
    """``twice / 2`` as :func:`_num` writes it (an integer, or ``.5``)."""
    return str(twice // 2) if twice % 2 == 0 else _num(Fraction(twice, 2))


def brick_line(b: Brick) -> str:
    """The LDraw type-1 line of one brick (the numbers of :func:`brick_transform`, in
    integer arithmetic: a model of 10⁵ bricks is written in about a second)."""
    _check_brick(b)
    p = b.part
    nx, ny = (p.width, p.length) if b.rotated else (p.length, p.width)
    X = _half_ldu(STUD_LDU * (2 * b.x + nx))
    Z = _half_ldu(STUD_LDU * (2 * b.y + ny))
    Y = str(-PLATE_LDU * (b.z + p.height))
    return f"1 {b.color} {X} {Y} {Z} {_MAT_TEXT[bool(b.rotated)]} {p.filename}"


def _check_brick(b: Brick) -> None:
    if b.part_id not in ALL_PARTS:
        raise ValueError(f"brick {b} uses part {b.part_id!r}, which is not in the catalogue")
    if b.color not in LDRAW_COLORS:
        raise ValueError(f"brick {b} has colour {b.color!r}, not an LDraw solid colour code")
    if b.step < 0:
        raise ValueError(f"brick {b} has a negative build step")


def _check_text(label: str, s: str) -> str:
    s = str(s)
    if "\n" in s or "\r" in s:
        raise ValueError(f"{label} must be a single line, got {s!r}")
    return s.strip()


def _sorted_bricks(bricks: Iterable[Brick]) -> list[Brick]:
    return sorted(bricks, key=lambda b: (b.step, b.z, b.y, b.x, b.part_id, b.rotated, b.color))


def _header(title: str, name: str, author: str, license: str | None) -> list[str]:
    lines = [
        f"0 {_check_text('title', title)}",
        f"0 Name: {_check_text('name', name)}",
        f"0 Author: {_check_text('author', author)}",
        "0 !LDRAW_ORG Unofficial_Model",
    ]
    if license:
        lines.append(f"0 !LICENSE {_check_text('license', license)}")
    return lines


def _shape_line(model: BrickModel) -> str:
    shape = tuple(int(v) for v in model.shape)
    if len(shape) != 3 or min(shape) < 0:
        raise ValueError(f"model shape must be three non-negative ints, got {model.shape!r}")
    return f"0 {SHAPE_META} {shape[0]} {shape[1]} {shape[2]}"


def _steps(model: BrickModel) -> list[list[Brick]]:
    out: list[list[Brick]] = [[] for _ in range(model.n_steps())]
    for b in _sorted_bricks(model.bricks):
        _check_brick(b)
        out[b.step].append(b)
    return out


def _default_name(title: str, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_").lower() or "model"
    return stem + ext


def to_ldr(
    model: BrickModel,
    title: str = "Image2LEGO model",
    author: str = DEFAULT_AUTHOR,
    name: str | None = None,
    license: str | None = None,
) -> str:
    """The model as ``.ldr`` text; ``0 STEP`` closes every build step (``Brick.step``)."""
    lines = _header(title, name or _default_name(title, ".ldr"), author, license)
    lines.append(_shape_line(model))
    lines.append("")
    for bricks in _steps(model):
        lines.extend(brick_line(b) for b in bricks)
        lines.append("0 STEP")
    return EOL.join(lines) + EOL


def _submodel_name(stem: str, step: int) -> str:
    return f"{stem}-step{step + 1:03d}.ldr"


def to_mpd(
    model: BrickModel,
    title: str = "Image2LEGO model",
    author: str = DEFAULT_AUTHOR,
    name: str | None = None,
    license: str | None = None,
) -> str:
    """The model as a multi-part ``.mpd``: a main model referencing one submodel per step."""
    name = name or _default_name(title, ".mpd")
    stem = re.sub(r"\.(mpd|ldr|dat)$", "", name, flags=re.IGNORECASE)
    main = f"{stem}.ldr"
    steps = _steps(model)
    out = [f"0 FILE {main}"]
    out += _header(title, main, author, license)
    out.append(_shape_line(model))
    out.append("")
    ident = " ".join(str(v) for row in IDENTITY for v in row)
    for i in range(len(steps)):
        # Colour 16 (inherit) on the reference: every brick inside carries its own colour.
        out.append(f"1 16 0 0 0 {ident} {_submodel_name(stem, i)}")
        out.append("0 STEP")
    out.append("0 NOFILE")
    for i, bricks in enumerate(steps):
        sub = _submodel_name(stem, i)
        zs = sorted({b.z for b in bricks})
        layers = f"plates {zs[0]}..{zs[-1]}" if zs else "empty"
        out.append(f"0 FILE {sub}")
        out += _header(f"{title} - step {i + 1} ({layers})", sub, author, license)
        out.extend(brick_line(b) for b in bricks)
        out.append("0 NOFILE")
    return EOL.join(out) + EOL


def _write(text: str, path) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_ldr(model: BrickModel, path: str | os.PathLike, **kwargs) -> Path:
    """Write :func:`to_ldr` atomically; ``0 Name:`` is the file's name."""
    path = Path(path)
    kwargs.setdefault("name", path.name)
    return _write(to_ldr(model, **kwargs), path)


def write_mpd(model: BrickModel, path: str | os.PathLike, **kwargs) -> Path:
    """Write :func:`to_mpd` atomically; submodels are named after the file's stem."""
    path = Path(path)
    kwargs.setdefault("name", path.name)
    return _write(to_mpd(model, **kwargs), path)


# ---------------------------------------------------------------------------------------------
# parsing

_PARTS = {p.filename.lower(): p for p in ALL_PARTS.values()}
_PART_IDS = sorted(ALL_PARTS)
_PART_INDEX = {pid: i for i, pid in enumerate(_PART_IDS)}
#: Per part index: length, width (studs), height (plates).
_PART_DIMS = np.array(
    [(ALL_PARTS[p].length, ALL_PARTS[p].width, ALL_PARTS[p].height) for p in _PART_IDS],
    dtype=np.int64,
).reshape(-1, 3)
_COLOUR_CODES = np.array(sorted(LDRAW_COLORS), dtype=np.int64)

#: Limits that keep a hostile file from hanging or exhausting memory (see :func:`parse_ldr`).
#: The largest model we write (256³ voxels of 1×1 plates) has 256 · 256 · 256 bricks of
#: about 50 bytes a line; real models are far smaller.
MAX_LDRAW_BYTES = 256 * 2**20
MAX_BRICKS = 2_000_000
MAX_DEPTH = 64
#: Largest coordinate accepted (LDU): 256 studs are 5,120 LDU; this leaves room for offsets.
MAX_COORD = 1e7
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_TOL = 1e-6

#: Every line of a batch in one call: a type-1 line as writers print it (unsigned integer
#: colour; decimals of digits, '-' and '.' between spaces or tabs; a one-word ASCII part or
#: submodel name) gives (colour + position, rotation, name, ""), any other line ("", "", "",
#: line). The 4 numbers are read by numpy (which must consume them exactly), the rotation text
#: once per distinct spelling; every other line goes through the per-line parser
#: (:func:`_parse_type1`), which accepts the same language and words the errors.
#: Possessive quantifiers: nothing to backtrack into (a third faster).
_N, _S = r"[-\d.]++", r"[ \t]++"
_LINES = re.compile(
    rf"^(?:[ \t]*+1{_S}(\d{{1,12}}+{_S}{_N}{_S}{_N}{_S}{_N}){_S}((?:{_N}{_S}){{8}}+{_N}){_S}"
    rf"([!-~]++)[ \t]*+|(.*))$",
    re.MULTILINE | re.ASCII,
)
#: Lines parsed per batch (bounds the per-line strings alive at once).
_BATCH = 1 << 16
_UNKNOWN = np.iinfo(np.int64).max  # target of a line naming no known part or submodel


def _read_source(path_or_text, max_bytes: int) -> tuple[str, str]:
    if isinstance(path_or_text, os.PathLike):
        return _read_file(Path(path_or_text), max_bytes), str(path_or_text)
    if isinstance(path_or_text, (bytes, bytearray)):
        if len(path_or_text) > max_bytes:
            raise LDrawError(f"<bytes>: {len(path_or_text)} bytes, over the {max_bytes}-byte limit")
        return _decode(bytes(path_or_text), "<bytes>"), "<bytes>"
    if not isinstance(path_or_text, str):
        raise TypeError(
            f"parse_ldr takes a path or the file's text, not {type(path_or_text).__name__}"
        )
    s = path_or_text
    if "\n" not in s and "\r" not in s and len(s) < 4096:
        p = Path(s)
        if p.is_file():
            return _read_file(p, max_bytes), str(p)
        if s.lower().endswith((".ldr", ".mpd")):
            raise FileNotFoundError(f"no such LDraw file: {s}")
    if len(s) > max_bytes:
        raise LDrawError(f"<text>: {len(s)} characters, over the {max_bytes}-byte limit")
    return s, "<text>"


def _read_file(p: Path, max_bytes: int) -> str:
    if not p.exists():
        raise FileNotFoundError(f"no such LDraw file: {p}")
    if not p.is_file():
        raise LDrawError(f"{p}: not a regular file")
    size = p.stat().st_size
    if size > max_bytes:
        raise LDrawError(f"{p}: {size} bytes, over the {max_bytes}-byte limit for LDraw files")
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LDrawError(f"{p}: over the {max_bytes}-byte limit for LDraw files")
    return _decode(data, str(p))


def _decode(data: bytes, src: str) -> str:
    if b"\0" in data:
        raise LDrawError(f"{src}: binary data (NUL bytes), not an LDraw text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LDrawError(f"{src}: not UTF-8 text (byte {exc.start})") from None


def _meta_word(raw: str) -> str | None:
    """``FILE`` or ``NOFILE`` (upper case) for an MPD block marker line, else None."""
    line = raw.strip()
    if line[:1] != "0":
        return None
    toks = line.split(maxsplit=2)
    if len(toks) < 2 or toks[0] != "0":
        return None
    word = toks[1].upper()
    return word if word in ("FILE", "NOFILE") else None


def _split_files(lines: list[str], src: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """(main file name, {name: (first, end) line index}); a plain .ldr is one unnamed file."""
    files: dict[str, tuple[int, int]] = {}
    main = ""
    current: str | None = None
    start = gap = 0
    gaps: list[tuple[int, int]] = []
    for no, raw in enumerate(lines):
        if raw[:1] == "1":
            continue
        word = _meta_word(raw)
        if word == "FILE":
            toks = raw.strip().split(maxsplit=2)
            name = toks[2].strip() if len(toks) > 2 else ""
            if not name:
                raise LDrawError(f"{src}:{no + 1}: '0 FILE' without a file name")
            key = name.lower()
            if key in files:
                raise LDrawError(f"{src}:{no + 1}: submodel {name!r} is defined twice")
            if current is not None:
                files[current] = (start, no)
            else:
                gaps.append((gap, no))
            files[key] = (no + 1, no + 1)
            current, start = key, no + 1
            main = main or key
        elif word == "NOFILE" and current is not None:
            files[current] = (start, no)
            current, gap = None, no + 1
    if not files:
        return "", {"": (0, len(lines))}
    if current is not None:
        files[current] = (start, len(lines))
    else:
        gaps.append((gap, len(lines)))
    for a, b in gaps:
        for no in range(a, b):
            s = lines[no].strip()
            if s and _meta_word(s) != "NOFILE":
                raise LDrawError(
                    f"{src}:{no + 1}: line outside any '0 FILE' block of the MPD: {s!r}"
                )
    return main, files


def _number(tok: str) -> float:
    # A plain decimal of bounded length: no 1e999999999 (whose exact value has a billion
    # digits), no nan/inf, no hex or underscores.
    if len(tok) > 40 or not _NUMBER.fullmatch(tok):
        raise ValueError(tok)
    v = float(tok)
    if not abs(v) <= MAX_COORD:
        raise ValueError(tok)
    return v


def _parse_type1(toks: list[str], where: str):
    try:
        if len(toks[1]) > 12:
            raise ValueError(toks[1])
        color = int(toks[1])
        vals = [_number(t) for t in toks[2:14]]
    except ValueError as exc:
        raise LDrawError(
            f"{where}: malformed numbers in type-1 line ({str(exc)[:40]!r}: "
            f"plain decimals up to {MAX_COORD:g} expected)"
        ) from None
    pos = (vals[0], vals[1], vals[2])
    mat = (tuple(vals[3:6]), tuple(vals[6:9]), tuple(vals[9:12]))
    return color, pos, mat, " ".join(toks[14:])


def _signed_permutation(mat, where: str, what: str):
    """The rotation as an exact integer matrix; it must be a 90°-multiple proper rotation."""
    try:
        return _ROTATIONS[mat]
    except KeyError:
        pass
    r = tuple(tuple(round(v) for v in row) for row in mat)
    if any(abs(v - w) > _TOL for row, rrow in zip(mat, r) for v, w in zip(row, rrow)):
        m = np.array(mat, dtype=float)
        if not np.allclose(m @ m.T, np.eye(3), atol=_TOL) or not np.isclose(np.linalg.det(m), 1):
            raise LDrawError(
                f"{where}: rotation matrix is not a proper rotation (mirrored or scaled)"
            )
        raise LDrawError(f"{where}: {what} is tilted or not at a multiple of 90°")
    m = np.array(r, dtype=np.int64)
    if not (np.abs(m).sum(axis=0) == 1).all() or not (np.abs(m).sum(axis=1) == 1).all():
        raise LDrawError(f"{where}: rotation matrix is not a proper rotation (mirrored or scaled)")
    if round(np.linalg.det(m)) != 1:
        raise LDrawError(f"{where}: rotation matrix is not a proper rotation (mirrored or scaled)")
    if len(_ROTATIONS) < 4096:
        _ROTATIONS[mat] = r
    return r


_ROTATIONS: dict = {}


def _target(name: str, keys: dict[str, int]) -> int:
    """A type-1 line's target: a part index (>= 0), ``-1 - n`` for the n-th submodel of the
    file, or :data:`_UNKNOWN`."""
    key = name.lower()
    if key in keys:
        return -1 - keys[key]
    p = _PARTS.get(key.replace("\\", "/").rsplit("/", 1)[-1])
    return _PART_INDEX[p.id] if p is not None else _UNKNOWN


def _row_error(line: str, where: str, keys: dict[str, int], mpd: bool) -> LDrawError:
    """The error of a type-1 line that failed a check that needs no context (its numbers,
    part, explicit colour or rotation), worded by the per-line parser."""
    try:
        color, _pos, mat, ref = _parse_type1(line.split(), where)
        is_ref = ref.lower() in keys and ref != ""
        if not is_ref and _target(ref, keys) == _UNKNOWN:
            raise LDrawError(
                f"{where}: unknown part {ref[:80]!r} (not in the Image2LEGO catalogue"
                + (" nor a submodel of this file" if mpd else "")
                + ")"
            )
        if not is_ref and color != 16 and color not in LDRAW_COLORS:
            raise LDrawError(
                f"{where}: colour {color} is not an LDraw solid colour "
                "(16 'main colour' needs an enclosing coloured reference)"
            )
        _signed_permutation(mat, where, "submodel reference" if is_ref else "brick")
    except LDrawError as exc:
        return exc
    return LDrawError(f"{where}: cannot parse line: {line[:80]!r}")  # pragma: no cover


class _Block:
    """One file of an LDraw document, its type-1 lines as arrays (in line order)."""

    def __init__(self) -> None:
        self.line = np.zeros(0, np.int64)  # line index of each type-1 row
        self.colour = np.zeros(0, np.int64)
        self.pos = np.zeros((0, 3))  # X Y Z (LDU)
        self.rot = np.zeros(0, np.int64)  # index into rotations
        self.rotations = np.zeros((0, 3, 3), np.int64)  # the distinct valid rotations
        self.target = np.zeros(0, np.int64)  # see _target
        self.step = np.zeros(0, np.int64)  # '0 STEP' lines above the row
        self.error: tuple[int, LDrawError | None] | None = None  # first bad line (None: a row)
        self.shape: tuple[int, ...] | None = None
        self.title = ""


class _Rotations:
    """The distinct rotations of a file, each parsed and checked once: id -1 is a malformed
    or improper one (not 9 plain decimals, not a signed permutation with determinant +1)."""

    def __init__(self) -> None:
        self.by_text: dict[str, int] = {}
        self.by_value: dict[tuple[float, ...], int] = {}
        self.mats: list[np.ndarray] = []

    def of_text(self, text: str) -> int:
        try:
            nine = tuple(_number(t) for t in text.split())
        except ValueError:
            nine = ()
        self.by_text[text] = i = self.of_value(nine) if len(nine) == 9 else -1
        return i

    def of_value(self, nine: tuple[float, ...]) -> int:
        if nine in self.by_value:
            return self.by_value[nine]
        m = np.array(nine, dtype=np.float64)
        i = -1
        if _proper_quarter_turns(m[None])[0]:
            self.mats.append(np.rint(m).astype(np.int64).reshape(3, 3))
            i = len(self.mats) - 1
        self.by_value[nine] = i
        return i


def _parse_block(
    lines: list[str], first: int, end: int, keys: dict[str, int], is_main: bool,
    src: str, max_rows: int | None,
) -> _Block:  # fmt: skip
    """Parse the lines ``first:end`` of one file. Errors are recorded (first line only),
    not raised: a submodel that the main model never references may be broken."""
    blk = _Block()
    line_ix: list[np.ndarray] = []
    nums: list[np.ndarray] = []  # colour X Y Z
    rot_ix: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    other: list[int] = []
    names: dict[str, int] = {}
    rots = _Rotations()
    n_rows = 0
    for a in range(first, end, _BATCH):
        b = min(end, a + _BATCH)
        found = _LINES.findall("\n".join(lines[a:b]))
        if len(found) != b - a:  # pragma: no cover - a line the pattern did not split
            other.extend(range(a, b))
            continue
        every = all(t[0] for t in found)
        rows = found if every else [t for t in found if t[0]]
        if not rows:
            other.extend(i for i, t in enumerate(found, a) if t[3].strip())
            continue
        pos_s, rot_s, name_s, _ = zip(*rows)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)  # text numpy cannot read
                v = np.fromstring(" ".join(pos_s), sep=" ")
            ok = v.size == 4 * len(rows)
        except (DeprecationWarning, ValueError):
            ok = False
        if not ok:  # a token such as "1-2" or "1.2.3": the per-line parser words it
            other.extend(i for i, t in enumerate(found, a) if t[0] or t[3].strip())
            continue
        if not every:
            other.extend(i for i, t in enumerate(found, a) if not t[0] and t[3].strip())
        for r in set(rot_s).difference(rots.by_text):
            rots.of_text(r)
        for n in set(name_s).difference(names):
            names[n] = _target(n, keys)
        idx = range(a, b) if every else [i for i, t in enumerate(found, a) if t[0]]
        line_ix.append(np.array(idx, np.int64))
        nums.append(v.reshape(-1, 4))
        rot_ix.append(np.array(list(map(rots.by_text.__getitem__, rot_s)), np.int64))
        targets.append(np.array(list(map(names.__getitem__, name_s)), np.int64))
        n_rows += len(rows)
        if max_rows is not None and n_rows > max_rows:
            raise LDrawError(
                f"{src}: the model has more than {max_rows} bricks; refusing to read it"
            )
    steps: list[int] = []
    extra: list[tuple[int, int, float, float, float, int, int]] = []
    for i in other:
        line = lines[i].strip()
        if not line:
            continue
        where = f"{src}:{i + 1}"
        toks = line.split()
        kind = toks[0]
        err: LDrawError | None = None
        if kind == "0":
            body = line[1:].strip()
            up = body.upper()
            if up == "STEP" or up.startswith("STEP "):
                steps.append(i)
            elif up.startswith(SHAPE_META) and is_main:
                try:
                    vals = tuple(int(v) for v in body[len(SHAPE_META) :].split())
                except ValueError:
                    vals = ()
                if len(vals) != 3 or min(vals) < 0 or max(vals) > 1_000_000:
                    err = LDrawError(f"{where}: malformed {SHAPE_META} line: {line[:80]!r}")
                else:
                    blk.shape = vals
            elif is_main and not blk.title and body and ":" not in body.split()[0]:
                blk.title = body
        elif kind in ("2", "3", "4", "5"):
            err = LDrawError(
                f"{where}: geometry line (type {kind}) in a model file; "
                "only parts and submodels are expected"
            )
        elif kind != "1" or len(toks) < 15:
            err = LDrawError(f"{where}: cannot parse line: {line[:80]!r}")
        else:
            try:
                color, pos, mat, ref = _parse_type1(toks, where)
            except LDrawError as exc:
                err = exc
            else:
                r = rots.of_value(tuple(v for row in mat for v in row))
                extra.append((i, color, *pos, r, _target(ref, keys) if ref else _UNKNOWN))
        if err is not None:
            blk.error = (i, err)
            break
    if extra:
        e = np.array(extra, dtype=np.float64).reshape(-1, 7)
        line_ix.append(e[:, 0].astype(np.int64))
        nums.append(e[:, 1:5])
        rot_ix.append(e[:, 5].astype(np.int64))
        targets.append(np.array([t[6] for t in extra], np.int64))  # exact: _UNKNOWN is huge
    if line_ix:
        li = np.concatenate(line_ix)
        order = np.argsort(li, kind="stable")
        blk.line = li[order]
        v = np.concatenate(nums)[order]
        blk.colour = v[:, 0].astype(np.int64)
        blk.pos = v[:, 1:]
        blk.rot = np.concatenate(rot_ix)[order]
        blk.target = np.concatenate(targets)[order]
        blk.step = np.searchsorted(np.array(steps, np.int64), blk.line)
    if rots.mats:
        blk.rotations = np.stack(rots.mats)
    # checks that need no context: numbers, part, explicit colour, rotation
    bad = ~(np.abs(blk.pos) <= MAX_COORD).all(axis=1) | (blk.target == _UNKNOWN)
    bad |= (blk.target >= 0) & (blk.colour != 16) & ~np.isin(blk.colour, _COLOUR_CODES)
    bad |= blk.rot < 0
    if bad.any():
        i = int(blk.line[np.argmax(bad)])
        if blk.error is None or i < blk.error[0]:
            blk.error = (i, None)
    return blk


def _proper_quarter_turns(m: np.ndarray) -> np.ndarray:
    """Per row of 9 values: a rotation matrix by multiples of 90° (signed permutation, det +1)."""
    r = np.rint(m)
    ok = (np.abs(m - r) <= _TOL).all(axis=1)
    r = r.reshape(-1, 3, 3)
    a = np.abs(r)
    ok &= (a.sum(axis=1) == 1).all(axis=1) & (a.sum(axis=2) == 1).all(axis=1)
    return ok & (np.rint(np.linalg.det(r)) == 1) if len(r) else ok


def _expanded_count(main: str, blocks: dict[str, _Block], names: list[str], src: str,
                    max_bricks: int) -> list[str]:  # fmt: skip
    """The files the main model uses, parents before children, after counting the bricks and
    submodel references it expands to once per submodel (nothing is expanded); a reference
    cycle, nesting deeper than :data:`MAX_DEPTH` or more than ``max_bricks`` bricks or
    references is an error."""
    refs: dict[str, list[tuple[str, int]]] = {}
    for name, blk in blocks.items():
        r = blk.target[blk.target < 0]
        u, first, counts = np.unique(r, return_index=True, return_counts=True)
        refs[name] = [(names[-1 - int(u[j])], int(counts[j])) for j in np.argsort(first)]
    total: dict[str, tuple[int, int]] = {}
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    post: list[str] = []

    def visit(name: str, chain: list[str]) -> tuple[int, int]:
        if state.get(name) == 2:
            return total[name]
        if state.get(name) == 1:
            loop = " → ".join(chain[chain.index(name) :] + [name])
            raise LDrawError(f"{src}: submodel nesting loops back ({loop}): a reference cycle")
        if len(chain) >= MAX_DEPTH:
            raise LDrawError(f"{src}: submodel nesting deeper than {MAX_DEPTH}")
        state[name] = 1
        chain.append(name)
        blk = blocks[name]
        n, k = int((blk.target >= 0).sum()), 0
        for r, count in refs[name]:
            nb, nr = visit(r, chain)
            n += count * nb
            k += count * (1 + nr)
            if n > max_bricks or k > max_bricks:
                break
        chain.pop()
        state[name] = 2
        total[name] = (n, k)
        post.append(name)
        return n, k

    n, k = visit(main, [])
    if n > max_bricks:
        raise LDrawError(
            f"{src}: the model expands to more than {max_bricks} bricks (submodels referenced "
            "many times over); refusing to expand it"
        )
    if k > max_bricks:
        raise LDrawError(
            f"{src}: the model expands to more than {max_bricks} submodel references; "
            "refusing to expand it"
        )
    return post[::-1]


class _Instances:
    """Where copies of one file go: rotation, position, inherited colour and build step
    (-1: the file is the main model, its own ``0 STEP`` lines count)."""

    def __init__(self, mat, pos, colour, step):
        self.mat, self.pos, self.colour, self.step = mat, pos, colour, step

    @classmethod
    def concat(cls, parts: list[_Instances]) -> _Instances:
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, a) for p in parts]) for a in _INST_FIELDS))


_INST_FIELDS = ("mat", "pos", "colour", "step")


def _place(inst: _Instances, blk: _Block, rows: np.ndarray):
    """Every instance × every selected row: absolute rotation (k, n, 3, 3), position
    (k, n, 3), colour and step (k, n)."""
    rot = blk.rotations[blk.rot[rows]]
    mat = np.matmul(inst.mat[:, None], rot[None])
    pos = np.einsum("kij,nj->kni", inst.mat.astype(np.float64), blk.pos[rows])
    pos += inst.pos[:, None]
    c = blk.colour[rows][None]
    colour = np.where(c == 16, inst.colour[:, None], c)
    step = np.where(inst.step[:, None] < 0, blk.step[rows][None], inst.step[:, None])
    return mat, pos, colour, step


def _brick_arrays(inst: _Instances, blk: _Block, src: str):
    """The bricks of one file for all its instances as flat arrays (z, y, x, part, rotated,
    colour, step); the first brick off the lattice, tilted or of no colour is an error."""
    rows = np.flatnonzero(blk.target >= 0)
    mat, pos, colour, step = _place(inst, blk, rows)
    part = np.broadcast_to(blk.target[rows][None], colour.shape)
    rotated = mat[..., 2, 0] != 0  # symmetric under a half turn: long side along X or Z
    dims = _PART_DIMS[part]
    nx = np.where(rotated, dims[..., 1], dims[..., 0])
    ny = np.where(rotated, dims[..., 0], dims[..., 1])
    x = pos[..., 0] / STUD_LDU - nx / 2
    y = pos[..., 2] / STUD_LDU - ny / 2
    z = -pos[..., 1] / PLATE_LDU - dims[..., 2]
    ix, iy, iz = np.rint(x), np.rint(y), np.rint(z)
    bad_colour = ~np.isin(colour, _COLOUR_CODES)
    tilted = (mat[..., 0, 1] != 0) | (mat[..., 2, 1] != 0) | (mat[..., 1, 1] != 1)
    off = (np.abs(x - ix) > _TOL) | (np.abs(y - iy) > _TOL) | (np.abs(z - iz) > _TOL)
    below = (ix < 0) | (iy < 0) | (iz < 0)
    bad = bad_colour | tilted | off | below
    if bad.any():
        k, r = np.unravel_index(np.argmax(bad), bad.shape)
        where = f"{src}:{int(blk.line[rows[r]]) + 1}"
        if bad_colour[k, r]:
            raise LDrawError(
                f"{where}: colour {int(colour[k, r])} is not an LDraw solid colour "
                "(16 'main colour' needs an enclosing coloured reference)"
            )
        if tilted[k, r]:
            raise LDrawError(
                f"{where}: brick is tilted or not at a multiple of 90° about the Y axis"
            )
        if off[k, r]:
            X, Y, Z = (float(v) for v in pos[k, r])
            raise LDrawError(
                f"{where}: brick position {X:g} {Y:g} {Z:g} is not on the LEGO lattice"
            )
        raise LDrawError(f"{where}: brick lies below or outside the lattice origin (x, y, z >= 0)")
    out = (iz, iy, ix, part, rotated, colour, step)
    return [np.asarray(a).reshape(-1) for a in out], (ix + nx, iy + ny, iz + dims[..., 2])


def _child_instances(inst: _Instances, blk: _Block, pending: dict[int, list[_Instances]]):
    """Pass this file's instances on to the submodels it references."""
    rows = np.flatnonzero(blk.target < 0)
    if not len(rows):
        return
    mat, pos, colour, step = _place(inst, blk, rows)
    tgt = np.broadcast_to(blk.target[rows][None], colour.shape).reshape(-1)
    order = np.argsort(tgt, kind="stable")
    mat, pos = mat.reshape(-1, 3, 3)[order], pos.reshape(-1, 3)[order]
    colour, step, tgt = colour.reshape(-1)[order], step.reshape(-1)[order], tgt[order]
    cuts = np.flatnonzero(np.diff(tgt)) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(tgt)]):
        sub = _Instances(mat[a:b], pos[a:b], colour[a:b], step[a:b])
        pending.setdefault(int(tgt[a]), []).append(sub)


def parse_ldr(
    path_or_text, *, max_bricks: int = MAX_BRICKS, max_bytes: int = MAX_LDRAW_BYTES
) -> BrickModel:
    """Parse an ``.ldr``/``.mpd`` written by this module back into a :class:`BrickModel`.

    Accepts a path (``str``/``Path``) or the file's text. Type-1 lines must reference
    catalogue parts (or submodels of the same MPD), solid colours and lattice positions;
    anything else (unknown parts, geometry lines, garbage) raises :class:`LDrawError`
    naming the line. ``0 STEP`` starts the next build step; steps of the main model apply
    to everything a submodel reference brings in. Bricks come in build-step order.

    Bounded for any input: files over ``max_bytes``, models expanding to more than
    ``max_bricks`` bricks or submodel references (counted per submodel before anything is
    expanded), reference cycles, nesting deeper than :data:`MAX_DEPTH` and numbers that are
    not plain decimals up to :data:`MAX_COORD` are refused with an :class:`LDrawError`.
    Parsing is linear in the file's size plus the bricks it expands to, and vectorised: the
    lines are matched one regular-expression call each and every number, rotation, colour and
    lattice check runs in numpy (a 50 MB file of 0.9 M bricks in seconds).
    """
    with _gc_paused():  # millions of short-lived tuples and bricks: no collector passes
        return _parse(path_or_text, max_bricks, max_bytes)


@contextlib.contextmanager
def _gc_paused():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse(path_or_text, max_bricks: int, max_bytes: int) -> BrickModel:
    text, src = _read_source(path_or_text, max_bytes)
    lines = text.splitlines()
    main, ranges = _split_files(lines, src)
    names = list(ranges)
    keys = {name: i for i, name in enumerate(names)}
    mpd = bool(main)
    if not mpd and text.count("\n1 ") + text.startswith("1 ") > max_bricks:
        # every type-1 line of a plain file is a brick (or an error): refuse before parsing
        raise LDrawError(f"{src}: the model has more than {max_bricks} bricks; refusing to read it")
    del text
    blocks = {
        name: _parse_block(lines, a, b, keys, name == main, src, None if mpd else max_bricks)
        for name, (a, b) in ranges.items()
    }
    order = _expanded_count(main, blocks, names, src, max_bricks)
    for name in order:
        bad = blocks[name].error
        if bad is not None:
            i, err = bad
            raise err or _row_error(lines[i], f"{src}:{i + 1}", keys, mpd)
    del lines
    eye = np.eye(3, dtype=np.int64)[None]
    pending = {-1 - keys[main]: [_Instances(eye, np.zeros((1, 3)), np.array([16]), np.array([-1]))]}
    cols: list[list[np.ndarray]] = []
    ends = [0, 0, 0]
    for name in order:
        inst = _Instances.concat(pending.pop(-1 - keys[name]))
        blk = blocks[name]
        if (blk.target >= 0).any():
            arrays, tops = _brick_arrays(inst, blk, src)
            cols.append(arrays)
            ends = [max(e, int(t.max())) for e, t in zip(ends, tops)]
        _child_instances(inst, blk, pending)
    z, y, x, part, rotated, colour, step = (
        np.concatenate([c[i] for c in cols]) if cols else np.zeros(0, np.int64) for i in range(7)
    )
    by_step = np.argsort(step, kind="stable")
    pid = np.array(_PART_IDS, dtype=object)[part[by_step]]
    bricks = list(
        map(
            Brick,
            *(a[by_step].astype(np.int64).tolist() for a in (z, y, x)),
            pid.tolist(),
            rotated[by_step].astype(bool).tolist(),
            *(a[by_step].astype(np.int64).tolist() for a in (colour, step)),
        )
    )
    shape = blocks[main].shape
    if shape is None:
        shape = (ends[0], ends[1], ends[2])
    elif any(s < e for s, e in zip(shape, ends, strict=True)):
        raise LDrawError(f"{src}: {SHAPE_META} {shape} is smaller than the bricks' extent {ends}")
    meta = {"source": src}
    if blocks[main].title:
        meta["title"] = blocks[main].title
    return BrickModel(bricks=bricks, shape=tuple(shape), meta=meta)


__all__ = [
    "IDENTITY",
    "MAX_BRICKS",
    "MAX_LDRAW_BYTES",
    "LATTICE_TO_LDRAW",
    "LDrawError",
    "ROT_Y90",
    "brick_line",
    "brick_transform",
    "parse_ldr",
    "to_ldr",
    "to_mpd",
    "write_ldr",
    "write_mpd",
]
