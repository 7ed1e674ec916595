"""A synthetic human-object scene with known parts, for the anchor-extraction test and benchmark.

The "human" is a union of closed boxes (torso, head, arms, legs; 1.7 m, standing, facing +z, y up,
centred on the origin) and the object is a box (a crate) beside and in front of the left leg, so
it occludes the human from some views and the human occludes it from others. Both are coloured
per vertex; the human's faces come first, so the human alone is `faces[:num_human_faces]`.
"""

from __future__ import annotations

import numpy as onp

# (centre, half extents, colour): parts of the human.
HUMAN_PARTS = (
    ((0.0, 0.22, 0.0), (0.18, 0.28, 0.1), (0.15, 0.35, 0.75)),  # torso: blue shirt
    ((0.0, 0.64, 0.0), (0.1, 0.13, 0.1), (0.85, 0.65, 0.52)),  # head: skin
    ((0.09, -0.45, 0.0), (0.07, 0.40, 0.07), (0.25, 0.22, 0.2)),  # legs: dark trousers
    ((-0.09, -0.45, 0.0), (0.07, 0.40, 0.07), (0.25, 0.22, 0.2)),
    ((0.24, 0.2, 0.08), (0.05, 0.28, 0.05), (0.85, 0.65, 0.52)),  # arms: skin
    ((-0.24, 0.2, 0.0), (0.05, 0.28, 0.05), (0.85, 0.65, 0.52)),
)
OBJECT_PART = ((0.42, -0.62, 0.32), (0.2, 0.2, 0.2), (0.8, 0.35, 0.1))  # an orange crate


def box_mesh(center, half) -> tuple[onp.ndarray, onp.ndarray]:
    """Closed box: 8 vertices, 12 triangles, counter-clockwise seen from outside."""
    c, h = onp.asarray(center, onp.float32), onp.asarray(half, onp.float32)
    corners = onp.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], onp.float32)
    v = c + corners * h
    # Vertex index = 4·(x>0) + 2·(y>0) + (z>0); each face listed CCW from outside.
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = []
    for a, b, cc, d in quads:
        f += [(a, b, cc), (a, cc, d)]
    return v, onp.asarray(f, onp.int32)


def hoi_scene() -> dict[str, onp.ndarray]:
    """vertices (V,3), faces (F,3), colors (V,3), num_human_faces, num_human_vertices."""
    vs, fs, cs, n = [], [], [], 0
    for center, half, color in HUMAN_PARTS + (OBJECT_PART,):
        v, f = box_mesh(center, half)
        vs.append(v)
        fs.append(f + n)
        cs.append(onp.broadcast_to(onp.asarray(color, onp.float32), v.shape))
        n += v.shape[0]
    n_parts = len(HUMAN_PARTS)
    return dict(
        vertices=onp.concatenate(vs),
        faces=onp.concatenate(fs),
        colors=onp.concatenate(cs),
        num_human_faces=12 * n_parts,
        num_human_vertices=8 * n_parts,
    )
