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
``props_added``       props the repair added (only with a repair report)
``repair``            the repair report's before/after facts (only with a repair report)
===================== ==========================================================
"""

from __future__ import annotations

import math

from .bricks import BrickModel
from .errors import get_logger


def model_summary(model: BrickModel, stability=None) -> dict:
    """Counts for ``model``; ``stability`` is an optional ``lego.repair.RepairReport`` (the
    repaired model's facts) or ``lego.stability.StabilityReport`` (a fresh analysis)."""
    bricks = model.bricks
    out: dict = {
        "bricks": len(bricks),
        "parts": len({b.part_id for b in bricks}),
        "colors": len({b.color for b in bricks}),
        "layers": len({b.z for b in bricks}),
        "steps": model.n_steps(),
        "components": 0,
        "connected": None,
        "ungrounded_bricks": 0,
    }
    if bricks:
        out.update(_connectivity(model))
        from .join import added_bricks

        out["added_bricks"] = len(added_bricks(model))
    join = model.meta.get("join") if isinstance(model.meta, dict) else None
    if isinstance(join, dict) and join.get("additions"):
        out["join"] = join
    if stability is not None:
        out.update(stability_summary(stability))
    return out


def stability_summary(report) -> dict:
    """The stability keys of :func:`model_summary` from a repair or a stability report."""
    from .repair import RepairReport

    out: dict = {}
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


def _connectivity(model: BrickModel) -> dict:
    from .connectivity import analyze

    try:
        conn = analyze(model, articulation=False)
    except Exception as exc:  # noqa: BLE001 - a summary is best effort, never blocks a build
        get_logger().warning("connectivity could not be computed: %s", exc)
        return {}
    return {
        "components": int(conn.n_components),
        "connected": bool(conn.connected),
        "ungrounded_bricks": len(conn.ungrounded),
    }
