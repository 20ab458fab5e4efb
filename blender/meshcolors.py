"""Blender mesh objects → world-space triangles and their colours (for Brickify Selected).

Colour sources, best first, per object: an image texture feeding the material's Base Color
(sampled at each surface point's UV), the active colour attribute (vertex colours), the
material's Base Color (per face, by material index), else ``None``. Colours are sRGB in [0, 1]
(what the LEGO colour matching expects)."""

from __future__ import annotations

import numpy as np


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _base_color_socket(mat):
    tree = getattr(mat, "node_tree", None)
    if tree is None:
        return None
    for node in tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            return node.inputs.get("Base Color")
    return None


def _texture_image(mat):
    sock = _base_color_socket(mat)
    if sock is None or not sock.is_linked:
        return None
    seen, todo = set(), [sock.links[0].from_node]
    while todo:  # follow the links upstream a few nodes (mix/hue nodes in between)
        node = todo.pop()
        if node in seen or len(seen) > 16:
            continue
        seen.add(node)
        if node.type == "TEX_IMAGE" and node.image is not None:
            return node.image
        for inp in node.inputs:
            for link in inp.links:
                todo.append(link.from_node)
    return None


def _material_rgb(mat) -> np.ndarray:
    if mat is None:
        return np.array([0.8, 0.8, 0.8])
    sock = _base_color_socket(mat)
    rgba = sock.default_value if sock is not None else mat.diffuse_color
    return linear_to_srgb(np.array(rgba[:3]))


class _Image:
    """An image's pixels as an (H, W, 3) array, sampled nearest at UVs."""

    def __init__(self, img):
        w, h = img.size
        if w == 0 or h == 0:
            raise ValueError(f"image {img.name!r} has no pixels")
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        self.rgb = px.reshape(h, w, 4)[..., :3]
        if img.is_float or img.colorspace_settings.name not in ("sRGB",):
            self.rgb = linear_to_srgb(self.rgb)

    def sample(self, uv: np.ndarray) -> np.ndarray:
        h, w = self.rgb.shape[:2]
        u = np.mod(uv[:, 0], 1.0)
        v = np.mod(uv[:, 1], 1.0)
        x = np.minimum((u * w).astype(int), w - 1)
        y = np.minimum((v * h).astype(int), h - 1)
        return self.rgb[y, x]


def mesh_triangles(objects, depsgraph) -> tuple[np.ndarray, object]:
    """World-space triangles (T, 3, 3) of ``objects`` (evaluated: modifiers applied) and a
    ``sample_colors(points, tri_index)`` function (or ``None`` when nothing has colour)."""
    all_tris, parts = [], []
    any_color = False
    for ob in objects:
        ev = ob.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        try:
            mesh.calc_loop_triangles()
            nt = len(mesh.loop_triangles)
            if nt == 0:
                continue
            nv = len(mesh.vertices)
            co = np.empty(nv * 3, np.float64)
            mesh.vertices.foreach_get("co", co)
            m = np.array(ob.matrix_world)
            co = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            tv = np.empty(nt * 3, np.int64)
            mesh.loop_triangles.foreach_get("vertices", tv)
            tl = np.empty(nt * 3, np.int64)
            mesh.loop_triangles.foreach_get("loops", tl)
            mi = np.empty(nt, np.int64)
            mesh.loop_triangles.foreach_get("material_index", mi)
            tris = co[tv.reshape(-1, 3)]
            part = {"n": nt, "tris": tris, "kind": None}
            mats = [s.material for s in ob.material_slots] or [None]
            images = [_texture_image(mt) if mt is not None else None for mt in mats]
            uv_layer = mesh.uv_layers.active
            attr = getattr(mesh, "color_attributes", None)
            attr = attr.active_color if attr is not None else None
            if any(images) and uv_layer is not None:
                uv = np.empty(len(mesh.loops) * 2, np.float64)
                uv_layer.data.foreach_get("uv", uv)
                part.update(kind="texture", uv=uv.reshape(-1, 2)[tl.reshape(-1, 3)], mi=mi)
                part["images"] = [_Image(im) if im is not None else None for im in images]
                part["flat"] = np.array([_material_rgb(mt) for mt in mats])
            elif attr is not None and len(attr.data):
                key = "color_srgb" if hasattr(attr.data[0], "color_srgb") else "color"
                c = np.empty(len(attr.data) * 4, np.float64)
                attr.data.foreach_get(key, c)
                c = c.reshape(-1, 4)[:, :3]
                if key == "color":
                    c = linear_to_srgb(c)
                idx = tl if attr.domain == "CORNER" else tv
                part.update(kind="vertex", corner=c[idx.reshape(-1, 3)])
            elif any(mt is not None for mt in mats):
                flat = np.array([_material_rgb(mt) for mt in mats])
                part.update(kind="flat", flat=flat[np.minimum(mi, len(flat) - 1)])
            any_color = any_color or part["kind"] is not None
            all_tris.append(tris)
            parts.append(part)
        finally:
            ev.to_mesh_clear()
    if not all_tris:
        raise ValueError("the selected objects have no faces")
    tris = np.concatenate(all_tris)
    if not any_color:
        return tris, None
    starts = np.cumsum([0] + [p["n"] for p in parts])

    def sample_colors(points: np.ndarray, owner: np.ndarray) -> np.ndarray:
        out = np.full((len(points), 3), 0.8)
        bary = _barycentric(points, tris[owner])
        for k, p in enumerate(parts):
            sel = (owner >= starts[k]) & (owner < starts[k + 1])
            if not sel.any() or p["kind"] is None:
                continue
            t = owner[sel] - starts[k]
            b = bary[sel]
            if p["kind"] == "flat":
                out[sel] = p["flat"][t]
            elif p["kind"] == "vertex":
                out[sel] = np.einsum("nk,nkc->nc", b, p["corner"][t])
            else:
                uv = np.einsum("nk,nkc->nc", b, p["uv"][t])
                mi = np.minimum(p["mi"][t], len(p["images"]) - 1)
                col = p["flat"][mi].copy()
                for j, im in enumerate(p["images"]):
                    if im is not None and (mi == j).any():
                        col[mi == j] = im.sample(uv[mi == j])
                out[sel] = col
        return out

    return tris, sample_colors


def _barycentric(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    v0, v1 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    v2 = p - t[:, 0]
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-30, 1.0, den)
    b = (d11 * d20 - d01 * d21) / den
    c = (d00 * d21 - d01 * d20) / den
    return np.clip(np.stack([1 - b - c, b, c], axis=1), 0.0, 1.0)
