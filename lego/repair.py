"""Automatic repair of disconnected or unstable brick layouts (issue 6).

:func:`repair` analyses a model with :func:`image2lego.lego.stability.analyze_stability`,
then changes the layout locally around the weak spots and analyses again, keeping a change
only when it makes the model strictly better, until it is stable and as connected as its
cells, or nothing helps any more:

1. **Breaks** (more brick components than the cells have 6-connected pieces): the
   re-merge-around-breaks pass of :func:`image2lego.lego.merge.connect` is run again with
   another seed, then the bricks on both sides of each remaining seam (plus their neighbours
   in the same layer, and then those directly above and below) are re-tiled with
   :func:`image2lego.lego.merge.remerge_region`, which prefers tilings whose bricks bridge the
   seam (fewest components, most links).
2. **Overloaded connections** (a stud connection needing more than the clutch): the two
   bricks of the connection and their same-layer neighbours are re-tiled together, in brick
   layers and, when the model may use plates, demoted to staggered plates, so longer bricks
   spread the load over more studs.
3. **Shell models** (:attr:`RepairOptions.shell`): hidden columns of 1x1
   bricks/plates are added in the empty interior under weak bricks, down to the next brick
   or the ground, only where they are enclosed by the shell.
4. **Props** (``reinforce=True``, the default): when re-tiling the same cells cannot hold an
   overhang, visible 1x1 columns are stood under it, bridging the level of the overloaded
   connection so the load goes around it in compression; at most ``max_added_fraction`` of
   the cells, reported in :class:`RepairReport`. Floating parts never get props.

A change is accepted only if it lowers, in order: the number of unsupported bricks, the
number of components, the largest stress, the number of overloaded bricks. When connections
are overloaded the search uses the min-max equilibrium (``objective="max"``), whose largest
stress is the clutch the model needs in units of the clutch it has. No occupied cell is
ever removed, and cells are only added as shell supports or props; this is checked at the
end. Whatever cannot be fixed is listed in :attr:`RepairReport.unrepairable` with the
reason (e.g. "its voxels do not reach the ground", or the tension a cantilever needs versus
the clutch), and :meth:`RepairReport.summary` says so. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import connectivity, merge
from .bricks import Brick, BrickModel
from .catalogue import find
from .stability import (
    ANALYSIS_BUDGET_S,
    CLUTCH_N_DEFAULT,
    StabilityBudgetError,
    StabilityReport,
    analyze_stability,
)
from .steps import DEFAULT_MAX_BRICKS_PER_STEP, assign_steps
from .units import PLATES_PER_BRICK

#: Weak spots re-tiled per iteration (most severe first).
REGIONS_PER_ITERATION = 3
#: Props tried under each weak spot, and how far from it (studs) they may stand.
PROPS_PER_SPOT = 3
PROP_RADIUS_STUDS = 10
#: Default cap on the cells reinforcement may add, as a fraction of the model's cells.
MAX_ADDED_FRACTION = 0.08
#: Regions one re-tiling pass tries (each costs up to two stability analyses, and the min-max
#: analysis of a 600-brick model takes ~2 s of CPU).
RETILE_REGIONS = 4
#: Share of the CPU budget re-tiling may use (the rest is left for props).
RETILE_SHARE = 0.4
#: Iterations without re-tiling after a re-tiling pass found nothing (props only).
RETILE_PAUSE = 2
#: Above this stress (x the clutch) props come before re-tiling: no re-tiling of a thin
#: support makes it hold several times its clutch, and each failed try costs an analysis.
PROPS_FIRST = 2.0


@dataclass(frozen=True)
class Snapshot:
    """The stability facts of one model state (before or after repair)."""

    n_bricks: int
    n_components: int
    unsupported: tuple[int, ...]
    n_overloaded: int
    max_stress: float
    stable: bool

    @staticmethod
    def of(model: BrickModel, r: StabilityReport) -> Snapshot:
        return Snapshot(
            len(model),
            r.n_components,
            tuple(r.unsupported),
            len(r.overloaded),
            float(r.max_stress),
            bool(r.stable),
        )

    def to_dict(self) -> dict:
        return {
            "n_bricks": self.n_bricks,
            "n_components": self.n_components,
            "n_unsupported": len(self.unsupported),
            "n_overloaded": self.n_overloaded,
            "max_stress": self.max_stress if np.isfinite(self.max_stress) else None,
            "stable": self.stable,
        }


@dataclass
class RepairReport:
    """What :func:`repair` found and did. Brick indices refer to the repaired model."""

    before: Snapshot
    after: Snapshot
    n_cell_components: int  # 6-connected pieces of the occupied cells
    iterations: int
    changes: int  # accepted re-merges
    support_bricks: int  # hidden interior bricks added (shell models only)
    time_s: float
    clutch_n: float
    #: visible props added by ``reinforce`` (1x1 bricks/plates) and the plate cells they fill
    reinforcement_bricks: int = 0
    added_cells: int = 0
    unrepairable: list[tuple[int, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    stability: StabilityReport | None = None  # full analysis of the repaired model
    #: Smallest clutch per stud (N) that would hold the grounded part of the repaired model
    #: (min-max utilisation x clutch); only computed when it is overloaded, else ``None``.
    required_clutch_n: float | None = None

    @property
    def connected(self) -> bool:
        """Bricks form no more pieces than the occupied cells do."""
        return self.after.n_components <= self.n_cell_components

    @property
    def stable(self) -> bool:
        return self.after.stable

    def summary(self) -> str:
        def line(s: Snapshot) -> str:
            ms = "inf" if not np.isfinite(s.max_stress) else f"{s.max_stress:.2f}"
            return (
                f"{s.n_bricks} bricks, {s.n_components} component(s), "
                f"{len(s.unsupported)} unsupported, {s.n_overloaded} overloaded, "
                f"max stress {ms} -> {'stable' if s.stable else 'NOT stable'}"
            )

        out = [
            f"Stability (clutch {self.clutch_n:g} N per stud; stress > 1 means a connection "
            "would come apart)",
            f"  before: {line(self.before)}",
            f"  after:  {line(self.after)}",
            f"  repair: {self.iterations} iteration(s), {self.changes} re-merge(s), "
            f"{self.support_bricks} hidden support brick(s), {self.time_s:.2f} s",
        ]
        if self.reinforcement_bricks:
            out.append(
                f"  reinforced: {self.reinforcement_bricks} prop brick(s) ({self.added_cells} "
                "plate cells) added under overhangs the clutch alone could not hold; they are "
                "visible (without reinforcement - CLI --no-reinforce, Blender 'Add Props' off, "
                "repair(reinforce=False) - the exact shape is kept)"
            )
        if self.n_cell_components > 1:
            out.append(
                f"  the voxels themselves form {self.n_cell_components} separate pieces; "
                "bricks cannot join pieces that do not touch"
            )
        if self.unrepairable:
            out.append(f"  could NOT fix {len(self.unrepairable)} brick(s):")
            by_reason: dict[str, list[int]] = {}
            for i, why in self.unrepairable:
                by_reason.setdefault(why, []).append(i)
            for why, ids in by_reason.items():
                shown = ", ".join(map(str, ids[:12])) + (" …" if len(ids) > 12 else "")
                out.append(f"    bricks {shown}: {why}")
        if self.required_clutch_n is not None:
            out.append(
                f"  the overloaded part would hold with a clutch of {self.required_clutch_n:.2f} N "
                f"per stud (assumed {self.clutch_n:g} N)"
            )
        out.extend(f"  note: {m}" for m in self.messages)
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "n_cell_components": self.n_cell_components,
            "connected": self.connected,
            "stable": self.stable,
            "iterations": self.iterations,
            "changes": self.changes,
            "support_bricks": self.support_bricks,
            "reinforcement_bricks": self.reinforcement_bricks,
            "added_cells": self.added_cells,
            "time_s": self.time_s,
            "clutch_n": self.clutch_n,
            "required_clutch_n": self.required_clutch_n,
            "unrepairable": [{"brick": i, "reason": r} for i, r in self.unrepairable],
            "messages": list(self.messages),
        }


def _key(r: StabilityReport) -> tuple:
    """Lower is better: unsupported, components, worst finite stress (under the min-max
    objective: the clutch the model needs, in units of the clutch it has), overloaded."""
    finite = r.stress[np.isfinite(r.stress)]
    return (
        len(r.unsupported),
        r.n_components,
        round(float(finite.max()) if finite.size else 0.0, 6),
        len(r.overloaded),
    )


def _done(r: StabilityReport, n_cells: int) -> bool:
    return r.stable and r.n_components <= n_cells


def _neighbours(lab: np.ndarray, arr: dict, ids, vertical: bool = False) -> set[int]:
    """Bricks touching ``ids`` sideways (and, with ``vertical``, above or below)."""
    boxes = (arr["x"], arr["y"], arr["z"], arr["nx"], arr["ny"], arr["h"])
    return connectivity.neighbours(lab, boxes, ids, vertical)


def _seam_pairs(lab: np.ndarray, comp: np.ndarray) -> list[tuple[int, int]]:
    """Horizontally adjacent brick pairs in different components (sorted, unique)."""
    rows = connectivity.seams(lab, comp)
    return sorted({(int(a), int(b)) for a, b in rows[:, :2]})


def _worst_first(r: StabilityReport) -> np.ndarray:
    """Contact indices, the ones that bind the worst utilisation first (by their LP dual),
    then by utilisation: many connections tie at the maximum, few of them set it."""
    util = r.tension_n / r.clutch_n
    crit = r.critical if len(r.critical) == len(util) else np.zeros_like(util)
    return np.lexsort((-util, -np.round(crit, 9)))


def _weak_regions(model: BrickModel, r: StabilityReport) -> list[list[int]]:
    """Groups of brick indices to re-tile, most severe first."""
    arr = connectivity.brick_arrays(model)
    lab = connectivity.label_lattice(arr, tuple(model.shape))
    regions: list[list[int]] = []
    if r.n_components > 1:
        comp = np.empty(len(model), np.int64)
        for k, ids in enumerate(r.components):
            comp[ids] = k
        # seams next to unsupported bricks first, then the smallest components
        unsup = set(r.unsupported)
        seams = sorted(
            _seam_pairs(lab, comp),
            key=lambda p: (not (p[0] in unsup or p[1] in unsup), -max(comp[p[0]], comp[p[1]])),
        )
        for p in seams[:REGIONS_PER_ITERATION]:
            regions.append(sorted(set(p) | _neighbours(lab, arr, p)))
            regions.append(sorted(set(p) | _neighbours(lab, arr, p, vertical=True)))
    if r.overloaded and r.contacts is not None:
        c = r.contacts
        util = r.tension_n / r.clutch_n
        order = _worst_first(r)
        seen: set[tuple[int, int]] = set()
        for k in order:
            if util[k] <= 1.0 or len(seen) >= REGIONS_PER_ITERATION:
                break
            pair = (int(c.upper[k]), int(c.lower[k]))
            if pair in seen:
                continue
            seen.add(pair)
            ids = [i for i in pair if i >= 0]
            regions.append(sorted(set(ids) | _neighbours(lab, arr, ids)))
            regions.append(sorted(set(ids) | _neighbours(lab, arr, ids, vertical=True)))
    return regions


@dataclass(frozen=True)
class RepairOptions:
    """What repair needs to know about how the model was built (typed, not string keys).

    * ``shell``: the model is a shell (hollow, ``ConvertOptions.hollow == "shell"``), so
      hidden supports may go in its empty interior;
    * ``may_demote``: bricks may be re-tiled as plates (not when only bricks are allowed);
    * ``max_bricks_per_step``: the step size used when the repaired model's steps are
      assigned again.
    """

    shell: bool = False
    may_demote: bool = True
    max_bricks_per_step: int = DEFAULT_MAX_BRICKS_PER_STEP

    @staticmethod
    def from_convert(opts) -> RepairOptions:
        """From a :class:`~image2lego.lego.convert.ConvertOptions`."""
        return RepairOptions(
            shell=opts.hollow == "shell",
            may_demote=opts.brick_types != "bricks",
            max_bricks_per_step=int(opts.max_bricks_per_step),
        )

    @staticmethod
    def of(model: BrickModel) -> RepairOptions:
        """From the options the model was built with (:attr:`BrickModel.options`); defaults
        for a model that has none (e.g. read from LDraw)."""
        if model.options is None:
            return RepairOptions()
        return RepairOptions.from_convert(model.options)


def _interior(occ: np.ndarray, options: RepairOptions) -> np.ndarray | None:
    """Empty cells enclosed by a shell model (where hidden support may go), else None."""
    if not options.shell:
        return None
    return ndimage.binary_fill_holes(occ) & ~occ


def _column(x: int, y: int, z0: int, z1: int, color: int) -> list[Brick]:
    """1x1 bricks (and plates for the remainder) filling plates ``z0..z1-1`` of a column."""
    out = []
    z = z0
    brick, plate = find(1, 1, PLATES_PER_BRICK), find(1, 1, 1)
    assert brick is not None and plate is not None  # the catalogue always has both 1x1s
    while z < z1:
        p = brick if z1 - z >= PLATES_PER_BRICK else plate
        out.append(Brick(z, y, x, p.id, False, color))
        z += p.height
    return out


def _supports(model: BrickModel, r: StabilityReport, interior: np.ndarray) -> list[Brick]:
    """Hidden columns under weak bricks through the empty interior of a shell model."""
    occ = model.occupancy()
    weak = list(r.unsupported) + r.overloaded
    new: list[Brick] = []
    used = np.zeros(occ.shape[:2], bool)
    for i in weak:
        b = model.bricks[i]
        if b.z == 0:
            continue
        cands = []
        for x, y in b.cells():
            if used[x, y] or not interior[x, y, b.z - 1]:
                continue
            z = b.z - 1
            while z >= 0 and interior[x, y, z] and not occ[x, y, z]:
                z -= 1
            if z < 0 or occ[x, y, z]:  # reaches the ground or a brick
                cands.append((x, y, z + 1))
        # the two cells farthest apart give the widest support
        if cands:
            cands.sort()
            for x, y, zb in {cands[0], cands[-1]}:
                new.extend(_column(x, y, zb, b.z, b.color))
                used[x, y] = True
    return new


def _prop_candidates(occ: np.ndarray) -> np.ndarray:
    """Every possible prop: rows ``(x, y, z_bottom, z_top)`` of an empty gap under an occupied
    cell ``(x, y, z_top)``, down to the next occupied cell or the ground (``z_bottom`` is the
    first plate to fill)."""
    rows: list[tuple[int, int, int, int]] = []
    X, Y, _ = occ.shape
    for x in range(X):
        for y in range(Y):
            zs = np.flatnonzero(occ[x, y])
            if not len(zs):
                continue
            below = np.concatenate([[-1], zs[:-1]])  # the occupied plate under each one
            gap = (zs - below) > 1
            rows.extend((x, y, zb, zt) for zt, zb in zip(zs[gap], below[gap] + 1, strict=True))
    return np.asarray(rows, np.int64).reshape(-1, 4)


def _props(
    model: BrickModel, r: StabilityReport, budget: int, radius: int = PROP_RADIUS_STUDS
) -> list[list[Brick]]:
    """Candidate reinforcements, most promising first: each is a list of 1x1 columns (props)
    standing on the ground or on a brick and holding up an overhang near one of the most
    overloaded connections, which turns the pull the overhang puts on the clutch into
    compression. Props within ``radius`` studs of the weak connection come before props
    anywhere; shorter ones and then ones farther out (longer lever) first. Every candidate
    adds at most ``budget`` cells (plates)."""
    if budget <= 0 or r.contacts is None:
        return []
    occ = model.occupancy()
    cand = _prop_candidates(occ)
    if not len(cand):
        return []
    arr = connectivity.brick_arrays(model)
    lab = connectivity.label_lattice(arr, tuple(model.shape))
    # weak spots: (x, y, z) of the worst stud connections. Floating parts get no props:
    # they are a reconstruction error to report, not an overhang to hold up.
    spots: list[tuple[float, float, int]] = []
    c = r.contacts
    util = r.tension_n / r.clutch_n
    for k in _worst_first(r):
        if util[k] <= 1.0 or len(spots) >= REGIONS_PER_ITERATION:
            break
        spot = (float(c.x[k]), float(c.y[k]), int(model.bricks[int(c.upper[k])].z))
        if spot not in spots:
            spots.append(spot)
    length = cand[:, 3] - cand[:, 2]

    def columns(rows) -> list[Brick]:
        cols: list[Brick] = []
        for x, y, zb, zt in cand[sorted(set(rows))]:
            top = model.bricks[int(lab[x, y, zt])]
            cols.extend(_column(int(x), int(y), int(zb), int(zt), top.color))
        return cols

    out: list[list[Brick]] = []
    # near the weak spot first; then anywhere (a model tipping on a narrow base needs props
    # out where its weight is)
    for rad in (radius, np.inf):
        per_spot: list[list[int]] = []
        for sx, sy, sz in spots:
            # props that bridge the weak connection's level (standing below it, holding up
            # a cell at or above it): they carry load around it
            d = np.hypot(cand[:, 0] - sx, cand[:, 1] - sy)
            ok = (cand[:, 2] < sz) & (cand[:, 3] >= sz) & (d <= rad) & (length <= budget)
            if ok.any():
                ix = np.flatnonzero(ok)
                per_spot.append(ix[np.lexsort((-d[ix], length[ix]))][:PROPS_PER_SPOT].tolist())
        if len(per_spot) > 1:  # all weak spots at once first, then one at a time
            out.append(columns([i for rows in per_spot for i in rows]))
        out.extend(columns(rows) for rows in per_spot)
    unique: list[list[Brick]] = []
    for cols in out:
        if cols and _cells(cols) <= budget and cols not in unique:
            unique.append(cols)
    return unique


def _cells(bricks: list[Brick]) -> int:
    """Plate cells covered by ``bricks``."""
    return sum(b.part.height * b.size[0] * b.size[1] for b in bricks)


def _reasons(model: BrickModel, r: StabilityReport) -> list[tuple[int, str]]:
    """Why each remaining weak brick could not be fixed."""
    out: list[tuple[int, str]] = []
    if r.unsupported:
        occ = model.occupancy()
        lab, _ = ndimage.label(occ)
        grounded = set(np.unique(lab[:, :, 0]).tolist()) - {0}
        for i in r.unsupported:
            b = model.bricks[i]
            if int(lab[b.x, b.y, b.z]) not in grounded:
                why = "floating: its cells do not reach the ground (nothing under this part)"
            elif r.status.startswith("some components tip"):
                why = "the part tips over: its weight lies outside what holds it up"
            else:
                why = (
                    "joined to the rest only side by side; no re-tiling bridges the seam "
                    "(a part one layer thick or of another colour)"
                )
            out.append((int(i), why))
    for i in r.overloaded:
        need = r.stress[i] * r.clutch_n
        out.append(
            (
                int(i),
                f"overhang/cantilever too heavy: its worst stud connection needs "
                f"~{need:.1f} N of clutch, one stud holds {r.clutch_n:g} N",
            )
        )
    return out


def _with_steps(model: BrickModel, bricks: list[Brick], per_step: int) -> BrickModel:
    return assign_steps(model.derive(bricks), per_step)


class _Search:
    """One repair run's state: the current best model and its analysis, the counters, the
    CPU deadline; one method per kind of move (each returns True when it found a better
    model and made it current)."""

    def __init__(
        self,
        model: BrickModel,
        options: RepairOptions,
        seed: int,
        clutch_n: float,
        ground_clutch: bool,
        time_budget_s: float,
        add_budget: int,
    ):
        self.model, self.options, self.seed = model, options, seed
        self.clutch_n, self.ground_clutch = clutch_n, ground_clutch
        self.time_budget_s = time_budget_s
        # The budget is process CPU time: the same amount of search on a busy or an idle
        # machine (on an idle one it is about wall time). Reported times are wall time.
        self.deadline = time.process_time() + time_budget_s
        # every analysis of the run together (wall clock): a hostile model stops here
        self.wall_deadline = time.perf_counter() + ANALYSIS_BUDGET_S
        self.objective = "sum"  # fast, exact verdict; "max" when there is work to do
        self.occ0 = model.occupancy()
        self.n_cells = merge.cell_components(self.occ0) if len(model) else 0
        self.interior = _interior(self.occ0, options)
        self.add_budget = add_budget
        self.iterations = self.changes = self.supports = self.props = self.added_n = 0
        self.retile_cpu = 0.0
        self.messages: list[str] = []
        rep0 = self.analyse(model)
        if rep0.overloaded:
            # The search compares and targets min-max equilibria: their largest utilisation
            # is the clutch the model needs, and their overloaded connections are the
            # critical ones (the least-total-tension equilibrium piles pull onto arbitrary
            # studs).
            self.objective = "max"
            rep0 = self.analyse(model)
        self.rep0 = rep0
        self.cur, self.rep = model, rep0

    def analyse(self, m: BrickModel, budget: float | None = None) -> StabilityReport:
        """Analyse ``m`` within what is left of the run's wall-clock budget (and ``budget``)."""
        left = self.wall_deadline - time.perf_counter()
        if left <= 0:
            raise StabilityBudgetError(
                f"the stability check and repair of {len(self.model)} bricks did not finish "
                f"within its budget of {ANALYSIS_BUDGET_S:g} s"
            )
        return analyze_stability(
            m,
            clutch_n=self.clutch_n,
            ground_clutch=self.ground_clutch,
            objective=self.objective,
            time_budget_s=left if budget is None else min(left, budget),
        )

    def done(self) -> bool:
        return _done(self.rep, self.n_cells)

    def out_of_time(self) -> bool:
        return time.process_time() >= self.deadline

    def consider(self, bricks: list[Brick]) -> bool:
        """Make ``bricks`` the current model if it is strictly better (:func:`_key`)."""
        cand = self.model.derive(bricks)
        # a candidate's analysis may take what is left of the search budget (at least 1 s)
        try:
            r = self.analyse(cand, max(1.0, self.deadline - time.process_time()))
        except StabilityBudgetError:
            self.deadline = time.process_time()  # out of time: the search stops here
            return False
        if _key(r) < _key(self.rep):
            self.cur, self.rep = cand, r
            return True
        return False

    def reconnect(self) -> bool:
        """Breaks first: the merger's re-merge-around-breaks pass, with another seed."""
        if not len(self.cur) or self.rep.n_components <= self.n_cells:
            return False
        asm = merge.Assembly.from_bricks(self.cur.bricks, self.cur.shape)
        asm.allow_plates = self.options.may_demote
        budget = max(0.0, min(10.0, self.deadline - time.process_time()))
        res = merge.connect(asm, self.n_cells, seed=self.seed + 1, time_budget=budget)
        if res.fixes and self.consider(asm.to_bricks()):
            self.changes += 1
            return True
        return False

    def shell_supports(self) -> bool:
        """Shell models: hidden interior columns under the weak bricks."""
        if self.interior is None:
            return False
        extra = _supports(self.cur, self.rep, self.interior)
        if extra and self.consider(self.cur.bricks + extra):
            self.supports += len(extra)
            return True
        return False

    def retile(self) -> bool:
        """Re-tile the weak regions; at most RETILE_SHARE of the budget, so that props always
        get their turn."""
        t = time.process_time()
        try:
            demotes = (False, True) if self.options.may_demote else (False,)
            for region in _weak_regions(self.cur, self.rep)[:RETILE_REGIONS]:
                if time.process_time() - t + self.retile_cpu >= RETILE_SHARE * self.time_budget_s:
                    return False
                chosen = [self.cur.bricks[i] for i in region]
                for demote in demotes:
                    seed = self.seed + self.iterations
                    cand = merge.remerge_region(self.cur, chosen, seed=seed, demote=demote)
                    if self.consider(cand.bricks):
                        self.changes += 1
                        return True
            return False
        finally:
            self.retile_cpu += time.process_time() - t

    def prop_up(self) -> bool:
        """The cells themselves cannot carry the load: prop up the overhangs."""
        if self.added_n >= self.add_budget or not self.rep.overloaded:
            return False
        for extra in _props(self.cur, self.rep, self.add_budget - self.added_n):
            if self.out_of_time():
                return False
            if self.consider(self.cur.bricks + extra):
                self.props += len(extra)
                self.added_n += _cells(extra)
                return True
        return False

    def run(self, max_iterations: int) -> None:
        """Iterate the moves until done, stuck, or out of iterations or time."""
        self.reconnect()
        skip_retile = 0
        while self.iterations < max_iterations and not self.done() and not self.out_of_time():
            self.iterations += 1
            # Shell models: hidden interior columns under the weak bricks are the surest fix.
            if self.shell_supports():
                continue
            # Re-tiling keeps the shape and is tried first, props first when a connection
            # needs several times its clutch; after a re-tiling pass has failed only props
            # are tried for a few iterations, unless they find nothing either.
            rep = self.rep
            severe = bool(rep.overloaded) and float(np.max(rep.stress[rep.overloaded])) > (
                PROPS_FIRST
            )
            paused = skip_retile > 0
            skip_retile = max(0, skip_retile - 1)
            moves = [self.prop_up] if severe else []
            moves += [] if paused else [self.retile]
            moves += [] if severe else [self.prop_up]
            improved = False
            for move in moves:
                improved = move()
                if improved:
                    break
                if move == self.retile:
                    skip_retile = RETILE_PAUSE
            if not improved and paused:
                improved = self.retile()
            if not improved:
                break

    def finish(self, reinforce: bool, max_added_fraction: float) -> tuple[BrickModel, RepairReport]:
        """Guard, re-step and report the best model found."""
        model, cur, rep = self.model, self.cur, self.rep
        if self.out_of_time() and not self.done():
            self.messages.append(f"stopped at the time budget of {self.time_budget_s:g} s (CPU)")
        if reinforce and rep.overloaded and self.add_budget - self.added_n < PLATES_PER_BRICK:
            self.messages.append(
                f"props used up their cap of {100 * max_added_fraction:g} % of the cells "
                f"({self.added_n} plate cells)"
            )
        if cur is not model:
            cur, rep = self._checked(cur, rep)
        if rep.n_components > self.n_cells:
            self.messages.append(
                f"bricks form {rep.n_components} pieces where the cells form {self.n_cells}: "
                "some seams could not be bridged"
            )
        if cur is model:  # hand back a copy so the caller's model is never mutated
            cur = model.derive(model.bricks)
        required = None
        if rep.overloaded:
            if self.objective != "max":
                self.objective = "max"
                rep = self.analyse(cur)
            finite = rep.stress[np.isfinite(rep.stress)]
            required = float(finite.max() * self.clutch_n) if finite.size else None
        report = RepairReport(
            before=Snapshot.of(model, self.rep0),
            after=Snapshot.of(cur, rep),
            n_cell_components=self.n_cells,
            iterations=self.iterations,
            changes=self.changes,
            support_bricks=self.supports,
            reinforcement_bricks=self.props,
            added_cells=self.added_n,
            time_s=0.0,
            clutch_n=float(self.clutch_n),
            unrepairable=_reasons(cur, rep),
            messages=self.messages,
            stability=rep,
            required_clutch_n=required,
        )
        cur.meta["stability"] = report.to_dict()
        _refresh_warnings(cur, rep, self.n_cells)
        return cur, report

    def _checked(self, cur: BrickModel, rep: StabilityReport):
        """The changed model, re-stepped, if it only added cells where repair may (hidden
        shell supports, props); else the original (a bug guard)."""
        occ1 = cur.occupancy()
        new_cells = occ1 & ~self.occ0
        outside = new_cells if self.interior is None else new_cells & ~self.interior
        if (self.occ0 & ~occ1).any() or (outside.any() and not self.props):
            # Never hand back a model whose visible cells differ.
            self.messages.append("repair changed the occupied cells; the original layout is kept")
            return self.model, self.rep0
        cur = _with_steps(cur, cur.bricks, self.options.max_bricks_per_step)
        rep = self.analyse(cur)  # indices changed with the step order
        if self.props:  # visible props are added cells, like the converter's bridges
            prev = cur.meta.get("added_cells") or []
            cur.meta["added_cells"] = list(prev) + np.argwhere(outside).tolist()
        return cur, rep


def repair(
    model: BrickModel,
    max_iterations: int = 60,
    seed: int = 0,
    clutch_n: float = CLUTCH_N_DEFAULT,
    ground_clutch: bool = True,
    time_budget_s: float = 30.0,
    reinforce: bool = True,
    max_added_fraction: float = MAX_ADDED_FRACTION,
    options: RepairOptions | None = None,
) -> tuple[BrickModel, RepairReport]:
    """Make ``model`` connected and stable by local re-tiling; report what could not be.

    Returns the repaired model (the input itself when nothing changed) and a
    :class:`RepairReport`. ``clutch_n``/``ground_clutch`` go to the stability analysis;
    ``time_budget_s`` bounds the search in process CPU seconds (the current best is returned
    when it runs out). When re-tiling the same cells cannot make it stable and ``reinforce``
    is on, visible props (1x1 columns) are added under the overhangs that pull too hard, at
    most ``max_added_fraction`` of the model's cells in all; ``reinforce=False`` never adds a
    visible cell. ``options`` (how the model was built) defaults to
    :meth:`RepairOptions.of` the model. All the run's stability analyses together get
    ``stability.ANALYSIS_BUDGET_S`` seconds of wall time; when the first analysis (or the
    final one) cannot finish within it, :class:`~image2lego.lego.stability.StabilityBudgetError`.
    """
    if not isinstance(model, BrickModel):
        raise TypeError(f"repair needs a BrickModel, got {type(model).__name__}")
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    if not 0.0 <= max_added_fraction <= 1.0:
        raise ValueError(f"max_added_fraction must be in [0, 1], got {max_added_fraction}")
    if options is None:
        options = RepairOptions.of(model)
    elif not isinstance(options, RepairOptions):
        raise TypeError(f"options must be a RepairOptions, got {type(options).__name__}")
    t0 = time.perf_counter()
    n_occupied = int(model.occupancy().sum()) if len(model) else 0
    add_budget = int(max_added_fraction * n_occupied) if reinforce else 0
    search = _Search(model, options, seed, clutch_n, ground_clutch, time_budget_s, add_budget)
    search.run(max_iterations)
    cur, report = search.finish(reinforce, max_added_fraction)
    report.time_s = time.perf_counter() - t0
    cur.meta["stability"] = report.to_dict()
    return cur, report


#: Warnings the converter computes before repair that describe connectivity; repair
#: replaces them with the same facts about the repaired model.
_CONNECTIVITY_WARNINGS = ("could not connect the bricks", "brick(s) are not connected to the")


def _refresh_warnings(model: BrickModel, r: StabilityReport, n_cells: int) -> None:
    """Connectivity warnings and meta of the repaired ``model`` (not the converter's)."""
    meta = model.meta
    warnings = [
        w for w in meta.get("warnings") or [] if not any(k in w for k in _CONNECTIVITY_WARNINGS)
    ]
    n_unsup = len(r.unsupported)
    if r.n_components > n_cells:
        warnings.append(
            f"could not connect the bricks: {r.n_components} separate pieces where the voxels "
            f"form {n_cells} (after repair)"
        )
    if n_unsup:
        warnings.append(f"{n_unsup} brick(s) are not connected to the ground layer (after repair)")
    meta["warnings"] = warnings  # a new list: the input model's meta is never changed
    if "connected" in meta:
        meta["connected"] = bool(r.n_components <= n_cells)
    if isinstance(meta.get("connectivity"), dict):
        meta["connectivity"] = {
            **meta["connectivity"],
            "n_components": int(r.n_components),
            "n_ungrounded": n_unsup,
        }


__all__ = ["RepairOptions", "RepairReport", "Snapshot", "repair"]
