"""Make ``docs/images/stability_props.png``: one shared-data chair before and after repair.

    .venv/bin/python tools/make_stability_figure.py [--chair 000000760] [--res 32]

Left: the chair as converted, re-tiled only (``repair(reinforce=False)``), bricks whose
connection would come apart in red. Right: the default repair, the props it added in yellow.
Needs ``../shared/data`` (or ``$IMAGE2LEGO_DATA``) and bpy (Workbench render).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

GREY, RED, YELLOW = 71, 4, 14  # LDraw colour codes


def _recolour(model, colour_of):
    from image2lego.lego.bricks import BrickModel

    bricks = [dataclasses.replace(b, color=colour_of(i, b)) for i, b in enumerate(model.bricks)]
    return BrickModel(bricks, model.shape, dict(model.meta))


def _render(model, path: Path) -> Image.Image:
    import bpy

    from image2lego.blender import headless
    from image2lego.blender import scene as lego_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    coll = lego_scene.build_model(bpy.context, model, name="LEGO Model")
    headless.render_image(bpy.context, coll, path, (800, 800))
    return Image.open(path).convert("RGB")


def main(argv: list[str] | None = None) -> int:
    import bench_stability as bs

    from image2lego.lego.convert import voxels_to_bricks
    from image2lego.lego.repair import repair

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chair", default="000000760", help="ModelNet40 chair id in the benchmark")
    ap.add_argument("--res", type=int, choices=(16, 32), default=32)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "stability_props.png")
    a = ap.parse_args(argv)
    grids = dict(bs.chairs(34))
    name = f"chair/{a.chair}"
    if name not in grids:
        raise SystemExit(f"{name} is not among the benchmark chairs: {sorted(grids)}")
    grid = grids[name] if a.res == 32 else bs.pool2(grids[name])
    model = voxels_to_bricks(grid)
    kept, rep0 = repair(model, reinforce=False)
    fixed, rep = repair(model)
    stress = rep0.stability.stress
    left = _recolour(kept, lambda i, b: RED if stress[i] > 1 else GREY)
    occ0 = model.occupancy()

    def is_prop(b) -> bool:  # a brick covering a cell the conversion did not have
        return any(not occ0[x, y, b.z] for x, y in b.cells())

    right = _recolour(fixed, lambda i, b: YELLOW if is_prop(b) else GREY)
    tmp = a.out.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    ims = [_render(left, tmp / "left.png"), _render(right, tmp / "right.png")]
    labels = [
        f"re-tiled only: max stress {rep0.after.max_stress:.2f}, "
        f"{len(rep0.stability.overloaded)} bricks would come apart (red)",
        f"repaired: max stress {rep.after.max_stress:.2f}, "
        f"{'stable' if rep.stable else 'NOT stable'}; {rep.reinforcement_bricks} prop bricks, "
        f"+{100 * rep.added_cells / occ0.sum():.1f} % cells (yellow)",
    ]
    w, h = ims[0].size
    sheet = Image.new("RGB", (2 * w, h + 40), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (im, text) in enumerate(zip(ims, labels, strict=True)):
        sheet.paste(im, (k * w, 40))
        draw.text((k * w + 10, 12), text, fill="black")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    print(f"wrote {a.out}: {labels[0]} | {labels[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
