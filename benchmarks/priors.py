"""Priors benchmarks: DLPack bridge, SDS step cost with real-size random UNets, keypoint detector.

    python benchmarks/priors.py gpu --out DIR        # H100: bridge races/pointers, IF-I-XL / SD-2.1 / MVDream SDS steps
    python benchmarks/priors.py gpu --tiny --out DIR # same code path, tiny models (CPU smoke run)
    python benchmarks/priors.py detector --out DIR   # CPU: mediapipe on Anny renders, 20 poses x 4 views
    python benchmarks/priors.py analytic --out DIR   # CPU: SDS through the bridge on the analytic Gaussian prior
    python benchmarks/priors.py merge --out DIR      # -> DIR/priors.json (headline keys + details)

Results: DIR/priors_gpu.json, DIR/priors_detector.json (merged into benchmarks/results/priors.json).
As a CLI entry point this script (not the library) turns XLA preallocation off so torch and JAX
share the GPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Less fragmentation in torch's caching allocator, so reserved memory tracks what is allocated.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# =============================================================================================
# GPU: bridge + SDS steps
# =============================================================================================


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bridge_race_check(iters: int, shape=(32, 4, 256, 256, 3)) -> dict:
    """Fresh random data every iteration, torch output poisoned (NaN) before the write, pointers compared."""
    import torch

    from anchorhoi_jax.priors.bridge import jax_to_torch, torch_to_jax

    gen = jax.jit(lambda k: jax.random.normal(k, shape) * 3.0 + 1.0)
    check = jax.jit(lambda y, x: jnp.max(jnp.abs(y - (2.0 * x + 1.0))))
    same_ptr_j2t = same_ptr_t2j = 0
    worst = 0.0
    for i in range(iters):
        x = gen(jax.random.key(i))
        t = jax_to_torch(x)
        same_ptr_j2t += int(t.data_ptr() == x.unsafe_buffer_pointer())
        out = torch.full_like(t, float("nan"))
        torch.mul(t, 2.0, out=out).add_(1.0)
        y = torch_to_jax(out)
        same_ptr_t2j += int(y.unsafe_buffer_pointer() == out.data_ptr())
        err = float(check(y, x))
        worst = max(worst, err if err == err else float("inf"))
    # Hand-over latency for one SDS-sized batch (8 seeds x 4 views x 64 x 64 x 3), zero copy vs host copy.
    x = gen(jax.random.key(0))[:, :, :64, :64]
    x = jax.block_until_ready(x + 0.0)

    def zero_copy():
        t = jax_to_torch(x)
        y = torch_to_jax(t.mul(1.0))
        return y

    def host_copy():
        t = torch.from_numpy(onp.array(x)).to(t_dev)
        y = jnp.asarray(t.mul(1.0).cpu().numpy())
        return y

    t_dev = "cuda" if torch.cuda.is_available() else "cpu"
    res = {}
    for name, f in (("zero_copy", zero_copy), ("host_copy", host_copy)):
        for _ in range(5):
            jax.block_until_ready(f())
        ts = []
        for _ in range(50):
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            ts.append(time.perf_counter() - t0)
        res[f"handover_ms_{name}"] = 1e3 * statistics.median(ts)
    return dict(iterations=iters, shape=list(shape), pointer_equal_jax_to_torch=same_ptr_j2t,
                pointer_equal_torch_to_jax=same_ptr_t2j, max_abs_error=worst, **res)


def make_field_render(height: int, width: int, views: int, hidden: int = 64, n_freq: int = 8):
    """A small differentiable JAX 'renderer': per-seed Fourier-feature MLP colour field over pixels and views."""

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        d_in = 4 * n_freq + 8
        return {
            "w1": jax.random.normal(k1, (d_in, hidden)) / jnp.sqrt(d_in),
            "w2": jax.random.normal(k2, (hidden, hidden)) / jnp.sqrt(hidden),
            "w3": jax.random.normal(k3, (hidden, 3)) / jnp.sqrt(hidden),
            "view": jnp.zeros((views, 8)),
        }

    v, u = jnp.meshgrid(jnp.linspace(-1, 1, height), jnp.linspace(-1, 1, width), indexing="ij")
    uv = jnp.stack([u, v], -1)
    freqs = 2.0 ** jnp.arange(n_freq)
    enc = jnp.concatenate([jnp.sin(uv[..., None] * freqs).reshape(height, width, -1),
                           jnp.cos(uv[..., None] * freqs).reshape(height, width, -1)], -1)

    def render_one(p, view_idx):
        ve = jnp.broadcast_to(p["view"][view_idx], (height, width, 8))
        h = jax.nn.relu(jnp.concatenate([enc, ve], -1) @ p["w1"])
        h = jax.nn.relu(h @ p["w2"])
        return jax.nn.sigmoid(h @ p["w3"])

    def render(params, batch):  # params: per-seed leaves (S, ...); -> (S, V, H, W, 3)
        per_seed = lambda p: jax.vmap(lambda vi: render_one(p, vi))(jnp.arange(views))  # noqa: E731
        return jax.vmap(per_seed)(params)

    return init, render


def _views(n_seeds: int, n_views: int, with_cameras: bool):
    from anchorhoi_jax.geometry.cameras import look_at
    from anchorhoi_jax.priors.bridge import ViewInfo

    az = onp.tile(onp.arange(n_views) * 360.0 / n_views, n_seeds)
    el = onp.full_like(az, 15.0)
    cams = None
    if with_cameras:
        eyes = onp.stack([2 * onp.cos(onp.deg2rad(el)) * onp.sin(onp.deg2rad(az)), 2 * onp.sin(onp.deg2rad(el)),
                          2 * onp.cos(onp.deg2rad(el)) * onp.cos(onp.deg2rad(az))], -1)
        T = onp.stack([onp.asarray(look_at(e, onp.zeros(3))) for e in eyes])
        cams = onp.linalg.inv(T)
    return ViewInfo(az, el, camera_to_world=cams, views_per_sample=n_views)


def time_sds(prior, *, seeds: int, views: int, render_hw: int, iters: int, warmup: int) -> dict:
    """Median ms of the split SDS step and of its phases; bridge = layout/range hand-over both ways."""
    import optax
    import torch

    from anchorhoi_jax.priors.bridge import images_to_model, make_sds_step, model_grad_to_images, torch_seed_from_key
    from anchorhoi_jax.priors.sds import SDSConfig, SDSGuidance

    init_p, render = make_field_render(render_hw, render_hw, views)
    params = jax.vmap(init_p)(jax.random.split(jax.random.key(0), seeds))
    guidance = SDSGuidance(prior, "a person sitting on a chair", SDSConfig(guidance_scale=20.0))
    init, step = make_sds_step(render, optax.adam(1e-2), guidance)
    state = init(params, jax.random.key(1))
    vi = _views(seeds, views, with_cameras=True)

    for _ in range(warmup):
        state, _ = step(state, None, vi)
    jax.block_until_ready(state.params)
    _sync()
    full = []
    for _ in range(iters):
        t0 = time.perf_counter()
        state, info = step(state, None, vi)
        jax.block_until_ready(state.params)
        full.append(time.perf_counter() - t0)

    # Phase timing with the same functions the step uses, synchronising at every boundary.
    ph = {k: [] for k in ("forward", "to_torch", "guidance", "to_jax", "update")}
    for _ in range(iters):
        t0 = time.perf_counter()
        images, pullback, _aux = step.forward(state.params, None)
        jax.block_until_ready(images)
        t1 = time.perf_counter()
        x_model = images_to_model(images, value_range=guidance.value_range, dtype=guidance.dtype)
        _sync()
        t2 = time.perf_counter()
        gen = torch.Generator(device=x_model.device).manual_seed(torch_seed_from_key(state.key))
        g, _ = guidance(x_model, views=vi, step=int(state.step), generator=gen)
        _sync()
        t3 = time.perf_counter()
        gj = model_grad_to_images(g, images.shape[:-3], value_range=guidance.value_range)
        jax.block_until_ready(gj)
        t4 = time.perf_counter()
        state, _ = step.update(state, None, pullback, gj)
        jax.block_until_ready(state.params)
        t5 = time.perf_counter()
        for k, a, b in (("forward", t0, t1), ("to_torch", t1, t2), ("guidance", t2, t3), ("to_jax", t3, t4),
                        ("update", t4, t5)):
            ph[k].append(b - a)
    med = {k: 1e3 * statistics.median(v) for k, v in ph.items()}
    step_ms = 1e3 * statistics.median(full)
    bridge_ms = med["to_torch"] + med["to_jax"]
    return dict(seeds=seeds, views=views, batch=seeds * views, render_hw=render_hw, step_ms=step_ms,
                phases_ms=med, bridge_ms=bridge_ms, bridge_overhead_frac=bridge_ms / step_ms,
                finite_grad=bool(onp.isfinite(info["grad_norm"])))


def _peak_gb(torch_mod) -> dict:
    out = {}
    if torch_mod.cuda.is_available():
        out["torch_peak_allocated_gb"] = torch_mod.cuda.max_memory_allocated() / 2**30
        out["torch_peak_reserved_gb"] = torch_mod.cuda.max_memory_reserved() / 2**30
        try:
            stats = jax.devices()[0].memory_stats() or {}
            out["jax_peak_gb"] = stats.get("peak_bytes_in_use", 0) / 2**30
        except Exception:  # noqa: BLE001
            out["jax_peak_gb"] = 0.0
        free, total = torch_mod.cuda.mem_get_info()
        out["device_used_now_gb"] = (total - free) / 2**30
        # Peak memory in use by both frameworks (torch allocator's peak + XLA's peak); the reserved
        # figure (allocated + allocator cache) is reported beside it.
        out["peak_gb"] = out["torch_peak_allocated_gb"] + out["jax_peak_gb"]
        out["peak_reserved_gb"] = out["torch_peak_reserved_gb"] + out["jax_peak_gb"]
    return out


def _random_text(prior, length: int, dim: int):
    """Stand-in for the (freed) text encoder: random embeddings of the real shape."""
    import torch

    def embed(prompts):
        g = torch.Generator(device="cpu").manual_seed(len(prompts))
        return (torch.randn(len(prompts), length, dim, generator=g) * 0.1).to(prior.device, prior.dtype)

    prior.embed = embed
    prior.text_encoder = None


def build_real_size(kind: str, device, dtype):
    """Real-size, randomly initialised priors (same compute as the released weights)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from anchorhoi_jax.priors.image import IF_I_XL_UNET_CONFIG, SD21_BASE_UNET_CONFIG, IFPrior, SDPrior
    from anchorhoi_jax.priors.mvdream import MultiViewUNet, MVDreamPrior, _Sched

    torch.manual_seed(0)
    with torch.device(device):
        if kind == "if":
            unet = UNet2DConditionModel(**IF_I_XL_UNET_CONFIG).to(dtype)
            sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range")
            prior = IFPrior(unet, sched, None, None, resolution=64, max_length=77, device=device, dtype=dtype)
            _random_text(prior, 77, 4096)
            return prior
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2, sample_size=512).to(dtype)
        sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
        if kind == "sd":
            unet = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG).to(dtype)
            prior = SDPrior(unet, vae, sched, None, None, resolution=512, device=device, dtype=dtype)
        else:
            unet = MultiViewUNet().to(dtype)
            prior = MVDreamPrior(unet, vae, _Sched(sched.alphas_cumprod, "epsilon"), None, None, resolution=256,
                                 device=device, dtype=dtype)
    _random_text(prior, 77, 1024)
    return prior


def build_tiny(kind: str):
    from anchorhoi_jax.priors.image import make_tiny_if, make_tiny_sd
    from anchorhoi_jax.priors.mvdream import make_tiny_mvdream

    return {"if": make_tiny_if, "sd": make_tiny_sd, "mvdream": make_tiny_mvdream}[kind]()


def run_gpu(args) -> dict:
    import diffusers
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    res = dict(device=(torch.cuda.get_device_name() if device == "cuda" else "cpu"), jax=jax.__version__,
               jax_backend=jax.default_backend(), torch=torch.__version__, diffusers=diffusers.__version__,
               tiny=args.tiny)
    t0 = time.time()
    res["bridge"] = bridge_race_check(args.race_iters if not args.tiny else 5,
                                      shape=(32, 4, 256, 256, 3) if not args.tiny else (2, 4, 16, 16, 3))
    print("bridge", res["bridge"], f"{time.time() - t0:.1f}s", flush=True)
    render_hw = {"if": 64, "sd": 256, "mvdream": 256}
    for kind in args.models:
        t0 = time.time()
        if device == "cuda":
            torch.cuda.empty_cache()
        prior = build_tiny(kind) if args.tiny else build_real_size(kind, device, dtype)
        if not args.tiny:
            prior.free_text_encoder()
        n_params = sum(p.numel() for p in prior.unet.parameters())
        print(kind, "built", f"{n_params / 1e9:.3f} B params", f"{time.time() - t0:.1f}s", flush=True)
        out = {"unet_params": n_params}
        for seeds in args.seeds:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            r = time_sds(prior, seeds=seeds, views=4, render_hw=render_hw[kind] if not args.tiny else 16,
                         iters=args.iters, warmup=args.warmup)
            r.update(_peak_gb(torch))
            out[f"s{seeds}"] = r
            print(kind, seeds, json.dumps(r), flush=True)
        res[kind] = out
        del prior
        import gc

        gc.collect()
    if "if" in res:
        res["sds_ms_if_b4"] = res["if"]["s1"]["step_ms"]
        res["sds_ms_if_b32"] = res["if"].get("s8", {}).get("step_ms")
        res["bridge_overhead_frac_if"] = res["if"]["s1"]["bridge_overhead_frac"]
        res["bridge_overhead_frac_if_b32"] = res["if"].get("s8", {}).get("bridge_overhead_frac")
        res["peak_gb_if"] = max(v.get("peak_gb", 0.0) for k, v in res["if"].items() if k.startswith("s"))
    if "sd" in res:
        res["sds_ms_sd_b4"] = res["sd"]["s1"]["step_ms"]
        res["sds_ms_sd_b32"] = res["sd"].get("s8", {}).get("step_ms")
        res["bridge_overhead_frac_sd"] = res["sd"]["s1"]["bridge_overhead_frac"]
        res["peak_gb_sd"] = max(v.get("peak_gb", 0.0) for k, v in res["sd"].items() if k.startswith("s"))
    if "mvdream" in res:
        res["sds_ms_mvdream_b4"] = res["mvdream"]["s1"]["step_ms"]
        res["sds_ms_mvdream_b32"] = res["mvdream"].get("s8", {}).get("step_ms")
    return res


# =============================================================================================
# CPU: detector on Anny renders
# =============================================================================================


# Random-pose ranges (radians, axis-angle magnitude, random axis in the bone's rest frame).
POSE_RANGES = {
    "upperarm01.L": 1.2, "upperarm01.R": 1.2, "lowerarm01.L": 1.2, "lowerarm01.R": 1.2,
    "upperleg01.L": 0.6, "upperleg01.R": 0.6, "lowerleg01.L": 0.9, "lowerleg01.R": 0.9,
    "spine01": 0.2, "spine02": 0.2, "spine03": 0.2, "neck01": 0.3, "head": 0.3,
}


def _albedo(v: onp.ndarray) -> onp.ndarray:
    """Simple clothing-like vertex colours by height: trousers, shirt, skin (head/hands)."""
    h = (v[:, 1] - v[:, 1].min()) / (v[:, 1].max() - v[:, 1].min())
    legs = 1 / (1 + onp.exp((h - 0.47) / 0.01))
    head = 1 / (1 + onp.exp(-(h - 0.84) / 0.01))
    shirt = onp.clip(1 - legs - head, 0, 1)
    c = legs[:, None] * [0.22, 0.24, 0.35] + shirt[:, None] * [0.75, 0.30, 0.20] + head[:, None] * [0.85, 0.65, 0.52]
    return c.astype(onp.float32)


def render_anny_dataset(n_poses: int, n_views: int, image_size: int, seed: int):
    """Anny in random poses, rendered by the project's rasterizer from an orbit of views.

    Returns images (P, V, H, W, 3) in [0, 1], GT BODY-18 pixels (P, V, 18, 2) (Anny's COCO regressor,
    neck = mid-shoulders, projected with the same cameras), azimuths (V,).
    """
    from anchorhoi_jax.body.anny import anny_keypoints, load_anny
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.geometry.cameras import orbit_cameras, project
    from anchorhoi_jax.priors.detect import to_openpose18
    from anchorhoi_jax.render.raster import rasterize_views

    body = load_anny()
    model = body.model
    names = list(model.joint_names)
    rng = onp.random.default_rng(seed)
    faces = model.faces
    pose_fn = jax.jit(lambda p: pose(model, p))
    kp_fn = jax.jit(lambda v: anny_keypoints(body, v))
    fov = 40.0

    @jax.jit
    def render(verts, colors, cams):
        out = rasterize_views(verts, faces, colors, cams, mode="hard", background=1.0)
        # Headlight Lambert shading: light along each camera's viewing direction.
        fwd = cams.T_cam_world[:, 2, :3]  # camera z axis in world
        lam = jnp.clip(-jnp.einsum("vhwc,vc->vhw", out["normal"], fwd), 0.0, 1.0)
        shade = (0.35 + 0.65 * lam)[..., None]
        rgb = out["rgb"] * shade * out["alpha"][..., None] + (1 - out["alpha"][..., None])
        return rgb

    images, gts = [], []
    for _ in range(n_poses):
        p = onp.zeros((model.num_joints, 3), onp.float32)
        for n, r in POSE_RANGES.items():
            if n in names:
                axis = rng.normal(size=3)
                p[names.index(n)] = axis / onp.linalg.norm(axis) * rng.uniform(0.2, 1.0) * r
        params = BodyParams.zeros(model).replace(pose=jnp.asarray(p))
        posed = pose_fn(params)
        v = onp.asarray(posed.vertices)
        lo, hi = v.min(0), v.max(0)
        centre = 0.5 * (lo + hi)
        extent = float(max(hi[1] - lo[1], hi[0] - lo[0], hi[2] - lo[2]))
        dist = 0.5 * extent / onp.tan(onp.deg2rad(fov / 2)) / 0.8 + 0.5 * extent
        cams = orbit_cameras(n_views, height=image_size, width=image_size, target=tuple(centre), distance=dist,
                             elevation_deg=10.0, fov_deg=fov)
        rgb = render(posed.vertices, jnp.asarray(_albedo(v)), cams)
        kp3 = onp.asarray(kp_fn(posed.vertices))[:17]
        uv = onp.stack([onp.asarray(project(cams.K[i], cams.T_cam_world[i], jnp.asarray(kp3))[0]) for i in range(n_views)])
        gt, _ = to_openpose18(uv, onp.ones(uv.shape[:-1]))
        images.append(onp.asarray(rgb))
        gts.append(gt)
    az = 360.0 * onp.arange(n_views) / n_views
    return onp.stack(images), onp.stack(gts), az


def detector_benchmark(n_poses: int = 20, n_views: int = 4, image_size: int = 512, seed: int = 0,
                       save_examples: Path | None = None) -> dict:
    """Median 2D error of mediapipe BlazePose -> BODY-18 vs projected Anny joints, and detection rate."""
    import mediapipe

    from anchorhoi_jax.priors.detect import OPENPOSE18_NAMES, MediaPipePoseDetector

    t0 = time.time()
    images, gts, az = render_anny_dataset(n_poses, n_views, image_size, seed)
    t_render = time.time() - t0
    det = MediaPipePoseDetector(model_complexity=1)
    t0 = time.time()
    flat = images.reshape(-1, image_size, image_size, 3)
    kp, conf = det(flat)
    t_det = time.time() - t0
    det.close()
    kp = kp.reshape(n_poses, n_views, 18, 2)
    conf = conf.reshape(n_poses, n_views, 18)
    detected = conf.max(-1) > 0
    err = onp.linalg.norm(kp - gts, axis=-1)  # (P, V, 18)
    # Left/right-swapped reading (a back view seen as a front view): report it separately.
    swap = onp.array([0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16])
    err_swap = onp.linalg.norm(kp[..., swap, :] - gts, axis=-1)
    e = err[detected]
    per_view = {f"az{int(a)}": dict(rate=float(detected[:, i].mean()),
                                    median_px=float(onp.median(err[:, i][detected[:, i]])) if detected[:, i].any() else None,
                                    median_px_lr_swapped=float(onp.median(err_swap[:, i][detected[:, i]]))
                                    if detected[:, i].any() else None)
                for i, a in enumerate(az)}
    per_kp = {n: float(onp.median(e[:, j])) for j, n in enumerate(OPENPOSE18_NAMES)} if e.size else {}
    if save_examples is not None:
        save_examples.parent.mkdir(parents=True, exist_ok=True)
        onp.savez_compressed(save_examples, images=(images[:2] * 255).astype(onp.uint8), gt=gts[:2], kp=kp[:2],
                             conf=conf[:2])
    return dict(
        device="cpu", mediapipe=mediapipe.__version__, detector="mediapipe BlazePose full (model_complexity=1, in the wheel)",
        renderer="anchorhoi_jax.render.raster (hard, headlight Lambert)", n_poses=n_poses, n_views=n_views,
        image_size=image_size, detector_rate=float(detected.mean()),
        detector_median_px_err=float(onp.median(e)) if e.size else None,
        detector_median_frac_of_image=float(onp.median(e)) / image_size if e.size else None,
        detector_pck_5pct=float((e < 0.05 * image_size).mean()) if e.size else None,
        per_view=per_view, per_keypoint_median_px=per_kp, render_s=t_render, detect_s_per_image=t_det / flat.shape[0],
    )


def run_detector(args) -> dict:
    return detector_benchmark(n_poses=args.poses, n_views=4, image_size=args.size, seed=0,
                              save_examples=args.out / "priors_detector_examples.npz")


def run_analytic(args) -> dict:
    """SDS through the full bridge on the analytic Gaussian prior: error of the image to the data mean."""
    import optax
    import torch

    from anchorhoi_jax.priors.bridge import ViewInfo, make_sds_step
    from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance

    torch.manual_seed(0)
    size, steps = 32, args.analytic_steps
    mu = torch.rand(3, size, size) * 1.6 - 0.8  # model range [-1, 1]
    out = {}
    for scale, sigma in ((1.0, 0.1), (1.0, 0.5), (3.0, 0.1)):
        prior = GaussianPrior(mu, sigma, mu_uncond=torch.zeros_like(mu), sigma_uncond=sigma)
        cfg = SDSConfig(guidance_scale=scale, view_dependent_prompts=False, t_range_end=(0.02, 0.5),
                        anneal_steps=steps, anneal="linear")
        guidance = SDSGuidance(prior, "p", cfg)

        def render(logits, batch):
            return jnp.broadcast_to(jax.nn.sigmoid(logits), (1, 4, size, size, 3))

        init, step = make_sds_step(render, optax.adam(optax.cosine_decay_schedule(0.05, steps)), guidance)
        state = init(jnp.zeros((size, size, 3)), jax.random.key(0))
        views = ViewInfo(onp.array([0.0, 90.0, 180.0, 270.0]), onp.zeros(4), views_per_sample=4)
        target = (scale * mu).clamp(-0.999, 0.999).numpy().transpose(1, 2, 0)  # CFG fixed point, mu_u = 0
        err0 = float(onp.abs(0.0 - target).mean())
        t0 = time.time()
        for _ in range(steps):
            state, info = step(state, None, views)
        x = onp.asarray(2 * jax.nn.sigmoid(state.params) - 1)
        e = onp.abs(x - target)
        out[f"cfg{scale:g}_sigma{sigma:g}"] = dict(steps=steps, initial_mean_abs_err=err0, mean_abs_err=float(e.mean()),
                                                   max_abs_err=float(e.max()), seconds=time.time() - t0)
        print(out)
    return dict(device="cpu", image=[size, size, 3], views=4, results=out,
                sds_analytic_mean_abs_err=out["cfg1_sigma0.1"]["mean_abs_err"])


H100_FP16_DENSE_FLOPS = 989e12  # H100 SXM, dense fp16/bf16 tensor cores


def unet_flops() -> dict:
    """FLOPs of one forward of each real-size network (torch FlopCounterMode on the meta device)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from anchorhoi_jax.priors.image import IF_I_XL_UNET_CONFIG, SD21_BASE_UNET_CONFIG
    from anchorhoi_jax.priors.mvdream import MultiViewUNet

    res = {}

    def count(key, fn):
        with FlopCounterMode(display=False) as fc:
            fn()
        res[key] = fc.get_total_flops()

    with torch.device("meta"):
        u = UNet2DConditionModel(**IF_I_XL_UNET_CONFIG)
        count("if_unet_fwd_per_image",
              lambda: u(torch.randn(1, 3, 64, 64), torch.tensor([10]), encoder_hidden_states=torch.randn(1, 77, 4096)))
        s = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG)
        count("sd_unet_fwd_per_image",
              lambda: s(torch.randn(1, 4, 64, 64), torch.tensor([10]), encoder_hidden_states=torch.randn(1, 77, 1024)))
        m = MultiViewUNet()
        count("mv_unet_fwd_per_4views", lambda: m(torch.randn(4, 4, 32, 32), torch.tensor([10] * 4),
                                                  torch.randn(4, 77, 1024), torch.randn(4, 16), num_frames=4))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2)
        for r in (512, 256):
            count(f"vae_enc_fwd_{r}", lambda r=r: vae.encode(torch.randn(1, 3, r, r)).latent_dist.mode())
    return res


def physical_floor(gpu: dict) -> dict:
    """Compute-bound floor of each measured SDS step: CFG doubles the UNet batch; the VAE encoder's
    backward is w.r.t. its input only (no weight gradients), about one more forward."""
    fl = unet_flops()
    out = {}
    for kind in ("if", "sd", "mvdream"):
        for seeds in (1, 8):
            if kind not in gpu or f"s{seeds}" not in gpu[kind]:
                continue
            n = 4 * seeds
            f = {"if": 2 * n * fl["if_unet_fwd_per_image"],
                 "sd": 2 * n * fl["sd_unet_fwd_per_image"] + 2 * n * fl["vae_enc_fwd_512"],
                 "mvdream": 2 * seeds * fl["mv_unet_fwd_per_4views"] + 2 * n * fl["vae_enc_fwd_256"]}[kind]
            ms = gpu[kind][f"s{seeds}"]["step_ms"]
            floor_ms = 1e3 * f / H100_FP16_DENSE_FLOPS
            out[f"{kind}_b{n}"] = dict(tflop=f / 1e12, floor_ms=floor_ms, measured_ms=ms, gap=ms / floor_ms)
    return dict(peak_flops=H100_FP16_DENSE_FLOPS, flops_per_call=fl, per_config=out)


def merge(out_dir: Path) -> dict:
    res = {}
    for part in ("gpu", "detector", "analytic"):
        p = out_dir / f"priors_{part}.json"
        if p.exists():
            res[part] = json.loads(p.read_text())
    g, d, a = res.get("gpu", {}), res.get("detector", {}), res.get("analytic", {})
    top = dict(device=g.get("device"), sds_ms_if_b4=g.get("sds_ms_if_b4"), sds_ms_if_b32=g.get("sds_ms_if_b32"),
               bridge_overhead_frac_if=g.get("bridge_overhead_frac_if"),
               bridge_overhead_frac_if_b32=g.get("bridge_overhead_frac_if_b32"), peak_gb_if=g.get("peak_gb_if"),
               sds_ms_sd_b4=g.get("sds_ms_sd_b4"), sds_ms_sd_b32=g.get("sds_ms_sd_b32"),
               bridge_overhead_frac_sd=g.get("bridge_overhead_frac_sd"), peak_gb_sd=g.get("peak_gb_sd"),
               sds_ms_mvdream_b4=g.get("sds_ms_mvdream_b4"), sds_ms_mvdream_b32=g.get("sds_ms_mvdream_b32"),
               dlpack_zero_copy=bool(g and g["bridge"]["pointer_equal_jax_to_torch"] == g["bridge"]["iterations"]
                                     and g["bridge"]["pointer_equal_torch_to_jax"] == g["bridge"]["iterations"]),
               dlpack_race_max_abs_err=g.get("bridge", {}).get("max_abs_error"),
               detector_median_px_err=d.get("detector_median_px_err"), detector_rate=d.get("detector_rate"),
               detector_device=d.get("device"), sds_analytic_mean_abs_err=a.get("sds_analytic_mean_abs_err"))
    if g and not g.get("tiny"):
        top["physical_floor"] = physical_floor(g)
    top.update(details=res)
    return top


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["gpu", "detector", "analytic", "merge"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--tiny", action="store_true", help="tiny random models (CPU smoke run of the same code path)")
    ap.add_argument("--models", nargs="+", default=["if", "sd", "mvdream"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--race-iters", type=int, default=200)
    ap.add_argument("--poses", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--analytic-steps", type=int, default=500)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "merge":
        path = args.out / "priors.json"
        path.write_text(json.dumps(merge(args.out), indent=2))
        print("wrote", path)
        return
    res = {"gpu": run_gpu, "detector": run_detector, "analytic": run_analytic}[args.what](args)
    path = args.out / f"priors_{args.what}.json"
    path.write_text(json.dumps(res, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
