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

Whole-stage run (`--stage-e2e`): the composition chain of stages/composition.py end to end on the GPU
with real-size, randomly initialised priors (IF-I-XL stage I, 4.3 B parameters, and the MVDream
SD-2.1 multi-view UNet + SD VAE; fp16; benchmarks/priors.py builds them; random text embeddings of the
real shapes stand in for T5 / OpenCLIP, whose weights are not on the machine). Default sizes (64-px SDS
renders, hash-grid NeRF 16 levels 2^19, 64+64 samples, 8 canonical views at 256 px, SMPL-X-layout
synthetic body with 10,475 vertices) but REDUCED iteration counts (`--iters`, stated in the output):
each sub-stage is timed on its first call (compile included) and per iteration on warm iterations, at
1 seed and at 4 seeds vmapped; the full-default chain (3 x 3000 SDS iterations, 500 anchor steps, 300
object-init steps) is extrapolated from the per-iteration medians. With random priors the renders
show no person, so the smoke policies apply (segmentation.on_empty=foreground,
detection.on_missing=rest_pose); Eq. 2 is then timed separately on the rest pose's projections.

Usage: python benchmarks/composition.py [--size 128] [--pose-fit-json PATH] [--out benchmarks/results/composition.json]
       python benchmarks/composition.py --stage-e2e [--tiny] [--iters 20] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

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


E2E_PROMPT = "a man | sitting on | a wooden chair"


def _peak_gb(torch) -> dict:
    out = {"torch_peak_allocated_gb": 0.0, "jax_peak_gb": 0.0}
    if torch.cuda.is_available():
        out["torch_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
    try:
        stats = jax.devices()[0].memory_stats() or {}
        out["jax_peak_gb"] = stats.get("peak_bytes_in_use", 0) / 2**30
    except Exception:  # noqa: BLE001 - CPU backends may not report
        pass
    out["peak_gb"] = out["torch_peak_allocated_gb"] + out["jax_peak_gb"]
    return out


def _e2e_priors(tiny: bool, cfg, device, dtype):
    """ComposePriors: the three prompt guidances sharing one IF and one MVDream prior, segmenter, detector."""
    import dataclasses as dc

    from anchorhoi_jax.priors.guidance import CombinedGuidance, IndependentViews
    from anchorhoi_jax.priors.sds import SDSGuidance
    from anchorhoi_jax.stages import composition as C

    p = C.parse_prompt(E2E_PROMPT)
    if tiny:
        return C.build_priors(p, cfg, device=device, dtype=dtype), {}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from priors import build_real_size  # benchmarks/priors.py

    if_prior = build_real_size("if", device, dtype)
    mv_prior = build_real_size("mvdream", device, dtype)
    g = cfg.guidance
    out = []
    for text in (p.inter, p.human, p.object):
        gi = IndependentViews(SDSGuidance(if_prior, text, dc.replace(g.sds, guidance_scale=g.if_scale)))
        gi.name = "if"
        gm = SDSGuidance(mv_prior, text, dc.replace(g.sds, guidance_scale=g.mvdream_scale, view_dependent_prompts=False))
        gm.name = "mvdream"
        out.append(CombinedGuidance([(gi, g.if_weight), (gm, g.mvdream_weight)]))
    pr = C.ComposePriors(inter=out[0], human=out[1], object=out[2], segmenter=C.make_segmenter(cfg.segmentation),
                         detector=C.make_detector(cfg.detection))
    info = {"if_unet_params": sum(q.numel() for q in if_prior.unet.parameters()),
            "mvdream_unet_params": sum(q.numel() for q in mv_prior.unet.parameters())}
    return pr, info


class _Stamps:
    """Callback recording a timestamp per iteration (the SDS stages synchronise at every hand-over)."""

    def __init__(self):
        self.t = [time.perf_counter()]

    def __call__(self, step, state, info):
        self.t.append(time.perf_counter())

    def per_iter_ms(self):
        d = onp.diff(onp.asarray(self.t))
        # The first interval holds the compile; the rest are warm iterations.
        return 1e3 * float(onp.median(d[1:])) if d.shape[0] > 1 else float("nan"), 1e3 * float(d[0])


def e2e_chain(seeds: int, cfg, priors, body, *, key: int = 0) -> dict:
    """One timed run of the whole chain at `seeds` seeds; every sub-stage's wall time and per-iteration median."""
    import torch

    from anchorhoi_jax.stages import avatar as av
    from anchorhoi_jax.stages import composition as C
    from anchorhoi_jax.stages import pose_fit as pf

    keys = jax.random.split(jax.random.key(key), seeds)
    r: dict = {"seeds": seeds}

    def timed(name, fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        jax.block_until_ready([x for x in jax.tree.leaves(out) if isinstance(x, jax.Array)])
        r[f"{name}_s"] = time.perf_counter() - t
        print(f"  [{seeds} seeds] {name}: {r[name + '_s']:.2f} s", flush=True)
        return out

    cb = _Stamps()
    coarse, _ = timed("coarse", C.run_coarse, keys, cfg, priors, callback=cb)
    r["coarse_ms_per_iter"], r["coarse_first_iter_ms"] = cb.per_iter_ms()
    renders, mask_info = timed("masks", C.run_masks, coarse.params, cfg, priors)
    t = time.perf_counter()
    C.coarse_stage.render_canonical(coarse.params, cfg.coarse, C.canonical_cameras(cfg), None,
                                    chunk=cfg.render_chunk)[1].block_until_ready()
    r["canonical_render_warm_s"] = time.perf_counter() - t
    cb = _Stamps()
    anchor, _ = timed("anchor", C.run_anchor, keys, coarse.params, renders, cfg, callback=cb)
    r["anchor_ms_per_call"], _ = cb.per_iter_ms()
    cb = _Stamps()
    avatar, _ = timed("avatar", C.run_avatar, keys, body, cfg, priors, callback=cb)
    r["avatar_ms_per_iter"], r["avatar_first_iter_ms"] = cb.per_iter_ms()
    betas = jax.vmap(lambda p: av.avatar_betas(p, body))(avatar.params)
    t = time.perf_counter()
    _, kp, conf, _ = C.detect_skeletons(anchor.params, cfg, priors)
    r["detect_s"] = time.perf_counter() - t
    pose, pose_info = timed("pose", C.run_pose, anchor.params, body, betas, cfg, priors)
    # Eq. 2 on synthetic skeletons (the rest pose's projections, all seeds) when random priors leave none.
    setup, pbody = pf.make_setup(body)
    cams = C.canonical_cameras(cfg)
    V = cams.K.shape[0]
    uv = jax.vmap(jax.vmap(pf.project, in_axes=(0, 0, None)), in_axes=(None, None, 0))(
        cams.K, cams.T_cam_world, pose.keypoints3d)[0]
    data = pf.MultiViewKeypoints(keypoints=uv, confidence=jnp.ones(uv.shape[:-1]),
                                 K=jnp.broadcast_to(cams.K, (seeds, V, 3, 3)),
                                 T_cam_world=jnp.broadcast_to(cams.T_cam_world, (seeds, V, 4, 4)))
    fit = C._pose_fn(setup, cfg.pose)
    centers = pose.params.transl
    for i in range(2):
        t = time.perf_counter()
        out = fit(pbody, betas, data, centers, pf.PoseFitWeights.default())
        jax.block_until_ready(out)
        r["pose_fit_eq2_first_s" if i == 0 else "pose_fit_eq2_warm_s"] = time.perf_counter() - t
    human = timed("posed_avatars", C.posed_avatars, avatar.params, body, pose.params)
    cb = _Stamps()
    r["object_init_steps"] = cfg.object.init_steps
    t = time.perf_counter()
    obj_state = C.object_stage.init_seeds(jax.vmap(lambda k: jax.random.fold_in(k, 3))(keys), coarse.params,
                                          cams, renders.rgb, renders.alpha, renders.object_mask, cfg.object)
    jax.block_until_ready(obj_state.params)
    r["object_init_s"] = time.perf_counter() - t
    obj, _ = timed("object", C.run_object, keys, coarse.params, renders, human, cfg, priors, state=obj_state,
                   callback=cb)
    r["object_ms_per_iter"], r["object_first_iter_ms"] = cb.per_iter_ms()
    t = time.perf_counter()
    for s in range(seeds):
        C.object_stage.object_mesh(jax.tree.map(lambda a: a[s], obj.state.params), cfg.object)
    r["object_mesh_s_per_seed"] = (time.perf_counter() - t) / seeds
    hoi = timed("assemble", C.assemble, body, avatar.params, pose, obj, [{**m, **p} for m, p in zip(mask_info, pose_info)])
    r["policies"] = [dict(h) for h in hoi.info]
    r.update(_peak_gb(torch))
    return r, hoi


def extrapolate(r: dict, cfg_default) -> float:
    """Minutes of the whole chain at default iteration counts from a run's warm per-iteration medians."""
    c, o, av, an = cfg_default.coarse, cfg_default.object, cfg_default.avatar, cfg_default.anchor
    s = (c.steps * r["coarse_ms_per_iter"] + av.steps * r["avatar_ms_per_iter"] + o.steps * r["object_ms_per_iter"]
         + an.steps / an.steps_per_call * r["anchor_ms_per_call"]) / 1e3
    s += r["canonical_render_warm_s"] * 2 + r["detect_s"] + r["pose_fit_eq2_warm_s"] + r["object_mesh_s_per_seed"] * r["seeds"]
    # The init's alignment steps run in one lax.scan call (compile included in the measurement).
    s += r["object_init_s"] * o.init_steps / max(r["object_init_steps"], 1)
    return s / 60.0


def stage_e2e(args) -> dict:
    import diffusers
    import torch

    from anchorhoi_jax.stages import composition as C

    T0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    n = args.iters
    overrides = {"coarse": {"steps": n, "log_every": 1}, "avatar": {"steps": n, "log_every": 1},
                 "object": {"steps": n, "log_every": 1, "init_steps": args.object_init_steps},
                 "anchor": {"steps": args.anchor_steps, "steps_per_call": 100 if not args.tiny else 2},
                 "segmentation": {"on_empty": "foreground"}, "detection": {"on_missing": "rest_pose"}}
    from anchorhoi_jax.io.config import _deep_merge, from_dict, to_dict

    if args.tiny:
        cfg = C.smoke_config(**overrides)
        from tests.composition.test_avatar import mesh_body

        body, body_name = mesh_body(), "tests' box-skeleton body (SMPL-X joint names)"
    else:
        cfg = from_dict(C.ComposeConfig, overrides)  # the real-size random priors are built below, not from cfg
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        from anchorhoi_jax.body.smplx import load_smplx
        from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx

        d = os.path.join(tempfile.gettempdir(), "smplx_synthetic")
        os.makedirs(d, exist_ok=True)
        path = write_synthetic_smplx(os.path.join(d, "SMPLX_NEUTRAL.npz"))
        body = load_smplx(path, num_betas=10, num_expression=10)[0]
        body_name = "synthetic SMPL-X layout (body/smplx_synthetic.py), 10,475 vertices, 20,908 faces, 55 joints"
    res = dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
               versions=dict(jax=jax.__version__, torch=torch.__version__, diffusers=diffusers.__version__,
                             python=sys.version.split()[0]),
               command="python benchmarks/composition.py " + " ".join(sys.argv[1:]), body=body_name,
               reduced_iterations=dict(coarse=n, avatar=n, object=n, anchor=args.anchor_steps,
                                       object_init=args.object_init_steps,
                                       pose_fit=f"{cfg.pose.global_steps}+{cfg.pose.pose_steps} (default)"),
               detection="mediapipe 0.10.14 BlazePose (model_complexity 1) on CPU, carried as a wheel",
               segmentation="mediapipe selfie segmentation on CPU",
               config=to_dict(cfg))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    priors, info = _e2e_priors(args.tiny, cfg, device, dtype)
    res["build_priors_s"] = time.perf_counter() - t
    res.update(info)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def dump():
        res["total_wall_s"] = time.perf_counter() - T0
        (out_dir / "composition_e2e.json").write_text(json.dumps(res, indent=2, default=str))

    for S in args.seeds:
        if time.perf_counter() - T0 > args.budget_s:
            res[f"seed{S}_skipped"] = f"wall budget {args.budget_s} s reached"
            break
        gc.collect()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            r, hoi = e2e_chain(S, cfg, priors, body, key=S)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at 4 seeds: recorded
            res[f"seed{S}_error"] = repr(e)[:800]
            print(f"seed{S} failed: {e!r}"[:800], flush=True)
            dump()
            continue
        r["full_chain_min_extrapolated"] = extrapolate(r, C.ComposeConfig())
        res[f"seed{S}"] = r
        print(json.dumps({k: v for k, v in r.items() if k != "policies"}), flush=True)
        dump()
        if S == args.seeds[0]:
            t = time.perf_counter()
            try:
                C.write_static(out_dir, hoi, 0, body, cfg=C.OutputConfig() if not args.tiny else cfg.output)
                res["write_static_s"] = time.perf_counter() - t
                res["static_files"] = sorted(p.name for p in (out_dir / "static").iterdir())
            except Exception as e:  # noqa: BLE001 - recorded, the seed-4 run still goes ahead
                res["write_static_error"] = repr(e)[:500]
            dump()
    if "seed1" in res and "seed4" in res:
        a, b = res["seed1"], res["seed4"]
        res["seeds4_over_seed1"] = b["full_chain_min_extrapolated"] / a["full_chain_min_extrapolated"]
        res["seeds4_over_seed1_per_iter"] = {k: b[k] / a[k] for k in ("coarse_ms_per_iter", "avatar_ms_per_iter",
                                                                      "object_ms_per_iter", "anchor_ms_per_call")}
    res["peak_gpu_gb"] = max([res[k]["peak_gb"] for k in ("seed1", "seed4") if k in res] or [0.0])
    dump()
    return res


def merge_e2e(e2e_path: str, out_path: str, coarse_json: str) -> dict:
    """Merge the e2e results into composition.json, keeping its pose-fit / anchor keys."""
    with open(e2e_path) as fh:
        e = json.load(fh)
    out = {}
    if os.path.exists(out_path):
        with open(out_path) as fh:
            out = json.load(fh)
    out["stage_e2e"] = e
    for k in ("seeds4_over_seed1", "peak_gpu_gb"):
        if k in e:
            out[k] = e[k]
    if "seed1" in e:
        s1 = e["seed1"]
        out["e2e_substage_s_seed1"] = {k[:-2]: v for k, v in s1.items() if k.endswith("_s")}
        out["e2e_ms_per_iter_seed1"] = {k: s1[k] for k in ("coarse_ms_per_iter", "avatar_ms_per_iter",
                                                           "object_ms_per_iter", "anchor_ms_per_call")}
        out["composition_full_min_seed1_extrapolated"] = s1["full_chain_min_extrapolated"]
    if "seed4" in e:
        out["composition_full_min_seed4_extrapolated"] = e["seed4"]["full_chain_min_extrapolated"]
    if os.path.exists(coarse_json):
        with open(coarse_json) as fh:
            c = json.load(fh)
        if "coarse_3000_min" in c:
            out["coarse_3000_min"] = c["coarse_3000_min"]
            out["coarse_3000_min_source"] = os.path.relpath(coarse_json)
    with open(out_path, "w") as fh:
        json.dump(out, fh, indent=2)
    return out


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
    ap.add_argument("--stage-e2e", action="store_true", help="time the whole composition chain (see the docstring)")
    ap.add_argument("--tiny", action="store_true", help="with --stage-e2e: tiny priors and sizes (CPU check)")
    ap.add_argument("--iters", type=int, default=20, help="--stage-e2e: SDS iterations of coarse/avatar/object")
    ap.add_argument("--anchor-steps-e2e", dest="anchor_steps", type=int, default=200)
    ap.add_argument("--object-init-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--out-dir", default="/tmp/composition_e2e")
    ap.add_argument("--merge-e2e", default=None, help="merge this composition_e2e.json into --out and exit")
    ap.add_argument("--coarse-json", default="benchmarks/results/coarse.json")
    args = ap.parse_args()
    if args.merge_e2e:
        print(json.dumps(merge_e2e(args.merge_e2e, args.out, args.coarse_json), indent=2)[:3000])
        return
    if args.stage_e2e:
        res = stage_e2e(args)
        print(json.dumps({k: res.get(k) for k in ("seeds4_over_seed1", "peak_gpu_gb", "total_wall_s")}), flush=True)
        return
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
