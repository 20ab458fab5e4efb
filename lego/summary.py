"""The one summary of a brick model: what report.json says and what Blender's Stats panel shows.

Both read the same keys, so a number means the same thing in the file and in the UI:

===================== ==========================================================
``bricks``            bricks and plates in the model
``parts``             distinct part numbers
``colors``            distinct LEGO colours
``layers``            plate layers that hold at least one brick
``steps``             build steps
``components``        connected pieces (1 = the model holds together)
``connected``         ``components == 1`` (``None`` when it could not be computed)
``ungrounded_bricks`` bricks in a piece that does not touch the ground
``stable``            holds under gravity (only with a stability or repair report)
``max_stress``        worst clutch utilisation (1.0 = at the limit; ``"inf"`` = unsupported)
``unsupported_bricks`` bricks that rest on nothing
``added_bricks``      bricks that fill cells the build added to hold the model together
                      (bridges and supports under floating pieces, repair props)
``join``              what was added where (``lego.join.JoinReport.to_dict``; only when
                      the converter joined floating pieces)
``not_elements``      bricks whose part does not exist in their colour as a LEGO element
``rare_elements``     bricks in a retired or rare colour (:func:`.elements.rarity`)
``elements``          what the converter split or recoloured to keep to real elements
                      (only when it did)
``props_added``       props the repair added (only with a repair report)
``repair``            the repair report's before/after facts (only with a repair report)
===================== ==========================================================
"""

from __future__ import annotations

import math
from typing import Any, NotRequired, TypedDict

from .bricks import BrickModel
from .errors import get_logger


class StabilitySummary(TypedDict, total=False):
    """The stability keys of :class:`ModelSummary` (see the table above)."""

    stable: bool
    max_stress: float | str | None
    unsupported_bricks: int
    props_added: int
    repair: dict[str, Any]


class ModelSummary(StabilitySummary):
    """:func:`model_summary`'s facts, keyed as in the table above (JSON-ready). The stability
    keys are present only with a stability or repair report; ``added_bricks`` only when the
    model has bricks; ``join`` only when the converter joined floating pieces."""

    bricks: int
    parts: int
    colors: int
    layers: int
    steps: int
    components: int
    connected: bool | None
    ungrounded_bricks: int
    added_bricks: NotRequired[int]
    join: NotRequired[dict[str, Any]]
    not_elements: int
    rare_elements: int
    elements: NotRequired[dict[str, Any]]


class Report(ModelSummary, total=False):
    """report.json and the CLI's end-of-run summary: the model's facts (:class:`ModelSummary`,
    the keys Blender's Stats panel shows) plus the run's (``outputs.summary`` fills it)."""

    voxels: int  #: filled cells of the voxel grid
    grid: list[int]  #: the voxel grid's shape
    fragments_dropped_cells: int  #: floating specks removed (photo input only)
    face: dict[str, Any]  #: a face bust's facts (core.face)
    caption: dict[str, Any]  #: how a caption was read (core.caption)
    warnings: list[str]
    stability_summary: str  #: the stability report in words
    seconds: float  #: wall time of the whole run (the CLI adds it)


def model_summary(model: BrickModel, stability=None) -> ModelSummary:
    """Counts for ``model``; ``stability`` is an optional ``lego.repair.RepairReport`` (the
    repaired model's facts) or ``lego.stability.StabilityReport`` (a fresh analysis)."""
    bricks = model.bricks
    out: ModelSummary = {
        "bricks": len(bricks),
        "parts": len({b.part_id for b in bricks}),
        "colors": len({b.color for b in bricks}),
        "layers": len({b.z for b in bricks}),
        "steps": model.n_steps(),
        "components": 0,
        "connected": None,
        "ungrounded_bricks": 0,
        "not_elements": 0,
        "rare_elements": 0,
    }
    if bricks:
        conn = _connectivity(model)
        if conn is not None:
            out["components"], out["connected"] = conn["components"], conn["connected"]
            out["ungrounded_bricks"] = conn["ungrounded_bricks"]
        from .join import added_bricks

        out["added_bricks"] = len(added_bricks(model))
    join = model.meta.get("join") if isinstance(model.meta, dict) else None
    if isinstance(join, dict) and join.get("additions"):
        out["join"] = join
    from .elements import rarity

    notes = {k: rarity(*k) for k in model.part_counts()}
    counts = model.part_counts()
    out["not_elements"] = sum(n for k, n in counts.items() if notes[k] == "not a LEGO element")
    out["rare_elements"] = sum(
        n for k, n in counts.items() if notes[k] and notes[k] != "not a LEGO element"
    )
    el = model.meta.get("elements") if isinstance(model.meta, dict) else None
    if isinstance(el, dict) and (
        el.get("split") or el.get("recoloured") or el.get("repair_recoloured")
    ):
        out["elements"] = el
    if stability is not None:
        out.update(stability_summary(stability))
    return out


def stability_summary(report) -> StabilitySummary:
    """The stability keys of :func:`model_summary` from a repair or a stability report."""
    from .repair import RepairReport

    out: StabilitySummary = {}
    if isinstance(report, RepairReport):
        out["props_added"] = int(report.reinforcement_bricks)
        out["repair"] = report.to_dict()
        report = report.after
    out["max_stress"] = finite_or_inf(report.max_stress)
    out["stable"] = bool(report.stable)
    out["unsupported_bricks"] = len(report.unsupported)
    return out


def finite_or_inf(v):
    """A float JSON can hold: ``None`` stays ``None``, infinity becomes ``"inf"``."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else "inf"


class _Connectivity(TypedDict):
    components: int
    connected: bool
    ungrounded_bricks: int


def _connectivity(model: BrickModel) -> _Connectivity | None:
    from .connectivity import analyze

    try:
        conn = analyze(model, articulation=False)
    except Exception as exc:  # noqa: BLE001 - a summary is best effort, never blocks a build
        get_logger().warning("connectivity could not be computed: %s", exc)
        return None
    return {
        "components": int(conn.n_components),
        "connected": bool(conn.connected),
        "ungrounded_bricks": len(conn.ungrounded),
    }
