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

import functools
import os
import re
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


def _split_files(text: str, src: str) -> tuple[str, dict[str, list[tuple[int, str]]]]:
    """(main file name, {name: [(line number, line)]}); a plain .ldr is one unnamed file."""
    files: dict[str, list[tuple[int, str]]] = {}
    main = ""
    current: list[tuple[int, str]] | None = None
    plain: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line[:1] == "0":
            toks = line.split(maxsplit=2)
            if len(toks) >= 2 and toks[0] == "0" and toks[1].upper() == "FILE":
                name = toks[2].strip() if len(toks) > 2 else ""
                if not name:
                    raise LDrawError(f"{src}:{no}: '0 FILE' without a file name")
                key = name.lower()
                if key in files:
                    raise LDrawError(f"{src}:{no}: submodel {name!r} is defined twice")
                files[key] = current = []
                main = main or key
                continue
            if len(toks) >= 2 and toks[0] == "0" and toks[1].upper() == "NOFILE":
                current = None
                continue
        (current if current is not None else plain).append((no, line))
    if not files:
        return "", {"": plain}
    stray = [(n, s) for n, s in plain if s]
    if stray:
        n, s = stray[0]
        raise LDrawError(f"{src}:{n}: line outside any '0 FILE' block of the MPD: {s!r}")
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


@functools.lru_cache(maxsize=1024)
def _matmul(a, b):
    return tuple(
        tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3)
    )


def _apply(m, v):
    return tuple(sum(m[i][k] * v[k] for k in range(3)) for i in range(3))


def _brick_from_ldraw(color, pos, rotated, part_id, step, where) -> Brick:
    p = ALL_PARTS[part_id]
    nx, ny = (p.width, p.length) if rotated else (p.length, p.width)
    X, Y, Z = pos
    x = X / STUD_LDU - nx / 2
    y = Z / STUD_LDU - ny / 2
    z = -Y / PLATE_LDU - p.height
    ix, iy, iz = round(x), round(y), round(z)
    if abs(x - ix) > _TOL or abs(y - iy) > _TOL or abs(z - iz) > _TOL:
        raise LDrawError(f"{where}: brick position {X:g} {Y:g} {Z:g} is not on the LEGO lattice")
    if min(ix, iy, iz) < 0:
        raise LDrawError(f"{where}: brick lies below or outside the lattice origin (x, y, z >= 0)")
    return Brick(iz, iy, ix, part_id, rotated, color, step)


def _classify(files, main: str, src: str):
    """Per file: its lines pre-split, the submodels it references, and its own part count."""
    refs: dict[str, list[str]] = {}
    parts: dict[str, int] = {}
    for name, lines in files.items():
        rs: list[str] = []
        n = 0
        for _no, line in lines:
            if line[:2] == "1 " or line[:2] == "1\t":
                toks = line.split()
                key = " ".join(toks[14:]).lower()
                if key and key in files:
                    rs.append(key)
                else:
                    n += 1
        refs[name] = rs
        parts[name] = n
    return refs, parts


def _expanded_count(main: str, refs, parts, src: str, max_bricks: int) -> int:
    """Bricks the main model expands to, computed once per submodel (no expansion);
    a reference cycle or a nesting deeper than MAX_DEPTH is an error."""
    total: dict[str, int] = {}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(name: str, chain: list[str]) -> int:
        if state.get(name) == 2:
            return total[name]
        if state.get(name) == 1:
            loop = " → ".join(chain[chain.index(name) :] + [name])
            raise LDrawError(f"{src}: submodel nesting loops back ({loop}): a reference cycle")
        if len(chain) >= MAX_DEPTH:
            raise LDrawError(f"{src}: submodel nesting deeper than {MAX_DEPTH}")
        state[name] = 1
        chain.append(name)
        n = parts[name]
        for r in refs[name]:
            n += visit(r, chain)
            if n > max_bricks:
                break
        chain.pop()
        state[name] = 2
        total[name] = n
        return n

    n = visit(main, [])
    if n > max_bricks:
        raise LDrawError(
            f"{src}: the model expands to more than {max_bricks} bricks (submodels referenced "
            "many times over); refusing to expand it"
        )
    return n


def parse_ldr(
    path_or_text, *, max_bricks: int = MAX_BRICKS, max_bytes: int = MAX_LDRAW_BYTES
) -> BrickModel:
    """Parse an ``.ldr``/``.mpd`` written by this module back into a :class:`BrickModel`.

    Accepts a path (``str``/``Path``) or the file's text. Type-1 lines must reference
    catalogue parts (or submodels of the same MPD), solid colours and lattice positions;
    anything else (unknown parts, geometry lines, garbage) raises :class:`LDrawError`
    naming the line. ``0 STEP`` starts the next build step; steps of the main model apply
    to everything a submodel reference brings in.

    Bounded for any input: files over ``max_bytes``, models expanding to more than
    ``max_bricks`` bricks (counted per submodel before anything is expanded), reference
    cycles, nesting deeper than :data:`MAX_DEPTH` and numbers that are not plain decimals up
    to :data:`MAX_COORD` are refused with an :class:`LDrawError`; parsing is linear in the
    file's size plus the bricks it expands to.
    """
    text, src = _read_source(path_or_text, max_bytes)
    main, files = _split_files(text, src)
    refs, parts = _classify(files, main, src)
    _expanded_count(main, refs, parts, src, max_bricks)
    bricks: list[Brick] = []
    shape: tuple[int, ...] | None = None
    title = ""

    def walk(name: str, base_pos, base_mat, step: int | None, inherited: int, depth: int):
        nonlocal shape, title
        cur = 0
        for no, line in files[name]:
            where = f"{src}:{no}"
            if not line:
                continue
            toks = line.split()
            kind = toks[0]
            if kind == "0":
                body = line[1:].strip()
                up = body.upper()
                if up == "STEP" or up.startswith("STEP "):
                    cur += 1
                elif up.startswith(SHAPE_META) and depth == 0:
                    try:
                        vals = tuple(int(v) for v in body[len(SHAPE_META) :].split())
                    except ValueError:
                        vals = ()
                    if len(vals) != 3 or min(vals) < 0 or max(vals) > 1_000_000:
                        raise LDrawError(f"{where}: malformed {SHAPE_META} line: {line[:80]!r}")
                    shape = vals
                elif depth == 0 and not title and body and ":" not in body.split()[0]:
                    title = body
                continue
            if kind in ("2", "3", "4", "5"):
                raise LDrawError(
                    f"{where}: geometry line (type {kind}) in a model file; "
                    "only parts and submodels are expected"
                )
            if kind != "1" or len(toks) < 15:
                raise LDrawError(f"{where}: cannot parse line: {line[:80]!r}")
            color, pos, mat, ref = _parse_type1(toks, where)
            if color == 16:
                color = inherited
            this_step = cur if step is None else step
            key = ref.lower()
            if key in files and key != "":
                rot = _signed_permutation(mat, where, "submodel reference")
                abs_mat = _matmul(base_mat, rot)
                abs_pos = tuple(a + b for a, b in zip(_apply(base_mat, pos), base_pos))
                walk(key, abs_pos, abs_mat, this_step, color, depth + 1)
                continue
            pkey = key.replace("\\", "/").rsplit("/", 1)[-1]
            if pkey not in _PARTS:
                raise LDrawError(
                    f"{where}: unknown part {ref[:80]!r} (not in the Image2LEGO catalogue"
                    + (" nor a submodel of this file" if main else "")
                    + ")"
                )
            if color not in LDRAW_COLORS:
                raise LDrawError(
                    f"{where}: colour {color} is not an LDraw solid colour "
                    "(16 'main colour' needs an enclosing coloured reference)"
                )
            rot = _signed_permutation(mat, where, "brick")
            abs_mat = _matmul(base_mat, rot)
            if abs_mat[0][1] or abs_mat[2][1] or abs_mat[1][1] != 1:
                raise LDrawError(
                    f"{where}: brick is tilted or not at a multiple of 90° about the Y axis"
                )
            # Parts are symmetric under a half turn: only "long side along X or along Z" matters.
            rotated = abs_mat[2][0] != 0
            abs_pos = tuple(a + b for a, b in zip(_apply(base_mat, pos), base_pos))
            pid = _PARTS[pkey].id
            bricks.append(_brick_from_ldraw(color, abs_pos, rotated, pid, this_step, where))

    ident = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    walk(main, (0.0, 0.0, 0.0), ident, None, 16, 0)

    extent = [0, 0, 0]
    for b in bricks:
        nx, ny = b.size
        extent = [max(extent[0], b.x + nx), max(extent[1], b.y + ny), max(extent[2], b.top)]
    if shape is None:
        shape = (extent[0], extent[1], extent[2])
    elif any(s < e for s, e in zip(shape, extent, strict=True)):
        raise LDrawError(f"{src}: {SHAPE_META} {shape} is smaller than the bricks' extent {extent}")
    meta = {"source": src}
    if title:
        meta["title"] = title
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
