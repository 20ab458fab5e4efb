"""The one base class for every error the user can cause, and the project's logger.

Bad input, a corrupt or missing weight file, an unwritable output folder: each raises a
subclass of :class:`Image2LegoError` (which also derives from the built-in class it always
was, ``ValueError`` or ``RuntimeError``, so existing ``except`` clauses keep working). The CLI
turns any of them into a one-line ``image2lego: error: …`` and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER_NAME = "image2lego"


class Image2LegoError(Exception):
    """Base of every error a user can cause; its message is meant to be shown as is."""


def get_logger() -> logging.Logger:
    """``logging.getLogger("image2lego")``: the one logger every layer writes to."""
    return logging.getLogger(LOGGER_NAME)


@contextlib.contextmanager
def logging_to_stdout(level: int) -> Iterator[logging.Logger]:
    """Send the ``image2lego`` logger's records to the current ``sys.stdout`` as plain lines
    for the duration of one command, then detach (so repeated ``main()`` calls, as in the
    tests, neither duplicate lines nor write into a closed stream)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = get_logger()
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    try:
        yield log
    finally:
        handler.flush()
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate
