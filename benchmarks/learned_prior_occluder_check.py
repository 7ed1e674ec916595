"""CPU check of the occluder-aware anchor extraction (session 8) on the synthetic human-object scene of the anchor test.

    python benchmarks/learned_prior_occluder_check.py [--margins none,0.05,0.1,0.2]

The scene (tests/composition/scenes.hoi_scene: box-part human, a crate in front of the left leg) is fitted as
the "coarse" NeRF from 10 views, then the anchor NeRF is extracted from 8 alignment views with the visible-human
masks, once per occluder margin (none = the paper's 2D-masked rays), and compared at 4 held-out views with the
human's full silhouette (occluded parts included): IoU, human recall (the occluded leg behind the crate is what
2D-masked rays erase), and the fraction of object-only pixels the anchor still covers (object debris).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras  # noqa: E402
from anchorhoi_jax.nerf import field as nf  # noqa: E402
from anchorhoi_jax.nerf import fit as nfit  # noqa: E402
from anchorhoi_jax.render.raster import rasterize_views  # noqa: E402
from anchorhoi_jax.render.volume import RenderConfig, render_nerf_views  # noqa: E402
from anchorhoi_jax.stages import anchor as an  # noqa: E402
from tests.composition.scenes import hoi_scene  # noqa: E402

S = 40


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--margins", default="none,0.05,0.1,0.2")
    args = ap.parse_args(argv)
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
    visible_human = scene["rgb"][..., 3] > 0.5
    n_t, n_a = 10, 8
    fcfg = nf.FieldConfig(n_levels=6, log2_table_size=12, max_resolution=96, hidden=32, blob_density=0.0)
    rcfg = RenderConfig(n_coarse=24, n_fine=24)
    opt = nfit.default_optimizer(2e-2, 150)
    run = jax.jit(nfit.make_fit_step(fcfg, rcfg, opt, n_rays=512, steps_per_call=150))
    coarse, _ = run(nfit.init_fit(jax.random.key(0), fcfg, opt), nfit.rays_from_views(train, rgb[:n_t], scene["alpha"][:n_t]))
    o = jax.jit(lambda p, c: render_nerf_views(p, fcfg, c, None, render_cfg=rcfg, background=0.0))(coarse.params, align)
    update = jax.jit(an.make_update(fcfg, an.AnchorConfig(steps_per_call=50, n_rays=512, render=rcfg)))
    render = jax.jit(lambda p, c: an.render_views(p, fcfg, c, None, rcfg))
    hum = human["alpha"] > 0.5
    obj = (scene["alpha"][n_t + n_a:] > 0.5) & ~hum
    _, coarse_eval = render(coarse.params, evalc)
    print(f"coarse: IoU with the full human {float(an.mask_iou(coarse_eval, human['alpha'])):.3f}")
    for part in args.margins.split(","):
        m = None if part == "none" else float(part)
        t0 = time.perf_counter()
        kw = {} if m is None else dict(depth=o["depth"], occluder_margin=m)
        rays = an.alignment_rays(align, o["rgb"], o["alpha"], visible_human[n_t:n_t + n_a], **kw)
        state, _ = update(an.init(jax.random.key(1), coarse.params), rays, an.AnchorWeights.default())
        _, a_eval = render(state.params, evalc)
        iou = float(an.mask_iou(a_eval, human["alpha"]))
        recall = float(jnp.sum((a_eval > 0.5) & hum) / jnp.sum(hum))
        debris = float(jnp.sum((a_eval > 0.5) & obj) / jnp.sum(obj))
        print(f"occluder margin {m}: IoU {iou:.3f}, human recall {recall:.3f}, object pixels covered {debris:.3f} "
              f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
