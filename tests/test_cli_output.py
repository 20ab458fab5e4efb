"""The CLI's terminal output: Blender log capture, progress bar, the short summary."""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass

from image2lego import cli_output
from image2lego.lego.errors import get_logger


@dataclass
class P:
    fraction: float
    message: str


def test_native_output_is_captured_and_replayed_to_debug(capfd, caplog):
    log = get_logger()
    with caplog.at_level(logging.DEBUG, logger=log.name):
        with cli_output.captured_native_output("blender") as lines:
            os.write(1, b"Saved: '/tmp/x/full.png'\n")  # what Blender's C code does
            os.write(2, b"EGL Error (0x3009)\n")
        out, err = capfd.readouterr()
    assert "Saved" not in out and "EGL" not in err  # nothing reached the terminal
    assert lines == ["Saved: '/tmp/x/full.png'", "EGL Error (0x3009)"]
    assert "blender: Saved: '/tmp/x/full.png'" in caplog.text  # shown with -v


def test_native_output_restores_descriptors_after_an_error(capfd):
    try:
        with cli_output.captured_native_output():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(1, b"visible again\n")
    assert "visible again" in capfd.readouterr().out


def test_progress_bar_draws_on_a_terminal_and_is_silent_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with cli_output.progress_bar("Rendering", stream=tty, enabled=True) as cb:
        for k in range(5):
            cb(P(k / 4, f"step {k + 1} of 5"))
    assert "Rendering" in tty.getvalue() and "100%" in tty.getvalue()
    pipe = io.StringIO()  # not a terminal (CI log, pipe): no bar
    with cli_output.progress_bar("Rendering", stream=pipe) as cb:
        cb(P(0.5, "half"))
    assert pipe.getvalue() == ""


def test_unrepairable_bricks_are_one_line():
    items = [(i, "joined only side by side") for i in range(437)] + [(999, "floating")]
    line = cli_output.aggregate_unrepairable(items)
    assert "\n" not in line and "438 bricks" in line
    assert line.index("437x joined") < line.index("1x floating")
    assert cli_output.aggregate_unrepairable([]) is None


def test_summary_is_short_whatever_the_model(tmp_path):
    summary = {"bricks": 455, "parts": 23, "colors": 4, "steps": 52, "seconds": 12.3,
               "warnings": [f"warning {i}" for i in range(40)]}  # fmt: skip
    written = {f"k{i}": tmp_path / f"file_{i:02d}.png" for i in range(60)}
    lines = cli_output.summary_lines(summary, written, tmp_path)
    assert len(lines) <= 15
    assert lines[0] == "Built 455 bricks (23 part kinds, 4 colours, 52 steps) in 12.3 s"
    assert any("37 more warning" in ln for ln in lines)
