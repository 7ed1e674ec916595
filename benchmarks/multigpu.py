"""Seeds sharded over every GPU of a host (issue 9): 1 device vs N devices, same program, same seeds.

Strong scaling at a fixed number of seeds: the seed axis of the motion stage's state (Eq. 4-6
tracking, 8 seeds) and of a batch of Eq. 2 pose fits (the composition stage's jitted sub-stage) is
placed on a `Mesh` over the first 1 or N devices with `parallel.shard_seeds`; constants are
replicated. The stage code is unchanged: GSPMD partitions the jitted, vmapped step.
efficiency = t(1 device) / (N · t(N devices)).

  python benchmarks/multigpu.py --out benchmarks/results          # on the GPU host
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/multigpu.py --frames 8 \
      --steps 20 --fits 16 --out /tmp/mg                             # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "motion"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

from anchorhoi_jax import parallel  # noqa: E402


def _timed(fn, reps):
    fn()  # compile + warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(onp.median(ts))


def motion_bench(args, devices):
    import motion as mb  # benchmarks/motion.py
    from anchorhoi_jax.stages.motion import MotionConfig, MotionWeights, make_motion_step

    model, op_ids, cand, _ = mb.load_body("smplx-synthetic")
    ns = argparse.Namespace(object_points=args.object_points, pen_vertices=args.pen_vertices)
    case = mb.build_case("carry_box", model, op_ids, cand, args.frames, jax.random.key(0), ns)
    cfg = MotionConfig.for_model(model, steps_per_call=args.steps_per_call)
    init, update1 = make_motion_step(cfg)
    vstep = jax.vmap(update1, in_axes=(0, None, None))
    weights = MotionWeights.default()
    keys = parallel.seed_keys(0, args.seeds)
    results = {}
    for n, mode in [(1, "gspmd")] + [(len(devices), m) for m in ("gspmd", "shard_map")] * (len(devices) > 1):
        mesh = parallel.seed_mesh(devices[:n])
        step = jax.jit(vstep) if mode == "gspmd" else jax.jit(parallel.map_over_seeds(vstep, mesh, 1))
        data = parallel.replicate(case["data"], mesh)
        w = parallel.replicate(weights, mesh)
        state0 = parallel.shard_seeds(jax.vmap(init, in_axes=(None, 0))(case["data"], keys), mesh)

        def run():
            s = state0
            for _ in range(args.steps // args.steps_per_call):
                s, losses, _ = step(s, data, w)
            return jax.block_until_ready(losses)

        results[(n, mode)] = dict(seconds=_timed(run, args.reps), final_loss=onp.asarray(run()[:, -1]).tolist())
        print("motion", n, mode, results[(n, mode)], flush=True)
    return results


def pose_fit_bench(args, devices):
    import pose_fit as pb  # benchmarks/pose_fit.py
    from anchorhoi_jax.body.skinning import pose_joints
    from anchorhoi_jax.stages import pose_fit as pf

    import tempfile

    model = pb.load_body(tempfile.gettempdir())
    setup, fb = pf.make_setup(model)
    views = pf.CanonicalViews()
    cams = pf.canonical_cameras(views)
    gen = jax.jit(jax.vmap(pb.make_problem(fb, setup, cams, views), in_axes=(0, None, None)))
    body, kp3, j22, uv, is_out = gen(jax.random.split(jax.random.key(0), args.fits), 2.0, 0.1)
    conf = jnp.ones(uv.shape[:3])
    fit = pf.make_fit(setup, pf.PoseFitConfig(robust=True))
    weights = pf.PoseFitWeights.default()
    target = jnp.asarray(views.target)

    def one(uv_i, conf_i, betas_i):
        p, kp, _ = fit(fb, betas_i, pf.MultiViewKeypoints(uv_i, conf_i, cams.K, cams.T_cam_world), target, weights)
        return kp

    vone = jax.vmap(one)
    results = {}
    for n, mode in [(1, "gspmd")] + [(len(devices), m) for m in ("gspmd", "shard_map")] * (len(devices) > 1):
        mesh = parallel.seed_mesh(devices[:n])
        f = jax.jit(vone) if mode == "gspmd" else jax.jit(parallel.map_over_seeds(vone, mesh, 3))
        uv_s, conf_s, b_s = parallel.shard_seeds((uv, conf, body.betas), mesh)
        r = dict(seconds=_timed(lambda: jax.block_until_ready(f(uv_s, conf_s, b_s)), args.reps))
        kp = onp.asarray(f(uv_s, conf_s, b_s))
        r["mpjpe18_mm"] = float(onp.linalg.norm(kp - onp.asarray(kp3), axis=-1).mean() * 1e3)
        results[(n, mode)] = r
        print("pose_fit", n, mode, r, flush=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--steps-per-call", type=int, default=100)
    ap.add_argument("--object-points", type=int, default=2048)
    ap.add_argument("--pen-vertices", type=int, default=2048)
    ap.add_argument("--fits", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    parallel.initialize_distributed()
    devices = jax.devices()
    n = len(devices)
    out = {
        "device": devices[0].device_kind,
        "backend": jax.default_backend(),
        "gpus": n if jax.default_backend() == "gpu" else 0,
        "devices": n,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
        "seeds": args.seeds,
        "frames": args.frames,
        "steps": args.steps,
        "fits": args.fits,
    }
    m = motion_bench(args, devices)
    p = pose_fit_bench(args, devices)
    out["motion"] = {f"{k[0]}dev_{k[1]}": v for k, v in m.items()}
    out["pose_fit"] = {f"{k[0]}dev_{k[1]}": v for k, v in p.items()}
    best = "shard_map" if n > 1 else "gspmd"
    eff = lambda r, mode: r[(1, "gspmd")]["seconds"] / (n * r[(n, mode)]["seconds"])  # noqa: E731
    out["motion_efficiency_gspmd"] = eff(m, "gspmd")
    out["pose_fit_efficiency_gspmd"] = eff(p, "gspmd")
    out["motion_efficiency"] = eff(m, best)
    out["pose_fit_efficiency"] = eff(p, best)
    out["efficiency"] = out["motion_efficiency"]
    out["motion_final_loss_max_rel_diff"] = float(onp.max(onp.abs(
        onp.asarray(m[(1, "gspmd")]["final_loss"]) - onp.asarray(m[(n, best)]["final_loss"]))
        / onp.abs(onp.asarray(m[(1, "gspmd")]["final_loss"]))))
    print(json.dumps({k: v for k, v in out.items() if "efficiency" in k or k in ("device", "devices")}), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "multigpu.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
