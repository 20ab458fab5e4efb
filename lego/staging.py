"""All-or-nothing output folders: products built in a hidden staging folder, swapped in at once.

:func:`staged_output` is the one way a run writes its results (``outputs.write_all`` for the
CLI, ``blender.jobs.write_outputs`` for the add-on):

* every product is written into ``OUT/.i2l-stage-<host>-<pid>-<random>/``; a failure at any
  point (a bad colour found by the last writer, a full disk, Ctrl-C, the folder deleted or
  replaced by a file mid-run) removes that folder and leaves the earlier result in ``OUT``
  exactly as it was (and a folder this run created is removed again);
* on success the products are swapped in together under an exclusive lock on ``OUT``
  (``flock``; POSIX only), so concurrent runs into one folder never interleave: the folder
  always holds one run's complete set. The earlier run's products that this run does not
  make (the ``products`` names) are removed, so the folder never mixes two models;
* files get the modes the user's umask gives (``mkstemp``'s 0600 is undone);
* staging folders of runs that were killed (their process is gone, or they are over a day
  old) are removed by the next run into the same folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import Image2LegoError
from .fileio import check_output_dir

STAGE_PREFIX = ".i2l-stage-"
#: hidden folders earlier versions (and the add-on's own instruction renderer) stage in
STALE_PREFIXES = (STAGE_PREFIX, ".i2l-instructions-", ".i2l-old-", ".i2l-render-")
#: a staging folder whose owner cannot be checked counts as abandoned after this long
STALE_AFTER_S = 24 * 3600


class OutputError(Image2LegoError, OSError):
    """The output folder could not be written (one-line message naming the folder)."""


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF:08x}"


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it: no cheap check, age decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _is_stale(entry: Path, now: float) -> bool:
    name = entry.name
    if name.startswith(STAGE_PREFIX):
        parts = name[len(STAGE_PREFIX) :].split("-")
        if len(parts) >= 3 and parts[0] == _host_tag() and parts[1].isdigit():
            pid = int(parts[1])
            if pid == os.getpid():
                return False
            if not _alive(pid):
                return True
    try:
        return now - entry.lstat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def clean_stale(out: Path) -> list[Path]:
    """Remove the staging folders of killed runs from ``out``; return what was removed."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(Path(out).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(STALE_PREFIXES) and entry.is_dir() and not entry.is_symlink():
            if _is_stale(entry, now):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: renames are still each atomic, just not serialised
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    mask = _umask()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                exe = 0o111 if mode & stat.S_IXUSR else 0
                os.chmod(p, (0o666 | exe) & ~mask)


def _commit(stage: Path, out: Path, products: Iterable[str]) -> None:
    new = sorted(e.name for e in stage.iterdir() if not e.name.startswith("."))
    old = sorted(n for n in set(new) | set(products) if os.path.lexists(out / n) and "/" not in n)
    trash = stage / ".old"
    trash.mkdir()
    done: list[tuple[Path, Path]] = []  # (from, to) of each rename, to undo in reverse
    try:
        for name in old:
            os.replace(out / name, trash / name)
            done.append((out / name, trash / name))
        for name in new:
            os.replace(stage / name, out / name)
            done.append((stage / name, out / name))
    except BaseException:
        for src, dst in reversed(done):
            with contextlib.suppress(OSError):
                os.replace(dst, src)
        raise


#: Output folders whose staged result was swapped in whole, in order (this process): the
#: CLI's Ctrl-C message says which happened, the earlier result kept or this one written.
COMMITTED: list[Path] = []


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, products: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a private staging folder inside ``out``; on success swap its contents into ``out``.

    The body writes its products (files or folders, under their final names) into the
    yielded folder. If the body raises, nothing in ``out`` changes. ``products`` names the
    files and folders a complete run of this kind owns in ``out``: those of an earlier run
    that this run did not make are removed at the swap. Names starting with ``.`` in the
    staging folder are scratch and never copied. Raises :class:`OutputError` when ``out``
    cannot be written.
    """
    out = check_output_dir(out)
    created: list[Path] = []
    probe = out
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
        stage = Path(
            tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{_host_tag()}-{os.getpid()}-", dir=out)
        )
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None
    ok = False
    try:
        yield stage
        try:
            _apply_umask(stage)
            if not out.is_dir() or not stage.is_dir():
                raise FileNotFoundError(2, "the output folder was removed or replaced meanwhile")
            with _locked(out):
                _commit(stage, out, products)
            COMMITTED.append(out)
        except OSError as exc:
            raise OutputError(
                f"cannot write to output folder {out}: {exc.strerror or exc}; "
                "the earlier result there was left as it was"
            ) from None
        ok = True
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(
            f"cannot write to output folder {out}: {exc.strerror or exc}; "
            "the earlier result there was left as it was"
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok:
            for d in created:  # innermost first; only if still empty
                try:
                    d.rmdir()
                except OSError:
                    break
