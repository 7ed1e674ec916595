"""Coarse HOI NeRF stage (paper Sec. 4/5: SDS with IF + MVDream, 3000 iterations): time per iteration, memory.

    python benchmarks/coarse.py --out DIR                  # GPU: real-size random-init IF-I-XL + MVDream UNets
    python benchmarks/coarse.py --out DIR --full 3000      # ... and one uninterrupted 3000-iteration run, 1 seed
    python benchmarks/coarse.py --out DIR --tiny           # CPU smoke run of the same code path (tiny priors)
    python benchmarks/coarse.py --out DIR --accel none,cuda_graphs --variants ...   # eager vs accelerated
                                                           # guidance in one process -> DIR/coarse_accel.json

The priors are the published architectures with random weights (same compute as the released
checkpoints): IF-I-XL stage I (4.3 B parameters, fp16, 64 px) and MVDream (SD-2.1 multi-view UNet +
SD VAE encoder, fp16, 256 px). The T5-XXL / OpenCLIP text encoders are not built (their weights are
not on the machine): random embeddings of the real shapes (77x4096, 77x1024) stand in for the prompt
embeddings, which the stage computes once and never again. Everything else is the library's coarse
stage (`stages.coarse.fit`) with its defaults: hash-grid NeRF (16 levels, 2^19 entries), 64+64
samples per ray, lambertian shading with normals, 4 views = one MVDream group, 64x64 renders.

Per-iteration time is the median over timed iterations after warm-up (the stage's callback is called
every iteration; each iteration already synchronises at the JAX/torch hand-over). `coarse_3000_min`
extrapolates 3000 x the 1-seed median (model build and JIT compile excluded; reported separately);
with --full it is also measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as onp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "a man sitting on a wooden chair"


def _peak(torch) -> dict:
    out = {"torch_peak_allocated_gb": 0.0, "jax_peak_gb": 0.0}
    if torch.cuda.is_available():
        out["torch_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
        out["torch_peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 2**30
    try:
        stats = jax.devices()[0].memory_stats() or {}
        out["jax_peak_gb"] = stats.get("peak_bytes_in_use", 0) / 2**30
        out["jax_in_use_gb"] = stats.get("bytes_in_use", 0) / 2**30
    except Exception:  # noqa: BLE001
        pass
    out["peak_gb"] = out["torch_peak_allocated_gb"] + out["jax_peak_gb"]
    return out


def build_guidance_real_size(device, dtype):
    """IF-I-XL (every view) + MVDream (groups of 4), random weights, through the library's guidance classes."""
    from priors import build_real_size  # benchmarks/priors.py: real-size random-init priors

    from anchorhoi_jax.priors.guidance import CombinedGuidance, GuidanceConfig, IndependentViews
    from anchorhoi_jax.priors.sds import SDSGuidance

    gcfg = GuidanceConfig()  # defaults: weights 1/1, scales 20/50, t annealing over 3000 steps
    if_prior = build_real_size("if", device, dtype)
    g_if = IndependentViews(SDSGuidance(if_prior, PROMPT, dataclasses.replace(gcfg.sds, guidance_scale=gcfg.if_scale)))
    g_if.name = "if"
    mv_prior = build_real_size("mvdream", device, dtype)
    g_mv = SDSGuidance(mv_prior, PROMPT, dataclasses.replace(gcfg.sds, guidance_scale=gcfg.mvdream_scale,
                                                             view_dependent_prompts=False))
    g_mv.name = "mvdream"
    n_if = sum(p.numel() for p in if_prior.unet.parameters())
    n_mv = sum(p.numel() for p in mv_prior.unet.parameters())
    return CombinedGuidance([(g_if, gcfg.if_weight), (g_mv, gcfg.mvdream_weight)]), {"if_unet_params": n_if,
                                                                                      "mvdream_unet_params": n_mv}


def guidance_priors(guidance):
    """The prior objects inside a CombinedGuidance (IF is wrapped by IndependentViews)."""
    return [getattr(g, "inner", g).prior for g, _ in guidance.parts]


def set_accelerate(guidance, mode: str) -> list[str]:
    """Switch every prior of the guidance to `mode` (priors/accelerate.py; a "+cl" suffix adds
    channels_last); returns the modes in effect."""
    import torch

    base, cl = mode.split("+")[0], mode.endswith("+cl")
    out = [p.accelerate(base, channels_last=cl) + ("+cl" if cl else "") for p in guidance_priors(guidance)]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def time_fit(cfg, guidance, *, seeds: int, warmup: int, iters: int, key=0) -> dict:
    """Warm up (compile), then time `iters` iterations of coarse.fit with per-iteration callbacks."""
    from anchorhoi_jax.stages import coarse as co

    keys = jax.random.split(jax.random.key(key), seeds)
    state = co.init(keys[0], cfg) if seeds == 1 else co.init_seeds(keys, cfg)
    w = co.CoarseWeights.default()
    t0 = time.perf_counter()
    state, hist = co.fit(state, cfg, w, guidance, until=warmup)
    jax.block_until_ready(state.params)
    warm_s = time.perf_counter() - t0
    stamps = []
    cb = lambda i, s, info: stamps.append(time.perf_counter())  # noqa: E731
    # The program fit compiled (cached per config); driven here with a callback every iteration.
    prog = co._coarse_program(cfg, seeds > 1)
    t1 = time.perf_counter()
    state, hist = co.run_sds_loop(prog, state, w, guidance, total_steps=cfg.steps, log_every=1, callback=cb,
                                  until=warmup + iters, lr=w.lr)
    jax.block_until_ready(state.params)
    total = time.perf_counter() - t1
    dts = onp.diff(onp.asarray([t1] + stamps))
    finite = bool(all(onp.isfinite(v) for h in hist for v in h.values()))
    return dict(seeds=seeds, warmup_iters=warmup, warmup_incl_compile_s=warm_s, timed_iters=iters,
                ms_per_iter_median=1e3 * float(onp.median(dts)), ms_per_iter_mean=1e3 * total / iters,
                ms_per_iter_p90=1e3 * float(onp.percentile(dts, 90)), finite=finite, last=hist[-1] if hist else {})


def phase_breakdown(cfg, guidance, iters: int = 10) -> dict:
    """Median ms of the split step's phases at 1 seed (render+vjp, hand-over, guidance, pullback+Adam)."""
    import torch

    from anchorhoi_jax.priors.bridge import images_to_model, model_grad_to_images
    from anchorhoi_jax.priors.bridge import SDSState
    from anchorhoi_jax.stages import coarse as co

    prog = co._coarse_program(cfg, False)
    prog.proxy.bind(guidance)
    st = co.init(jax.random.key(5), cfg)
    w = co.CoarseWeights.default()
    inner = SDSState(params=st.params, opt_state=co._with_lr(st.opt_state, w.lr), step=jax.numpy.int32(0), key=st.key)
    inner = jax.device_put(inner, jax.devices()[0])
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    ph = {k: [] for k in ("sample", "forward", "to_torch", "guidance", "to_jax", "update")}
    for i in range(iters + 2):
        t0 = time.perf_counter()
        batch, ikey, arrays = prog.sample(st.key, jax.numpy.int32(1000 + i), None)
        views = co.ViewInfo(*(onp.asarray(a, onp.float64).reshape(s) for a, s in
                              zip(jax.device_get(arrays), ((-1,), (-1,), (-1, 4, 4)))), views_per_sample=cfg.views)
        t1 = time.perf_counter()
        images, pullback, _ = prog.step.forward(inner.params, (batch, w))
        jax.block_until_ready(images)
        t2 = time.perf_counter()
        x = images_to_model(images, value_range=guidance.value_range, dtype=guidance.dtype)
        sync()
        t3 = time.perf_counter()
        g, _ = guidance(x, views=views, step=1000 + i, generator=torch.Generator(device=x.device).manual_seed(i))
        sync()
        t4 = time.perf_counter()
        gj = model_grad_to_images(g, images.shape[:-3], value_range=guidance.value_range)
        jax.block_until_ready(gj)
        t5 = time.perf_counter()
        inner, _ = prog.step.update(inner, (batch, w), pullback, gj)
        jax.block_until_ready(inner.params)
        t6 = time.perf_counter()
        if i >= 2:
            for k, a, b in (("sample", t0, t1), ("forward", t1, t2), ("to_torch", t2, t3), ("guidance", t3, t4),
                            ("to_jax", t4, t5), ("update", t5, t6)):
                ph[k].append(1e3 * (b - a))
    prog.proxy.target = None
    return {k: statistics.median(v) for k, v in ph.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--iters4", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--full", type=int, default=0, help="also run this many uninterrupted iterations at 1 seed")
    ap.add_argument("--budget_s", type=float, default=520.0, help="skip optional parts past this wall time")
    ap.add_argument("--variants", default="", help="comma list of seeds:shading:remat:iters (e.g. 4:lambertian:1:30); "
                    "times only these configurations and writes coarse_variants.json")
    ap.add_argument("--accel", default="", help="comma list of guidance accelerate modes compared in this process "
                    "(first = reference, e.g. none,cuda_graphs); the last is used for --variants; "
                    "writes coarse_accel.json")
    ap.add_argument("--no_fit", action="store_true", help="--accel: guidance comparison and variants only")
    ap.add_argument("--iters_eager", type=int, default=30, help="timed iterations for the reference (eager) mode")
    ap.add_argument("--compile", action="store_true", help="--accel: also try accelerate='compile' (guidance only) "
                    "if the wall-time budget allows")
    ap.add_argument("--merge", nargs=2, metavar=("MAIN_JSON", "VARIANTS_JSON"),
                    help="merge a main run and a variants run into --out/coarse.json (no GPU work)")
    args = ap.parse_args()
    if args.merge:
        return merge(*args.merge, out=args.out)
    T0 = time.perf_counter()
    import diffusers
    import torch

    from anchorhoi_jax.nerf.field import FieldConfig
    from anchorhoi_jax.render.volume import RenderConfig
    from anchorhoi_jax.stages import coarse as co

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    res = dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
               versions=dict(jax=jax.__version__, jax_backend=jax.default_backend(), torch=torch.__version__,
                             diffusers=diffusers.__version__, python=sys.version.split()[0]),
               command="python benchmarks/coarse.py " + " ".join(sys.argv[1:]), tiny=args.tiny)
    if args.tiny:
        from anchorhoi_jax.priors.guidance import GuidanceConfig, build_guidance

        guidance = build_guidance(PROMPT, GuidanceConfig(kind="tiny"))
        cfg = co.CoarseConfig(field=FieldConfig(n_levels=4, log2_table_size=10, max_resolution=64, hidden=16),
                              render=RenderConfig(n_coarse=16, n_fine=8, shading="lambertian"), resolution=16)
    else:
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        guidance, info = build_guidance_real_size(device, dtype)
        res.update(info)
        res["build_priors_s"] = time.perf_counter() - t
        cfg = co.CoarseConfig()
    res["config"] = dict(resolution=cfg.resolution, views=cfg.views, samples=cfg.render.n_coarse + cfg.render.n_fine,
                         shading=cfg.render.shading, levels=cfg.field.n_levels, log2_table=cfg.field.log2_table_size,
                         steps=cfg.steps)
    print("built", json.dumps(res), flush=True)

    if args.accel:
        return run_accel(args, res, cfg, guidance, torch, T0)
    if args.variants:
        return run_variants(args, res, cfg, guidance, torch, T0)
    r1 = time_fit(cfg, guidance, seeds=1, warmup=args.warmup, iters=args.iters)
    r1.update(_peak(torch))
    res["seed1"] = r1
    print("seed1", json.dumps(r1), flush=True)
    try:
        res["phases_ms_seed1"] = phase_breakdown(cfg, guidance)
        print("phases", json.dumps(res["phases_ms_seed1"]), flush=True)
    except Exception as e:  # noqa: BLE001 - a diagnostic only
        res["phases_error"] = repr(e)
    gc.collect()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        r4 = time_fit(cfg, guidance, seeds=4, warmup=args.warmup, iters=args.iters4, key=1)
        r4.update(_peak(torch))
        res["seed4"] = r4
        print("seed4", json.dumps(r4), flush=True)
    except Exception as e:  # noqa: BLE001 - e.g. out of memory: record it
        res["seed4_error"] = repr(e)[:500]
        print("seed4 failed", repr(e)[:500], flush=True)

    ms1 = r1["ms_per_iter_median"]
    res["coarse_ms_per_iter_seed1"] = ms1
    res["coarse_ms_per_iter_seed4"] = res.get("seed4", {}).get("ms_per_iter_median")
    res["coarse_3000_min"] = 3000 * ms1 / 1e3 / 60.0
    res["coarse_3000_min_how"] = "extrapolated: 3000 x median ms/iteration at 1 seed (build + compile excluded)"
    if res["coarse_ms_per_iter_seed4"]:
        res["seeds4_over_seed1"] = res["coarse_ms_per_iter_seed4"] / ms1
    res["peak_gpu_gb"] = max(res["seed1"].get("peak_gb", 0.0), res.get("seed4", {}).get("peak_gb", 0.0))

    if args.full:
        est = args.full * ms1 / 1e3 + 30.0
        if time.perf_counter() - T0 + est < args.budget_s:
            t = time.perf_counter()
            st = co.init(jax.random.key(7), cfg)
            st, hist = co.fit(st, cfg, co.CoarseWeights.default(), guidance, until=args.full)
            jax.block_until_ready(st.params)
            full_s = time.perf_counter() - t
            res["full_run"] = dict(iters=args.full, wall_s=full_s, ms_per_iter=1e3 * full_s / args.full,
                                   finite=bool(all(onp.isfinite(v) for h in hist for v in h.values())))
            if args.full == 3000:
                res["coarse_3000_min_measured"] = full_s / 60.0
            print("full", json.dumps(res["full_run"]), flush=True)
        else:
            res["full_run_skipped"] = f"estimated {est:.0f} s would pass the {args.budget_s:.0f} s budget"
    res["total_wall_s"] = time.perf_counter() - T0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coarse.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res.get(k) for k in ("coarse_ms_per_iter_seed1", "coarse_ms_per_iter_seed4",
                                               "coarse_3000_min", "seeds4_over_seed1", "peak_gpu_gb")}), flush=True)


def _rel_err(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def guidance_oracle_and_time(guidance, cfg, mode: str, ref: dict | None, *, iters: int = 10) -> dict:
    """One mode: first call (capture / compile) wall time, median guidance ms, gradients vs the reference mode.

    The same images, views, step and generator seeds for every mode, so a difference is numerics only.
    """
    import torch

    dev = guidance_priors(guidance)[0].device
    views, x = probe_inputs(guidance, cfg, dev)
    eff = set_accelerate(guidance, mode)

    def call(seed):
        return guidance(x, views=views, step=1000, generator=torch.Generator(device=dev).manual_seed(seed))

    def parts(seed):  # each prior alone, with its own generator (per-part numerics)
        out = {}
        for g, _ in guidance.parts:
            xg = x.to(g.dtype)
            out[g.name] = g(xg, views=views, step=1000, generator=torch.Generator(device=dev).manual_seed(seed))[0]
        return out

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    g0, info0 = call(1)
    sync()
    first_s = time.perf_counter() - t
    ts = []
    for i in range(iters):
        t = time.perf_counter()
        call(100 + i)
        sync()
        ts.append(time.perf_counter() - t)
    r = dict(mode=mode, effective=eff, first_call_s=first_s, guidance_ms_median=1e3 * statistics.median(ts),
             grads={"combined": g0.float().clone(), **{k: v.float().clone() for k, v in parts(2).items()}})
    if ref is not None:
        r["rel_err_vs_ref"] = {k: _rel_err(v, ref["grads"][k]) for k, v in r["grads"].items()}
        # fp16 noise scale: the eager prior run twice on inputs perturbed by one fp16 ulp gives the spread
        # that rounding alone produces (computed once for the reference).
    r["info"] = info0
    return r


def probe_inputs(guidance, cfg, dev):
    """Fixed views (step 1000) and a fixed random image batch for comparing guidance modes."""
    import torch

    from anchorhoi_jax.stages import coarse as co

    batch = co.sample_step_batch(jax.random.key(3), 1000, n_views=cfg.views, resolution=cfg.resolution,
                                 camera=cfg.camera, shading=cfg.shading)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = (torch.rand(cfg.views, 3, cfg.resolution, cfg.resolution, generator=gen) * 2 - 1).to(dev, guidance.dtype)
    return co.views_info(batch, cfg.views), x


def fp16_noise_floor(guidance, cfg, ref_mode: str) -> dict:
    """Relative change of the reference gradient when the input moves by 1 fp16 ulp (rounding-noise scale)."""
    import torch

    set_accelerate(guidance, ref_mode)
    dev = guidance_priors(guidance)[0].device
    views, x = probe_inputs(guidance, cfg, dev)
    x2 = torch.nextafter(x, torch.full_like(x, 2.0))
    out = {}
    for g, _ in guidance.parts:
        a = g(x.to(g.dtype), views=views, step=1000, generator=torch.Generator(device=dev).manual_seed(2))[0]
        b = g(x2.to(g.dtype), views=views, step=1000, generator=torch.Generator(device=dev).manual_seed(2))[0]
        out[g.name] = _rel_err(b.float(), a.float())
    return out


def run_accel(args, res, cfg, guidance, torch, T0):
    """Eager vs accelerated guidance in one process: guidance oracle + timing, coarse.fit ms/iteration, phases,
    then the (seeds, shading, remat) variants with the last mode."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = args.accel.split(",")
    res["accel_modes"] = modes

    def dump():
        res["total_wall_s"] = time.perf_counter() - T0
        (out / "coarse_accel.json").write_text(json.dumps(res, indent=2, default=str))

    # 1) guidance alone: oracle vs the first mode, capture time, median ms
    res["guidance"] = {}
    ref = None
    for m in list(modes):
        try:
            r = guidance_oracle_and_time(guidance, cfg, m, ref)
        except Exception as e:  # noqa: BLE001 - record why a mode cannot run and go on without it
            import traceback

            res["guidance"][m] = {"error": repr(e)[:400], "trace": traceback.format_exc()[-1500:]}
            print("guidance", m, "FAILED", res["guidance"][m]["trace"], flush=True)
            modes.remove(m)
            set_accelerate(guidance, modes[0])
            continue
        ref = r if ref is None else ref
        res["guidance"][m] = {k: v for k, v in r.items() if k != "grads"}
        print("guidance", m, json.dumps(res["guidance"][m], default=str), flush=True)
        dump()
    try:
        res["guidance_fp16_noise_rel"] = fp16_noise_floor(guidance, cfg, modes[0])
    except Exception as e:  # noqa: BLE001 - diagnostic only
        res["guidance_fp16_noise_rel"] = repr(e)[:200]
    dump()

    # 2) the stage: ms/iteration per mode at 1 seed (default config), same JAX program
    res["fit"] = {}
    for m in ([] if args.no_fit else modes):
        set_accelerate(guidance, m)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        iters = args.iters_eager if m == modes[0] else args.iters
        r = time_fit(cfg, guidance, seeds=1, warmup=args.warmup, iters=iters)
        r.update(_peak(torch))
        res["fit"][m] = r
        print("fit", m, json.dumps(r), flush=True)
        dump()
    best = modes[-1]
    set_accelerate(guidance, best)
    try:
        if args.no_fit:
            raise RuntimeError("skipped (--no_fit)")
        res["phases_ms_seed1"] = phase_breakdown(cfg, guidance)
        res["phases_mode"] = best
        print("phases", json.dumps(res["phases_ms_seed1"]), flush=True)
    except Exception as e:  # noqa: BLE001 - a diagnostic only
        res["phases_error"] = repr(e)[:300]
    dump()

    # 3) variants with the accelerated guidance
    if args.variants:
        res["variants"] = {}
        for spec in args.variants.split(","):
            name, r = time_variant(spec, args, cfg, guidance, torch, T0)
            res["variants"][name] = r
            dump()

    # 4) compile (guidance only), last: its compile time is not bounded by anything we control
    if args.compile:
        if time.perf_counter() - T0 > args.budget_s - 200:
            res["guidance"]["compile"] = {"skipped": "wall-time budget (compile needs minutes)"}
        else:
            try:
                r = guidance_oracle_and_time(guidance, cfg, "compile", ref)
                res["guidance"]["compile"] = {k: v for k, v in r.items() if k != "grads"}
            except Exception as e:  # noqa: BLE001
                res["guidance"]["compile"] = {"error": repr(e)[:400]}
            print("guidance compile", json.dumps(res["guidance"]["compile"], default=str), flush=True)
        set_accelerate(guidance, best)
    dump()


def time_variant(spec, args, cfg, guidance, torch, T0):
    """Time one "seeds:shading:remat:iters" variant of the stage -> (name, result dict)."""
    seeds, shading, remat, iters = spec.split(":")
    name = f"s{seeds}_{shading}_remat{remat}"
    if time.perf_counter() - T0 > args.budget_s:
        return name, {"skipped": "wall-time budget"}
    vcfg = dataclasses.replace(cfg, render=dataclasses.replace(cfg.render, shading=shading, remat=bool(int(remat))))
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        r = time_fit(vcfg, guidance, seeds=int(seeds), warmup=args.warmup, iters=int(iters), key=int(seeds))
        r.update(_peak(torch))
    except Exception as e:  # noqa: BLE001 - e.g. out of memory: record it and go on
        r = {"error": repr(e)[:400]}
    print(name, json.dumps(r), flush=True)
    return name, r


def run_variants(args, res, cfg, guidance, torch, T0):
    """Time several (seeds, shading, remat) configurations of the same stage in one process."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res["variants"] = {}
    for spec in args.variants.split(","):
        name, r = time_variant(spec, args, cfg, guidance, torch, T0)
        res["variants"][name] = r
        (out / "coarse_variants.json").write_text(json.dumps(res, indent=2))
    res["total_wall_s"] = time.perf_counter() - T0
    (out / "coarse_variants.json").write_text(json.dumps(res, indent=2))


def merge(main_json: str, variants_json: str, *, out: str):
    """coarse.json = the default-config run + the variant runs, with the headline keys.

    seeds4_over_seed1 compares 4 seeds with 1 seed at the same shading, preferring the default
    (lambertian) pair and falling back to albedo shading when 4 lambertian seeds did not fit.
    """
    main = json.loads(Path(main_json).read_text())
    var = json.loads(Path(variants_json).read_text())
    res = dict(main)
    res["variants"] = var.get("variants", {})
    res["variants_command"] = var.get("command")
    v = res["variants"]
    ms = lambda name: v.get(name, {}).get("ms_per_iter_median")  # noqa: E731
    for shading, one, four in (("lambertian", "s1_lambertian_remat1", "s4_lambertian_remat1"),
                               ("albedo", "s1_albedo_remat0", "s4_albedo_remat1")):
        if ms(four) and ms(one):
            res["coarse_ms_per_iter_seed4"] = ms(four)
            res["seeds4_over_seed1"] = ms(four) / ms(one)
            res["seeds4_over_seed1_how"] = (f"{shading} shading, same process: 4 seeds ({four}) / 1 seed ({one}); "
                                            "remat only adds compute, so this ratio is an upper bound")
            break
    if "s4_lambertian_remat1" in v and "error" in v["s4_lambertian_remat1"]:
        res["seed4_lambertian_note"] = ("4 seeds with lambertian shading (second-order normals) do not fit on 80 GB, "
                                        "with or without remat: " + v["s4_lambertian_remat1"]["error"][:160])
    peaks = [res.get("peak_gpu_gb") or 0.0] + [r.get("peak_gb", 0.0) for r in v.values() if isinstance(r, dict)]
    res["peak_gpu_gb"] = max(peaks)
    if ms("s1_albedo_remat0"):
        res["coarse_3000_min_albedo_only"] = 3000 * ms("s1_albedo_remat0") / 1e3 / 60.0
    res["coarse_3000_min_target"] = 10.0
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "coarse.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res.get(k) for k in ("coarse_ms_per_iter_seed1", "coarse_ms_per_iter_seed4", "coarse_3000_min",
                                               "coarse_3000_min_albedo_only", "seeds4_over_seed1", "peak_gpu_gb")}))


if __name__ == "__main__":
    main()
