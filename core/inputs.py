"""Reading untrusted input files with bounded time and memory (issue #22).

A voxel file's header is read and checked (dtype, 3-D shape within the per-axis limit, the
data really there) before a single data byte is read, so a 40-byte ``.npy`` claiming a
(10⁵, 10⁵, 10⁵) array, a zip bomb inside an ``.npz`` or an ``.npz`` renamed ``.npy`` end in a
one-line :class:`VoxelFileError` (an ``Image2LegoError`` and a ``ValueError``) instead of a
``MemoryError`` or a traceback. Nothing is unpickled.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..lego.errors import Image2LegoError
from ..lego.fileio import check_path_text
from ..lego.voxels import MAX_VOXELS_PER_AXIS, validate_grid


class VoxelFileError(Image2LegoError, ValueError):
    """A voxel file that cannot be read as a grid within the limits (message: one line)."""


#: A voxel file bigger than this cannot be a grid within the limits (256³ int64 + header).
MAX_VOXEL_FILE_BYTES = MAX_VOXELS_PER_AXIS**3 * 8 + 2**20
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _check_header(f, name: str, size: int | None) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise VoxelFileError(
            f"{name}: not a readable numpy file ({str(exc).splitlines()[0]})"
        ) from None
    if dtype.hasobject:
        raise VoxelFileError(f"{name}: holds Python objects (pickle); only bool/0-1 integer grids")
    if dtype != np.bool_ and not np.issubdtype(dtype, np.integer):
        raise VoxelFileError(
            f"{name}: voxel grid has dtype {dtype}; store a bool (or 0/1 integer) array "
            "(threshold it first, e.g. grid > 0.5)"
        )
    if len(shape) != 3:
        raise VoxelFileError(f"{name}: voxel grid must be 3-D [x, y, z], got shape {shape}")
    if max(shape) > MAX_VOXELS_PER_AXIS:
        raise VoxelFileError(
            f"{name}: voxel grid shape {shape} exceeds the limit of {MAX_VOXELS_PER_AXIS} "
            "voxels per axis; downsample it first"
        )
    if size is not None:
        need = int(np.prod(shape)) * dtype.itemsize
        have = size - f.tell()
        if have < need:
            raise VoxelFileError(f"{name}: truncated ({have} of {need} data bytes)")
    return shape, dtype


def read_voxel_file(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.npy`` or ``.npz`` occupancy grid (``[x, y, z]``, Z up) from an untrusted file.

    Integer grids holding only 0 and 1 are converted; an ``.npz`` must hold one array, or one
    named ``voxels``. Every problem is a one-line :class:`VoxelFileError`.
    """
    try:
        path = check_path_text(path, "voxel file name")
    except ValueError as e:
        raise VoxelFileError(str(e)) from None
    if not path.exists():
        raise VoxelFileError(f"voxel file not found: {path}")
    if not path.is_file():
        raise VoxelFileError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise VoxelFileError(f"{path.name}: voxel files must be .npy or .npz, not {suffix!r}")
    size = path.stat().st_size
    if size > MAX_VOXEL_FILE_BYTES:
        raise VoxelFileError(
            f"{path.name}: {size} bytes, too big for a grid of at most "
            f"{MAX_VOXELS_PER_AXIS}³ voxels"
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            f.seek(0)
            if magic.startswith(_ZIP_MAGIC):
                grid = _read_npz(f, path.name)
            elif magic == _NPY_MAGIC:
                _check_header(f, path.name, size)
                f.seek(0)
                grid = np.load(f, allow_pickle=False)
            else:
                raise VoxelFileError(f"{path.name}: not a numpy .npy/.npz file")
    except OSError as exc:
        raise VoxelFileError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    if grid.dtype != bool:
        if grid.size and not np.isin(grid, (0, 1)).all():
            raise VoxelFileError(f"{path.name}: integer grid must hold only 0 and 1")
        grid = grid.astype(bool)
    try:
        return validate_grid(grid)
    except (TypeError, ValueError) as exc:
        raise VoxelFileError(f"{path.name}: {exc}") from None


def _read_npz(f, name: str) -> np.ndarray:
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise VoxelFileError(f"{name}: not a readable .npz ({exc})") from None
    with zf:
        members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
        keys = {i.filename[:-4]: i for i in members}
        if "voxels" in keys:
            info = keys["voxels"]
        elif len(keys) == 1:
            info = members[0]
        else:
            raise VoxelFileError(
                f"{name}: .npz holds {sorted(keys)}; name the grid 'voxels' or store one array"
            )
        where = f"{name}[{info.filename[:-4]}]"
        try:
            with zf.open(info) as m:
                shape, dtype = _check_header(m, where, None)
                need = int(np.prod(shape)) * dtype.itemsize
                m_pos = m.tell()
                if info.file_size - m_pos < need:
                    raise VoxelFileError(f"{where}: truncated")
            with zf.open(info) as m:
                return np.load(m, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
            raise VoxelFileError(f"{where}: corrupt ({exc})") from None
