"""Static-equilibrium stability analysis of a brick model, as a linear program (HiGHS).

The question: with every brick pulled down by its weight, is there a set of contact forces
between stacked bricks (and between the bottom layer and a baseplate) that holds every brick
in equilibrium without asking any stud to pull harder than its clutch can? This is the force
model of Luo et al. 2015 and of BrickGPT (Pun et al. 2025, solved there with Gurobi, after the
StableLego formulation of Liu et al. 2024), reduced to vertical forces; we solve it with the
open HiGHS solver through :func:`scipy.optimize.linprog`.

Model (see ``docs/stability.md`` for the full derivation and the literature):

* **Bodies**: every brick is a rigid body. Its weight ``m g`` (``m`` from
  :attr:`Part.mass_g <image2lego.lego.catalogue.Part.mass_g>`, ``g = 9.81 m/s²``) acts at
  the centre of its footprint.
* **Contacts**: wherever the top of brick ``L`` meets the bottom of brick ``U`` over a stud
  cell (one stud of ``L`` in ``U``'s underside), the pair exchanges

  - a *compressive* force ``C ≥ 0`` (``L`` pushes ``U`` up). Contact pressure can sit
    anywhere on the shared face, which is the intersection of two footprints and therefore a
    rectangle; the resultant of any non-negative pressure over a rectangle is a non-negative
    combination of point forces at its four corners, so each pair gets 4 corner variables;
  - a *tensile* clutch force ``T ≥ 0`` (``L`` pulls ``U`` down) at the stud centre, whose
    capacity is the clutch of one stud, ``clutch_n`` newtons.

  Bricks at ``z == 0`` stand on a baseplate that provides the same contacts; its studs clutch
  too unless ``ground_clutch=False`` (then the ground can only push).
* **Equations**: per brick, force balance along Z and moment balance about the X and Y axes
  through its centre of mass: 3 equations per brick. All loads (gravity) and all modelled
  contact forces are vertical, so the other three equations (Fx, Fy, Mz) hold identically:
  with friction-free brick sides and no horizontal load there is nothing horizontal to
  balance.
* **Objective**: by default minimise the total clutch utilisation ``sum u_c`` with
  ``u_c = T_c / clutch_n`` (free of self-cancelling pre-stress) subject to ``T_c <= clutch_n``:
  one LP that is feasible exactly when the model is stable, whose utilisations are then the
  scores (all ``<= 1``; exactly 1 on the studs where the least-tension equilibrium without
  that bound would pull harder than the clutch). Only when it is infeasible is the same LP
  solved without the bound, for scores that say by how much the model is overloaded.
  ``objective="max"`` instead minimises the largest utilisation ``t >= u_c`` directly (exact
  worst-case scores: how close to the limit the model is at best; slower by up to 20x on
  these degenerate programs). The model is stable iff an equilibrium exists with every
  ``u_c <= 1``; this verdict is exact under either objective.
* **Per-brick stress score**: the largest ``u_c`` over the stud contacts of that brick (above
  and below). ``> 1`` means a stud connection of that brick must pull harder than its clutch.
  Bricks with no equilibrium at all (a group of bricks with no path of contacts to the ground,
  or, without ground clutch, a group that tips over) get ``inf`` and are listed as
  ``unsupported``.

Because every contact can transmit any vertical force and any moment once tension is
unbounded (corners on both sides plus the stud's pull), the program is feasible exactly for
the bricks that are connected to the ground; those are found first and only they enter the LP.

Units: SI at the interface (newtons, metres, kilograms); lengths come from
:mod:`image2lego.lego.units`. Internally the LP is written in millinewtons and stud pitches —
a pure rescaling for the solver's conditioning (brick weights are ~1e-3 N).

References:

* S.-J. Luo, Y. Yue, C.-K. Huang, Y.-H. Chung, S. Imai, T. Nishita, B.-Y. Chen.
  "Legolization: Optimizing LEGO Designs". ACM Transactions on Graphics 34(6), 222, 2015.
* A. Pun, K. Deng, R. Liu, D. Ramanan, C. Liu, J.-Y. Zhu. "Generating Physically Stable and
  Buildable Brick Structures from Text" (BrickGPT), ICCV 2025, arXiv:2505.05469.
* R. Liu, K. Deng, Z. Wang, C. Liu. "StableLego: Stability Analysis of Block Stacking
  Assembly", IEEE RA-L 2024, arXiv:2402.10711.
* T. Kollsker, E. Malaguti. "Models and algorithms for optimising two-dimensional LEGO
  constructions". European Journal of Operational Research 289(1):270–284, 2021,
  doi:10.1016/j.ejor.2020.07.004.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import OptimizeResult, OptimizeWarning, linprog
from scipy.sparse.csgraph import connected_components

from . import connectivity
from .bricks import BrickModel
from .catalogue import ALL_PARTS
from .errors import Image2LegoError
from .units import STUD_MM

#: Standard gravity, m/s².
G = 9.81
#: Default clutch capacity of one stud connection, newtons. Published pull-off measurements of
#: single studs fall in roughly 1–3 N; we take the low end so that "stable" also holds for
#: worn bricks and for the weakest connection type (a lone 1x1 stud). Override per call.
CLUTCH_N_DEFAULT = 1.0
#: Stud pitch in metres (from :mod:`units`).
STUD_M = STUD_MM / 1000.0

_MN = 1000.0  # newtons -> millinewtons for the LP
#: HiGHS methods tried in turn. Interior point (with crossover) first: on these degenerate
#: equilibrium LPs it takes about half the time of the dual simplex (a 1,571-brick model:
#: 3.1 s vs 5.8 s CPU); the simplex variants are the fallback for an unknown status.
_METHODS = ("highs-ipm", "highs-ds", "highs")
_EPS_SUM = 1e-3  # weight of the mean utilisation in the objective (tie-break only)
#: Default wall-clock budget of one :func:`analyze_stability` (all its LPs together), seconds.
#: The 64³ models measured take 0.3-17 s of CPU; a hostile grid (a 64³ checkerboard) would take
#: many minutes: it stops here with :class:`StabilityBudgetError` instead.
ANALYSIS_BUDGET_S = 120.0


#: From this many grounded bricks up, the capped LP's verdict is found first without crossover
#: (see ``_analyze``): the same result, faster where a model is not stable, at the cost of a
#: second interior-point solve where it is (below it, that second solve costs more than the
#: crossover it saves: the 32³ benchmark's median analysis 0.10 -> 0.17 s CPU with it).
PRECHECK_MIN_BRICKS = 1000
#: Interior-point iterations the verdict pre-check may take: HiGHS finds the capped LP of a
#: model that is not stable infeasible within 7 (the 64³ chairs); a stable one takes ~35, and
#: the pre-check then stops after these, costing a third of a solve instead of a whole one.
PRECHECK_IPM_ITERATIONS = 12


class StabilityBudgetError(Image2LegoError, RuntimeError):
    """The equilibrium LP did not finish within its time budget (a model too large or too
    degenerate to decide in time); nothing is known about its stability."""


@dataclass
class Contacts:
    """Stud-cell contacts of a model, as flat arrays (one entry per contact cell).

    ``upper[c]`` sits on ``lower[c]`` (``-1`` = the baseplate) over the stud cell
    ``(x[c], y[c])``; ``z[c]`` is the plate level of the interface.
    """

    upper: np.ndarray
    lower: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray


@dataclass
class StabilityReport:
    """Result of :func:`analyze_stability`.

    ``stress[i]`` is brick ``i``'s score in ``[0, inf]``: the clutch utilisation (needed
    tension / capacity) of its worst stud connection; ``inf`` for unsupported bricks.
    ``components`` lists the bricks of each connected piece (largest first).
    """

    stress: np.ndarray
    max_stress: float
    stable: bool
    unsupported: list[int]
    components: list[list[int]]
    n_components: int
    solve_time_s: float
    status: str
    clutch_n: float = CLUTCH_N_DEFAULT
    n_contacts: int = 0
    tension_n: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per contact, newtons
    #: per contact, from the min-max equilibrium: > 0 on the connections that bind the worst
    #: utilisation (LP duals; all zero when that equilibrium was not needed)
    critical: np.ndarray = field(default_factory=lambda: np.zeros(0))
    contacts: Contacts | None = None
    cpu_time_s: float = 0.0  # process CPU time of the analysis (robust to a busy machine)

    @property
    def overloaded(self) -> list[int]:
        """Bricks with a finite stress score above 1 (a connection would come apart)."""
        s = self.stress
        return [int(i) for i in np.flatnonzero(np.isfinite(s) & (s > 1.0))]

    def stress_rgb(self) -> np.ndarray:
        """Colour per brick for a "colour by stress" view: float RGB in [0, 1], shape (n, 3).

        Green at 0, yellow at 0.5, red at 1 and above; magenta for unsupported bricks.
        """
        s = np.clip(np.nan_to_num(self.stress, posinf=np.inf), 0.0, None)
        t = np.clip(s, 0.0, 1.0)
        rgb = np.stack([np.clip(2 * t, 0, 1), np.clip(2 - 2 * t, 0, 1), np.zeros_like(t)], 1)
        rgb[np.isinf(s)] = (1.0, 0.0, 1.0)
        return rgb

    def summary(self) -> str:
        n = len(self.stress)
        verdict = "stable" if self.stable else "NOT stable"
        ms = "inf" if not np.isfinite(self.max_stress) else f"{self.max_stress:.3f}"
        lines = [
            f"{verdict}: {n} bricks, {self.n_components} component(s), "
            f"max stress {ms} (clutch {self.clutch_n:g} N/stud)",
        ]
        if self.unsupported:
            lines.append(
                f"  unsupported bricks ({len(self.unsupported)}): {_ids(self.unsupported)}"
            )
        if self.overloaded:
            lines.append(f"  overloaded bricks ({len(self.overloaded)}): {_ids(self.overloaded)}")
        return "\n".join(lines)


def _ids(ix: list[int], limit: int = 20) -> str:
    s = ", ".join(str(i) for i in ix[:limit])
    return s + (f", … (+{len(ix) - limit})" if len(ix) > limit else "")


def brick_arrays(model: BrickModel) -> dict[str, np.ndarray]:
    """:func:`connectivity.brick_arrays` (``x, y, z, nx, ny, h, color``) plus ``mass_kg``."""
    d = connectivity.brick_arrays(model)
    mass = {pid: p.mass_g / 1000.0 for pid, p in ALL_PARTS.items()}
    d["mass_kg"] = np.fromiter((mass[b.part_id] for b in model.bricks), float, len(model.bricks))
    return d


def find_contacts(model: BrickModel, arr: dict[str, np.ndarray] | None = None) -> Contacts:
    """Every stud-cell contact between a brick and the one below it (or the baseplate).

    Raises ``ValueError`` (from :func:`connectivity.label_lattice`) when bricks overlap or
    leave the model's lattice.
    """
    arr = brick_arrays(model) if arr is None else arr
    empty = np.zeros(0, np.int64)
    if len(arr["x"]) == 0:
        return Contacts(empty, empty, empty, empty, empty)
    lab = connectivity.label_lattice(arr, tuple(model.shape))
    # The underside of every brick: the plate layer at its bottom, one cell per stud.
    xs, ys, zs = np.nonzero(lab >= 0)
    owner = lab[xs, ys, zs]
    at_bottom = zs == arr["z"][owner]
    xs, ys, zs, owner = xs[at_bottom], ys[at_bottom], zs[at_bottom], owner[at_bottom]
    below = np.where(zs > 0, lab[xs, ys, np.maximum(zs - 1, 0)], -1)
    on_ground = zs == 0
    keep = on_ground | (below >= 0)
    return Contacts(owner[keep], below[keep], xs[keep], ys[keep], zs[keep])


def _fully_supported(arr: dict[str, np.ndarray], c: Contacts) -> bool:
    """Every stud cell of every brick's underside touches a brick below or the baseplate."""
    n = len(arr["x"])
    per_brick = np.bincount(c.upper, minlength=n)
    return bool(np.array_equal(per_brick, arr["nx"] * arr["ny"]))


def fully_supported(model: BrickModel) -> bool:
    """Whether no brick overhangs anything (a sufficient condition for stability, decided in
    linear time: :func:`analyze_stability` then skips the LP)."""
    arr = brick_arrays(model)
    return bool(len(arr["x"])) and _fully_supported(arr, find_contacts(model, arr))


def _group(labels: np.ndarray) -> list[list[int]]:
    """Brick indices per label, largest group first (ties by label)."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    groups = np.split(order, np.cumsum(counts)[:-1])
    rank = np.argsort(-counts, kind="stable")
    return [groups[k].tolist() for k in rank]


def _build_lp(arr, c: Contacts, active: np.ndarray, clutch: np.ndarray, ground_clutch: bool):
    """Equilibrium equations for the bricks in ``active`` (bool mask).

    Returns ``(A_eq, b_eq, cap, t_contacts)``: the sparse 3-rows-per-brick system over the
    variables ``[T (one per stud contact) | C (4 corners per touching pair)]``, the clutch
    capacity of each tension variable (mN) and the contact index of each tension variable.
    """
    nb = len(arr["x"])
    row_of = np.full(nb, -1, np.int64)
    act_ix = np.flatnonzero(active)
    row_of[act_ix] = np.arange(len(act_ix))
    na = len(act_ix)
    sel = active[c.upper]  # contacts of active bricks (a lower brick is active too)
    cu, cl, cx, cy = c.upper[sel], c.lower[sel], c.x[sel], c.y[sel]
    contact_index = np.flatnonzero(sel)
    # Brick centres in stud units.
    xc = arr["x"] + arr["nx"] / 2.0
    yc = arr["y"] + arr["ny"] / 2.0
    weight = arr["mass_kg"] * G * _MN  # mN

    # Tension variables: one per contact cell, except ground contacts without clutch.
    tmask = (cl >= 0) | ground_clutch
    t_ix = np.flatnonzero(tmask)
    nt = len(t_ix)
    # Compression variables: the contact face of a pair of bricks is the intersection of two
    # rectangles, itself a rectangle, and any non-negative pressure over it has a resultant
    # that is a non-negative combination of its four corners: 4 variables per pair.
    pair_key = cu * (nb + 1) + (cl + 1)
    _, first = np.unique(pair_key, return_index=True)
    pu, pl = cu[first], cl[first]
    x0 = arr["x"][pu].astype(float)
    y0 = arr["y"][pu].astype(float)
    x1 = x0 + arr["nx"][pu]
    y1 = y0 + arr["ny"][pu]
    lb = pl >= 0
    x0[lb] = np.maximum(x0[lb], arr["x"][pl[lb]])
    y0[lb] = np.maximum(y0[lb], arr["y"][pl[lb]])
    x1[lb] = np.minimum(x1[lb], arr["x"][pl[lb]] + arr["nx"][pl[lb]])
    y1[lb] = np.minimum(y1[lb], arr["y"][pl[lb]] + arr["ny"][pl[lb]])
    ku = np.repeat(pu, 4)
    kl = np.repeat(pl, 4)
    kx = np.stack((x0, x1, x0, x1), axis=1).ravel()
    ky = np.stack((y0, y0, y1, y1), axis=1).ravel()
    nk = len(ku)

    # Variable layout: [T (nt) | C (nk)]. Column entries on the upper brick get
    # sign s, on the lower brick -s (action and reaction). Rows: 3*row + {0: Fz, 1: Mx, 2: My}.
    rows, cols, vals = [], [], []

    def add(brick, px, py, col, sign):
        r = np.where(brick >= 0, row_of[brick], -1)
        ok = r >= 0  # ground (-1) and inactive bricks get no equations
        r, px, py, col = r[ok], px[ok], py[ok], col[ok]
        b = brick[ok]
        rows.extend((3 * r, 3 * r + 1, 3 * r + 2))
        cols.extend((col, col, col))
        vals.extend(
            (
                np.full(len(r), sign, float),
                sign * (py - yc[b]),
                sign * (px - xc[b]),
            )
        )

    tcol = np.arange(nt)
    tx, ty = cx[t_ix] + 0.5, cy[t_ix] + 0.5
    add(cu[t_ix], tx, ty, tcol, -1.0)  # the stud pulls the upper brick down
    add(cl[t_ix], tx, ty, tcol, +1.0)
    kcol = nt + np.arange(nk)
    add(ku, kx, ky, kcol, +1.0)  # pushes the upper brick up
    add(kl, kx, ky, kcol, -1.0)
    nvar = nt + nk
    a_eq = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(3 * na, nvar),
    )
    b_eq = np.zeros(3 * na)
    b_eq[0::3] = weight[act_ix]  # contact forces balance the weight: sum Fz = m g
    cap = clutch[contact_index[t_ix]] * _MN
    return a_eq, b_eq, cap, contact_index[t_ix]


def _solve(
    arr,
    c,
    active,
    clutch,
    ground_clutch,
    objective: str,
    method: str = "highs",
    time_limit: float | None = None,
    crossover: bool = True,
    maxiter: int | None = None,
):
    """Solve the LP for the ``active`` bricks.

    ``objective="sum"``: minimise the total utilisation sum(T_c / cap_c) (a pure equality LP,
    fast); ``"capped"``: the same with T_c <= cap_c as bounds (feasible iff stable);
    ``"max"``: minimise max_c T_c / cap_c (one extra variable t, rows T_c / cap_c <= t), with
    the total as a tie-break. Returns (scipy result, tension per contact in newtons or None,
    per-contact duals of the min-max rows: the ``critical`` scores, zero for other objectives).
    ``time_limit``: HiGHS' wall-clock limit in seconds (status 1 when reached);
    ``crossover=False``: interior point without the crossover to a vertex (``method``
    "highs-ipm" only): an optimum within HiGHS' tolerances, found in a fraction of the time.
    """
    a_eq, b_eq, cap, t_contacts = _build_lp(arr, c, active, clutch, ground_clutch)
    nt = len(cap)
    nvar = a_eq.shape[1]
    cost = np.zeros(nvar)
    cost[:nt] = 1.0 / cap
    upper = np.full(nvar, np.inf)
    a_ub = b_ub = None
    if objective == "capped":
        upper[:nt] = cap
    elif objective == "max":
        cost *= _EPS_SUM / max(nt, 1)
        cost = np.append(cost, 1.0)
        upper = np.append(upper, np.inf)
        a_eq = sp.hstack((a_eq, sp.csr_matrix((a_eq.shape[0], 1)))).tocsr()
        a_ub = sp.csr_matrix(
            (
                np.concatenate((1.0 / cap, -np.ones(nt))),
                (np.tile(np.arange(nt), 2), np.concatenate((np.arange(nt), np.full(nt, nvar)))),
            ),
            shape=(nt, nvar + 1),
        )
        b_ub = np.zeros(nt)
    res = _linprog(
        cost,
        a_ub,
        b_ub,
        a_eq,
        b_eq,
        np.zeros(len(cost)),
        upper,
        method,
        time_limit,
        crossover,
        maxiter,
    )
    critical = np.zeros(len(c.upper))
    if res.status != 0:
        return res, None, critical
    tension = np.zeros(len(c.upper))
    tension[t_contacts] = np.maximum(res.x[:nt], 0.0) / _MN
    if objective == "max":
        # Duals of the rows T_c / cap_c <= t: how much the optimum (the worst utilisation)
        # would drop per unit of capacity added at c. Non-zero exactly on the connections
        # that bind the optimum (among the many that tie at the maximum).
        critical[t_contacts] = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
    return res, tension, critical


def _linprog(
    cost,
    a_ub,
    b_ub,
    a_eq,
    b_eq,
    lower,
    upper,
    method,
    time_limit=None,
    crossover=True,
    maxiter: int | None = None,
):
    """:func:`scipy.optimize.linprog` with HiGHS, optionally time-limited, without crossover
    or with at most ``maxiter`` iterations (status 1 when reached)."""
    options: dict = {}
    if maxiter is not None:
        options["maxiter"] = int(maxiter)
    if time_limit is not None:
        options["time_limit"] = max(float(time_limit), 0.01)
    if not crossover:
        options["run_crossover"] = "off"  # a HiGHS option scipy passes on verbatim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # "Unrecognized options detected"
        return linprog(
            cost,
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=a_eq,
            b_eq=b_eq,
            bounds=np.column_stack((lower, upper)),
            method=method,
            options=options,
        )


def _pair_verdict(arr, c: Contacts, active, clutch, ground_clutch, time_limit=None) -> int:
    """Whether the ``active`` bricks are stable, from a smaller LP over pair wrenches: HiGHS'
    status (0: stable, 2: not stable, other: undecided). See :func:`_pair_lp`."""
    return _pair_lp(arr, c, active, clutch, ground_clutch, time_limit)[0]


def _pair_lp(
    arr, c: Contacts, active, clutch, ground_clutch, time_limit=None, unbounded: bool = False
) -> tuple[int, np.ndarray | None]:
    """The stability LP over pair wrenches: ``(HiGHS status, tension per contact in N)``.

    ``unbounded=False``: is there an equilibrium within capacity (status 0: stable, 2: not;
    no tensions). ``unbounded=True``: every pair's studs pull alike, ``u`` times their clutch
    (any ``u >= 0``); the least total such pull, and each contact's ``u x clutch`` (a valid
    equilibrium's tensions; a fallback where HiGHS fails on the per-stud program).

    Exact, by this argument: a stud pulling with ``T <= cap`` is the same as the stud pulling
    with its full ``cap`` plus a push of ``cap - T`` at the stud, and a push anywhere on the
    contact face is one of its corner pushes' combinations. So a pair of bricks can exchange
    the wrench ``w`` (force ``F`` up on the upper brick, moments ``m`` about the face's
    centre) within capacity iff ``w`` plus every stud's full pull lies in the cone of pushes
    over the face: ``|m_y + mt_y| <= (F + Ft) hx`` and ``|m_x + mt_x| <= (F + Ft) hy`` (the
    face a rectangle of half-sides ``hx, hy``; ``Ft, mt`` the studs' full pull). Three free
    variables per pair and four rows, instead of a variable per stud plus four per pair: on
    models that are not stable HiGHS proves it in a fraction of the time it takes on the
    per-stud program (the 64³ chair: 0.1 s vs 2.5 s; a 1,993-brick chair 6 s vs 70 s).
    """
    nb = len(arr["x"])
    row_of = np.full(nb, -1, np.int64)
    act_ix = np.flatnonzero(active)
    row_of[act_ix] = np.arange(len(act_ix))
    na = len(act_ix)
    sel = active[c.upper]
    cu, cl, cx, cy = c.upper[sel], c.lower[sel], c.x[sel] + 0.5, c.y[sel] + 0.5
    cap = np.where((cl >= 0) | ground_clutch, clutch[np.flatnonzero(sel)] * _MN, 0.0)
    _, first, inv = np.unique(cu * (nb + 1) + (cl + 1), return_index=True, return_inverse=True)
    inv = inv.ravel()
    pu, pl = cu[first], cl[first]
    npair = len(pu)
    x0, y0 = arr["x"][pu].astype(float), arr["y"][pu].astype(float)
    x1, y1 = x0 + arr["nx"][pu], y0 + arr["ny"][pu]
    lb = pl >= 0
    x0[lb] = np.maximum(x0[lb], arr["x"][pl[lb]])
    y0[lb] = np.maximum(y0[lb], arr["y"][pl[lb]])
    x1[lb] = np.minimum(x1[lb], arr["x"][pl[lb]] + arr["nx"][pl[lb]])
    y1[lb] = np.minimum(y1[lb], arr["y"][pl[lb]] + arr["ny"][pl[lb]])
    px, py, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    ft = np.bincount(inv, cap, npair)  # the studs' full pull, and its moments about the centre
    mtx = np.bincount(inv, cap * (cy - py[inv]), npair)
    mty = np.bincount(inv, cap * (cx - px[inv]), npair)
    xc = arr["x"] + arr["nx"] / 2.0
    yc = arr["y"] + arr["ny"] / 2.0
    # variables [F | m_x | m_y], one each per pair; the pair's wrench acts up on the upper brick
    f_col = np.arange(npair)
    rows, cols, vals = [], [], []
    for brick, sign in ((pu, 1.0), (pl, -1.0)):
        r = np.where(brick >= 0, row_of[np.maximum(brick, 0)], -1)
        ok = r >= 0
        r, b, p = r[ok], brick[ok], f_col[ok]
        one = np.full(len(r), sign)
        rows += [3 * r, 3 * r + 1, 3 * r + 1, 3 * r + 2, 3 * r + 2]
        cols += [p, npair + p, p, 2 * npair + p, p]
        vals += [one, one, sign * (py[ok] - yc[b]), one, sign * (px[ok] - xc[b])]
    a_eq = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(3 * na, 3 * npair),
    )
    b_eq = np.zeros(3 * na)
    b_eq[0::3] = arr["mass_kg"][act_ix] * G * _MN
    # +-(m_y + mt_y) / hx - (F + Ft) <= 0 and +-(m_x + mt_x) / hy - (F + Ft) <= 0
    ri, ci, vi, rhs = [], [], [], []
    for k, (col0, mt, h, sign) in enumerate(
        (
            (2 * npair, mty, hx, 1.0),
            (2 * npair, mty, hx, -1.0),
            (npair, mtx, hy, 1.0),
            (npair, mtx, hy, -1.0),
        )
    ):
        r = 4 * f_col + k
        ri += [r, r]
        ci += [col0 + f_col, f_col]
        vi += [sign / h, -np.ones(npair)]
        rhs.append((ft - sign * mt / h, r))
    a_ub = sp.csr_matrix(
        (np.concatenate(vi), (np.concatenate(ri), np.concatenate(ci))), shape=(4 * npair, 3 * npair)
    )
    b_ub = np.zeros(4 * npair)
    free = np.full(3 * npair, np.inf)
    if not unbounded:
        for v, r in rhs:
            b_ub[r] = v
        res = _linprog(
            np.zeros(3 * npair), a_ub, b_ub, a_eq, b_eq, -free, free, "highs-ipm", time_limit
        )
        return int(res.status), None
    # u >= 0 per pair scales the studs' pull: the rows' constant moves onto u's column
    u_rows = np.concatenate([r for _, r in rhs])
    u_vals = -np.concatenate([v for v, _ in rhs])
    a_ub = sp.hstack(
        (a_ub, sp.csr_matrix((u_vals, (u_rows, np.tile(f_col, 4))), shape=(4 * npair, npair)))
    ).tocsr()
    a_eq = sp.hstack((a_eq, sp.csr_matrix((3 * na, npair)))).tocsr()
    cost = np.concatenate((np.zeros(3 * npair), ft / max(float(ft.max()), 1e-12)))
    lower = np.concatenate((-free, np.zeros(npair)))
    upper = np.concatenate((free, np.full(npair, np.inf)))
    res = _linprog(cost, a_ub, b_ub, a_eq, b_eq, lower, upper, "highs-ipm", time_limit)
    if res.status != 0:
        return int(res.status), None
    u = np.maximum(res.x[3 * npair :], 0.0)
    tension = np.zeros(len(c.upper))
    tension[np.flatnonzero(sel)] = u[inv] * cap / _MN
    return 0, tension


def analyze_stability(
    model: BrickModel,
    clutch_n: float = CLUTCH_N_DEFAULT,
    ground_clutch: bool = True,
    objective: str = "sum",
    time_budget_s: float | None = ANALYSIS_BUDGET_S,
) -> StabilityReport:
    """Static-equilibrium analysis of ``model`` (see the module docstring for the model).

    ``clutch_n``: tensile capacity of one stud connection in newtons (> 0).
    ``ground_clutch``: whether the baseplate's studs under the ``z == 0`` layer hold too.
    ``objective``: ``"sum"`` (default) decides with the least-total-tension equilibrium
    within capacity (one LP; its utilisations are the scores, each ``<= 1`` when stable) and,
    only when there is none, reports the unbounded least-tension equilibrium's scores;
    ``"max"`` minimises the largest utilisation directly (exact worst-case scores, slower).
    The stable/unstable verdict is exact either way.
    ``time_budget_s``: wall-clock seconds all its LPs may take together (``None``: no limit);
    past it, :class:`StabilityBudgetError` (a one-line message; nothing is decided).
    """
    if objective not in ("sum", "max"):
        raise ValueError(f"objective must be 'sum' or 'max', got {objective!r}")
    t0 = time.perf_counter()
    c0 = time.process_time()
    if not np.isfinite(clutch_n) or clutch_n <= 0:
        raise ValueError(f"clutch_n must be a positive number of newtons, got {clutch_n!r}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be > 0 seconds or None, got {time_budget_s!r}")
    arr = brick_arrays(model)
    c = find_contacts(model, arr)
    return _analyze(arr, c, clutch_n, ground_clutch, objective, t0, c0, time_budget_s)


def _pieces(n: int, c: Contacts) -> np.ndarray:
    """Connected piece per brick over the stud contacts, 0 = the largest (ties: the piece
    of the lowest brick index), as :func:`connectivity.analyze` numbers them."""
    up = c.lower >= 0
    g = sp.coo_matrix((np.ones(int(up.sum())), (c.upper[up], c.lower[up])), shape=(n, n))
    ncomp, comp = connected_components(g.tocsr(), directed=False)
    sizes = np.bincount(comp, minlength=ncomp)
    order = np.lexsort((np.arange(ncomp), -sizes))
    rank = np.empty(ncomp, dtype=np.int64)
    rank[order] = np.arange(ncomp)
    return rank[comp]


def _analyze(
    arr, c: Contacts, clutch_n, ground_clutch, objective, t0, c0, time_budget_s=None
) -> StabilityReport:
    """:func:`analyze_stability` of the bricks in ``arr`` with contacts ``c``."""
    n = len(arr["x"])
    if n == 0:
        return StabilityReport(
            np.zeros(0), 0.0, True, [], [], 0, time.perf_counter() - t0, "empty model", clutch_n
        )
    labels = _pieces(n, c)
    grounded = np.isin(labels, labels[arr["z"] == 0])
    ungrounded = np.flatnonzero(~grounded)
    stress = np.full(n, np.inf)
    tension = np.zeros(len(c.upper))
    clutch = np.full(len(c.upper), float(clutch_n))
    status = "optimal"
    active = grounded.copy()

    deadline = None if time_budget_s is None else t0 + float(time_budget_s)

    def left() -> float | None:
        if deadline is None:
            return None
        if time.perf_counter() >= deadline:
            raise StabilityBudgetError(
                f"the stability analysis of {n} bricks did not finish within its budget of "
                f"{time_budget_s:g} s"
            )
        return deadline - time.perf_counter()

    def solve(mask, objective, methods=_METHODS, crossover=True):
        # HiGHS can, rarely, end with an unknown model status on these degenerate problems,
        # or (interior point, numerically) call an unbounded-tension program infeasible, which
        # it cannot be while the baseplate clutches: the next method then still solves it.
        res = None
        for method in methods:
            out = _solve(arr, c, mask, clutch, ground_clutch, objective, method, left(), crossover)
            st = out[0].status
            if st == 1 and deadline is not None:
                left()  # the time limit: raises once the budget is spent
            if st == 0 or (st == 2 and (objective == "capped" or not ground_clutch)):
                return out
            res = out[0]
        msg = res.message if res is not None else "no method"
        raise RuntimeError(f"HiGHS failed on the stability LP ({objective}): {msg}")

    def capped_fast():
        """The capped LP's verdict first, by interior point without crossover (a fraction of
        the time where the model is not stable: HiGHS' crossover spends 90 % of it proving an
        infeasible program infeasible); where it is not optimal the pair-wrench program
        decides. Only a stable model (or one they cannot decide) is solved again with the
        crossover, for the least-tension vertex equilibrium whose scores the report gives."""
        if active.sum() >= PRECHECK_MIN_BRICKS:  # below, the crossover solve is cheap anyway
            its = PRECHECK_IPM_ITERATIONS
            out = _solve(
                arr, c, active, clutch, ground_clutch, "capped", "highs-ipm", left(), False, its
            )
            if (
                out[0].status not in (0, 1)
                and _pair_verdict(arr, c, active, clutch, ground_clutch, left()) == 2
            ):
                return None  # not stable: no equilibrium within capacity
        return solve(active, "capped")

    def least(mask):
        """The unbounded least-tension LP; where HiGHS' interior point fails on it while the
        baseplate clutches, the pair-wrench program's least uniform pull per pair (a valid
        equilibrium, found in seconds where the simplex fallback can take minutes)."""
        out = _solve(arr, c, mask, clutch, ground_clutch, "sum", "highs-ipm", left())
        if out[0].status == 0 or not ground_clutch:
            return out if out[0].status in (0, 2) else solve(mask, "sum")
        st, t = _pair_lp(arr, c, mask, clutch, ground_clutch, left(), unbounded=True)
        if st == 0 and t is not None:
            done = OptimizeResult(status=0, message="pair-wrench least uniform pull")
            return done, t, np.zeros(len(c.upper))
        return solve(mask, "sum")

    critical = np.zeros(len(c.upper))
    # A fast sufficient check first: when every brick's whole underside rests on bricks (or
    # the baseplate), compression alone holds everything (each load passes straight down
    # through the brick below), so the minimum-tension equilibrium is zero tension and the
    # LP is not needed; solid fills of any size are decided in linear time.
    if not len(ungrounded) and _fully_supported(arr, c):
        pass  # tension, stress and critical stay zero: the exact optimum
    elif active.any() and len(c.upper) and (c.lower < 0).any():
        capped = capped_fast() if objective == "sum" else None
        if capped is not None and capped[0].status == 0:
            # One LP decides most models: the least-total-tension equilibrium with every
            # stud within its clutch. Feasible means stable, and its utilisations are the
            # scores (each <= 1; where the unbounded least-tension equilibrium would overload
            # a stud, some are exactly 1). The min-max LP (slower by up to 20x on these
            # degenerate programs) is left to objective="max".
            tension, critical = np.minimum(capped[1], clutch), capped[2]  # bounds hold to 1e-9
        else:
            # objective="max", or no equilibrium within capacity (overloaded or tipping):
            # the scores of the unbounded LP say by how much.
            res, t, critical = solve(active, "max") if objective == "max" else least(active)
            if res.status == 2:  # infeasible: only possible without ground clutch (tipping)
                status = "some components tip over"
                for lab in np.unique(labels[active]):
                    comp = active & (labels == lab)
                    if solve(comp, "sum")[0].status == 2:
                        active &= ~comp
                t = np.zeros(len(c.upper))
                if active.any():
                    res, t, critical = solve(active, "capped" if objective == "sum" else "max")
                    if res.status != 0:  # the rest overloads a stud: by how much
                        _, t, critical = solve(active, objective)
                    elif objective == "sum":
                        t = np.minimum(t, clutch)
            tension = t
    util = tension / clutch
    s = np.zeros(n)
    np.maximum.at(s, c.upper, util)
    lower_ok = c.lower >= 0
    np.maximum.at(s, c.lower[lower_ok], util[lower_ok])
    stress[active] = s[active]
    unsupported = [int(i) for i in np.flatnonzero(~active)]
    if unsupported and status == "optimal":
        status = f"{len(unsupported)} brick(s) have no path to the ground"
    comps = _group(labels)
    max_stress = float(stress.max())
    return StabilityReport(
        stress=stress,
        max_stress=max_stress,
        stable=bool(max_stress <= 1.0),
        unsupported=unsupported,
        components=comps,
        n_components=len(comps),
        solve_time_s=time.perf_counter() - t0,
        status=status,
        cpu_time_s=time.process_time() - c0,
        clutch_n=float(clutch_n),
        n_contacts=len(c.upper),
        tension_n=tension,
        critical=critical,
        contacts=c,
    )


class _Prefixes:
    """Sub-models of one model (the bricks built so far, by index) analysed from the whole
    model's contacts, computed once: :meth:`report` is :func:`analyze_stability` of that
    sub-model (its bricks in index order), without labelling a lattice per step."""

    def __init__(self, model: BrickModel, clutch_n: float, ground_clutch: bool):
        if not np.isfinite(clutch_n) or clutch_n <= 0:
            raise ValueError(f"clutch_n must be a positive number of newtons, got {clutch_n!r}")
        self.arr = brick_arrays(model)
        self.c = find_contacts(model, self.arr)
        self.n = len(self.arr["x"])
        self.clutch_n, self.ground_clutch = float(clutch_n), ground_clutch
        self.area = self.arr["nx"] * self.arr["ny"]

    def _sub(self, idx: np.ndarray) -> tuple[dict, Contacts, np.ndarray]:
        inp = np.zeros(self.n, bool)
        inp[idx] = True
        c = self.c
        keep = inp[c.upper] & ((c.lower < 0) | inp[np.maximum(c.lower, 0)])
        remap = np.full(self.n, -1, np.int64)
        remap[idx] = np.arange(len(idx))
        lower = c.lower[keep]
        sub = Contacts(
            remap[c.upper[keep]],
            np.where(lower >= 0, remap[np.maximum(lower, 0)], -1),
            c.x[keep],
            c.y[keep],
            c.z[keep],
        )
        return {k: v[idx] for k, v in self.arr.items()}, sub, keep

    def report(self, idx: np.ndarray) -> StabilityReport:
        t0, c0 = time.perf_counter(), time.process_time()
        arr, c, _ = self._sub(idx)
        return _analyze(arr, c, self.clutch_n, self.ground_clutch, "sum", t0, c0)

    def ungrounded(self, idx: np.ndarray) -> list[int]:
        """Bricks of the sub-model (its own indices) with no path to the ground."""
        arr, c, _ = self._sub(idx)
        if not len(idx):
            return []
        labels = _pieces(len(idx), c)
        return np.flatnonzero(~np.isin(labels, labels[arr["z"] == 0])).tolist()

    def held(self, idx: np.ndarray, new: np.ndarray) -> bool:
        """Whether every brick of ``new`` (model indices, among ``idx``) rests with its whole
        underside on bricks of the sub-model that do so too, down to the baseplate.

        Then adding ``new`` to a stable sub-model leaves it stable: their weight goes down in
        compression alone (each load lies inside the footprint of the bricks under it), so
        the previous equilibrium plus that compression is one, with the same tensions.
        """
        if not len(new):
            return True
        _, _, keep = self._sub(idx)
        c = self.c
        up, lo, z = c.upper[keep], c.lower[keep], c.z[keep]
        full = np.bincount(up, minlength=self.n) == self.area
        if not full[new].all():
            return False
        held = np.zeros(self.n, bool)
        order = np.argsort(z, kind="stable")
        up, lo, z = up[order], lo[order], z[order]
        top = int(self.arr["z"][new].max())
        levels, starts = np.unique(z, return_index=True)
        ends = np.append(starts[1:], len(z))
        for level, a, b in zip(levels.tolist(), starts.tolist(), ends.tolist(), strict=True):
            if level > top:
                break
            u, lw = up[a:b], lo[a:b]
            bad = np.zeros(self.n, bool)
            bad[u[(lw >= 0) & ~held[np.maximum(lw, 0)]]] = True
            held[u] = full[u] & ~bad[u]
        return bool(held[new].all())


@dataclass
class StepStability:
    """Result of :func:`step_stability`: is the model stable after every build step?"""

    stable: bool  # every checked intermediate model (and the finished one) is stable
    n_steps: int
    first_unstable: int | None  # index of the first step after which it is not stable
    unstable_steps: list[int]
    max_stress: list[float]  # per checked step, the largest stress score
    checked_steps: list[int]  # steps whose intermediate model went through the LP
    cpu_time_s: float = 0.0

    def summary(self) -> str:
        if self.stable:
            return f"stable after each of its {self.n_steps} build steps"
        assert self.first_unstable is not None  # set whenever a step is unstable
        return (
            f"NOT stable at every step: {len(self.unstable_steps)} of {self.n_steps} steps "
            f"leave an unstable model (first: step {self.first_unstable + 1})"
        )


def step_stability(
    model: BrickModel,
    clutch_n: float = CLUTCH_N_DEFAULT,
    ground_clutch: bool = True,
    every: str = "layer",
) -> StepStability:
    """Analyse the intermediate model after each build step (bricks' ``step`` numbers).

    ``every="step"`` runs the equilibrium LP after every step; ``"layer"`` (default) after
    the last step of each plate layer, and after the other steps only the cheap graph check
    for bricks without a path to the ground (the LP after every step would multiply the cost
    by the steps per layer; a part-built layer is not otherwise checked). The finished model
    is always analysed.
    """
    if every not in ("layer", "step"):
        raise ValueError(f"every must be 'layer' or 'step', got {every!r}")
    c0 = time.process_time()
    bricks = sorted(model.bricks, key=lambda b: b.step)
    ordered = model.derive(bricks)
    pre = _Prefixes(ordered, clutch_n, ground_clutch)
    step = np.array([b.step for b in bricks], dtype=np.int64)
    z = pre.arr["z"]
    steps = np.unique(step)
    zmin = np.array([z[step == s_].min() for s_ in steps]) if len(steps) else np.zeros(0)
    unstable: list[int] = []
    worst: list[float] = []
    checked: list[int] = []
    last_ok: tuple[int, float] | None = None  # bricks in the last analysed model, its score
    for k, s_ in enumerate(steps):
        n_in = int(np.searchsorted(step, s_, side="right"))
        idx = np.arange(n_in)
        last = k == len(steps) - 1
        layer_end = last or zmin[k + 1] != zmin[k]
        if every == "layer" and not layer_end:
            if pre.ungrounded(idx):
                unstable.append(k)
            continue
        checked.append(k)
        if last_ok is not None and pre.held(idx, np.arange(last_ok[0], n_in)):
            worst.append(last_ok[1])  # the same equilibrium plus compression: still stable
            last_ok = (n_in, last_ok[1])
            continue
        r = pre.report(idx)
        worst.append(float(r.max_stress))
        if r.stable:
            last_ok = (n_in, float(r.max_stress))
        else:
            unstable.append(k)
            last_ok = None
    return StepStability(
        stable=not unstable,
        n_steps=len(steps),
        first_unstable=unstable[0] if unstable else None,
        unstable_steps=unstable,
        max_stress=worst,
        checked_steps=checked,
        cpu_time_s=time.process_time() - c0,
    )


def stabilise_steps(
    model: BrickModel,
    clutch_n: float = CLUTCH_N_DEFAULT,
    ground_clutch: bool = True,
    time_budget_s: float = 20.0,
) -> tuple[BrickModel, StepStability, int]:
    """Reorder the build so that every intermediate model holds (issue #17, item 3).

    Walks the steps in order and analyses each intermediate model as :func:`step_stability`
    does (the LP at each layer's end, the graph check between). Where one does not hold,
    the bricks of that step that fail (unsupported or overloaded; else the step's bricks in
    the same piece as a failing brick: the load that overloads it) are put on one step
    later, with what comes next (a brick that pulls on an overhang waits for the bricks
    that hold it), and the step is analysed again. The finished model is never changed,
    only the order; what the last step leaves unstable stays so. ``time_budget_s`` (CPU)
    bounds the moves; the checks always run to the end. Returns the reordered model (steps
    renumbered, sorted by step), its :class:`StepStability` and how many bricks were put on
    later than before.
    """
    c0 = time.process_time()
    bricks = sorted(model.bricks, key=lambda b: (b.step, b.z, b.y, b.x))
    pre = _Prefixes(model.derive(bricks), clutch_n, ground_clutch)
    z = pre.arr["z"]
    step = np.array([b.step for b in bricks], dtype=np.int64)
    moved: set[int] = set()
    unstable: dict[int, bool] = {}
    worst: dict[int, float] = {}
    # the bricks of the last layer-end model that held (a mask) and its largest score
    prev: tuple[np.ndarray, float] | None = None
    k = 0
    while True:
        steps = np.unique(step)
        if k >= len(steps):
            break
        s_ = steps[k]
        idx = np.flatnonzero(step <= s_)
        last = k == len(steps) - 1
        layer_end = last or z[step == steps[k + 1]].min() != z[step == s_].min()
        r = None
        if layer_end:
            if prev is not None and pre.held(idx, idx[~prev[0][idx]]):
                failing, score = [], prev[1]  # the same equilibrium plus compression holds
            else:
                r = pre.report(idx)
                score = float(r.max_stress)
                failing = [] if r.stable else sorted(set(r.unsupported) | set(r.overloaded))
            worst[k] = score
            bad = bool(failing) or (r is not None and not r.stable)
        else:
            failing = pre.ungrounded(idx)
            bad = bool(failing)
        unstable[k] = bad
        if not bad or last or time.process_time() - c0 > time_budget_s:
            if layer_end:
                mask = np.zeros(len(bricks), bool)
                mask[idx] = True
                prev = None if bad else (mask, score)
            k += 1
            continue
        now = [int(idx[j]) for j in failing if step[idx[j]] == s_]
        if not now and r is not None:
            # the load is put on elsewhere: the step's bricks in the failing bricks' piece
            fail = set(failing)
            piece = {j for comp in r.components if fail & set(comp) for j in comp}
            now = [int(idx[j]) for j in sorted(piece) if step[idx[j]] == s_]
        if not now:
            k += 1
            continue
        step[now] = steps[k + 1]
        moved.update(now)
    rank = np.unique(step, return_inverse=True)[1]
    new = [dataclasses.replace(b, step=int(r)) for b, r in zip(bricks, rank, strict=True)]
    new.sort(key=lambda b: (b.step, b.z, b.y, b.x))
    bad_steps = [k for k in sorted(unstable) if unstable[k]]
    result = StepStability(
        stable=not bad_steps,
        n_steps=int(rank.max()) + 1 if len(rank) else 0,
        first_unstable=bad_steps[0] if bad_steps else None,
        unstable_steps=bad_steps,
        max_stress=[worst[k] for k in sorted(worst)],
        checked_steps=sorted(worst),
        cpu_time_s=time.process_time() - c0,
    )
    return model.derive(new), result, len(moved)
