"""Build the NeRF-reconstruction test scene (issue 3): a posed Anny body beside a box.

Runs on CPU with the `anny` package (torch forward) and writes `.cache/render/scene.npz` with
`vertices (V,3)`, `faces (F,3)`, `colors (V,3)` in the project frame (metres, y up, body facing +z),
plus `body_vertex_count` / `body_face_count` so the body alone can be sliced out (the first V_body
vertices / F_body faces). Anny is z-up facing -y; R_world_anny maps (x, y, z) -> (x, z, -y).

Usage: python benchmarks/make_render_scene.py [out.npz]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def _posed_anny() -> tuple[np.ndarray, np.ndarray]:
    import torch
    import anny

    model = anny.Anny()
    faces = model.get_triangular_faces().cpu().numpy().astype(np.int32)
    labels = list(model.bone_labels)
    pose = torch.eye(4, dtype=model.dtype)[None, None].repeat(1, model.bone_count, 1, 1)

    def rot(axis: str, deg: float) -> torch.Tensor:
        a = np.deg2rad(deg)
        c, s = np.cos(a), np.sin(a)
        m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
             "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
        return torch.tensor(m, dtype=model.dtype)

    # A mild, asymmetric pose so the scene is not the rest pose: one arm raised forward, one knee bent.
    for name, axis, deg in [("upperarm01.L", "z", 35.0), ("upperarm01.R", "x", 40.0), ("lowerarm01.R", "x", 30.0),
                            ("upperleg01.L", "x", -25.0), ("lowerleg01.L", "x", 35.0)]:
        if name in labels:
            pose[0, labels.index(name), :3, :3] = rot(axis, deg)
    with torch.no_grad():
        out = model(pose_parameters=pose)
    v = out["vertices"][0].cpu().numpy().astype(np.float64)
    R_world_anny = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    v = v @ R_world_anny.T
    return v, faces


def _body_colors(v: np.ndarray) -> np.ndarray:
    """Smooth clothing-like albedo: trousers, shirt, skin, with gentle spatial variation."""
    y = v[:, 1]
    h = (y - y.min()) / (y.max() - y.min())
    skin = np.array([0.85, 0.65, 0.52])
    shirt = np.array([0.15, 0.35, 0.75])
    trousers = np.array([0.25, 0.22, 0.2])
    w_legs = 1.0 / (1.0 + np.exp((h - 0.47) / 0.01))
    w_head = 1.0 / (1.0 + np.exp(-(h - 0.83) / 0.01))
    w_shirt = np.clip(1.0 - w_legs - w_head, 0.0, 1.0)
    c = w_legs[:, None] * trousers + w_shirt[:, None] * shirt + w_head[:, None] * skin
    # arms beyond the shirt sleeves are skin
    arm = 1.0 / (1.0 + np.exp(-(np.abs(v[:, 0]) - 0.32) / 0.01))
    c = (1 - arm[:, None]) * c + arm[:, None] * skin
    c = c * (0.9 + 0.1 * np.sin(6.0 * v[:, 0:1]) * np.cos(4.0 * v[:, 2:3]))
    return np.clip(c, 0.0, 1.0)


def _box(center: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box with 4 own vertices per face so each face keeps its own colour."""
    verts, faces, cols = [], [], []
    palette = np.array([[0.8, 0.2, 0.2], [0.2, 0.7, 0.3], [0.9, 0.8, 0.2], [0.6, 0.3, 0.7], [0.9, 0.5, 0.1],
                        [0.3, 0.7, 0.8]])
    k = 0
    for axis in range(3):
        for sgn in (-1.0, 1.0):
            u, w = [a for a in range(3) if a != axis]
            quad = []
            for su, sw in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
                p = np.zeros(3)
                p[axis], p[u], p[w] = sgn, su, sw
                quad.append(center + 0.5 * size * p)
            verts += quad
            n = len(verts) - 4
            faces += [[n, n + 1, n + 2], [n, n + 2, n + 3]]
            cols += [palette[k]] * 4
            k += 1
    verts, faces = np.array(verts), np.array(faces, np.int32)
    # Outward winding (counter-clockwise seen from outside), as the rasterizer's back-face culling expects.
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.sum(n * (tri.mean(1) - center), -1) < 0
    faces[inward] = faces[inward][:, ::-1]
    return verts, faces, np.array(cols)


def main(out: str = ".cache/render/scene.npz") -> None:
    v, f = _posed_anny()
    v = v - np.array([0.5 * (v[:, 0].min() + v[:, 0].max()), v[:, 1].min(), 0.5 * (v[:, 2].min() + v[:, 2].max())])
    c = _body_colors(v)
    bv, bf, bc = _box(np.array([1.0, 0.25, 0.0]), np.array([0.4, 0.5, 0.4]))
    verts = np.concatenate([v, bv]).astype(np.float32)
    faces = np.concatenate([f, bf + len(v)]).astype(np.int32)
    cols = np.concatenate([c, bc]).astype(np.float32)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, vertices=verts, faces=faces, colors=cols, body_vertex_count=len(v), body_face_count=len(f))
    print(out, verts.shape, faces.shape, "bbox", verts.min(0), verts.max(0))


if __name__ == "__main__":
    main(*sys.argv[1:])
