"""Atomic file writes: a temporary file beside the target, then a rename.

Every writer in the project goes through here, so a failure never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, suffix: str = ".tmp", mkdir: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The one atomic writer: the body writes the temporary file however it likes (``np.savez``,
    ``torch.save``, Pillow, Blender's save); if the body raises, the temporary file is removed
    and ``path`` is untouched. ``suffix`` keeps the extension tools look at (``.tmp.npz``);
    ``mkdir`` creates the parent folder first. The file gets the usual permissions (umask), not
    mkstemp's 0600.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mkdir: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path, mkdir=mkdir) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def check_path_text(path, what: str = "file name") -> Path:
    """``path`` as a :class:`Path`; ``ValueError`` (one line) when its text holds a newline
    or another control character, which no file we read or write may have (titles, LDraw
    names and report lines are made from it; the name would only be refused after the work)."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a path, got {type(path).__name__}")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError(f"{what} must be a single line without control characters, got {text!r}")
    return Path(text)


def check_output_dir(path) -> Path:
    """Make sure ``path`` is (or can become) a writable folder; raise ``ValueError`` otherwise.

    Creates nothing: a missing folder is fine when its nearest existing parent is a writable
    folder. Returns the absolute path.
    """
    if not str(path).strip():
        raise ValueError("no output folder set")
    check_path_text(path, "output folder")
    p = Path(os.path.abspath(os.path.expanduser(str(path))))
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"output folder {p} is not usable: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {p} is not writable")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
