"""End-to-end pipeline benchmark (issue 8): `anchorhoi generate` stage by stage.

    python benchmarks/pipeline.py gpu --out DIR   # H100: real-size random-init IF-I-XL + MVDream UNets, tiny
                                                  # FramePack, Anny; 1 seed then 4 seeds; reduced step counts
    python benchmarks/pipeline.py demo --out DIR  # CPU: wall and CPU time of the README smoke `generate`
    python benchmarks/pipeline.py merge --out DIR # -> benchmarks/results/pipeline.json + .md inputs

Real weights are not shipped, so the image priors are randomly initialised at their real sizes
(benchmarks/priors.py build_real_size: same architecture, same FLOPs; text embeddings random of the
real shape). The segmenter and skeleton detector see noise from random priors, so the benchmark
uses the smoke policies (empty masks -> foreground, no skeleton -> rest pose; recorded per seed) and
the motion half anchors on projected static keypoints (detect.kind=static). Optimisation step counts
are reduced (stated in the result); per-stage steady-state seconds per step are measured from the
progress callbacks and the paper-count time is projected from them. As a CLI entry point this script
(not the library) turns XLA preallocation off so torch and JAX share the GPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse  # noqa: E402
import logging  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# Reduced step counts of the GPU run (paper / default counts in PAPER_STEPS).
GPU_OVERRIDES = [
    "compose.coarse.steps=30", "compose.coarse.log_every=10",
    "compose.avatar.steps=30", "compose.avatar.log_every=10",
    "compose.object.steps=30", "compose.object.log_every=10",
    # Rematerialised NeRF renders: 4 seeds of the default coarse forward need ~123 GB without it
    # (benchmarks/results/composition.md); both seed counts run with it, so the ratio compares like with like.
    "compose.coarse.render.remat=true", "compose.object.render.remat=true",
    # Random-init priors can saturate a seed's object field (4-seed H100 run: seed 2's density [38.1, 1.07e9]
    # never crossed the default level 10): the marching-cubes level comes from each seed's densities.
    "compose.object.mesh_threshold=auto",
    # One UNet call per prior for the object + layout views (StackedGuidance(fuse=True)); `--ab` measures it
    # against the chunk-by-chunk call in the same process.
    "compose.object.fuse_guidance=true",
    "compose.anchor.steps=200", "compose.anchor.steps_per_call=100",
    "compose.segmentation.on_empty=foreground", "compose.detection.on_missing=rest_pose",
    "video.kind=tiny", "video.seconds=5.0", "video.num_inference_steps=4", "detect.kind=static", "segment.kind=none",
    "motion.steps=1000", "motion.log_every=100", "observe.progress=false",
]
PROMPT = "A man with sideburns sitting on a sofa"
# The composition half of the graph (issue 6's whole chain: coarse .. object, static assembly excluded).
COMPOSITION_STAGES = ("coarse", "masks", "anchor", "avatar", "pose", "object")
GRAPH_STAGES = COMPOSITION_STAGES + ("static", "render", "contacts", "video", "detect", "segment", "motion")


def paper_steps(cfg) -> dict:
    """Default (paper) optimisation steps per stage, from the schema defaults."""
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig

    d = GenerateConfig()
    return {"coarse": d.compose.coarse.steps, "avatar": d.compose.avatar.steps, "object": d.compose.object.steps,
            "anchor": d.compose.anchor.steps, "motion": d.motion.steps}


def stage_rates(events) -> dict:
    """Per stage: first callback time after start (compile + first block) and steady s/step after it."""
    out = {}
    by: dict[str, list] = {}
    for name, step, t in events:
        by.setdefault(name, []).append((step, t))
    for name, ev in by.items():
        if len(ev) < 3:
            continue
        (s0, t0), (s1, t1), (sl, tl) = ev[0], ev[1], ev[-1]
        if sl > s1:
            out[name] = {"first_block_s": t1 - t0, "first_block_steps": s1 - s0, "s_per_step": (tl - t1) / (sl - s1)}
    return out


def _tree_state() -> dict:
    """The commit and whether the working tree differed from it (the device runs the working tree)."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain", "-uno").splitlines()}


_LOG_RE = {
    "saved": re.compile(r"stage (\w+): state of step (\d+) saved in ([0-9.]+) s"),
    "waited": re.compile(r"stage (\w+): waited ([0-9.]+) s for checkpoint saves"),
    "start": re.compile(r"stage (\w+): start \(step (\d+) of (\d+)\)"),
    "step": re.compile(r"stage (\w+): step (\d+)\b"),
    "done": re.compile(r"stage (\w+): (\w+) in ([0-9.]+) s"),
}


def parse_stage_log(lines) -> tuple[dict, list]:
    """Stage timings and progress events from the pipeline's log lines ("<asctime> <logger>: <message>").

    Returns ({stage: {"status", "seconds", "steps"}}, [(stage, step, t_seconds)]) -- what `execute`
    returns as timings / observer events, recovered from a run that stopped before returning."""
    import datetime as dt

    stages, events, last = {}, [], {}
    for line in lines:
        try:
            t = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        msg = line.split(": ", 1)[-1]
        if _LOG_RE["saved"].search(msg) or _LOG_RE["waited"].search(msg):
            continue
        if m := _LOG_RE["start"].search(msg):
            events.append((m[1], int(m[2]), t))
            last[m[1]] = int(m[2])
        elif m := _LOG_RE["done"].search(msg):
            stages[m[1]] = {"status": m[2], "seconds": float(m[3]), "steps": last.get(m[1], 0)}
        elif m := _LOG_RE["step"].search(msg):
            events.append((m[1], int(m[2]), t))
            last[m[1]] = int(m[2])
    return stages, events


def checkpoint_costs(lines) -> dict:
    """Per stage from the log: background save seconds (what a synchronous save would have stalled the
    stage for) and the seconds the stage itself waited for saves."""
    out: dict[str, dict] = {}
    for line in lines:
        msg = line.split(": ", 1)[-1]
        if m := _LOG_RE["saved"].search(msg):
            out.setdefault(m[1], {"saves_s": [], "waited_s": 0.0})["saves_s"].append(float(m[3]))
        elif m := _LOG_RE["waited"].search(msg):
            out.setdefault(m[1], {"saves_s": [], "waited_s": 0.0})["waited_s"] = float(m[2])
    return out


def stage_windows(lines) -> list:
    """[(stage, t_start)] from the log's "stage X: start" lines (epoch seconds), in order."""
    import datetime as dt

    out = []
    for line in lines:
        m = _LOG_RE["start"].search(line.split(": ", 1)[-1])
        if m:
            out.append((m[1], dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()))
    return out


def _stage_at(windows, t) -> str | None:
    name = None
    for n, t0 in windows:
        if t0 <= t + 0.002:  # the log's millisecond stamps
            name = n
    return name


def _event_seconds(d) -> float:
    """A prior clock's duration: seconds (a float) or a pair of completed CUDA events."""
    if isinstance(d, tuple):
        d[1].synchronize()
        return 1e-3 * d[0].elapsed_time(d[1])
    return float(d)


def phase_summary(records, prior_events, windows, skip: int = 2) -> dict:
    """Median per-step phase times (ms) per SDS stage (bridge.record_phases), the first `skip` steps of a
    stage (compilation, CUDA-graph capture) left out, and the mean per step of each prior's UNet / encoder
    forward time (synchronised wrappers)."""
    import numpy as onp

    by: dict[str, list] = {}
    for r in records:
        st = _stage_at(windows, r["t"])
        if st is not None:
            by.setdefault(st, []).append(r)
    out = {}
    for st, rs in by.items():
        steady = rs[skip:] if len(rs) > skip + 2 else rs
        t_lo = steady[0]["t"] if steady else 0.0
        row = {"steps_timed": len(steady), "batch": steady[0]["batch"] if steady else None}
        for k in ("render_vjp", "to_torch", "guidance", "to_jax", "update", "total"):
            row[k + "_ms"] = 1e3 * float(onp.median([r[k] for r in steady])) if steady else None
        # The left-out first steps as they ran (where a stage's compile / graph capture time goes).
        row["first_steps_ms"] = [{k: round(1e3 * r[k], 1) for k in ("render_vjp", "guidance", "update", "total")}
                                 for r in rs[:skip]]
        nxt = [t0 for n, t0 in windows if t0 > t_lo and n != st]
        t_hi = min(nxt) if nxt else float("inf")
        ev: dict[str, list] = {}
        for e in prior_events:
            if t_lo <= e[0] < t_hi:
                ev.setdefault(e[1], []).append(_event_seconds(e[2]))
        for k, v in ev.items():
            row[k + "_ms_per_step"] = 1e3 * float(onp.sum(v)) / max(1, len(steady))
            row[k + "_calls_per_step"] = len(v) / max(1, len(steady))
        out[st] = row
    return out


def _time_prior_calls(prior, name: str, events: list, torch) -> None:
    """Wrap a prior's UNet (predict_eps) and encoder forward with GPU clocks (diagnostics).

    CUDA events recorded on the stream around each call; nothing waits for them (their durations are read
    after the run, `_event_seconds`). Until session 5 these clocks synchronised the device before and after each
    call, which stalled the host three times per SDS step and put ~7 ms of idle GPU into every 1-seed step
    they timed (benchmarks/results/pipeline.md, session 6)."""
    import time as _t

    def wrap(fn, label):
        def timed(*a, **k):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            out = fn(*a, **k)
            e1.record()
            events.append((_t.time(), label, (e0, e1)))
            return out
        return timed

    prior.predict_eps = wrap(prior.predict_eps, f"{name}_unet")
    if name == "mvdream":
        prior.encode = wrap(prior.encode, f"{name}_encode_fwd")


def steady_projection(run: dict, paper: dict) -> dict | None:
    """Per stage at the paper's counts from the per-step phase medians (bridge.record_phases) of the SDS stages:
    wall at the reduced count + (paper - reduced) x median step; other stages as `summarize` projects them.
    Unlike the callback rate, the median leaves out the checkpoint saves the bench makes every 10 steps
    (the paper preset saves every 100, in the background)."""
    ph = run.get("phases") or {}
    if not ph:
        return None
    out = {}
    for name, st in run["stages"].items():
        p = ph.get(name, {}).get("total_ms")
        if p is not None and name in paper:
            out[name] = st["seconds"] + 1e-3 * p * (paper[name] - st["steps"])
        else:
            out[name] = run["projected_paper_steps_s"][name]
    return out


SDS_STAGES = ("coarse", "avatar", "object")
_PIECE_CLOCK = {"if_unet": "if_unet", "mvdream_unet": "mvdream_unet", "mvdream_encode_fwd_vjp": "mvdream_encode_fwd"}


def four_seed_floor(s1: dict, s4: dict, sweep: dict, paper: dict, *, seeds: int = 4) -> dict:
    """The lowest `seeds`-seed pipeline time the measured throughputs allow, against 2x the measured 1-seed time.

    Per SDS stage, one step's work at `seeds` seeds is `seeds` x the 1-seed step's network images (IF UNet,
    MVDream UNet, VAE encoder forward + VJP: images per call x calls per step, from the 1-seed `phases`) plus the
    JAX work (render + VJP, update, bridge copies). Its floor: each network piece at the best ms per image of the
    batch sweep (any batch, up to 8 seeds' images), the JAX work at the better of its 1-seed and `seeds`-seed
    per-seed rates, and nothing else (the SDS glue -- noise, CFG, timesteps -- counted as free). Stage floor =
    the smaller of the two runs' fixed cost (wall at the reduced count - reduced steps x median step: compile,
    graph capture, checkpoints) + the paper's steps x the floor step. Every other stage at its 1-seed time (the
    1-seed wall bounds what 4x its work can take). Also: the same floor with the network pieces at the device's
    dense fp16 peak (FLOPs counted per image), which no kernel reaches; shown to bound what faster UNet kernels
    could buy, while those kernels would make the 1-seed run faster too.
    Returns per-stage floors (s), totals (min) and `two_x_reachable` (floor <= 2 x 1-seed)."""
    best = {}
    for key, rows in sweep["pieces"].items():
        ok = [r for r in rows.values() if "ms" in r]
        best[key] = {"ms_per_image": min(r["ms_per_image"] for r in ok),
                     "tflop_per_image": ok[0]["tflop_per_call"] / ok[0]["images"]}
    per_seed = sweep["images_per_seed"]
    peak = sweep.get("peak_tflops")
    ph1, ph4 = s1["phases"], s4["phases"]
    jax_keys = ("render_vjp_ms", "update_ms", "to_torch_ms", "to_jax_ms")
    stages, stages_peak, detail = {}, {}, {}
    for name, st1 in s1["stages"].items():
        if name == "video":
            continue
        if name not in SDS_STAGES or name not in ph1 or name not in ph4 or name not in s4["stages"]:
            stages[name] = stages_peak[name] = st1["seconds"]
            continue
        p1, p4 = ph1[name], ph4[name]
        # Images per step per seed: the 1-seed call sizes (object: fused object + layout views) x calls.
        calls = {k: p1.get(f"{c}_calls_per_step", 0.0) for k, c in _PIECE_CLOCK.items()}
        scale = {k: (2 if name == "object" else 1) for k in _PIECE_CLOCK}
        imgs = {k: seeds * per_seed[k] * scale[k] * (1.0 if calls[k] else 0.0) for k in _PIECE_CLOCK}
        net = sum(imgs[k] * best[k]["ms_per_image"] for k in imgs)
        net_peak = sum(imgs[k] * best[k]["tflop_per_image"] for k in imgs) / peak * 1e3 if peak else None
        j1, j4 = sum(p1[k] for k in jax_keys), sum(p4[k] for k in jax_keys)
        jax_floor = seeds * min(j1, j4 / seeds)
        fixed = min(st1["seconds"] - 1e-3 * p1["total_ms"] * st1["steps"],
                    s4["stages"][name]["seconds"] - 1e-3 * p4["total_ms"] * s4["stages"][name]["steps"])
        step = net + jax_floor
        stages[name] = fixed + 1e-3 * step * paper[name]
        stages_peak[name] = None if net_peak is None else fixed + 1e-3 * (net_peak + jax_floor) * paper[name]
        detail[name] = {"images_per_step": imgs, "network_floor_ms": net, "network_at_peak_ms": net_peak,
                        "jax_ms_s1": j1, "jax_ms_s4": j4, "jax_floor_ms": jax_floor, "floor_step_ms": step,
                        "measured_step_ms_s1": p1["total_ms"], "measured_step_ms_s4": p4["total_ms"],
                        "network_measured_ms_s4": sum(p4.get(f"{c}_ms_per_step", 0.0) for c in _PIECE_CLOCK.values()),
                        "fixed_s": fixed}
    steady1 = steady_projection(s1, paper) or {}
    one = sum(v for k, v in steady1.items() if k != "video")
    floor = sum(stages.values())
    floor_peak = None if any(v is None for v in stages_peak.values()) else sum(stages_peak.values())
    return {"seeds": seeds, "best_ms_per_image": best, "stages_floor_s": stages, "sds_detail": detail,
            "one_seed_s": one, "two_x_one_seed_min": 2 * one / 60, "floor_min": floor / 60,
            "floor_over_one": floor / one, "two_x_reachable": floor <= 2 * one,
            "floor_networks_at_peak_min": None if floor_peak is None else floor_peak / 60,
            "floor_networks_at_peak_over_one": None if floor_peak is None else floor_peak / one}


def summarize(stages: dict, rates: dict, paper: dict) -> dict:
    """Per-stage projection to the paper's step counts and the totals the results report."""
    proj = {}
    for name, st in stages.items():
        rate = rates.get(name)
        if rate and name in paper:
            proj[name] = st["seconds"] + rate["s_per_step"] * (paper[name] - st["steps"])
        else:
            proj[name] = st["seconds"]
    return {"stages": stages, "rates": rates, "projected_paper_steps_s": proj,
            "projected_total_excl_video_s": sum(v for k, v in proj.items() if k != "video"),
            "composition_s": sum(stages[k]["seconds"] for k in COMPOSITION_STAGES if k in stages),
            "composition_projected_s": sum(proj[k] for k in COMPOSITION_STAGES if k in proj),
            "complete": all(k in stages for k in GRAPH_STAGES)}


def _peak(torch) -> dict:
    import jax

    out = {"torch_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0}
    try:
        out["jax_peak_gb"] = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**30
    except Exception:  # noqa: BLE001
        out["jax_peak_gb"] = 0.0
    # XLA's peak_bytes_in_use is the process-wide peak (no reset): measure each seed count in its own process.
    out["peak_gb"] = out["torch_peak_gb"] + out["jax_peak_gb"]
    return out


def real_size_priors(cfg, device, dtype, *, accelerate: bool = False):
    """ComposePriors over real-size random IF-I-XL and MVDream; stand-in segmenter/detector (see docstring).

    accelerate: apply cfg.compose.guidance.accelerate / channels_last to both priors as build_guidance does
    (CUDA graphs, NHWC); False = eager, as session 3's pipeline measurements ran."""
    import numpy as onp

    from anchorhoi_jax.priors import guidance as G
    from anchorhoi_jax.stages.composition import ComposePriors
    from priors import build_real_size

    g = cfg.compose.guidance
    p_if = build_real_size("if", device, dtype)
    p_mv = build_real_size("mvdream", device, dtype)
    if accelerate:
        for p in (p_if, p_mv):
            G.accelerate_prior(p, g)

    def guid(text):  # as composition._guidances builds them (IF views per group from the config)
        return G.CombinedGuidance([(G.if_guidance(p_if, text, g), g.if_weight),
                                   (G.mvdream_guidance(p_mv, text, g), g.mvdream_weight)])

    def segmenter(rgb, alpha=None):
        fg = onp.asarray(alpha) > 0.5
        z = onp.zeros_like(fg)
        return {"person": z, "foreground": fg, "object": z}

    def detector(images):
        lead = onp.shape(images)[:-3]
        return onp.zeros((*lead, 18, 2), onp.float32), onp.zeros((*lead, 18), onp.float32)

    out = ComposePriors(inter=guid("a man with sideburns sitting on a sofa"), human=guid("a man with sideburns"),
                        object=guid("a sofa"), segmenter=segmenter, detector=detector)
    out.torch_priors = {"if": p_if, "mvdream": p_mv}  # for the benchmark's timers and A/B
    return out


def priors_state(priors) -> dict:
    """How the shared torch priors ran: mode, memory format, captured CUDA graphs (UNet; VAE encoder VJP)."""
    out = {}
    for name, p in priors.torch_priors.items():
        enc = getattr(p, "_encoder", None)
        out[name] = {"accelerated": p.accelerated, "channels_last": p.memory_format == __import__("torch").channels_last,
                     "encoder_channels_last": p.encoder_memory_format == __import__("torch").channels_last,
                     "unet_graphs": len(getattr(p._unet_runner, "graphs", {}) or {}),
                     "encoder_vjp_graphs": len(getattr(enc, "graphs", {}) or {}) if enc is not None else None}
    return out


def object_guidance_ab(priors, seeds: int, torch, *, calls: int = 10, warmup: int = 3) -> dict:
    """The object stage's guidance (T_object + layout T_inter chunks) per step, chunk by chunk vs fused
    (StackedGuidance(fuse=True)), same process, same inputs: median ms of `calls` synchronised calls."""
    import time as _t

    import numpy as onp

    from anchorhoi_jax.priors.bridge import ViewInfo
    from anchorhoi_jax.priors.guidance import StackedGuidance
    from anchorhoi_jax.stages.object_stage import _Named

    n = 2 * 4 * seeds
    rng = onp.random.default_rng(0)
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 2.5
    views = ViewInfo(azimuth_deg=rng.uniform(-180, 180, n), elevation_deg=rng.uniform(-10, 40, n),
                     camera_to_world=c2w, views_per_sample=4)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.rand(n, 3, 64, 64, device="cuda", generator=g) * 2 - 1).half()
    parts = [(_Named(priors.object, "object"), 1.0), (_Named(priors.inter, "layout"), 1.0)]
    res = {}
    for label, fuse in (("chunked", False), ("fused", True), ("chunked_again", False)):
        sg = StackedGuidance(parts, fuse=fuse)
        ts = []
        for i in range(warmup + calls):
            torch.cuda.synchronize()
            t0 = _t.perf_counter()
            grad, _ = sg(x, views=views, step=1000, generator=torch.Generator(device="cuda").manual_seed(i))
            torch.cuda.synchronize()
            ts.append(_t.perf_counter() - t0)
            if i == warmup:
                ref = grad
        res[label + "_ms"] = 1e3 * float(onp.median(ts[warmup:]))
        res.setdefault("grads", {})[label] = ref
    gr = res.pop("grads")
    res["fused_vs_chunked_rel_diff"] = float((gr["fused"] - gr["chunked"]).norm() / gr["chunked"].norm().clamp_min(1e-30))
    res["chunked_repeat_rel_diff"] = float((gr["chunked_again"] - gr["chunked"]).norm()
                                           / gr["chunked"].norm().clamp_min(1e-30))
    res["images"] = n
    return res


def if_views_ab(priors, cfg, torch, *, seeds=(1, 4), calls: int = 10, warmup: int = 3) -> dict:
    """The coarse stage's guidance (IF + MVDream, T_inter) per step with IF on every view vs on
    `if_views_per_group` = 1 of each seed's 4 views, same process, same priors, same inputs: median ms of
    `calls` synchronised calls per seed count (4 views per seed, 64 px renders)."""
    import dataclasses as dc
    import time as _t

    import numpy as onp

    from anchorhoi_jax.priors import guidance as G
    from anchorhoi_jax.priors.bridge import ViewInfo

    g = cfg.compose.guidance
    p_if, p_mv = priors.torch_priors["if"], priors.torch_priors["mvdream"]
    res = {}
    for S in seeds:
        n = 4 * S
        rng = onp.random.default_rng(S)
        c2w = onp.tile(onp.eye(4), (n, 1, 1))
        c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 2.5
        views = ViewInfo(azimuth_deg=rng.uniform(-180, 180, n), elevation_deg=rng.uniform(-10, 40, n),
                         camera_to_world=c2w, views_per_sample=4)
        x = (torch.rand(n, 3, 64, 64, device="cuda", generator=torch.Generator(device="cuda").manual_seed(S)) * 2
             - 1).half()
        for k in (None, 1):
            gk = dc.replace(g, if_views_per_group=k)
            comb = G.CombinedGuidance([(G.if_guidance(p_if, "a man sitting on a sofa", gk), g.if_weight),
                                       (G.mvdream_guidance(p_mv, "a man sitting on a sofa", gk), g.mvdream_weight)])
            ts = []
            for i in range(warmup + calls):
                torch.cuda.synchronize()
                t0 = _t.perf_counter()
                comb(x, views=views, step=1000, generator=torch.Generator(device="cuda").manual_seed(i))
                torch.cuda.synchronize()
                ts.append(_t.perf_counter() - t0)
            res[f"s{S}_if_views_{'all' if k is None else k}_ms"] = 1e3 * float(onp.median(ts[warmup:]))
    return res


def encoder_layout_ab(priors, cfg, torch, *, calls: int = 10, warmup: int = 3) -> dict:
    """The coarse guidance (T_inter: IF on 1 of 4 views + MVDream on the 4 views of one seed, 64 px renders) with
    MVDream's VAE encoder as configured (GuidanceConfig.encoder_channels_last, false = NCHW since session 6) vs
    NHWC (session 5), same process, same inputs, same generator: median ms of `calls` synchronised calls, and the
    relative L2 difference of the returned image gradients next to the one a 1-ulp fp16 change of the input
    makes (the fp16 rounding scale; the layout changes only the kernels' summation order). Also a
    torch.profiler summary of 3 calls of the config's layout (host synchronisations per call, GPU kernel time)."""
    g = cfg.compose.guidance
    p_mv = priors.torch_priors["mvdream"]
    views, x = _views_and_images(4, 1, torch)
    # Every input value moved 1 ulp of its own dtype away from zero (the integer view of a float + 1).
    as_int = {torch.float16: torch.int16, torch.float32: torch.int32}[x.dtype]
    x_ulp = (x.view(as_int) + 1).view(x.dtype)

    def call(xx, seed):
        return priors.inter(xx, views=views, step=1000, generator=torch.Generator(device=xx.device).manual_seed(seed))

    # The NHWC encoder: a channels_last copy of the VAE behind its own graphed VJP, swapped in for the A/B only
    # (the UNets' captured graphs stay as they are).
    import copy

    from anchorhoi_jax.priors.accelerate import GraphedVJP
    from anchorhoi_jax.priors.image import _LatentEncoder

    enc_cfg = p_mv._encoder
    vae_cl = copy.deepcopy(p_mv.vae).to(memory_format=torch.channels_last)

    def make():
        return _LatentEncoder(vae_cl, p_mv.resolution, p_mv.dtype, p_mv.scaling_factor, torch.channels_last)

    enc_nhwc = GraphedVJP(make) if isinstance(enc_cfg, GraphedVJP) else make()
    res, grads = {"config_encoder_channels_last": g.encoder_channels_last}, {}
    try:
        for label, enc in (("config", enc_cfg), ("nhwc", enc_nhwc), ("config_again", enc_cfg)):
            p_mv._encoder = enc
            res[f"{label}_ms"] = _median_ms(lambda i: call(x, i), torch, calls=calls, warmup=warmup)
            grads[label] = call(x, 7)[0].float()
            if label == "config":
                grads["config_ulp"] = call(x_ulp, 7)[0].float()
                res["profile_config"] = _profile_calls(lambda i: call(x, i), torch)
    finally:
        p_mv._encoder = enc_cfg
    rel = lambda a, b: float((a - b).norm() / b.norm().clamp_min(1e-30))  # noqa: E731
    res["nhwc_vs_config_rel_diff"] = rel(grads["nhwc"], grads["config"])
    res["config_repeat_rel_diff"] = rel(grads["config_again"], grads["config"])
    res["one_ulp_input_rel_diff"] = rel(grads["config_ulp"], grads["config"])
    return res


# Image counts per SDS call of ONE seed (configs/bench_pipeline.yaml: IF on 1 of each seed's 4 views with
# CFG -> 2 images; MVDream on the 4 views with CFG -> 8 latents; its VAE encoder on the 4 renders).
SWEEP_PER_SEED = {"if_unet": 2, "mvdream_unet": 8, "mvdream_encode_fwd_vjp": 4}


def _meta_modules(priors, torch) -> dict:
    """FLOP-counting twins of the priors' networks on the meta device (same configs, no memory, no GPU time)."""
    import copy

    from anchorhoi_jax.priors.image import _LatentEncoder

    p_if, p_mv = priors.torch_priors["if"], priors.torch_priors["mvdream"]
    with torch.device("meta"):
        unet_if = type(p_if.unet).from_config(p_if.unet.config) if hasattr(p_if.unet, "config") \
            else copy.deepcopy(p_if.unet).to("meta")
        unet_mv = type(p_mv.unet)(p_mv.unet.cfg)
        vae = type(p_mv.vae).from_config(p_mv.vae.config)
    enc = _LatentEncoder(vae.to(p_mv.dtype), p_mv.resolution, p_mv.dtype, p_mv.scaling_factor).requires_grad_(False)
    return {"if": unet_if.to(p_if.dtype).eval(), "mv": unet_mv.to(p_mv.dtype).eval(), "enc": enc}


def count_flops(priors, torch, images: dict) -> dict:
    """FLOPs (torch.utils.flop_counter, 2 per multiply-add) of one call of each piece at the given image counts,
    counted on meta-device twins: IF-I-XL UNet forward, MVDream UNet forward, MVDream VAE encoder forward +
    input VJP (SDS back-propagates through the encoder only; the UNets' eps is used without a gradient)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = _meta_modules(priors, torch)
    p_if, p_mv = priors.torch_priors["if"], priors.torch_priors["mvdream"]
    e_if = priors.inter.parts[0][0].inner.emb_tags.shape[-2:]
    e_mv = priors.inter.parts[1][0].emb_tags.shape[-2:]
    d, r_if, r_mv = "meta", p_if.resolution, p_mv.resolution // 8

    def count(fn):
        with FlopCounterMode(display=False) as fc:
            fn()
        return int(fc.get_total_flops())

    def enc_vjp(n):
        x = torch.zeros(n, 3, 64, 64, device=d, dtype=p_mv.dtype, requires_grad=True)
        z = m["enc"](x)
        z.backward(torch.ones_like(z))  # autograd.grad trips FlopCounterMode's leaf hooks; same backward

    out = {}
    for key, ns in images.items():
        for n in ns:
            if key == "if_unet":
                fn = lambda n=n: m["if"](torch.zeros(n, 3, r_if, r_if, device=d, dtype=p_if.dtype),  # noqa: E731
                                         torch.zeros(n, device=d, dtype=torch.long),
                                         encoder_hidden_states=torch.zeros(n, *e_if, device=d, dtype=p_if.dtype))
            elif key == "mvdream_unet":
                fn = lambda n=n: m["mv"](torch.zeros(n, 4, r_mv, r_mv, device=d, dtype=p_mv.dtype),  # noqa: E731
                                         torch.zeros(n, device=d, dtype=torch.long),
                                         torch.zeros(n, *e_mv, device=d, dtype=p_mv.dtype),
                                         camera=torch.zeros(n, 16, device=d, dtype=p_mv.dtype), num_frames=4)
            else:
                fn = lambda n=n: enc_vjp(n)  # noqa: E731
            out.setdefault(key, {})[n] = count(fn)
    return out


def throughput_sweep(priors, torch, *, seeds=(1, 2, 4, 8), calls: int = 8, warmup: int = 2,
                     peak_tflops: float | None = None) -> dict:
    """Batch sweep of each network piece of the SDS guidance, called as the stages call it, at the image counts of
    `seeds` seeds per call (SWEEP_PER_SEED): the accelerated IF-I-XL UNet (`predict_eps`, CFG batch), the MVDream
    UNet (`predict_eps`, groups of 4 views with cameras) and MVDream's VAE encoder forward + input VJP (`encode`
    under autograd, what SDSGuidance differentiates). Per piece and batch: median ms of `calls` calls (CUDA
    events, after `warmup` calls that capture the batch's CUDA graphs), images/s, FLOPs per call (meta-device
    count) and achieved TFLOP/s. Diagnostics of the ratio target: how far from its saturated rate a 1-seed call
    runs (benchmarks/results/pipeline.md, session 7)."""
    import numpy as onp

    p_if, p_mv = priors.torch_priors["if"], priors.torch_priors["mvdream"]
    dev = p_if.device
    e_if_tags = priors.inter.parts[0][0].inner.emb_tags
    e_mv_tags = priors.inter.parts[1][0].emb_tags
    images = {k: [v * s for s in seeds] for k, v in SWEEP_PER_SEED.items()}
    t0 = time.perf_counter()
    flops = count_flops(priors, torch, images)
    res = {"seeds": list(seeds), "images_per_seed": SWEEP_PER_SEED, "flops_count_s": time.perf_counter() - t0,
           "peak_tflops": peak_tflops, "pieces": {}}
    gen = torch.Generator(device=dev).manual_seed(0)

    def timed(fn):
        ts = []
        for i in range(warmup + calls):
            if dev.type == "cuda":
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                fn()
                e1.record()
                e1.synchronize()
                ts.append(e0.elapsed_time(e1))
            else:
                t1 = time.perf_counter()
                fn()
                ts.append(1e3 * (time.perf_counter() - t1))
        return float(onp.median(ts[warmup:])), ts[:warmup]

    for key, ns in images.items():
        for s, n in zip(seeds, ns):
            if key == "if_unet":
                z = torch.randn(n, 3, p_if.resolution, p_if.resolution, device=dev, generator=gen).to(p_if.dtype)
                t = torch.full((n,), 500, device=dev)
                emb = e_if_tags[torch.arange(n, device=dev) % e_if_tags.shape[0]]
                fn = lambda z=z, t=t, emb=emb: p_if.predict_eps(z, t, emb)  # noqa: E731
            elif key == "mvdream_unet":
                views, _ = _views_and_images(n, s, torch)
                r = p_mv.resolution // 8
                z = torch.randn(n, 4, r, r, device=dev, generator=gen).to(p_mv.dtype)
                t = torch.full((n,), 500, device=dev)
                emb = e_mv_tags[torch.arange(n, device=dev) % e_mv_tags.shape[0]]
                fn = lambda z=z, t=t, emb=emb, views=views: p_mv.predict_eps(z, t, emb, views)  # noqa: E731
            else:
                _, x = _views_and_images(n, s, torch)

                def fn(x=x):
                    with torch.enable_grad():
                        xx = x.detach().requires_grad_(True)
                        zz = p_mv.encode(xx)
                        (g,) = torch.autograd.grad(zz, xx, torch.ones_like(zz))
                    return g
            try:
                ms, first = timed(fn)
            except Exception as e:  # noqa: BLE001 -- e.g. out of memory at the largest batch: recorded
                res["pieces"].setdefault(key, {})[str(n)] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                continue
            f = flops[key][n]
            row = {"seeds": s, "images": n, "ms": ms, "ms_per_image": ms / n, "images_per_s": 1e3 * n / ms,
                   "tflop_per_call": f / 1e12, "tflops": f / 1e12 / (ms / 1e3), "first_calls_ms": first}
            if peak_tflops:
                row["fraction_of_peak"] = row["tflops"] / peak_tflops
            res["pieces"].setdefault(key, {})[str(n)] = row
            print(json.dumps({"sweep": key, **{k: row[k] for k in ("images", "ms", "tflops")}}), flush=True)
    res["wall_s"] = time.perf_counter() - t0
    return res


class StopAfter(Exception):
    """Raised at the start of the stage after `--stop-after STAGE` (a run cut short on purpose)."""


def _stop_after(stage: str):
    """Patch the composition graph so the run stops when the first stage after `stage` (graph order) starts."""
    import dataclasses as dc

    from anchorhoi_jax.pipeline import compose_stages as CS

    orig = CS.compose_stages
    names = list(GRAPH_STAGES)
    if stage not in names or stage == names[-1]:
        raise SystemExit(f"--stop-after: expected one of {names[:-1]}, got {stage!r}")
    later = set(names[names.index(stage) + 1:])

    def patched(*a, **k):
        def stop(name):
            def fn(*_a, **_k):
                raise StopAfter(f"stopped before stage {name} (--stop-after {stage})")
            return fn
        return [dc.replace(st, fn=stop(st.name)) if st.name in later else st for st in orig(*a, **k)]

    CS.compose_stages = patched


def run_gpu(args) -> dict:
    import jax
    import torch

    from anchorhoi_jax.generate import execute
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    if args.stop_after:
        _stop_after(args.stop_after)
    res = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "jax": jax.__version__,
           "stop_after": args.stop_after,
           "torch": torch.__version__, "overrides": GPU_OVERRIDES + args.extra, "prompt": PROMPT,
           "config": args.preset, "tree": _tree_state(), "tiny_priors": args.tiny}
    # configs/bench_pipeline.yaml == configs/anchorhoi.yaml + GPU_OVERRIDES (tests/pipeline/test_bench_config.py)
    cfg1 = load_config(GenerateConfig, REPO / args.preset, args.extra)
    cfg1 = dataclasses.replace(cfg1, prompt=PROMPT)
    t0 = time.perf_counter()
    # --tiny: the preset's own priors (a CPU dry run of this script with configs/smoke.yaml)
    priors = None if args.tiny else real_size_priors(cfg1, device, dtype, accelerate=args.accelerate)
    prior_events: list = []
    if args.phases and priors is not None and device == "cuda":
        for name, p in priors.torch_priors.items():
            _time_prior_calls(p, name, prior_events, torch)
    res["priors_accelerate"] = (f"{cfg1.compose.guidance.accelerate}, channels_last={cfg1.compose.guidance.channels_last}, "
                                f"encoder_channels_last={cfg1.compose.guidance.encoder_channels_last}"
                                if args.accelerate and not args.tiny else "none (eager)")
    res["priors_build_s"] = time.perf_counter() - t0
    res["render_remat"] = {"coarse": cfg1.compose.coarse.render.remat, "object": cfg1.compose.object.render.remat}
    res["paper_steps"] = paper_steps(cfg1)
    import importlib.util

    # The GPU machine ships imageio without its ffmpeg binary: then the exports (MP4) are skipped there.
    has_ffmpeg = importlib.util.find_spec("imageio_ffmpeg") is not None
    res["exports_timed"] = has_ffmpeg
    for seeds in args.seeds:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        cfg = dataclasses.replace(cfg1, seeds=seeds)
        t0 = time.perf_counter()
        log_lines: list[str] = []
        handler = _ListHandler(log_lines)
        logging.getLogger("anchorhoi_jax").addHandler(handler)
        records: list = []
        prior_events.clear()
        from anchorhoi_jax.priors.bridge import record_phases

        try:
            with record_phases(records) if args.phases else _nullcontext():
                r = execute(cfg, out=Path(args.runs) / f"run_s{seeds}", overwrite=True,
                            priors_fn=None if priors is None else (lambda: priors), export=has_ffmpeg)
        except Exception as e:  # noqa: BLE001 -- record what ran (stage times, peak memory) and the error
            stages, events = parse_stage_log(log_lines)
            out = {"wall_s": time.perf_counter() - t0, **summarize(stages, stage_rates(events), res["paper_steps"]),
                   **_peak(torch), "error": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}",
                   "checkpoints": checkpoint_costs(log_lines),
                   "phases": phase_summary(records, prior_events, stage_windows(log_lines)) if args.phases else None}
            res[f"s{seeds}"] = out
            print(json.dumps({f"s{seeds}": out}), flush=True)
            Path(args.out, "pipeline_gpu.json").write_text(json.dumps(res, indent=2))
            continue
        finally:
            logging.getLogger("anchorhoi_jax").removeHandler(handler)
        wall = time.perf_counter() - t0
        stages = {t.name: {"status": t.status, "seconds": t.seconds, "steps": t.steps} for t in r.timings}
        infos = {}
        for sd, st in (r.outputs.get("static") or {}).items():
            if isinstance(st, dict) and "info" in st:
                from anchorhoi_jax.pipeline.pack import unpack_json

                i = unpack_json(st["info"])
                infos[sd] = {k: i.get(k) for k in ("mesh_threshold", "mesh_threshold_source", "density_min",
                                                   "density_max", "occupied_fraction", "mesh_faces",
                                                   "mesh_resolution", "human_mask_source", "pose_source")}
        out = {"wall_s": wall, **summarize(stages, stage_rates(r.events), res["paper_steps"]), **_peak(torch),
               "seed_infos": infos, "checkpoints": checkpoint_costs(log_lines),
               "phases": phase_summary(records, prior_events, stage_windows(log_lines)) if args.phases else None}
        res[f"s{seeds}"] = out
        if priors is not None:
            out["priors_state"] = priors_state(priors)
        if args.ab and priors is not None and device == "cuda":
            try:
                out["object_guidance_ab"] = object_guidance_ab(priors, seeds, torch)
            except Exception as e:  # noqa: BLE001 -- the A/B is extra; keep the run's numbers
                out["object_guidance_ab"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        if args.layout_ab and priors is not None and device == "cuda":
            try:
                out["encoder_layout_ab"] = encoder_layout_ab(priors, cfg1, torch)
            except Exception as e:  # noqa: BLE001 -- the A/B is extra; keep the run's numbers
                out["encoder_layout_ab"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            Path(args.out, "pipeline_gpu.json").write_text(json.dumps(res, indent=2))
        if args.if_views_ab and priors is not None and device == "cuda":
            try:
                out["if_views_ab"] = if_views_ab(priors, cfg1, torch)
            except Exception as e:  # noqa: BLE001 -- the A/B is extra; keep the run's numbers
                out["if_views_ab"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        print(json.dumps({f"s{seeds}": out}), flush=True)
        Path(args.out, "pipeline_gpu.json").write_text(json.dumps(res, indent=2))  # after every seed count
    if args.sweep and priors is not None:
        try:
            res["sweep"] = throughput_sweep(priors, torch, seeds=tuple(args.sweep_seeds),
                                            peak_tflops=peak_tflops(res["device"]))
        except Exception as e:  # noqa: BLE001 -- diagnostics; keep the run's numbers
            res["sweep"] = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
        Path(args.out, "pipeline_gpu.json").write_text(json.dumps(res, indent=2))
    return res


def peak_tflops(device_name: str) -> float | None:
    """Dense fp16 tensor-core peak (TFLOP/s) of the devices the benchmark ran on (vendor data sheets)."""
    if "H100" in device_name and ("HBM3" in device_name or "SXM" in device_name):
        return 989.4
    if "H200" in device_name:
        return 989.4
    return None


def run_sweep(args) -> dict:
    """`throughput_sweep` alone (tiny priors with --tiny: a CPU dry run of the code path)."""
    import torch

    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig

    cfg = load_config(GenerateConfig, REPO / args.preset, args.extra)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        from anchorhoi_jax.stages.composition import build_priors

        priors = build_priors("a man with sideburns | sitting on | a sofa", cfg.compose, device=dev,
                              dtype=torch.float32)
        priors.torch_priors = {"if": priors.inter.parts[0][0].inner.prior, "mvdream": priors.inter.parts[1][0].prior}
    else:
        priors = real_size_priors(cfg, dev, torch.float16, accelerate=True)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    res = {"device": name, "sweep": throughput_sweep(priors, torch, seeds=tuple(args.sweep_seeds),
                                                     calls=args.sweep_calls, peak_tflops=peak_tflops(name))}
    Path(args.out, "pipeline_sweep.json").write_text(json.dumps(res, indent=2))
    return res


def run_sds(args) -> dict:
    """The object stage alone at --seeds S (first value) on the real-size accelerated priors: `--sds-steps`
    SDS steps from a fresh coarse-init state (no alignment init) with the posed rest Anny mesh as the human,
    chunk by chunk (fuse_guidance=false) then fused, each with bridge.record_phases and its torch / XLA peak.
    For the 4-seed object rate when the whole 4-seed pipeline does not fit one device call."""
    import jax
    import numpy as onp
    import torch

    from anchorhoi_jax.body.anny import load_anny
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig
    from anchorhoi_jax.priors.bridge import record_phases
    from anchorhoi_jax.stages import avatar as AV
    from anchorhoi_jax.stages import coarse as CO
    from anchorhoi_jax.stages import object_stage as OB

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    cfg = load_config(GenerateConfig, REPO / args.preset, args.extra)
    S = args.seeds[0]
    res = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "seeds": S, "steps": args.sds_steps,
           "preset": args.preset, "overrides": args.extra}
    if args.tiny:
        from anchorhoi_jax.stages.composition import build_priors

        priors = build_priors("a man with sideburns | sitting on | a sofa", cfg.compose, device=device, dtype=dtype)
    else:
        priors = real_size_priors(cfg, device, dtype, accelerate=True)
    body = load_anny()
    verts, faces, colors = AV.avatar_mesh(AV._zero_params(body), body)
    human = (onp.asarray(verts), onp.asarray(faces, onp.int32), onp.asarray(colors))
    keys = jax.random.split(jax.random.key(0), S)
    for fuse in (False, True):
        ocfg = dataclasses.replace(cfg.compose.object, steps=args.sds_steps, log_every=args.sds_steps,
                                   fuse_guidance=fuse)
        state = CO.init_seeds(keys, cfg.compose.coarse)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        recs: list = []
        label = "fused" if fuse else "chunked"
        t0 = time.perf_counter()
        from anchorhoi_jax.priors.guidance import StackedGuidance

        kw = StackedGuidance.__init__.__kwdefaults__
        cap = kw["fuse_max_images"]
        kw["fuse_max_images"] = 10**6  # measure fused at any batch (the library falls back above 16 images)
        try:
            with record_phases(recs):
                OB.fit(state, ocfg, OB.ObjectWeights.default(), priors.object, priors.inter, human)
        except Exception as e:  # noqa: BLE001 -- e.g. out of memory: recorded, the other variant still reported
            res[label] = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", **_peak(torch)}
            print(json.dumps({label: res[label]}), flush=True)
            continue
        finally:
            kw["fuse_max_images"] = cap
        steady = recs[2:]
        row = {"wall_s": time.perf_counter() - t0, **_peak(torch), "batch": recs[0]["batch"]}
        for k in ("render_vjp", "to_torch", "guidance", "to_jax", "update", "total"):
            row[k + "_ms"] = 1e3 * float(onp.median([r[k] for r in steady]))
        res[label] = row
        print(json.dumps({label: row}), flush=True)
        Path(args.out, f"pipeline_sds_s{S}.json").write_text(json.dumps(res, indent=2))
    Path(args.out, f"pipeline_sds_s{S}.json").write_text(json.dumps(res, indent=2))
    return res


def _views_and_images(n: int, seed: int, torch, size: int = 64):
    """Random ViewInfo (groups of 4, cameras) and model-range fp16 renders of n views (A/B inputs)."""
    import numpy as onp

    from anchorhoi_jax.priors.bridge import ViewInfo

    rng = onp.random.default_rng(seed)
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 2.5
    views = ViewInfo(azimuth_deg=rng.uniform(-180, 180, n), elevation_deg=rng.uniform(-10, 40, n),
                     camera_to_world=c2w, views_per_sample=4)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = (torch.rand(n, 3, size, size, device=dev, generator=torch.Generator(device=dev).manual_seed(seed)) * 2 - 1)
    return views, x.half() if dev == "cuda" else x


def _sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_ms(fn, torch, *, calls: int = 10, warmup: int = 3) -> float:
    import time as _t

    import numpy as onp

    ts = []
    for i in range(warmup + calls):
        _sync(torch)
        t0 = _t.perf_counter()
        fn(i)
        _sync(torch)
        ts.append(_t.perf_counter() - t0)
    return 1e3 * float(onp.median(ts[warmup:]))


def _profile_calls(fn, torch, calls: int = 3) -> dict:
    """torch.profiler over `calls` synchronised calls: wall, GPU kernel time, top kernels, host sync counts."""
    import time as _t

    from torch.profiler import ProfilerActivity, profile

    _sync(torch)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        t0 = _t.perf_counter()
        for i in range(calls):
            fn(100 + i)
        _sync(torch)
        wall = _t.perf_counter() - t0
    ka = prof.key_averages()
    kern = [e for e in ka if getattr(e, "self_device_time_total", 0) > 0 and e.device_type.name == "CUDA"]
    gpu_us = sum(e.self_device_time_total for e in kern)
    top = sorted(kern, key=lambda e: -e.self_device_time_total)[:25]
    api = {e.key: e.count for e in ka if e.key.startswith("cuda") and e.count > 0}
    return {"wall_ms_per_call": 1e3 * wall / calls, "gpu_kernel_ms_per_call": 1e-3 * gpu_us / calls,
            "top_kernels_ms_per_call": [(e.key[:90], round(1e-3 * e.self_device_time_total / calls, 3),
                                         e.count // calls) for e in top],
            "runtime_api_calls_per_call": {k: v / calls for k, v in sorted(api.items())}}


def run_guidance_profile(args) -> dict:
    """Where the SDS guidance time goes on the real-size accelerated priors (one device call, ~1.5 min):
    the coarse guidance (T_inter, 4 views per seed) and the object stage's fused guidance (8 views) timed and
    profiled, then each prior's pieces (IF UNet on the CFG pair, MVDream VAE-encoder forward and forward +
    input-VJP, MVDream UNet) timed in NHWC (session 5's layouts: UNets and encoder channels_last) and again
    after switching both priors to NCHW. Run in session 6 on commit-time code with the session-5 guidance
    (host synchronisations inside); the guidance has changed since, the layouts here are set explicitly."""
    import torch

    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig
    from anchorhoi_jax.priors.guidance import StackedGuidance
    from anchorhoi_jax.stages.object_stage import _Named

    cfg = load_config(GenerateConfig, REPO / args.preset, args.extra)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    if args.tiny:  # CPU dry run: the preset's tiny priors
        from anchorhoi_jax.stages.composition import build_priors

        priors = build_priors("a man with sideburns | sitting on | a sofa", cfg.compose, device=dev,
                              dtype=torch.float32)
        priors.torch_priors = {"if": priors.inter.parts[0][0].inner.prior, "mvdream": priors.inter.parts[1][0].prior}
    else:
        priors = real_size_priors(cfg, dev, torch.float16, accelerate=True)
    res = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
           "tree": _tree_state(), "priors_build_s": time.perf_counter() - t0}
    p_if, p_mv = priors.torch_priors["if"], priors.torch_priors["mvdream"]
    g = cfg.compose.guidance
    for p in (p_if, p_mv):  # session 5's layouts (UNets and VAE encoder NHWC); everything NCHW further down
        p.accelerate(g.accelerate, channels_last=True, encoder_channels_last=True)
    fdt = torch.float16 if dev == "cuda" else torch.float32
    S = args.seeds[0]
    v4, x4 = _views_and_images(4 * S, 1, torch)
    v8, x8 = _views_and_images(8 * S, 2, torch)
    stacked = StackedGuidance([(_Named(priors.object, "object"), 1.0), (_Named(priors.inter, "layout"), 1.0)],
                              fuse=True)

    def gen(i):
        return torch.Generator(device=dev).manual_seed(i)

    def coarse(i):
        return priors.inter(x4, views=v4, step=1000, generator=gen(i))

    def obj(i):
        return stacked(x8, views=v8, step=1000, generator=gen(i))

    for label, fn in (("coarse", coarse), ("object_fused", obj)):
        t1 = time.perf_counter()
        fn(0)
        _sync(torch)
        res[f"{label}_first_call_s"] = time.perf_counter() - t1
        res[f"{label}_ms"] = _median_ms(fn, torch)
        try:
            res[f"{label}_profile"] = _profile_calls(fn, torch)
        except Exception as e:  # noqa: BLE001 -- diagnostics only
            res[f"{label}_profile"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        print(json.dumps({label: res[f"{label}_ms"]}), flush=True)

    p_if_emb = priors.inter.parts[0][0].inner.emb_tags
    p_mv_emb = priors.inter.parts[1][0].emb_tags

    def pieces(tag):
        out = {}
        for n in (4, 8):
            xi = (x8[:n] if n <= x8.shape[0] else x8).detach()
            out[f"mv_encode_fwd_b{n}_ms"] = _median_ms(lambda i: p_mv.encode(xi), torch)

            def fwd_bwd(i, xi=xi):
                with torch.enable_grad():
                    x = xi.detach().requires_grad_(True)
                    z = p_mv.encode(x)
                    (g,) = torch.autograd.grad(z, x, torch.ones_like(z))
                return g
            out[f"mv_encode_fwd_vjp_b{n}_ms"] = _median_ms(fwd_bwd, torch)
        e_if, e_mv = p_if_emb.shape[-2:], p_mv_emb.shape[-2:]
        emb = torch.randn(2, *e_if, device=dev, dtype=fdt)
        r_if, r_mv = p_if.resolution, p_mv.resolution // 8
        z2 = torch.randn(2, 3, r_if, r_if, device=dev, dtype=fdt)
        t2 = torch.tensor([500, 500], device=dev)
        out["if_unet_b2_ms"] = _median_ms(lambda i: p_if.predict_eps(z2, t2, emb), torch)
        z8 = torch.randn(8, 4, r_mv, r_mv, device=dev, dtype=fdt)
        t8 = torch.full((8,), 500, device=dev)
        e8 = torch.randn(8, *e_mv, device=dev, dtype=fdt)
        from anchorhoi_jax.priors.sds import _repeat_views
        out["mv_unet_b8_ms"] = _median_ms(lambda i: p_mv.predict_eps(z8, t8, e8, _repeat_views(v4, 2)), torch)
        out["coarse_ms"] = _median_ms(coarse, torch)
        return out

    res["nhwc"] = pieces("nhwc")
    print(json.dumps({"nhwc": res["nhwc"]}), flush=True)
    Path(args.out, "guidance_profile.json").write_text(json.dumps(res, indent=2))
    for p in (p_if, p_mv):
        p.accelerate(g.accelerate, channels_last=False)
    if dev == "cuda":
        torch.cuda.empty_cache()
    coarse(0)
    res["nchw"] = pieces("nchw")
    print(json.dumps({"nchw": res["nchw"]}), flush=True)
    Path(args.out, "guidance_profile.json").write_text(json.dumps(res, indent=2))
    return res


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


class _ListHandler(logging.Handler):
    """Collects formatted log lines (the stage log of a run that may stop before returning)."""

    def __init__(self, lines: list):
        super().__init__(logging.INFO)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))


def from_log(args) -> dict:
    """A gpu-mode result (DIR/pipeline_gpu_from_log.json) rebuilt from a stage log file (--log) of a run
    with --seeds N that stopped early: stage times and steady rates are in the log; peak memory is not."""
    stages, events = parse_stage_log(Path(args.log).read_text().splitlines())
    res = {"device": args.device, "jax": None, "torch": None, "overrides": GPU_OVERRIDES, "config": args.preset,
           "paper_steps": paper_steps(None), "source_log": str(args.log)}
    (n,) = args.seeds
    res[f"s{n}"] = {**summarize(stages, stage_rates(events), res["paper_steps"]), "peak_gb": None,
                    "torch_peak_gb": None, "jax_peak_gb": None, "error": args.error}
    dst = Path(args.out, f"pipeline_gpu_s{n}_from_log.json")
    dst.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return res


def run_demo(args) -> dict:
    """The README's smoke `generate`, fresh process, cold XLA cache: wall and CPU minutes."""
    import tempfile

    out = Path(args.out) / "demo"
    cache = tempfile.mkdtemp(prefix="xla_")
    cmd = [sys.executable, "-m", "anchorhoi_jax", "generate", "a man sitting on a sofa", "--config",
           str(REPO / "configs" / "smoke.yaml"), "--out", str(out), "--overwrite"]
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, PYTHONPATH=str(REPO))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res = {"demo_cpu_min": wall / 60, "demo_cpu_time_min": cpu / 60, "cores": os.cpu_count(),
           "command": " ".join(cmd[2:]), "timings": json.loads((out / "timings.json").read_text())}
    Path(args.out, "pipeline_demo.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return res


def _load_gpu(args) -> dict:
    """The gpu-mode results to merge: DIR/pipeline_gpu.json, or several (--gpu-json, e.g. the 4-seed and
    the 1-seed calls of one session) combined; later files win for a seed count both measured."""
    files = args.gpu_json or [str(Path(args.out, "pipeline_gpu.json"))]
    gpu: dict = {}
    for f in files:
        part = json.loads(Path(f).read_text())
        for k, v in part.items():
            if k.startswith("s") and k[1:].isdigit():
                gpu[k] = {**v, "source_file": f, "tree": part.get("tree")}
            else:
                gpu.setdefault(k, v)
    return gpu


def merge(args) -> dict:
    """benchmarks/results/pipeline.json from the gpu-mode results (+ DIR/pipeline_demo.json if present).

    The file's previous top-level measurements move under `previous_runs[<--previous-label>]`; demo keys
    are carried over when no new demo was run."""
    gpu = _load_gpu(args)
    demo = json.loads(Path(args.out, "pipeline_demo.json").read_text()) if Path(args.out, "pipeline_demo.json").is_file() \
        else None
    dst = REPO / "benchmarks" / "results" / "pipeline.json"
    old = json.loads(dst.read_text()) if dst.is_file() else {}
    s1, s4 = gpu.get("s1"), gpu.get("s4")
    if s1 is None:
        raise SystemExit("merge: no 1-seed gpu result (s1) in the inputs")
    ratio = lambda a, b: None if a is None or not b else a / b  # noqa: E731
    table = {}
    for name in s1["stages"]:
        a = s1["stages"][name]["seconds"]
        b = (s4 or {}).get("stages", {}).get(name, {}).get("seconds")
        r1 = s1["rates"].get(name, {}).get("s_per_step")
        r4 = (s4 or {}).get("rates", {}).get(name, {}).get("s_per_step")
        table[name] = {"s1_s": a, "s4_s": b, "s4_over_s1": ratio(b, a), "steps": s1["stages"][name]["steps"],
                       "s_per_step_s1": r1, "s_per_step_s4": r4, "s_per_step_s4_over_s1": ratio(r4, r1),
                       "projected_paper_steps_s1_s": s1["projected_paper_steps_s"].get(name),
                       "projected_paper_steps_s4_s": (s4 or {}).get("projected_paper_steps_s", {}).get(name)}
    excl = lambda r: sum(v["seconds"] for k, v in r["stages"].items() if k != "video")  # noqa: E731
    complete1 = s1.get("complete", True)
    complete4 = s4 is not None and s4.get("complete", True)
    # Stages both runs finished (video excluded, as in the target): the ratio over them is a measurement
    # even when a run stopped early; the whole-pipeline ratio needs both runs complete.
    common = [k for k in s1["stages"] if s4 is not None and k in s4["stages"] and k != "video"]
    sum_of = lambda r, key: sum(r[key][k] if key != "stages" else r[key][k]["seconds"] for k in common)  # noqa: E731
    steady1 = steady_projection(s1, gpu["paper_steps"])
    steady4 = None if s4 is None else steady_projection(s4, gpu["paper_steps"])
    res = {
        "device": gpu["device"],
        "demo_cpu_min": old.get("demo_cpu_min") if demo is None else demo["demo_cpu_min"],
        "demo_cpu_time_min": old.get("demo_cpu_time_min") if demo is None else demo["demo_cpu_time_min"],
        "gpu_one_seed_min": excl(s1) / 60 if complete1 else None,
        "gpu_one_seed_projected_paper_steps_min": s1["projected_total_excl_video_s"] / 60 if complete1 else None,
        "gpu_four_seeds_min": excl(s4) / 60 if complete4 else None,
        "gpu_four_seeds_projected_paper_steps_min": s4["projected_total_excl_video_s"] / 60 if complete4 else None,
        "gpu_four_over_one": excl(s4) / excl(s1) if complete1 and complete4 else None,
        "gpu_four_over_one_projected_paper_steps": s4["projected_total_excl_video_s"] / s1["projected_total_excl_video_s"]
        if complete1 and complete4 else None,
        "common_stages": common,
        "four_over_one_common_stages": sum_of(s4, "stages") / sum_of(s1, "stages") if common else None,
        "four_over_one_common_stages_projected_paper_steps":
            sum_of(s4, "projected_paper_steps_s") / sum_of(s1, "projected_paper_steps_s") if common else None,
        "gpu_one_seed_partial_min": excl(s1) / 60,
        "gpu_one_seed_partial_projected_paper_steps_min": s1["projected_total_excl_video_s"] / 60,
        "complete": {"s1": complete1, "s4": complete4},
        "errors": {k: v.get("error") for k, v in (("s1", s1), ("s4", s4)) if v and v.get("error")},
        "gpu_one_seed_projected_paper_steps_steady_min": None if steady1 is None or not complete1 else
        sum(v for k, v in steady1.items() if k != "video") / 60,
        "projected_paper_steps_steady_s": {"s1": steady1, "s4": steady4},
        "composition_four_over_one": None if s4 is None else s4["composition_s"] / s1["composition_s"],
        "composition_four_over_one_projected_paper_steps": None if s4 is None else
        s4["composition_projected_s"] / s1["composition_projected_s"],
        "peak_gb_s1": s1["peak_gb"], "peak_gb_s4": None if s4 is None else s4["peak_gb"],
        "peak_detail": {k: {m: v.get(m) for m in ("torch_peak_gb", "jax_peak_gb", "peak_gb")}
                        for k, v in (("s1", s1), ("s4", s4)) if v},
        "per_stage": table,
        "seed_infos": {k: v.get("seed_infos") for k, v in (("s1", s1), ("s4", s4)) if v},
        "config": gpu.get("config"), "reduced_steps": gpu["overrides"], "paper_steps": gpu["paper_steps"],
        "command": "python benchmarks/pipeline.py gpu --out DIR --seeds N (H100, one process per seed count); "
                   "python benchmarks/pipeline.py demo --out DIR (CPU); "
                   "python benchmarks/pipeline.py merge --out DIR --gpu-json S4.json S1.json",
        "versions": {"jax": gpu["jax"], "torch": gpu["torch"]},
        "exports_timed_on_gpu": gpu.get("exports_timed"),
        "sources": {k: {"file": v.get("source_file"), "tree": v.get("tree")} for k, v in (("s1", s1), ("s4", s4)) if v},
    }
    sweep = gpu.get("sweep")
    if sweep and "pieces" in sweep:
        res["sweep"] = sweep
        if s4 is not None and s4.get("phases") and s1.get("phases"):
            res["four_seed_floor"] = four_seed_floor(s1, s4, sweep, gpu["paper_steps"])
    prev = dict(old.get("previous_runs", {}))
    if old and args.previous_label:
        prev[args.previous_label] = {k: v for k, v in old.items() if k != "previous_runs"}
    if prev:
        res["previous_runs"] = prev
    dst.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=1))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("gpu", "demo", "merge", "from-log", "sds", "guidance-profile", "sweep"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--runs", default="/tmp/anchorhoi_bench", help="run directories (checkpoints) of the gpu mode")
    ap.add_argument("--preset", default="configs/bench_pipeline.yaml", help="gpu: the config preset (repo-relative)")
    ap.add_argument("--tiny", action="store_true", help="gpu: the preset's own priors instead of real-size ones "
                    "(a CPU dry run with --preset configs/smoke.yaml)")
    ap.add_argument("--accelerate", action="store_true", help="gpu: run the real-size priors with the config's "
                    "guidance.accelerate / channels_last (as build_guidance does); default eager (session 3)")
    ap.add_argument("--phases", action="store_true", help="gpu: record per-step phase times of every SDS step "
                    "(bridge.record_phases) and each prior's synchronised UNet / encoder time")
    ap.add_argument("--ab", action="store_true", help="gpu: after each seed count, time the object stage's guidance "
                    "chunk by chunk vs fused in the same process")
    ap.add_argument("--if-views-ab", action="store_true", help="gpu: after each seed count, time the coarse guidance "
                    "with IF on every view vs one view per group (1 and 4 seeds) in the same process")
    ap.add_argument("--layout-ab", action="store_true", help="gpu: after each seed count, time the coarse guidance "
                    "with MVDream's VAE encoder NCHW vs NHWC and compare the gradients (same process, same inputs)")
    ap.add_argument("--stop-after", help="gpu: stop the run once this stage has finished (e.g. object: the "
                    "composition chain only); the result is marked incomplete")
    ap.add_argument("--sweep", action="store_true", help="gpu: after the seed counts, the batch sweep of the guidance "
                    "networks (images/s, TFLOP/s at the image counts of --sweep-seeds seeds)")
    ap.add_argument("--sweep-seeds", type=int, nargs="+", default=[1, 2, 4, 8], help="gpu/sweep: seed counts swept")
    ap.add_argument("--sweep-calls", type=int, default=8, help="sweep: timed calls per batch")
    ap.add_argument("--sds-steps", type=int, default=12, help="sds: object SDS steps per variant")
    ap.add_argument("--log", help="from-log: the stage log file (pipeline_gpu.log of a gpu-mode call)")
    ap.add_argument("--device", default="NVIDIA H100 80GB HBM3", help="from-log: the device the log came from")
    ap.add_argument("--error", help="from-log: the error that stopped the run (recorded)")
    ap.add_argument("--gpu-json", nargs="+", help="merge: gpu-mode result files to combine (default DIR/pipeline_gpu.json)")
    ap.add_argument("--previous-label", help="merge: keep the file's previous measurements under previous_runs[LABEL]")
    ap.add_argument("extra", nargs="*", help="extra config overrides")
    args = ap.parse_intermixed_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    # The stage log also goes to a file under --out, so a run cut by a time limit still leaves its stage times.
    fh = logging.FileHandler(Path(args.out) / f"pipeline_{args.mode}.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(fh)
    {"gpu": run_gpu, "demo": run_demo, "merge": merge, "from-log": from_log, "sds": run_sds,
     "guidance-profile": run_guidance_profile, "sweep": run_sweep}[args.mode](args)


if __name__ == "__main__":
    main()
