"""Hostile-input suite (issue #22): every case through the CLI or the Python API, each in its
own process, with its wall time, peak memory (RSS) and outcome.

    nice -n 10 python benchmarks/bench_hostile.py            # all cases (~10 min on 2 cores)
    python benchmarks/bench_hostile.py --skip-big             # without full 256³ (5 GB)
    python benchmarks/bench_hostile.py -k ldraw -k full64     # cases whose name has a word

Writes ``benchmarks/results/hostile.json`` and ``hostile.md``. An outcome is ``ok`` (exit 0),
``error`` (exit 2 with exactly one line ``image2lego: error: …`` or, for API cases, one
exception line), ``interrupted`` (130), ``TIMEOUT`` (over ``--timeout``) or ``CRASH``
(a traceback, or any other exit). ``expect`` is what a demanding user wants; ``pass`` says
whether the outcome matches it and the case stayed within the time and memory budgets.
Voxel grids run with the plain outputs only (``--no-render --no-instructions --no-blend``):
the Blender products are timed by ``bench_blender.py`` / ``bench_instructions.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PY = sys.executable
PLAIN = ["--no-render", "--no-instructions", "--no-blend", "-q"]
GB = 2**30


@dataclass
class Case:
    name: str
    group: str
    expect: str  # "ok" or "error"
    budget_s: float = 60.0
    budget_gb: float = 4.0
    big: bool = False


@dataclass
class Row:
    name: str
    group: str
    expect: str
    outcome: str
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    budget_s: float
    budget_gb: float
    passed: bool
    message: str


# --------------------------------------------------------------------------- inputs


def _raw_header(shape, descr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def grids(n_rng=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n_rng)
    i, j, k = np.indices((32, 32, 32))
    sheet = np.zeros((256, 256, 1), bool)
    sheet[:] = True
    line = np.ones((256, 1, 1), bool)
    one = np.ones((1, 1, 1), bool)
    return {
        "full64": np.ones((64,) * 3, bool),
        "full128": np.ones((128,) * 3, bool),
        "full256": np.ones((256,) * 3, bool),
        "checker32": (i + j + k) % 2 == 0,
        "random64_50pct": rng.random((64,) * 3) < 0.5,
        "sheet256x256x1": sheet,
        "line256": line,
        "one_voxel": one,
    }


def _ldr_line(x, y, z) -> str:
    return f"1 4 {x * 20 + 10} {-24 * (y + 1)} {z * 20 + 10} 1 0 0 0 1 0 0 0 1 3005.dat"


def _write_big_ldr(path: Path, target_bytes: int) -> None:
    """Valid 1x1 bricks on distinct lattice positions until ``target_bytes``."""
    with open(path, "w") as f:
        f.write("0 big\n")
        size, n = 6, 0
        side = 256
        while size < target_bytes:
            x, z, y = n % side, (n // side) % side, n // (side * side)
            line = _ldr_line(x, y, z) + "\n"
            f.write(line)
            size += len(line)
            n += 1


def _api(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def prepare(case: str, work: Path) -> tuple[list[str], Path | None]:
    """The command line of ``case`` (its inputs written under ``work``) and, where the case
    checks that an earlier result survives, that folder."""
    cli = [PY, "-m", "image2lego"]
    g = grids()
    out = work / "out"
    if case in g:
        np.save(work / f"{case}.npy", g[case])
        return [*cli, str(work / f"{case}.npy"), "-o", str(out), *PLAIN], None
    if case == "smooth_colours32":
        return _api(
            """
            import numpy as np
            from image2lego.core import pipeline
            from image2lego.lego.convert import ConvertOptions
            i, j, k = np.indices((32, 32, 32))
            rgb = np.stack([i * 8, j * 8, k * 8], -1).astype(np.uint8)
            opts = pipeline.PipelineOptions(convert=ConvertOptions(color_mode="photo", k=16))
            r = pipeline.run(pipeline.voxels_to_lego_steps(np.ones((32,) * 3, bool), opts, rgb))
            print(len(r.model), r.model.meta.get("warnings"))
            """
        ), None
    if case == "npy_shape_bomb":
        (work / "bomb.npy").write_bytes(_raw_header((10**5,) * 3, "|b1"))
        return [*cli, str(work / "bomb.npy"), "-o", str(out), *PLAIN], None
    if case == "npy_pickle":
        (work / "p.npy").write_bytes(_raw_header((4, 4, 4), "|O") + b"\x80\x04" + bytes(64))
        return [*cli, str(work / "p.npy"), "-o", str(out), *PLAIN], None
    if case == "npy_truncated":
        (work / "t.npy").write_bytes(_raw_header((200, 200, 200), "|b1") + bytes(1000))
        return [*cli, str(work / "t.npy"), "-o", str(out), *PLAIN], None
    if case == "npz_renamed_npy":
        grid = np.zeros((8, 8, 8), bool)
        grid[2:6, 2:6, :4] = True
        np.savez(work / "g.npz", voxels=grid)
        shutil.move(work / "g.npz", work / "g.npy")
        return [*cli, str(work / "g.npy"), "-o", str(out), *PLAIN], None
    if case == "npz_zip_bomb":
        with zipfile.ZipFile(work / "z.npz", "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open("voxels.npy", "w", force_zip64=True) as m:
                m.write(_raw_header((256, 256, 256), "<i8"))
                chunk = bytes(2**24)
                for _ in range(8):  # 128 MiB of zeros (claims 128 MiB: within the limit)
                    m.write(chunk)
        return [*cli, str(work / "z.npz"), "-o", str(out), *PLAIN], None
    if case.startswith("ldraw_"):
        f = work / "m.ldr"
        ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
        if case == "ldraw_exponent":
            f.write_text("0 x\n1 4 1e999999999 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n")
        elif case == "ldraw_breadth_bomb":
            text = ""
            for i in range(17):
                body = "\n".join([f"{ref} s{i + 1}.ldr"] * 4) if i < 16 else _ldr_line(0, 0, 0)
                text += f"0 FILE s{i}.ldr\n{body}\n0 NOFILE\n"
            f.write_text(text)
        elif case == "ldraw_empty_breadth_bomb":  # 4**16 references to empty submodels
            text = ""
            for i in range(17):
                body = "\n".join([f"{ref} s{i + 1}.ldr"] * 4) if i < 16 else "0 empty"
                text += f"0 FILE s{i}.ldr\n{body}\n0 NOFILE\n"
            f.write_text(text)
        elif case == "ldraw_cycle":
            f.write_text(f"0 FILE a.ldr\n{ref} b.ldr\n0 NOFILE\n0 FILE b.ldr\n{ref} a.ldr\n")
        elif case == "ldraw_50MB_valid":
            _write_big_ldr(f, 50 * 2**20)  # ~0.9 M bricks: within MAX_BRICKS
        elif case == "ldraw_120MB_over_brick_limit":
            _write_big_ldr(f, 120 * 2**20)  # ~2.2 M valid brick lines: over MAX_BRICKS
        return _api(
            f"""
            from image2lego.lego import ldraw
            m = ldraw.parse_ldr({str(f)!r})
            print(len(m.bricks))
            """
        ), None
    if case.startswith("weights_latent"):
        d = work / "w"
        shutil.copytree(REPO / "weights", d)
        meta = d / "tl_octree.json"
        doc = json.loads(meta.read_text())
        doc["config"]["latent_dim"] = 10**7 if case.endswith("huge") else -5
        meta.write_text(json.dumps(doc))
        img = work / "photo.png"
        from PIL import Image

        photo = Image.new("RGB", (64, 64), (255, 255, 255))
        photo.paste((200, 30, 30), (16, 16, 48, 48))
        photo.save(img)
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        mask.save(work / "mask.png")
        return [
            *cli, str(img), "-o", str(out), "--weights", str(d), "--mask", str(work / "mask.png"),
            *PLAIN,
        ], None  # fmt: skip
    if case.startswith("image_"):
        img = work / "photo.png"
        if case == "image_decompression_bomb":
            from PIL import Image

            Image.new("1", (40000, 40000)).save(img)  # 40000² = 1.6 G pixels, a small file
        elif case == "image_3GiB_not_an_image":
            with open(img, "wb") as fh:
                fh.truncate(3 * GB)  # sparse: no disk used
        elif case == "image_truncated_png":
            img.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
        return [*cli, str(img), "-o", str(out), *PLAIN], None
    if case.startswith("cli_"):
        grid = np.zeros((8, 8, 8), bool)
        grid[2:6, 2:6, :4] = True
        src = work / "g.npy"
        np.save(src, grid)
        if case == "cli_unmapped_colour_rerun":
            subprocess.run([*cli, str(src), "-o", str(out), *PLAIN], check=True)
            return [*cli, str(src), "-o", str(out), "--color", "219", *PLAIN], out
        if case == "cli_empty_out":
            return [*cli, str(src), "-o", "", *PLAIN], None
        if case == "cli_palette_99999":
            return [*cli, str(src), "-o", str(out), "--palette", "99999", *PLAIN], None
        if case == "cli_newline_file_name":
            odd = work / "a\nb.npy"
            np.save(odd, grid)
            return [*cli, str(odd), "-o", str(out), *PLAIN], None
        if case == "cli_unknown_option":
            return [*cli, str(src), "--bogus", *PLAIN], None
        if case == "cli_out_is_a_file":
            blocker = work / "blocker"
            blocker.write_text("x")
            return [*cli, str(src), "-o", str(blocker), *PLAIN], None
    raise KeyError(case)


CASES = [
    Case("full64", "voxels", "ok"),
    Case("full128", "voxels", "ok"),
    Case("full256", "voxels", "ok", budget_s=300, budget_gb=8, big=True),
    Case("checker32", "voxels", "ok"),
    Case("random64_50pct", "voxels", "ok", budget_s=300),
    Case("smooth_colours32", "voxels", "ok"),
    Case("sheet256x256x1", "voxels", "ok"),
    Case("line256", "voxels", "ok"),
    Case("one_voxel", "voxels", "ok"),
    Case("npy_shape_bomb", "voxel file", "error", budget_s=10, budget_gb=1),
    Case("npy_pickle", "voxel file", "error", budget_s=10, budget_gb=1),
    Case("npy_truncated", "voxel file", "error", budget_s=10, budget_gb=1),
    Case("npz_renamed_npy", "voxel file", "ok", budget_s=30, budget_gb=1),
    Case("npz_zip_bomb", "voxel file", "error", budget_s=30, budget_gb=1),
    Case("ldraw_exponent", "ldraw", "error", budget_s=10, budget_gb=1),
    Case("ldraw_breadth_bomb", "ldraw", "error", budget_s=10, budget_gb=1),
    Case("ldraw_empty_breadth_bomb", "ldraw", "error", budget_s=10, budget_gb=1),
    Case("ldraw_cycle", "ldraw", "error", budget_s=10, budget_gb=1),
    Case("ldraw_50MB_valid", "ldraw", "ok", budget_s=60, budget_gb=4),
    Case("ldraw_120MB_over_brick_limit", "ldraw", "error", budget_s=60, budget_gb=4),
    Case("weights_latent_huge", "weights", "error", budget_s=30, budget_gb=1),
    Case("weights_latent_negative", "weights", "error", budget_s=30, budget_gb=1),
    Case("image_decompression_bomb", "image", "error", budget_s=30, budget_gb=1),
    Case("image_3GiB_not_an_image", "image", "error", budget_s=30, budget_gb=1),
    Case("image_truncated_png", "image", "error", budget_s=30, budget_gb=1),
    Case("cli_unmapped_colour_rerun", "cli", "error", budget_s=30, budget_gb=1),
    Case("cli_empty_out", "cli", "error", budget_s=10, budget_gb=1),
    Case("cli_palette_99999", "cli", "error", budget_s=10, budget_gb=1),
    Case("cli_newline_file_name", "cli", "error", budget_s=10, budget_gb=1),
    Case("cli_unknown_option", "cli", "error", budget_s=10, budget_gb=1),
    Case("cli_out_is_a_file", "cli", "error", budget_s=10, budget_gb=1),
]


# --------------------------------------------------------------------------- running


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def run_case(case: Case, timeout: float) -> Row:
    with tempfile.TemporaryDirectory(prefix="i2l-hostile-") as tmp:
        work = Path(tmp)
        # inputs are made in a helper process: a child's peak RSS starts at its parent's
        # (fork), so this process must stay small for the numbers to be the case's own
        made = subprocess.run(
            [PY, __file__, "--prepare", case.name, str(work)],
            capture_output=True,
            text=True,
            check=True,
        )
        argv, keep_s = json.loads(made.stdout.strip().splitlines()[-1])
        keep = Path(keep_s) if keep_s else None
        before = _digest(keep) if keep is not None else None
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        t0 = time.perf_counter()
        with open(work / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=work, env=env)
            timed_out = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > timeout:
                    proc.send_signal(signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.02)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        cpu_s = usage.ru_utime + usage.ru_stime
        rss_mb = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
        text = (work / "stderr").read_text(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        rc = proc.returncode
        api = argv[1] == "-c"
        if timed_out:
            outcome, message = "TIMEOUT", f"killed after {timeout:.0f} s"
        elif "Traceback" in text and not (api and rc == 1 and _api_error_is_clean(lines)):
            outcome, message = "CRASH", lines[-1] if lines else ""
        elif rc == 0:
            outcome, message = "ok", ""
        elif rc == 2 and len(lines) == 1 and lines[0].startswith("image2lego: error:"):
            outcome, message = "error", lines[0][len("image2lego: error: ") :]
        elif api and rc == 1 and _api_error_is_clean(lines):
            outcome, message = "error", lines[-1]
        elif rc == 130:
            outcome, message = "interrupted", lines[-1] if lines else ""
        else:
            outcome, message = "CRASH", f"exit {rc}: " + (lines[-1] if lines else "")
        if keep is not None and outcome != "ok":
            if _digest(keep) != before:
                outcome, message = "CRASH", "the earlier result was changed: " + message
            else:
                message += " (earlier result intact)"
    passed = outcome == case.expect and seconds <= case.budget_s and rss_mb <= case.budget_gb * 1024
    return Row(
        case.name,
        case.group,
        case.expect,
        outcome,
        round(seconds, 2),
        round(cpu_s, 2),
        round(rss_mb, 1),
        case.budget_s,
        case.budget_gb,
        passed,
        message[:200],
    )


def _api_error_is_clean(lines: list[str]) -> bool:
    """An API case: the exception is one of ours or a ValueError/TypeError with one line."""
    if not lines:
        return False
    last = lines[-1]
    name = last.split(":", 1)[0].rsplit(".", 1)[-1]
    return name.endswith("Error") and name not in (
        "MemoryError",
        "RecursionError",
        "AttributeError",
        "KeyError",
        "IndexError",
        "RuntimeError",
        "ZeroDivisionError",
        "OverflowError",
    )


def markdown(rows: list[Row], meta: dict) -> str:
    out = [
        "# Hostile-input suite (issue #22)",
        "",
        f"{meta['machine']}; {meta['date']}; load average {meta['load']} at the start; "
        "`benchmarks/bench_hostile.py`. Each case in its own process; time is wall time (it "
        "grows with the machine's load), CPU its user + system time, memory its peak RSS.",
        "",
        "| case | group | expect | outcome | time (s) | CPU (s) | peak RSS (MB) | budget | pass "
        "| message |",
        "|---|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        msg = r.message.replace("|", "\\|")
        out.append(
            f"| {r.name} | {r.group} | {r.expect} | {r.outcome} | {r.seconds:.2f} | "
            f"{r.cpu_s:.2f} | {r.peak_rss_mb:.0f} | {r.budget_s:g} s, {r.budget_gb:g} GB | "
            f"{'yes' if r.passed else '**no**'} | {msg} |"
        )
    n_pass = sum(r.passed for r in rows)
    out += ["", f"{n_pass} of {len(rows)} cases within expectation and budget."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", action="append", default=[], help="run cases whose name has WORD")
    ap.add_argument("--skip-big", action="store_true", help="leave out full 256³ (5 GB)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    ap.add_argument("--out", type=Path, default=RESULTS / "hostile", help="results stem")
    ap.add_argument("--prepare", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.prepare:
        cmd, keep = prepare(args.prepare[0], Path(args.prepare[1]))
        print(json.dumps([cmd, str(keep) if keep else None]))
        return 0
    cases = [
        c
        for c in CASES
        if (not args.k or any(w in c.name for w in args.k)) and not (args.skip_big and c.big)
    ]
    load0 = os.getloadavg()
    rows = []
    for case in cases:
        row = run_case(case, args.timeout)
        rows.append(row)
        print(
            f"{row.name:28} {row.outcome:8} {row.seconds:8.2f} s {row.cpu_s:8.2f} s CPU "
            f"{row.peak_rss_mb:8.0f} MB "
            f"{'pass' if row.passed else 'FAIL'}  {row.message[:90]}",
            flush=True,
        )
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "load": " / ".join(f"{v:.1f}" for v in load0),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "rows": [asdict(r) for r in rows]}
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, meta))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
