"""Faults that must lose nothing (issue #22, items 4 and 6): real CLI processes into a real
output folder that already holds an earlier result, each disturbed in one way — a full disk
(a small tmpfs; root only, else a per-file size limit), Ctrl-C at many moments, a kill during
the instructions, concurrent runs, the folder deleted or replaced by a file mid-run — and a
full Blender run checked for dot-files and file modes.

    nice -n 10 python benchmarks/bench_faults.py            # every scenario (~5 min on 2 cores)
    python benchmarks/bench_faults.py -k disk -k sigint      # scenarios whose name has a word

For each scenario: exit codes, the one-line message, wall time, peak RSS of the runs, whether
the earlier result survived byte for byte (or the folder holds exactly one run's complete set),
and what hidden entries were left. Writes ``benchmarks/results/faults.json`` and ``faults.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PY = sys.executable
PLAIN = ["--no-render", "--no-instructions", "--no-blend", "-q"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@dataclass
class Row:
    name: str
    what: str
    passed: bool
    exit_codes: list[int] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    earlier_intact: str = ""
    hidden_left: list[str] = field(default_factory=list)
    note: str = ""


# --------------------------------------------------------------------------- helpers


def solid(n: int, h: int | None = None) -> np.ndarray:
    g = np.zeros((n, n, n), bool)
    g[:, :, : (h or n)] = True
    return g


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path → hash), dot-entries included."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def hidden(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def one_line(stderr: str) -> tuple[bool, str]:
    lines = [x for x in stderr.splitlines() if x.strip()]
    ok = len(lines) == 1 and "Traceback" not in stderr
    return ok, lines[-1] if lines else ""


class Runs:
    """CLI processes of one scenario: their exit codes, wall time and peak RSS."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.codes: list[int] = []
        self.rss = 0.0
        self.t0 = time.perf_counter()
        self.n = 0

    def grid(self, g: np.ndarray) -> Path:
        self.n += 1
        p = self.work / f"g{self.n}.npy"
        np.save(p, g)
        return p

    def start(self, src: Path, out: Path, *extra: str, preexec_fn=None) -> subprocess.Popen:
        argv = [PY, "-m", "image2lego", str(src), "-o", str(out), *extra]

        def child() -> None:
            # a shell's background job starts with SIGINT ignored, and so would the CLI
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if preexec_fn is not None:
                preexec_fn()

        return subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=self.work,
            preexec_fn=child,
        )

    def wait(self, p: subprocess.Popen) -> tuple[int, str]:
        _, err = p.communicate()
        self.codes.append(p.returncode)
        self.rss = max(self.rss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        return p.returncode, err

    def run(self, src: Path, out: Path, *extra: str, preexec_fn=None) -> tuple[int, str]:
        return self.wait(self.start(src, out, *extra, preexec_fn=preexec_fn))

    def row(self, name: str, what: str, passed: bool, **kw) -> Row:
        return Row(
            name,
            what,
            bool(passed),
            self.codes,
            seconds=round(time.perf_counter() - self.t0, 2),
            peak_rss_mb=round(self.rss, 1),
            **kw,
        )


def _wait_for(pred: Callable[[], bool], p: subprocess.Popen, limit: float = 300) -> bool:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit and p.poll() is None:
        if pred():
            return True
        time.sleep(0.005)
    return False


def _staging(out: Path) -> bool:
    return any(n.startswith(".i2l-stage-") for n in hidden(out))


# --------------------------------------------------------------------------- scenarios


@contextlib.contextmanager
def small_disk(work: Path, mib: int):
    """A ``mib`` MiB tmpfs under ``work`` (needs root), or None."""
    mnt = work / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until only ``leave`` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "wb") as f:
        left = free - leave
        chunk = bytes(1 << 20)
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def disk_full(work: Path) -> Row:
    r = Runs(work)
    with small_disk(work, 24) as disk:
        if disk is None:
            return r.row("disk_full", "full disk (tmpfs)", False, note="cannot mount a tmpfs")
        out = disk / "out"
        rc1, _ = r.run(r.grid(solid(16)), out, *PLAIN)
        before = digest(out)
        _fill(disk, 48 * 1024)  # the new result (~1.5 MB) cannot fit
        rc2, err = r.run(r.grid(solid(32)), out, *PLAIN)
        line_ok, msg = one_line(err)
        intact = digest(out) == before
        left = hidden(out)
        (disk / "filler").unlink()
        rc3, _ = r.run(r.grid(solid(32)), out, *PLAIN)
        ok3 = rc3 == 0 and not hidden(out) and digest(out) != before
        # a first run on a full disk leaves no folder behind
        _fill(disk, 16 * 1024)
        rc4, err4 = r.run(r.grid(solid(32)), disk / "fresh", *PLAIN)
        fresh_gone = not (disk / "fresh").exists()
    passed = (
        rc1 == 0 and rc2 == 2 and line_ok and "No space" in msg and intact and not left and ok3
    ) and (rc4 == 2 and fresh_gone)
    return r.row(
        "disk_full",
        "rerun into a 24 MiB tmpfs filled to 48 KiB free; then freed and rerun; then a first "
        "run into a new folder on the full disk",
        passed,
        message=msg,
        earlier_intact="byte-identical" if intact else "CHANGED",
        hidden_left=left,
        note=f"after freeing: exit {rc3}, new result {'in place' if ok3 else 'MISSING'}; "
        f"first run on a full disk: exit {rc4}, folder {'not left' if fresh_gone else 'LEFT'}",
    )


def file_size_limit(work: Path) -> Row:
    """Like a full disk without root: RLIMIT_FSIZE makes the big product's write fail."""
    r = Runs(work)
    out = work / "out"
    rc1, _ = r.run(r.grid(solid(8)), out, *PLAIN)
    before = digest(out)

    def limit():  # 32 KiB per file: the 48³ model's LDraw text is bigger
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    rc2, err = r.run(r.grid(solid(48)), out, *PLAIN, preexec_fn=limit)
    line_ok, msg = one_line(err)
    intact = digest(out) == before
    left = hidden(out)
    return r.row(
        "file_size_limit",
        "rerun under RLIMIT_FSIZE 32 KiB (the LDraw file cannot be written)",
        rc1 == 0 and rc2 == 2 and line_ok and intact and not left,
        message=msg,
        earlier_intact="byte-identical" if intact else "CHANGED",
        hidden_left=left,
    )


def sigint_any_moment(work: Path) -> Row:
    """Ctrl-C at 8 moments spread over a rerun: each ends 130 in one line (or 0 when it came
    after the end) and the folder holds the earlier or the new result, whole."""
    r = Runs(work)
    out = work / "out"
    r.run(r.grid(solid(8)), out, *PLAIN)
    old = digest(out)
    src = r.grid(solid(56))
    t0 = time.perf_counter()
    r.run(src, work / "probe", *PLAIN)
    span = time.perf_counter() - t0
    shutil.rmtree(work / "probe")
    new = None
    seen, msgs, bad = [], set(), []

    def files(d: dict[str, str]) -> dict[str, str]:  # report.json records the run's times
        return {k: v for k, v in d.items() if k != "report.json"}

    for i in range(8):
        when = span * (0.15 + 0.85 * i / 7)
        p = r.start(src, out, *PLAIN)
        time.sleep(when)
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGINT)
        rc, err = r.wait(p)
        # a Python that ends on Ctrl-C may die by SIGINT itself (-2: the shell's $? is 130 too)
        rc = 130 if rc == -signal.SIGINT else rc
        now = digest(out)
        if rc == 0:
            new = new or now
        if now == old:
            state = "earlier"
        elif (new is None or files(now) == files(new)) and _consistent(out):
            state = "new"  # Ctrl-C after the swap: the new result, complete
        else:
            state = "MIXED"
        line_ok, msg = one_line(err)
        if rc == 130 and msg:
            msgs.add(msg)
        # a Ctrl-C after the run's work was done (the new result in place) may end it silently
        late = state == "new" and not err.strip()
        if rc not in (0, 130) or (rc == 130 and not line_ok and not late) or "MIXED" in state:
            bad.append(f"{when:.1f}s: exit {rc} {state} {err.strip()!r}")
        elif hidden(out):
            bad.append(f"{when:.1f}s: hidden entries left {hidden(out)}")
        seen.append(f"{when:.1f}s→{rc}/{state}")
        if state == "new":  # put the earlier result back for the next try
            r.run(r.grid(solid(8)), out, *PLAIN)
            old = digest(out)
    return r.row(
        "sigint_any_moment",
        f"Ctrl-C at 8 moments over a {span:.1f} s rerun (56³) into a folder holding a result",
        not bad,
        message=" / ".join(sorted(msgs)),
        earlier_intact="whole every time" if not bad else "; ".join(bad),
        hidden_left=hidden(out),
        note=", ".join(seen),
    )


def kill_during_instructions(work: Path) -> Row:
    r = Runs(work)
    out = work / "out"
    rc1, _ = r.run(r.grid(solid(8)), out, "--no-render", "--no-blend", "-q")
    before = digest(out)
    p = r.start(r.grid(solid(16)), out, "--no-render", "--no-blend", "-q")
    # the booklet's step renders go to a hidden folder inside the run's staging folder
    got = _wait_for(lambda: any(out.glob(".i2l-stage-*/**/.i2l-render-*")), p)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    r.wait(p)
    intact = digest_visible(out) == digest_visible_of(before)
    stale = hidden(out)
    rc3, _ = r.run(r.grid(solid(6)), out, *PLAIN)
    left = hidden(out)
    return r.row(
        "kill_during_instructions",
        "SIGKILL while the booklet renders, then a plain rerun into the same folder",
        got and rc1 == 0 and intact and bool(stale) and rc3 == 0 and not left,
        earlier_intact="byte-identical" if intact else "CHANGED",
        hidden_left=left,
        note=f"killed {'during instructions' if got else 'BEFORE instructions began'}; "
        f"right after the kill: {stale} (the killed run's staging); the rerun (exit {rc3}) "
        f"cleaned it: {'yes' if not left else 'NO'}",
    )


def _consistent(out: Path) -> bool:
    """report.json, voxels.npy and model.ldr describe one model."""
    rep = json.loads((out / "report.json").read_text())
    from image2lego.lego import ldraw

    return rep["voxels"] == int(np.load(out / "voxels.npy").sum()) and rep["bricks"] == len(
        ldraw.parse_ldr(out / "model.ldr")
    )


def digest_visible(folder: Path) -> dict[str, str]:
    return {k: v for k, v in digest(folder).items() if not k.startswith(".")}


def digest_visible_of(d: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in d.items() if not k.startswith(".")}


def blender_outputs(work: Path) -> Row:
    r = Runs(work)
    out = work / "out"
    os.umask(0o022)
    rc, err = r.run(r.grid(solid(6)), out, "-q")
    modes = {}
    for p in sorted(out.rglob("*")):
        modes[str(p.relative_to(out))] = oct(p.stat().st_mode & 0o777)
    want_f, want_d = oct(0o644), oct(0o755)
    wrong = [
        f"{k} {m}" for k, m in modes.items() if m != (want_d if (out / k).is_dir() else want_f)
    ]
    left = hidden(out)
    return r.row(
        "blender_outputs",
        "a full run with render, instructions and .blend (umask 022): dot-files and modes",
        rc == 0 and not left and not wrong,
        message=one_line(err)[1] if rc else "",
        hidden_left=left,
        note=f"{len(modes)} entries; modes not 0644/0755: {wrong or 'none'}; "
        f"instructions.pdf {modes.get('instructions.pdf')}, model.blend {modes.get('model.blend')}",
    )


def concurrent(work: Path) -> Row:
    r = Runs(work)
    out = work / "out"
    sizes = [6, 8, 10, 12, 14, 16]
    procs = [r.start(r.grid(solid(n)), out, *PLAIN) for n in sizes]
    codes = [r.wait(p)[0] for p in procs]
    vox = int(np.load(out / "voxels.npy").sum())
    rep = json.loads((out / "report.json").read_text())
    from image2lego.lego import ldraw

    ldr = ldraw.parse_ldr(out / "model.ldr")
    mpd = ldraw.parse_ldr(out / "model.mpd")
    csv_total = sum(
        int(line.rsplit(",", 1)[1]) for line in (out / "parts.csv").read_text().splitlines()[1:]
    )
    one_set = (
        rep["voxels"] == vox
        and sorted(ldr.bricks) == sorted(mpd.bricks)
        and rep["bricks"] == len(ldr) == csv_total
        and vox in {n**3 for n in sizes}
    )
    left = hidden(out)
    return r.row(
        "concurrent_6",
        "6 runs (6³…16³) started together into one new folder",
        all(c == 0 for c in codes) and one_set and not left,
        earlier_intact=f"one run's complete set ({round(vox ** (1 / 3))}³)" if one_set else "MIXED",
        hidden_left=left,
    )


def folder_gone_mid_run(work: Path, replace_with_file: bool) -> Row:
    r = Runs(work)
    out = work / "out"
    r.run(r.grid(solid(8)), out, *PLAIN)
    p = r.start(r.grid(solid(10)), out, "--no-instructions", "--no-blend", "-q")
    got = _wait_for(lambda: _staging(out), p)
    time.sleep(0.3)  # the render is under way
    shutil.rmtree(out, ignore_errors=True)
    if replace_with_file:
        out.write_text("the user's file\n")
    rc, err = r.wait(p)
    line_ok, msg = one_line(err)
    if replace_with_file:
        kept = out.is_file() and out.read_text() == "the user's file\n"
        state = "the file is untouched" if kept else "THE FILE WAS CHANGED"
    else:
        kept = not out.exists()
        state = "nothing recreated" if kept else f"recreated: {sorted(os.listdir(out))}"
    name = "folder_replaced_by_file" if replace_with_file else "folder_deleted"
    return r.row(
        f"{name}_mid_render",
        f"the output folder {'replaced by a file' if replace_with_file else 'deleted'} "
        "while the render runs",
        got and rc == 2 and line_ok and kept,
        message=msg,
        earlier_intact=state,
        note="" if got else "the run ended before the folder could be removed",
    )


SCENARIOS: dict[str, Callable[[Path], Row]] = {
    "disk_full": disk_full,
    "file_size_limit": file_size_limit,
    "sigint_any_moment": sigint_any_moment,
    "kill_during_instructions": kill_during_instructions,
    "blender_outputs": blender_outputs,
    "concurrent_6": concurrent,
    "folder_deleted_mid_render": lambda w: folder_gone_mid_run(w, False),
    "folder_replaced_by_file_mid_render": lambda w: folder_gone_mid_run(w, True),
}


def markdown(rows: list[Row], meta: dict) -> str:
    out = [
        "# Faults that lose nothing (issue #22)",
        "",
        f"{meta['machine']}; {meta['date']}; load average {meta['load']} at the start; "
        "`benchmarks/bench_faults.py`. Real CLI processes; time is the scenario's wall time, "
        "memory the largest peak RSS of its runs.",
        "",
        "| scenario | what | pass | exit codes | message | earlier result | hidden entries "
        "left | time (s) | peak RSS (MB) | note |",
        "|---|---|---|---|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        cells = [
            r.name,
            r.what,
            "yes" if r.passed else "**no**",
            " ".join(map(str, r.exit_codes)),
            r.message,
            r.earlier_intact,
            ", ".join(r.hidden_left) or "none",
            f"{r.seconds:.1f}",
            f"{r.peak_rss_mb:.0f}",
            r.note,
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", f"{sum(r.passed for r in rows)} of {len(rows)} scenarios pass."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", action="append", default=[], help="scenarios whose name has WORD")
    ap.add_argument("--out", type=Path, default=RESULTS / "faults", help="results stem")
    args = ap.parse_args(argv)
    names = [n for n in SCENARIOS if not args.k or any(w in n for w in args.k)]
    load0 = os.getloadavg()
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix="i2l-faults-") as tmp:
            try:
                row = SCENARIOS[name](Path(tmp))
            except Exception as exc:  # a scenario that breaks is a failed scenario
                row = Row(name, "", False, message=f"{type(exc).__name__}: {exc}")
        rows.append(row)
        print(
            f"{row.name:36} {'pass' if row.passed else 'FAIL'} {row.exit_codes} "
            f"{row.seconds:.1f} s {row.message[:80]} | {row.earlier_intact[:60]} | {row.note}",
            flush=True,
        )
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load": " / ".join(f"{v:.1f}" for v in load0),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    args.out.with_suffix(".md").write_text(markdown(rows, meta))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
