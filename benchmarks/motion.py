"""Motion-synthesis benchmark (issue 5): synthetic ground truth, ablations, contact F1, speed.

    python benchmarks/motion.py --out DIR [--frames 120] [--steps 1000] [--body smplx-synthetic|procedural]
                                [--torch] [--sweep]

Ground truth: three interactions (carry a box, push a box, sit on a chair; tests/motion/
synthetic_scenes.py) posed with a known motion on an SMPL-X-layout body (the synthetic SMPL-X file
of body/smplx_synthetic.py, 10,475 vertices, loaded by body/smplx.load_smplx). One static camera
(monocular, like the generated video); OpenPose-18 points projected with 2 px noise, confidences
U(0.6,1) and 0 for keypoints hidden behind the object or randomly missed. The static instance is
frame 0 of the ground truth. Every variant runs the same compiled program (weights are traced).

Metrics (mm): MPJPE over the 22 body joints in the world frame (no alignment); contact distance =
mean unsigned distance of the ground-truth contact vertices (candidates within 5 mm of the object
at frame 0; contact holds in every frame by construction) to the estimated object surface; max
penetration = deepest human vertex inside the estimated object over all frames; acceleration
error (mm/frame²). Contact F1 of Eq. 3 on the FPS object points: a point is a true contact when its
exact point-to-triangle distance to the human's candidate surface at frame 0 is below 2 cm (the
proximity definition of BEHAVE, Bhatnagar et al. 2022); Eq. 3 instead sees only the nearest
candidate vertex and must also pass the normal test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "motion"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

from anchorhoi_jax import metrics as M  # noqa: E402
from anchorhoi_jax.body.model import BodyParams  # noqa: E402
from anchorhoi_jax.body.skinning import pose  # noqa: E402
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from anchorhoi_jax.geometry.sdf import point_triangle_distance, sdf_grid_from_mesh  # noqa: E402
from anchorhoi_jax.stages.motion import (  # noqa: E402
    MotionConfig, MotionWeights, StaticInstance, full_pose, make_motion_step, motion_phases, prepare_motion_data,
    select_seed,
)
from synthetic_scenes import SCENES, observe  # noqa: E402


def load_body(kind: str):
    if kind == "procedural":
        from synthetic_body import make_synthetic_body

        model, ex = make_synthetic_body()
        return model, ex["openpose18"], ex["contact_candidates"], None
    from anchorhoi_jax.body.smplx import load_smplx
    from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx
    from anchorhoi_jax.track import smplx_openpose_and_contacts

    d = Path(tempfile.mkdtemp())
    path = write_synthetic_smplx(d / "SMPLX_NEUTRAL.npz")
    model, _ = load_smplx(path, num_betas=10, num_expression=10)
    op, cand = smplx_openpose_and_contacts(model)
    return model, op, cand, str(path)


@jax.jit
def _posed_seq(model, betas, poses, transl):
    return jax.vmap(lambda q, t: pose(model, BodyParams(betas=betas, pose=q, transl=t, scale=jnp.ones(()))))(poses, transl)


def posed_seq(model, betas, poses, transl):
    """Full posed meshes of a sequence (one compile per model/length, reused by every evaluation)."""
    return _posed_seq(model, jnp.asarray(betas, jnp.float32), jnp.asarray(poses, jnp.float32), jnp.asarray(transl, jnp.float32))


def min_dist_to_faces(points, verts, faces, chunk=256):
    tri = verts[faces]
    out = []
    for i in range(0, points.shape[0], chunk):
        p = points[i : i + chunk]
        d = point_triangle_distance(p[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
        out.append(d.min(1))
    return jnp.concatenate(out)


def build_case(name, model, op_ids, cand, L, key, args):
    t0 = time.perf_counter()
    sc = SCENES[name](model, L)
    kp, conf, occ = observe(sc, model, op_ids, noise_px=2.0, seed=1)
    betas = jnp.zeros(model.num_shape)
    st = StaticInstance(betas=betas, scale=jnp.ones(()), pose=jnp.asarray(sc.pose[0], jnp.float32),
                        transl=jnp.asarray(sc.transl[0], jnp.float32), R_world_obj=jnp.asarray(sc.R_obj[0], jnp.float32),
                        t_world_obj=jnp.asarray(sc.t_obj[0], jnp.float32))
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=kp, confidence=conf, K=sc.K,
                               T_cam_world=sc.T_cam_world, image_size=sc.image_size, contact_candidates=cand,
                               openpose_ids=op_ids, key=key, num_object_points=args.object_points,
                               num_pen_vertices=args.pen_vertices, pen_near_fraction=args.pen_near_fraction,
                               contact_target=args.contact_target,
                               pen_parts_static_allowance=args.pen_parts_allowance)
    gt = posed_seq(model, betas, sc.pose, sc.transl)
    grid = sdf_grid_from_mesh(sc.object_vertices, sc.object_faces, resolution=128, padding=0.05)
    R_gt, t_gt = jnp.asarray(sc.R_obj, jnp.float32), jnp.asarray(sc.t_obj, jnp.float32)
    sd0 = M.sample_sdf(grid, M.to_object_frame(gt.vertices[:1, cand], R_gt[:1], t_gt[:1]))[0]
    gt_contact = onp.asarray(cand)[onp.asarray(jnp.abs(sd0) < 0.005)]
    # Contact F1 (Eq. 3) on the FPS object points against the exact point-to-surface truth at frame 0.
    faces = onp.asarray(model.faces)
    cset = onp.zeros(model.num_vertices, bool)
    cset[onp.asarray(cand)] = True
    cfaces = faces[cset[faces].all(1)]
    obj_w = data.object_points @ st.R_world_obj.T + st.t_world_obj
    d = min_dist_to_faces(obj_w, gt.vertices[0], jnp.asarray(cfaces))
    truth = onp.asarray(d < 0.02)  # BEHAVE-style 2 cm proximity to the candidate surface
    pred = onp.asarray(data.contacts.mask) > 0
    tp = float((truth & pred).sum())
    f1 = 2 * tp / max(truth.sum() + pred.sum(), 1)
    print(f"case {name}: {time.perf_counter() - t0:.1f}s", flush=True)
    return dict(scene=sc, data=data, gt=gt, grid=grid, gt_contact=gt_contact, f1=f1, R_gt=R_gt, t_gt=t_gt,
                occluded=float(occ.mean()), n_pairs=int(pred.sum()), n_truth=int(truth.sum()))


def evaluate(case, model, cfg, params):
    data, gt, grid = case["data"], case["gt"], case["grid"]
    st = data.static
    P = jax.vmap(lambda g, b: full_pose(data, cfg, g, b))(params.global_orient, params.body_pose)
    est = posed_seq(model, st.betas, P, params.transl)
    R = jnp.einsum("lab,bc->lac", axis_angle_to_matrix(params.object_delta_rot), st.R_world_obj)
    t = params.object_translation
    used = onp.unique(onp.asarray(model.faces))
    pen = M.penetration_metrics(est.vertices[:, used], R, t, grid)
    pen_gt = M.penetration_metrics(gt.vertices[:, used], case["R_gt"], case["t_gt"], grid)
    return {
        "mpjpe_mm": M.mpjpe(est.joints[:, :22], gt.joints[:, :22]),
        "mpjpe_root_aligned_mm": M.mpjpe(est.joints[:, :22] - est.joints[:, :1], gt.joints[:, :22] - gt.joints[:, :1]),
        "accel_err_mm": M.acceleration_error(est.joints[:, :22], gt.joints[:, :22]),
        "contact_mm": M.surface_contact_distance(est.vertices, R, t, grid, case["gt_contact"]),
        "contact_gt_mm": M.surface_contact_distance(gt.vertices, case["R_gt"], case["t_gt"], grid, case["gt_contact"]),
        "max_pen_mm": pen["pen_max_mm"],
        "max_pen_gt_mm": pen_gt["pen_max_mm"],
        "pen_frames_pct": pen["pen_frames_pct"],
        "object_transl_err_mm": float(jnp.linalg.norm(t - case["t_gt"], axis=-1).mean() * 1000),
        **{k: v for k, v in M.jitter(est.joints[:, :22], 24.0).items()},
        **M.foot_skating(est.joints[:, [7, 8, 10, 11]]),
    }


_INIT_CACHE = {}


def optimise(update, init, data, weights, steps, K, key, seeds=1, cfg=None):
    keys = jnp.stack([jax.random.fold_in(key, i) for i in range(seeds)])
    if init not in _INIT_CACHE:  # jitted seed-vmapped init (the keypoint solve runs inside it)
        _INIT_CACHE[init] = jax.jit(jax.vmap(init, in_axes=(None, 0)))
    state = _INIT_CACHE[init](data, keys)
    phases = motion_phases(weights, cfg, steps) if cfg is not None else [(steps // K, weights)]
    for n_calls, w in phases:
        for _ in range(n_calls):
            state, losses, terms = update(state, data, w)
    return state, losses, terms


def time_run(update, init, data, weights, steps, K, key, seeds, reps=2):
    optimise(update, init, data, weights, K, K, key, seeds)  # warm-up / compile for this seed count
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        state, losses, _ = optimise(update, init, data, weights, steps, K, key, seeds)
        jax.block_until_ready(losses)
        ts.append(time.perf_counter() - t0)
    return float(onp.median(ts))


VARIANTS = {
    "full": {},
    "no_contact": {"contact": 0.0},
    "no_body": {"keypoints": 0.0},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--steps-per-call", type=int, default=100)
    ap.add_argument("--body", default="smplx-synthetic", choices=("smplx-synthetic", "procedural"))
    ap.add_argument("--object-points", type=int, default=2048)
    ap.add_argument("--pen-vertices", type=int, default=2048)
    ap.add_argument("--scenes", default="carry_box,push_box,sit_chair")
    ap.add_argument("--torch", action="store_true", help="time the eager PyTorch+smplx baseline")
    ap.add_argument("--torch-steps", type=int, default=10)
    ap.add_argument("--sweep", default=None, help="JSON list of weight dicts to try (tuning)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--variants", default="full,no_contact,no_body")
    ap.add_argument("--global-steps", type=int, default=200, help="first-stage steps (stages/motion.motion_phases)")
    ap.add_argument("--sigma-anneal-steps", type=int, default=400, help="Eq. 5 σ annealing (0: constant σ)")
    ap.add_argument("--no-keypoint-init", action="store_true", help="every frame at the static instance (paper)")
    ap.add_argument("--lbs", default="sparse", choices=("dense", "sparse"), help="subset skinning (MotionConfig.lbs)")
    ap.add_argument("--speed-other-lbs", action="store_true", help="also time 1 and 8 seeds with the other LBS form")
    ap.add_argument("--contact-target", default="static", choices=("static", "surface"))
    ap.add_argument("--pen-near-fraction", type=float, default=0.5)
    ap.add_argument("--pen-parts-allowance", action="store_true", help="prepare_motion_data(pen_parts_static_allowance=True)")
    ap.add_argument("--ab-surface", action="store_true",
                    help="also run the full variant with Eq. 6 surface targets (contact_target='surface')")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    model, op_ids, cand, smplx_path = load_body(args.body)
    key = jax.random.key(0)
    cases = {n: build_case(n, model, op_ids, cand, args.frames, jax.random.fold_in(key, i), args)
             for i, n in enumerate(args.scenes.split(","))}
    print(f"setup {time.perf_counter() - t_all:.1f}s", {n: (c["n_pairs"], c["n_truth"], round(c["f1"], 3), round(c["occluded"], 3)) for n, c in cases.items()}, flush=True)
    cfg = MotionConfig.for_model(model, steps_per_call=args.steps_per_call, global_steps=args.global_steps,
                                 sigma_anneal_steps=args.sigma_anneal_steps, init_translation=not args.no_keypoint_init,
                                 lbs=args.lbs)
    init, update_1 = make_motion_step(cfg)
    traces = {"n": 0}

    def counted(state, data, weights):
        traces["n"] += 1
        return jax.vmap(update_1, in_axes=(0, None, None))(state, data, weights)

    update = jax.jit(counted, donate_argnums=(0,))
    summary = {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "body": args.body,
        "frames": args.frames,
        "steps": args.steps,
        "global_steps": args.global_steps,
        "sigma_anneal_steps": args.sigma_anneal_steps,
        "keypoint_init": not args.no_keypoint_init,
        "lbs": args.lbs,
        "contact_target": args.contact_target,
        "pen_near_fraction": args.pen_near_fraction,
        "pen_parts_allowance": args.pen_parts_allowance,
        "object_points": args.object_points,
        "pen_vertices": args.pen_vertices,
        "scenes": list(cases),
        "contact_f1": float(onp.mean([c["f1"] for c in cases.values()])),
        "contact_f1_per_scene": {n: c["f1"] for n, c in cases.items()},
    }

    def dump():
        summary["compiles"] = traces["n"]
        summary["total_wall_s"] = time.perf_counter() - t_all
        (out / "motion.json").write_text(json.dumps(summary, indent=2) + "\n")

    if not args.no_speed:
        c = next(iter(cases.values()))
        w = MotionWeights.default()
        t1 = time_run(update, init, c["data"], w, args.steps, args.steps_per_call, jax.random.key(2), 1)
        t8 = time_run(update, init, c["data"], w, args.steps, args.steps_per_call, jax.random.key(2), 8)
        summary.update(gpu_s_1000x120=t1 * 1000.0 / args.steps, seed8_s=t8 * 1000.0 / args.steps, seed8_over_seed1=t8 / t1,
                       speed_frames=args.frames)
        print("speed", t1, t8, flush=True)
        dump()
        if args.speed_other_lbs:
            other = "dense" if cfg.lbs == "sparse" else "sparse"
            cfg_s = dataclasses.replace(cfg, lbs=other)
            init_s, upd_s = make_motion_step(cfg_s)
            update_s = jax.jit(jax.vmap(upd_s, in_axes=(0, None, None)), donate_argnums=(0,))
            s1 = time_run(update_s, init_s, c["data"], w, args.steps, args.steps_per_call, jax.random.key(2), 1)
            s8 = time_run(update_s, init_s, c["data"], w, args.steps, args.steps_per_call, jax.random.key(2), 8)
            summary.update({f"{other}_lbs_s_1000x120": s1 * 1000.0 / args.steps, f"{other}_lbs_seed8_s": s8 * 1000.0 / args.steps,
                            f"{other}_lbs_seed8_over_seed1": s8 / s1})
            print("speed", other, s1, s8, flush=True)
            dump()
    if args.torch:
        from motion_torch_baseline import time_torch_baseline

        c = next(iter(cases.values()))
        tt = time_torch_baseline(smplx_path, model, c["data"], cfg, MotionWeights.default(), steps=args.torch_steps)
        summary.update(torch_s_per_step=tt["s_per_step"], torch_s_1000=tt["s_per_step"] * 1000,
                       torch_loss_matches=tt.get("loss_rel_diff"), torch_device=tt["device"], torch_version=tt["torch"])
        if "gpu_s_1000x120" in summary:
            summary["speedup_vs_torch"] = summary["torch_s_1000"] / summary["gpu_s_1000x120"]
        print("torch", tt, flush=True)
        dump()
    results = {}
    variants = {k: VARIANTS[k] for k in args.variants.split(",")}
    if args.sweep:  # extra weight sets, same compiled program
        variants.update({f"sweep{i}": w for i, w in enumerate(json.loads(args.sweep))})
    for n, c in cases.items():  # quality of the initialisation alone (keypoint translation init or static)
        p0 = init(c["data"], jax.random.key(1)).params
        r0 = evaluate(c, model, cfg, p0)
        summary.setdefault("init", {})[n] = {k: r0[k] for k in ("mpjpe_mm", "object_transl_err_mm", "contact_mm")}
        print("init", n, summary["init"][n], flush=True)
    t0 = time.perf_counter()
    for vname, wd in variants.items():
        weights = MotionWeights.default(**wd)
        for n, c in cases.items():
            state, losses, terms = optimise(update, init, c["data"], weights, args.steps, args.steps_per_call, jax.random.key(1), cfg=cfg)
            r = evaluate(c, model, cfg, select_seed(state.params, 0))
            r["final_loss"] = float(losses[0, -1])
            results.setdefault(vname, {})[n] = r
            print(vname, n, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
            summary["per_scene"] = results
            dump()
    if args.ab_surface:  # Eq. 6 as printed: pull each pair to the sampled surface point
        for n, c in cases.items():
            d_s = c["data"].replace(contact_target=None)
            state, losses, terms = optimise(update, init, d_s, MotionWeights.default(), args.steps, args.steps_per_call,
                                            jax.random.key(1), cfg=cfg)
            r = evaluate(c, model, cfg, select_seed(state.params, 0))
            results.setdefault("full_surface_target", {})[n] = r
            print("full_surface_target", n, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
            summary["per_scene"] = results
            dump()
    t_variants = time.perf_counter() - t0
    mean = lambda v, k: float(onp.mean([results[v][n][k] for n in cases])) if v in results else None  # noqa: E731
    summary["variants_wall_s"] = t_variants
    summary.update(
        mpjpe_mm=mean("full", "mpjpe_mm"), contact_mm=mean("full", "contact_mm"),
        max_pen_mm=float(max(results["full"][n]["max_pen_mm"] for n in cases)) if "full" in results else None,
        accel_err_mm=mean("full", "accel_err_mm"),
        ablation_no_contact_contact_mm=mean("no_contact", "contact_mm"),
        ablation_no_contact_mpjpe_mm=mean("no_contact", "mpjpe_mm"),
        ablation_no_body_mpjpe_mm=mean("no_body", "mpjpe_mm"),
        ablation_no_body_contact_mm=mean("no_body", "contact_mm"),
    )
    dump()
    print(json.dumps({k: v for k, v in summary.items() if k != "per_scene"}, indent=1))


if __name__ == "__main__":
    main()
