"""Composition-stage benchmark (issue 6): anchor extraction on a synthetic scene, plus the Eq. 2 fit
numbers from benchmarks/pose_fit.py merged into benchmarks/results/composition.json.

Anchor extraction: a coarse NeRF is fitted (photometric reconstruction, nerf/fit.py) to hard
rasterised renders of a known human + object scene (tests/composition/scenes.py: box-part human,
crate beside and in front of the left leg); the coarse NeRF is rendered from V alignment views; the
human masks of those views come from the renders (which surface is visible: the stand-in for the
segmentation prior); the anchor NeRF Φ_A is fitted by L_align (stages/anchor.py). Reported on
held-out views (other elevation, azimuths and distance): IoU of the anchor's opacity (> 0.5) with
the human-alone silhouette (target >= 0.9), recall of the human, the fraction of object-only pixels
the anchor still covers, and the coarse NeRF's IoU with the human for contrast.

Usage: python benchmarks/composition.py [--size 128] [--pose-fit-json PATH] [--out benchmarks/results/composition.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras  # noqa: E402
from anchorhoi_jax.nerf import field as nf  # noqa: E402
from anchorhoi_jax.nerf import fit as nfit  # noqa: E402
from anchorhoi_jax.render.raster import rasterize_views  # noqa: E402
from anchorhoi_jax.render.volume import RenderConfig  # noqa: E402
from anchorhoi_jax.stages import anchor as an  # noqa: E402
from tests.composition.scenes import hoi_scene  # noqa: E402


def _stack(*cams: Camera) -> Camera:
    return Camera(K=jnp.concatenate([c.K for c in cams]), T_cam_world=jnp.concatenate([c.T_cam_world for c in cams]),
                  height=cams[0].height, width=cams[0].width)


def anchor_benchmark(size: int, coarse_steps: int, anchor_steps: int, n_rays: int, seed: int = 0,
                     levels: int = 16, log2_table: int = 19, max_res: int = 1024, samples: int = 64) -> dict:
    sc = hoi_scene()
    V, F, C = (jnp.asarray(sc[k]) for k in ("vertices", "faces", "colors"))
    is_human = (jnp.arange(V.shape[0]) < sc["num_human_vertices"]).astype(jnp.float32)[:, None]
    n_t, n_a, n_e = 24, 16, 8
    train = orbit_cameras(n_t, height=size, width=size, distance=3.0, elevation_deg=15.0, fov_deg=40.0)
    align = orbit_cameras(n_a, height=size, width=size, distance=3.0, elevation_deg=5.0, fov_deg=40.0,
                          azimuth_start_deg=11.25)
    evalc = orbit_cameras(n_e, height=size, width=size, distance=3.2, elevation_deg=30.0, fov_deg=40.0,
                          azimuth_start_deg=10.0)
    t0 = time.perf_counter()
    scene = rasterize_views(V, F, jnp.concatenate([C, is_human], -1), _stack(train, align, evalc), mode="hard")
    human = rasterize_views(V, F[: sc["num_human_faces"]], C, evalc, mode="hard")
    rgb = scene["rgb"][..., :3] * scene["alpha"][..., None]
    visible_human = scene["rgb"][..., 3] > 0.5
    jax.block_until_ready(rgb)
    t_raster = time.perf_counter() - t0

    fcfg = nf.FieldConfig(n_levels=levels, log2_table_size=log2_table, max_resolution=max_res, hidden=64,
                          blob_density=0.0)
    rcfg = RenderConfig(n_coarse=samples, n_fine=samples)
    opt = nfit.default_optimizer(1e-2, coarse_steps)
    per = min(100, coarse_steps, anchor_steps)
    run = jax.jit(nfit.make_fit_step(fcfg, rcfg, opt, n_rays=n_rays, steps_per_call=per))
    state = nfit.init_fit(jax.random.key(seed), fcfg, opt)
    rays = nfit.rays_from_views(train, rgb[:n_t], scene["alpha"][:n_t])
    t0 = time.perf_counter()
    for _ in range(coarse_steps // per):
        state, aux_c = run(state, rays)
    jax.block_until_ready(state)
    t_coarse = time.perf_counter() - t0

    render = jax.jit(lambda p, c: an.render_views(p, fcfg, c, None, rcfg, chunk=4096))
    c_rgb, c_alpha = render(state.params, align)
    rays_a = an.alignment_rays(align, c_rgb, c_alpha, visible_human[n_t : n_t + n_a])
    update = jax.jit(an.make_update(fcfg, an.AnchorConfig(steps_per_call=per, n_rays=n_rays, render=rcfg)))
    a_state = an.init(jax.random.key(seed + 1), state.params)
    weights = an.AnchorWeights.default()
    t0 = time.perf_counter()
    for _ in range(anchor_steps // per):
        a_state, aux_a = update(a_state, rays_a, weights)
    jax.block_until_ready(a_state)
    t_anchor = time.perf_counter() - t0

    _, coarse_eval = render(state.params, evalc)
    _, anchor_eval = render(a_state.params, evalc)
    h = human["alpha"] > 0.5
    obj = (scene["alpha"][n_t + n_a :] > 0.5) & ~h
    p = anchor_eval > 0.5
    return dict(
        anchor_iou=float(an.mask_iou(anchor_eval, human["alpha"])),
        anchor_human_recall=float(jnp.sum(p & h) / jnp.sum(h)),
        anchor_object_pixels_covered=float(jnp.sum(p & obj) / jnp.sum(obj)),
        coarse_iou_with_human=float(an.mask_iou(coarse_eval, human["alpha"])),
        coarse_iou_with_scene=float(an.mask_iou(coarse_eval, scene["alpha"][n_t + n_a :])),
        coarse_final_mse=float(aux_c["mse"]),
        anchor_final_align_mse=float(aux_a["align_mse"]),
        size_px=size, views_train=n_t, views_align=n_a, views_eval=n_e,
        coarse_steps=coarse_steps, anchor_steps=anchor_steps, n_rays=n_rays,
        field=dict(levels=levels, log2_table=log2_table, max_res=max_res), samples_per_ray=2 * samples,
        time_raster_s=t_raster, time_coarse_fit_s_incl_compile=t_coarse, time_anchor_fit_s_incl_compile=t_anchor,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--coarse-steps", type=int, default=1500)
    ap.add_argument("--anchor-steps", type=int, default=500)
    ap.add_argument("--n-rays", type=int, default=4096)
    ap.add_argument("--levels", type=int, default=16)
    ap.add_argument("--log2-table", type=int, default=19)
    ap.add_argument("--max-res", type=int, default=1024)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--pose-fit-json", default="benchmarks/results/pose_fit.json")
    ap.add_argument("--out", default="benchmarks/results/composition.json")
    args = ap.parse_args()
    res = anchor_benchmark(args.size, args.coarse_steps, args.anchor_steps, args.n_rays, levels=args.levels,
                           log2_table=args.log2_table, max_res=args.max_res, samples=args.samples)
    print(res, flush=True)
    out = {}
    if os.path.exists(args.out):
        with open(args.out) as fh:
            out = json.load(fh)
    if os.path.exists(args.pose_fit_json):
        with open(args.pose_fit_json) as fh:
            pf = json.load(fh)
        out.update({k: pf[k] for k in ("pose_fit_mpjpe_mm_gm", "pose_fit_mpjpe_mm_l2", "pose_fit_120_s") if k in pf})
        out["pose_fit"] = pf
    out.update(device=str(jax.devices()[0].device_kind), jax=jax.__version__, anchor_iou=res["anchor_iou"], anchor=res)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(json.dumps({k: v for k, v in out.items() if k != "pose_fit"}, indent=2))


if __name__ == "__main__":
    main()
