"""Benchmark of the Eq. 2 pose fit (issue 6 acceptance): accuracy under outliers and vmapped speed.

Ground truth: N random plausible poses of the synthetic SMPL-X-layout body (each constrained joint's
(flexion, twist, abduction) uniform in the central 70% of its `body.pose_prior` range, random yaw, ±0.15 rad tilt, scale 0.8-1.2, root
within ±0.2 m of the scene centre, random known betas), observed in the 4 canonical views of the
composition stage (front/left/back/right, 3 m, 45° fov, 512 px) as OpenPose-18 detections with 2 px
Gaussian noise and 10% gross outliers (uniform over the image).

Reported:
* MPJPE (mm, world frame, scale included, no alignment) on the 18 keypoints Ĵ of Eq. 2 and on the
  22 SMPL-X body joints, for Geman-McClure (Eq. 2) and for plain L2 (the ablation);
* references on the same ground truth: the GM fit with 2 px noise and no outliers (what the noise
  alone costs this estimator) and with noise-free detections (the optimisation floor);
* time of N_time independent fits in one jitted vmapped call (median of repeats, after compile) on
  the default device and on the host CPU in the same process, and their ratio.

Usage: python benchmarks/pose_fit.py [--n 100] [--n-time 120] [--out benchmarks/results/pose_fit.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.body.skinning import pose_joints
from anchorhoi_jax.body.smplx import load_smplx
from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx
from anchorhoi_jax.stages import pose_fit as pf


def load_body(cache: str):
    path = os.path.join(cache, "SMPLX_NEUTRAL.npz")
    if not os.path.exists(path):
        write_synthetic_smplx(path)
    model, _ = load_smplx(path, num_betas=10, num_expression=10)
    return model


def make_problem(fb, setup, cams, views):
    model = fb.model
    root0 = model.j_template[0]

    def one(key, noise_px, outliers):
        k_pose, k_yaw, k_tilt, k_s, k_t, k_b, k_det = jax.random.split(key, 7)
        pose = pf.sample_plausible_pose(k_pose, fb.prior, model.num_joints, 0.7)
        yaw = jax.random.uniform(k_yaw, (), minval=0.0, maxval=2 * jnp.pi)
        tilt = jax.random.uniform(k_tilt, (2,), minval=-0.15, maxval=0.15)
        pose = pose.at[0].set(jnp.stack([tilt[0], yaw, tilt[1]]))
        betas = jnp.zeros((model.num_shape,)).at[:10].set(jax.random.normal(k_b, (10,)))
        body = BodyParams(
            betas=betas,
            pose=pose,
            transl=-root0 + jnp.asarray(views.target) + jax.random.uniform(k_t, (3,), minval=-0.2, maxval=0.2),
            scale=jax.random.uniform(k_s, (), minval=0.8, maxval=1.2),
        )
        all_j = pose_joints(model, body)
        kp3 = pf.body_keypoints3d(fb, setup, body)
        # Same draw as simulate_detections, keeping the outlier mask.
        uv = pf.simulate_detections(k_det, kp3, cams.K, cams.T_cam_world, views.size, noise_px, outliers)
        is_out = jax.random.uniform(jax.random.split(k_det, 3)[1], uv.shape[:2]) < outliers
        return body, kp3, all_j[:22], uv, is_out

    return one


def timed(fn, *args, repeats=5):
    jax.block_until_ready(fn(*args))  # compile + warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--n-time", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cpu-repeats", type=int, default=2)
    ap.add_argument("--cache", default=os.environ.get("COMPOSITION_CACHE", tempfile.gettempdir()))
    ap.add_argument("--references", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/pose_fit.json")
    args = ap.parse_args()

    model = load_body(args.cache)
    setup, fb = pf.make_setup(model)
    views = pf.CanonicalViews()
    cams = pf.canonical_cameras(views)
    n_all = max(args.n, args.n_time)
    gen = jax.jit(jax.vmap(make_problem(fb, setup, cams, views), in_axes=(0, None, None)))
    keys = jax.random.split(jax.random.key(0), n_all)
    body, kp3, j22, uv, is_out = gen(keys, 2.0, 0.1)
    conf = jnp.ones(uv.shape[:3])
    weights = pf.PoseFitWeights.default()
    target = jnp.asarray(views.target)

    def fitter(robust):
        fit = pf.make_fit(setup, pf.PoseFitConfig(robust=robust))

        def one(uv_i, conf_i, betas_i):
            data = pf.MultiViewKeypoints(uv_i, conf_i, cams.K, cams.T_cam_world)
            params, kp, aux = fit(fb, betas_i, data, target, weights)
            return params, kp, pose_joints(model, params)[:22]

        return jax.jit(jax.vmap(one))

    # All n_all fits run in one vmapped call (timed for GM); accuracy is reported on the first n.
    res, timings = {}, {}
    n = args.n
    for name, robust in (("gm", True), ("l2", False)):
        f = fitter(robust)
        if robust:
            timings["gm_default_device_s"], timings["gm_default_device_runs_s"] = timed(
                f, uv, conf, body.betas, repeats=args.repeats
            )
        params, kp_fit, j_fit = f(uv, conf, body.betas)
        e18 = jnp.linalg.norm(kp_fit - kp3, axis=-1).mean(-1)[:n] * 1e3
        e22 = jnp.linalg.norm(j_fit - j22, axis=-1).mean(-1)[:n] * 1e3
        res[name] = dict(
            mpjpe18_mm=float(e18.mean()),
            mpjpe18_median_mm=float(jnp.median(e18)),
            mpjpe18_p90_mm=float(jnp.percentile(e18, 90)),
            mpjpe18_max_mm=float(e18.max()),
            mpjpe22_mm=float(e22.mean()),
            scale_abs_err=float(jnp.abs(params.scale - body.scale)[:n].mean()),
            fits_over_50mm=int(jnp.sum(e18 > 50)),
        )
        print(name, res[name], flush=True)

    # References for the same ground truth: what 2 px noise alone costs this estimator (no outliers),
    # and the optimisation floor (noise-free detections).
    if args.references:
        f = fitter(True)
        for name, noise, outl in (("gm_noise_only", 2.0, 0.0), ("gm_noise_free", 0.0, 0.0)):
            _, kp3_r, _, uv_r, _ = gen(keys, noise, outl)
            _, kp_fit, _ = f(uv_r, conf, body.betas)
            e18 = jnp.linalg.norm(kp_fit - kp3_r, axis=-1).mean(-1)[:n] * 1e3
            res[name] = dict(mpjpe18_mm=float(e18.mean()), mpjpe18_max_mm=float(e18.max()))
            print(name, res[name], flush=True)

    # The same n_time fits on the host CPU, in this process, as a ratio.
    cpu = jax.devices("cpu")[0]
    if args.cpu_repeats > 0:
        with jax.default_device(cpu):
            f = fitter(True)
            args_cpu = jax.device_put((uv, conf, body.betas), cpu)
            timings["gm_cpu_s"], timings["gm_cpu_runs_s"] = timed(f, *args_cpu, repeats=args.cpu_repeats)
        timings["cpu_over_device"] = timings["gm_cpu_s"] / timings["gm_default_device_s"]
    print(timings, flush=True)

    cfg = pf.PoseFitConfig()
    out = dict(
        device=str(jax.devices()[0].device_kind),
        platform=jax.devices()[0].platform,
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        jax=jax.__version__,
        body="synthetic SMPL-X layout (anchorhoi_jax.body.smplx_synthetic), 55 joints, 10 betas + 10 expr",
        n_fits_accuracy=args.n,
        n_fits_timed=n_all,
        views=dict(azimuths_deg=views.azimuths_deg, radius_m=views.radius, fov_y_deg=views.fov_y_deg, size_px=views.size),
        noise_px=2.0,
        outlier_fraction=0.1,
        config=dict(global_steps=cfg.global_steps, pose_steps=cfg.pose_steps, num_hypotheses=cfg.num_hypotheses),
        fit_joints=len(setup.fit_joints),
        pose_fit_mpjpe_mm_gm=res["gm"]["mpjpe18_mm"],
        pose_fit_mpjpe_mm_l2=res["l2"]["mpjpe18_mm"],
        pose_fit_120_s=timings["gm_default_device_s"],
        pose_fit_cpu_over_device=timings.get("cpu_over_device"),
        pose_fit_mpjpe_mm_gm_noise_only=res.get("gm_noise_only", {}).get("mpjpe18_mm"),
        pose_fit_mpjpe_mm_gm_noise_free=res.get("gm_noise_free", {}).get("mpjpe18_mm"),
        detail=res,
        timings=timings,
    )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
