"""Run a ``core/`` step generator in a child Python, so ESC stops it at once.

A worker thread (:mod:`.background`) keeps Blender's UI free, but Python cannot stop a thread:
after ESC it runs to the end of its current step, and the stability repair of a 64³ model is
one step of about a minute (``benchmarks/bench_blender_ui.py --cancel``). :class:`ChildRun`
runs the steps in a child process of Blender's own Python (``sys.executable``, with the
add-on's ``sys.path``, so the bundled wheels) and relays its progress; :meth:`ChildRun.kill`
ends it at once. It is used where the run is long enough to pay for the child's start (about
1 s of imports): :data:`CHILD_FROM_RESOLUTION` and up. Where no child can start (no Python
executable, a failing start) the same steps run in this process instead.

The child gets its job as a pickle on stdin and answers with pickles on its own pipe (its
stdout; anything it prints goes to stderr). Only this module's own child reads them, so
pickle is safe here. The child imports the add-on under the same package name as Blender
(``bl_ext.user_default.image2lego``), so what it sends back unpickles as the parent's types.

    run = ChildRun("core.pipeline:image_to_lego_steps", (path, options))
    result = lego.progress.run(run)      # or ``yield from run`` in a step generator
    run.kill()                           # from another thread: the run ends at once
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from ..lego.errors import Image2LegoError
from ..lego.progress import Progress

#: Image → LEGO at this resolution and above, and Voxels → LEGO of a grid this big on its
#: longest axis, run in a child process (64³: ~1 min, most of it one stability-repair step;
#: a 128³ solid's conversion is one ~10 s step); smaller runs take about a second and stay
#: in-process.
CHILD_FROM_RESOLUTION = 64
#: ``IMAGE2LEGO_CHILD=always`` / ``never`` overrides the choice (tests, benchmarks)
ENV = "IMAGE2LEGO_CHILD"

PACKAGE = __package__.rsplit(".", 1)[0]  # the add-on's package, e.g. bl_ext.user_default.image2lego
ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import importlib, importlib.util, os, pickle, sys, types
proto = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
def send(*msg):
    pickle.dump(msg, proto, protocol=pickle.HIGHEST_PROTOCOL)
    proto.flush()
pkg, root, path = pickle.load(sys.stdin.buffer)
sys.path[:0] = [p for p in path if p not in sys.path]
parts = pkg.split(".")
for i in range(1, len(parts)):
    name = ".".join(parts[:i])
    if name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__path__ = []
spec = importlib.util.spec_from_file_location(
    pkg, os.path.join(root, "__init__.py"), submodule_search_locations=[root])
mod = importlib.util.module_from_spec(spec)
sys.modules[pkg] = mod
spec.loader.exec_module(mod)
send("ready")
target, args = pickle.load(sys.stdin.buffer)
modname, fn = target.split(":")
try:
    gen = getattr(importlib.import_module(pkg + "." + modname), fn)(*args)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            send("done", stop.value)
            break
        send("progress", p.fraction, p.message)
except BaseException as exc:
    send("error", type(exc).__module__, type(exc).__qualname__, str(exc))
"""


class ChildError(Image2LegoError, RuntimeError):
    """The child process ended without a result (killed, crashed); one line."""


def python_executable() -> str | None:
    """Blender's Python interpreter (``sys.executable`` in Blender 2.91+ and in a bpy venv), or
    ``None`` where it is not one (then the steps run in-process)."""
    exe = sys.executable
    if not exe or not os.path.isfile(exe) or Path(exe).name.lower().startswith("blender"):
        return None
    return exe


def use_child(resolution: int) -> bool:
    """Whether a run at ``resolution`` (Image → LEGO; a voxel grid's longest axis) goes to a
    child process."""
    how = os.environ.get(ENV, "").lower()
    if how in ("always", "never"):
        return how == "always" and python_executable() is not None
    return resolution >= CHILD_FROM_RESOLUTION and python_executable() is not None


def _error(module: str, qualname: str, message: str) -> BaseException:
    """The child's exception as the same type here where it is one of ours (or a plain
    ValueError / TypeError / OSError), else a :class:`ChildError` naming it."""
    try:
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(
            cls, (Image2LegoError, ValueError, TypeError, OSError)
        ):
            return cls(message)
    except Exception:  # noqa: BLE001 - any failure: the generic error below
        pass
    return ChildError(f"{qualname}: {message}")


class ChildRun:
    """A step generator's run in a child process, itself an iterator of :class:`Progress`
    whose ``StopIteration.value`` is the result (so ``yield from`` and ``progress.run`` work)."""

    def __init__(self, target: str, args: tuple, executable: str | None = None) -> None:
        self.target = target  # "module:function", module relative to the add-on's package
        self.args = args
        self.executable = executable or python_executable()
        self.in_child: bool | None = None  # known once started: False = ran in-process
        self._proc: subprocess.Popen | None = None
        self._killed = False
        self._gen = self._steps()

    def __iter__(self):
        return self

    def __next__(self) -> Progress:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def kill(self) -> None:
        """End the run at once (any thread); the iterator then raises :class:`ChildError`."""
        self._killed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _in_process(self):
        modname, fn = self.target.split(":")
        mod = importlib.import_module(f"{PACKAGE}.{modname}")
        self.in_child = False
        return (yield from getattr(mod, fn)(*self.args))

    def _start(self):
        """The child, started and past its imports; ``None`` where it could not start."""
        if self.executable is None:
            return None
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        err = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                [self.executable, "-c", _CHILD],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, creationflags=flags,
            )  # fmt: skip
        except OSError:
            err.close()
            return None
        proc._i2l_stderr = err  # type: ignore[attr-defined]
        self._proc = proc
        try:
            pickle.dump((PACKAGE, str(ROOT), list(sys.path)), proc.stdin)
            proc.stdin.flush()
            ready = pickle.load(proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):
            ready = None
        if ready != ("ready",):
            self._stop(proc)
            return None
        return proc

    def _stop(self, proc) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, getattr(proc, "_i2l_stderr", None)):
            if f is not None:
                f.close()

    def _steps(self):
        if self._killed:
            raise ChildError("cancelled before it started")
        proc = self._start()
        if proc is None:  # no child here: the same steps in this process
            return (yield from self._in_process())
        self.in_child = True
        try:
            pickle.dump((self.target, self.args), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()
            while True:
                try:
                    msg = pickle.load(proc.stdout)
                except (EOFError, OSError, pickle.UnpicklingError):
                    msg = None
                if msg is None:
                    if self._killed:
                        raise ChildError("cancelled")
                    proc.wait()
                    err = proc._i2l_stderr  # type: ignore[attr-defined]
                    err.seek(0)
                    tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:]
                    raise ChildError(
                        f"the background process ended (exit {proc.returncode})"
                        + (f": {tail[0]}" if tail else "")
                    )
                kind = msg[0]
                if kind == "progress":
                    yield Progress(msg[1], msg[2])
                elif kind == "done":
                    return msg[1]
                elif kind == "error":
                    raise _error(*msg[1:])
        finally:
            self._stop(proc)
