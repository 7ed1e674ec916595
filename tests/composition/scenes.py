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


def fitted_hoi_scene(size: int = 40) -> dict:
    """`hoi_scene` seen by 10 training, 8 alignment and 4 held-out cameras (size² px), and the "coarse" NeRF fitted
    to the training views: what the anchor test and benchmarks/learned_prior_occluder_check.py start from.

    Keys: cameras `train`, `align`, `evalc`; `scene` (one rasterization of all 22 views: colour and, in channel 3,
    which surface is visible — the segmentation prior's stand-in), `human` (the human alone at the held-out views:
    the reference silhouette, occluded parts included), `visible_human` (22, S, S) bool, `n_t`, `n_a`; the field /
    render configs `fcfg`, `rcfg` and the fitted `coarse` params."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras
    from anchorhoi_jax.nerf import field as nf
    from anchorhoi_jax.nerf import fit as nfit
    from anchorhoi_jax.render.raster import rasterize_views
    from anchorhoi_jax.render.volume import RenderConfig

    S = size
    sc = hoi_scene()
    V, F, C = (jnp.asarray(sc[k]) for k in ("vertices", "faces", "colors"))
    is_human = (jnp.arange(V.shape[0]) < sc["num_human_vertices"]).astype(jnp.float32)[:, None]
    train = orbit_cameras(10, height=S, width=S, distance=3.0, elevation_deg=15.0, fov_deg=40.0)
    align = orbit_cameras(8, height=S, width=S, distance=3.0, elevation_deg=5.0, fov_deg=40.0, azimuth_start_deg=22.5)
    evalc = orbit_cameras(4, height=S, width=S, distance=3.2, elevation_deg=30.0, fov_deg=40.0, azimuth_start_deg=10.0)
    cams = Camera(K=jnp.concatenate([c.K for c in (train, align, evalc)]),
                  T_cam_world=jnp.concatenate([c.T_cam_world for c in (train, align, evalc)]), height=S, width=S)
    scene = rasterize_views(V, F, jnp.concatenate([C, is_human], -1), cams, mode="hard")
    human = rasterize_views(V, F[: sc["num_human_faces"]], C, evalc, mode="hard")
    rgb = scene["rgb"][..., :3] * scene["alpha"][..., None]
    n_t, n_a = 10, 8
    fcfg = nf.FieldConfig(n_levels=6, log2_table_size=12, max_resolution=96, hidden=32, blob_density=0.0)
    rcfg = RenderConfig(n_coarse=24, n_fine=24)
    opt = nfit.default_optimizer(2e-2, 150)
    run = jax.jit(nfit.make_fit_step(fcfg, rcfg, opt, n_rays=512, steps_per_call=150))
    coarse, _ = run(nfit.init_fit(jax.random.key(0), fcfg, opt), nfit.rays_from_views(train, rgb[:n_t], scene["alpha"][:n_t]))
    return dict(train=train, align=align, evalc=evalc, scene=scene, human=human, visible_human=scene["rgb"][..., 3] > 0.5,
                n_t=n_t, n_a=n_a, fcfg=fcfg, rcfg=rcfg, coarse=coarse.params)
