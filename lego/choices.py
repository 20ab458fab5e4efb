"""Every option with a fixed set of choices, written once: value, label, description.

``lego.convert`` validates against these, the CLI's ``choices=`` and Blender's ``EnumProperty``
items are made from them, so the three can never disagree. The ``Literal`` types name the same
values for type checkers.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class Choice(NamedTuple):
    value: str
    label: str
    description: str


Scale = Literal["proportional", "paper"]
SCALE: tuple[Choice, ...] = (
    Choice("proportional", "Proportional", "A voxel is a one-stud cube (true proportions)"),
    Choice("paper", "Paper", "A voxel is a 1×1 brick (the paper's choice; taller model)"),
)

BrickTypes = Literal["mixed", "bricks", "plates"]
BRICK_TYPES: tuple[Choice, ...] = (
    Choice("mixed", "Mixed", "Bricks where possible, plates elsewhere"),
    Choice("bricks", "Bricks", "Bricks only"),
    Choice("plates", "Plates", "Plates only"),
)

Hollow = Literal["fill", "shell", "none"]
HOLLOW: tuple[Choice, ...] = (
    Choice("fill", "Fill", "Solid model: fill the inside (the paper's choice)"),
    Choice("shell", "Shell", "Hollow model with walls and internal supports"),
    Choice("none", "As Given", "Use the voxels as they are"),
)

ColorMode = Literal["single", "photo", "grayscale"]
COLOR_MODE: tuple[Choice, ...] = (
    Choice("photo", "From Photo", "k predominant colors of the photo, mapped to LEGO colors"),
    Choice("grayscale", "Grayscale", "LEGO grays by brightness"),
    Choice("single", "One Color", "Every brick in one LEGO color"),
)

ElementStrategy = Literal["split", "recolour"]
ELEMENT_STRATEGY: tuple[Choice, ...] = (
    Choice(
        "split", "Split", "A part that does not exist in its colour is split into parts that do"
    ),
    Choice(
        "recolour",
        "Recolour",
        "A part that does not exist in its colour takes the nearest colour it exists in",
    ),
)


def values(choices: tuple[Choice, ...]) -> tuple[str, ...]:
    """The values, in order (for validation and argparse ``choices=``)."""
    return tuple(c.value for c in choices)


def enum_items(choices: tuple[Choice, ...]) -> list[tuple[str, str, str]]:
    """Blender ``EnumProperty`` items: ``(identifier, name, description)``."""
    return [(c.value, c.label, c.description) for c in choices]


def help_text(choices: tuple[Choice, ...], default: str) -> str:
    """One argparse help line: every value with its description, the default named."""
    return "; ".join(
        f"{c.value}: {c.description[0].lower()}{c.description[1:]}"
        + (" (default)" if c.value == default else "")
        for c in choices
    )


def check(name: str, value, choices: tuple[Choice, ...]) -> None:
    """``ValueError`` naming the allowed values when ``value`` is not one of them."""
    allowed = values(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
