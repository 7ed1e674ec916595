"""Motion tracking step (issue 5): timing of 1 vs S seeds and a per-kernel device profile.

    python benchmarks/motion_profile.py --out DIR [--seeds 1,8] [--frames 120] [--steps 1000] [--trace]
        [--ab gemm_3xtf32,lbs_dots] [--deadline SECONDS]

Builds the speed benchmark's MotionData exactly as `benchmarks/motion.py --speed-only` does (first scene,
smplx-synthetic body, N_o = 2048, 2048 L_pen vertices), times 1000 Adam steps for each seed count with
the same `time_run` (init included, median of `--reps` runs after a warm-up), then, with `--trace`,
records one jitted update call (cfg.steps_per_call Adam steps) per seed count with jax.profiler and
aggregates the device events per kernel (count, total µs, share) into DIR/profile_S<n>.json and a
markdown table; the fusion → source mapping comes from the compiled HLO's op_name metadata.
`--ab` times variants of the code at the largest seed count in the same process (gemm_3xtf32: the
pose correctives' GEMM as 3xTF32 tensor-core products instead of FFMA float32; lbs_dots: the subset-LBS backward as four
(3, S)·(S, J) products instead of one stacked 12-row product); `--deadline` skips what would start after
that many seconds (the device call's time limit). A persistent compilation cache makes the HLO
text of `--trace/--hlo` a cache hit instead of a second compile.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import glob
import gzip
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

from motion import build_case, load_body, time_run  # noqa: E402
from anchorhoi_jax.body import part_volumes  # noqa: E402
from anchorhoi_jax.geometry import sdf as sdf_mod  # noqa: E402
from anchorhoi_jax.kernels import sdf as sdf_kernel  # noqa: E402
from anchorhoi_jax.stages import motion as motion_mod  # noqa: E402
from anchorhoi_jax.stages.motion import (  # noqa: E402
    MotionConfig, MotionWeights, make_motion_step, make_seeds_update, motion_loss_seeds)

# --ab variants of the subset-LBS gradient (stages/motion.LBS_GRAD_IMPL, LBS_GRAD_CHUNK, the kernel's num_warps).
LBS_VARIANTS = {"lbs_xla": ("xla", 32, 8), "lbs_c16": ("auto", 16, 8), "lbs_c16w4": ("auto", 16, 4),
                "lbs_c64w8": ("auto", 64, 8), "lbs_c32w4": ("auto", 32, 4)}

# --ab variants selecting the capsule kernels (body/part_volumes.CAPSULE_IMPL, SELF_PEN_IMPL).
# Third entry: stages/motion.LBS_GRAD_IMPL (the subset-LBS gradient kernel, session 7).
# Fourth entry: kernels/sdf.PEN_IMPL (the object-SDF L_pen kernel, session 8).
KERNEL_VARIANTS = {"xla": ("xla", "xla", "xla", "xla"), "pallas": ("pallas", "pallas", "pallas", "pallas"),
                   "pallas_capsule": ("pallas", "xla", "xla", "xla"), "pallas_self_pen": ("xla", "pallas", "xla", "xla"),
                   "pallas_lbs": ("xla", "xla", "pallas", "xla"),
                   "interpret": ("interpret", "interpret", "interpret", "interpret")}


def set_kernels(capsule: str, self_pen: str, lbs: str = "auto", pen: str = "auto") -> tuple[str, str, str, str]:
    """Set the trace-time implementation switches of body/part_volumes, stages/motion's LBS gradient and the
    object-SDF L_pen kernel; returns the previous four."""
    old = (part_volumes.CAPSULE_IMPL, part_volumes.SELF_PEN_IMPL, motion_mod.LBS_GRAD_IMPL, sdf_kernel.PEN_IMPL)
    part_volumes.CAPSULE_IMPL, part_volumes.SELF_PEN_IMPL, motion_mod.LBS_GRAD_IMPL = capsule, self_pen, lbs
    sdf_kernel.PEN_IMPL = pen
    return old


# --ab / --check variants of session 8: the pose-corrective GEMM's algorithm (MotionConfig.gemm) and the SDF
# sampling's derivative (geometry/sdf.SDF_GRAD_IMPL). "ref" = every kernel, GEMM and derivative on the reference
# path (XLA kernels, float32 FFMA GEMM, autodiff SDF): the --check baseline of session 8.
GEMM_VARIANTS = {"gemm_tf32": "tf32", "gemm_tf32x3": "tf32x3", "gemm_bf16x6": "bf16x6", "gemm_bf16x9": "bf16x9",
                 "gemm_3xtf32": "fp32_3xtf32", "gemm_highest": "highest"}
SDF_VARIANTS = {"sdf_autodiff": "autodiff", "sdf_fused": "fused"}
# The object-SDF L_pen term's implementation (kernels/sdf.PEN_IMPL): the one-pass kernel or the JAX reference.
SDF_PEN_VARIANTS = {"sdf_pen_xla": "xla", "sdf_pen_pallas": "pallas", "sdf_pen_flat": "flat",  # flat: plain-grid gathers
                    "sdf_table_step": "step"}  # session 8b: the corner table rebuilt every step (kernels/sdf.PEN_TABLE)


@contextlib.contextmanager
def variant(name, cfg):
    """Yield the MotionConfig of a --ab/--check variant with its trace-time switches set; restore them after.
    Names: KERNEL_VARIANTS, GEMM_VARIANTS, SDF_VARIANTS, "ref", "default" (the code as committed), or
    '+'-joined combinations (e.g. "pallas+gemm_bf16x6")."""
    old = ((part_volumes.CAPSULE_IMPL, part_volumes.SELF_PEN_IMPL, motion_mod.LBS_GRAD_IMPL, sdf_kernel.PEN_IMPL),
           sdf_mod.SDF_GRAD_IMPL, sdf_kernel.PEN_CORNERS, sdf_kernel.PEN_TABLE)
    try:
        for part in name.split("+"):
            if part == "ref":
                set_kernels("xla", "xla", "xla", "xla")
                sdf_mod.SDF_GRAD_IMPL = "autodiff"
                cfg = dataclasses.replace(cfg, gemm="highest")
            elif part in KERNEL_VARIANTS:
                set_kernels(*KERNEL_VARIANTS[part])
            elif part in GEMM_VARIANTS:
                cfg = dataclasses.replace(cfg, gemm=GEMM_VARIANTS[part])
            elif part in SDF_VARIANTS:
                sdf_mod.SDF_GRAD_IMPL = SDF_VARIANTS[part]
            elif part == "sdf_pen_flat":
                sdf_kernel.PEN_CORNERS = False
            elif part == "sdf_table_step":
                sdf_kernel.PEN_TABLE = "step"
            elif part in SDF_PEN_VARIANTS:
                sdf_kernel.PEN_IMPL = SDF_PEN_VARIANTS[part]
            elif part != "default":
                raise SystemExit(f"unknown variant {part!r}")
        yield cfg
    finally:
        set_kernels(*old[0])
        sdf_mod.SDF_GRAD_IMPL, sdf_kernel.PEN_CORNERS, sdf_kernel.PEN_TABLE = old[1], old[2], old[3]


def grad_check(cfg, data, weights, params, variants=("xla", "pallas")) -> dict:
    """Loss terms and gradients of Eq. 4 at `params` (seed-stacked) under each variant (`variant`), compared
    with the first: max |Δ| per gradient leaf (and max |g|), relative Δ per loss term."""
    out, ref = {}, None
    for name in variants:
        with variant(name, cfg) as cfg_v:
            f = jax.jit(jax.value_and_grad(lambda p: motion_loss_seeds(p, data, weights, cfg_v), has_aux=True))
            (_, (_, terms)), g = f(params)
            res = jax.device_get((terms, g))
        if ref is None:
            ref = res
            out["terms"] = {k: onp.asarray(v).tolist() for k, v in res[0].items()}
            continue
        gd = jax.tree.map(lambda a, b: float(onp.max(onp.abs(onp.asarray(a) - onp.asarray(b)), initial=0.0)), ref[1], res[1])
        gm = jax.tree.map(lambda a: float(onp.max(onp.abs(onp.asarray(a)), initial=0.0)), ref[1])
        # ‖Δg‖ / ‖g‖ over all leaves (METHOD.md's relative error; float32 lands far under 1e-3, tf32 near 3e-4).
        num = sum(float(onp.sum((onp.asarray(a, onp.float64) - onp.asarray(b, onp.float64)) ** 2))
                  for a, b in zip(jax.tree.leaves(ref[1]), jax.tree.leaves(res[1])))
        den = sum(float(onp.sum(onp.asarray(a, onp.float64) ** 2)) for a in jax.tree.leaves(ref[1]))
        td = {k: float(onp.max(onp.abs(onp.asarray(res[0][k]) - onp.asarray(v)) / onp.maximum(onp.abs(onp.asarray(v)), 1e-30)))
              for k, v in ref[0].items()}
        out[name] = {"grad_max_abs_diff": max(jax.tree.leaves(gd)), "grad_max_abs": max(jax.tree.leaves(gm)),
                     "grad_leaf_diff": {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(gd)},
                     "term_max_rel_diff": td, "grad_rel_l2": (num / max(den, 1e-300)) ** 0.5}
    return out


def case_args(ns):
    return argparse.Namespace(object_points=ns.object_points, pen_vertices=ns.pen_vertices, pen_near_fraction=0.5,
                              contact_target="static", pen_parts_allowance=False, max_contact_pairs=256, speed_only=True,
                              masks=False)


def _skin_sparse_bwd_dots(res, g):
    """A/B variant of stages/motion._skin_sparse_bwd: ∂/∂A as four products (g ⊙ v_b)·W (b = x, y, z)
    and g·W, each (3, S)·(S, J), instead of one (12, S)·(S, J) product of a stacked 12-row operand."""
    A, v, ids, w, W, _ = res
    T = sum(w[:, k, None] * A[ids[:, k]] for k in range(ids.shape[1]))
    dv = jnp.stack([T[:, c] * g[0] + T[:, 4 + c] * g[1] + T[:, 8 + c] * g[2] for c in range(3)], 0)
    cols = [jnp.matmul(g * v[b][None], W, precision="highest") for b in range(3)] + [jnp.matmul(g, W, precision="highest")]
    dA = jnp.stack(cols, -1)  # (3, J, 4): [a, j, b] = Σ_s g_a W_sj vh_b
    return jnp.swapaxes(dA, 0, 1).reshape(-1, 12), dv, None, None, None, None


def _skin_sparse_bwd_stack(res, g):
    """A/B variant of stages/motion._skin_sparse_bwd as committed before session 6: ∂/∂A as one product of a
    stacked (12, S) operand [g_a v_b | g_a]."""
    A, v, ids, w, W, _ = res
    T = sum(w[:, k, None] * A[ids[:, k]] for k in range(ids.shape[1]))
    dv = jnp.stack([T[:, c] * g[0] + T[:, 4 + c] * g[1] + T[:, 8 + c] * g[2] for c in range(3)], 0)
    vh = [v[0], v[1], v[2], jnp.ones_like(v[0])]
    outer = jnp.stack([g[a] * vh[b] for a in range(3) for b in range(4)], 0)  # (12, S)
    return jnp.matmul(outer, W, precision="highest").T, dv, None, None, None, None


def _cache_file(root, args) -> Path:
    return Path(root) / f"motion_data_L{args.frames}_No{args.object_points}_N{args.pen_vertices}.pkl"


def save_data(root, args, data) -> None:
    """The benchmark's MotionData without its pose correctives (rebuilt from the body model by
    `with_posedirs`: 15 MB for SMPL-X), as host arrays; built once on the CPU, carried to the device."""
    import pickle

    f = _cache_file(root, args)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(pickle.dumps(jax.device_get(data.replace(sub_posedirs=None))))


def load_data(root, args):
    import pickle

    f = _cache_file(root, args)
    return pickle.loads(f.read_bytes()) if f.exists() else None


def with_posedirs(data, model):
    """`sub_posedirs` as prepare_motion_data lays it out: the subset [extra-point vertices | contact-slot
    vertices | L_pen vertices], coordinate-major columns; and the SDF's corner table (SDFGrid.corners, session 8b)
    where the cached data predates it."""
    data = jax.tree.map(jnp.asarray, data)
    if getattr(data.sdf, "corners", None) is None:
        data = data.replace(sdf=sdf_mod.with_corner_table(data.sdf))
    if data.sub_skin_entries is None:  # data cached before session 7: the LBS kernel's entry lists, on the host
        from anchorhoi_jax.kernels.lbs import host_joint_entries

        data = data.replace(sub_skin_entries=host_joint_entries(data.sub_skin_ids, data.sub_skin_w,
                                                                int(data.j_rest.shape[0])))
    if data.sub_posedirs is not None:
        return data
    sub = onp.concatenate([onp.asarray(model.extra_vertex_ids).reshape(-1),
                           onp.asarray(data.contacts.human_vertex)[onp.asarray(data.contact_slots)],
                           onp.asarray(data.pen_vertex_ids)]).astype(onp.int32)
    P = model.posedirs.shape[0]
    pd = jnp.swapaxes(model.posedirs.reshape(P, -1, 3)[:, jnp.asarray(sub)], 1, 2).reshape(P, -1)
    return data.replace(sub_posedirs=pd)


def fusion_sources(hlo_text: str) -> dict[str, str]:
    """Instruction name -> op_name metadata (the jax source scope) for every instruction of the compiled HLO."""
    out = {}
    for m in re.finditer(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = [^\n]*?metadata=\{([^}]*)\}", hlo_text, re.M):
        op = re.search(r'op_name="([^"]*)"', m.group(2))
        if op:
            out[m.group(1)] = op.group(1)
    return out


def short_scope(op_name: str) -> str:
    """Drop the jit/transpose/vmap wrappers of an op_name, keep the named scopes and the primitive."""
    parts = [p for p in op_name.split("/") if p and not p.startswith(("jit(", "while", "body", "vmap(", "checkpoint"))]
    return "/".join(parts[-4:])


def parse_trace(trace_dir: str, sources: dict[str, str], steps: int, plane_prefix: str = "/device:GPU") -> dict:
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    agg = collections.defaultdict(lambda: [0, 0.0])
    lines_seen = collections.Counter()
    stats_example = {}
    for f in files:
        pd = ProfileData.from_file(f)
        for plane in pd.planes:
            if not plane.name.startswith(plane_prefix):
                continue
            for line in plane.lines:
                evs = list(line.events)
                lines_seen[line.name] += len(evs)
                # Kernels are on the stream lines; "XLA Ops"/"XLA Modules" lines summarise the same time.
                cat = re.sub(r"[#\d(].*", "", line.name).strip() or line.name
                for e in evs:
                    st = dict(e.stats)
                    hlo = str(st.get("hlo_op", ""))
                    key = (cat, e.name, hlo)
                    agg[key][0] += 1
                    agg[key][1] += e.duration_ns / 1e3
                    if len(stats_example) < 5:
                        stats_example[e.name] = {k: str(v)[:120] for k, v in st.items()}
    rows = {}
    cats = sorted({k[0] for k in agg})
    for src in cats:
        sub = [(k, v) for k, v in agg.items() if k[0] == src]
        total = sum(v[1] for _, v in sub)
        sub.sort(key=lambda kv: -kv[1][1])
        rows[src] = {
            "total_us": total,
            "us_per_step": total / steps,
            "top": [{"kernel": k[1][:90], "hlo_op": k[2], "count": v[0], "total_us": round(v[1], 1),
                     "us_per_step": round(v[1] / steps, 2), "share": round(v[1] / max(total, 1e-9), 4),
                     "source": short_scope(sources.get(k[2], sources.get(k[1], "")))} for k, v in sub[:60]],
        }
    main = "Stream" if "Stream" in rows else max(rows, key=lambda c: sum(t["count"] for t in rows[c]["top"]), default=None)
    return {"lines": dict(lines_seen), "stats_example": stats_example, "main": main, "categories": rows}


def markdown(prof: dict, title: str) -> str:
    if prof["main"] is None:
        return f"### {title}: no device events\n"
    main = prof["categories"][prof["main"]]
    out = [f"### {title}: device time per Adam step {main['us_per_step']:.1f} µs ({prof['main']} lines)", "",
           "| kernel | hlo op | count | µs/step | share | source scope |", "|---|---|---|---|---|---|"]
    for r in main["top"][:40]:
        out.append(f"| {r['kernel'][:50]} | {r['hlo_op'][:40]} | {r['count']} | {r['us_per_step']} | {100 * r['share']:.1f}% | "
                   f"{r['source'][:90]} |")
    return "\n".join(out) + "\n"


def trace_one(update, init, data, w, S, args, out, md, tag, title):
    """Compile one update call (HLO → fusion sources), run it once, then record one more under the profiler.
    Returns the state after the traced call."""
    keys = jnp.stack([jax.random.fold_in(jax.random.key(2), i) for i in range(S)])
    state = jax.jit(jax.vmap(init, in_axes=(None, 0)))(data, keys)
    compiled = update.lower(state, data, w).compile()
    hlo = compiled.as_text()
    if args.hlo:
        with gzip.open(out / f"hlo_{tag}.txt.gz", "wt") as fh:
            fh.write(hlo)
    sources = fusion_sources(hlo)
    state, losses, _ = update(state, data, w)
    jax.block_until_ready(losses)
    if args.trace:
        tdir = tempfile.mkdtemp()
        with jax.profiler.trace(tdir):
            state, losses, _ = update(state, data, w)
            jax.block_until_ready(losses)
        prof = parse_trace(tdir, sources, args.steps_per_call,
                           "/device:GPU" if jax.default_backend() == "gpu" else "/host:CPU")
        shutil.rmtree(tdir, ignore_errors=True)
        (out / f"profile_{tag}.json").write_text(json.dumps(prof, indent=1) + "\n")
        md.append(markdown(prof, title))
        print(md[-1], flush=True)
    return state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/motion_profile")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--steps-per-call", type=int, default=100)
    ap.add_argument("--object-points", type=int, default=2048)
    ap.add_argument("--pen-vertices", type=int, default=2048)
    ap.add_argument("--seeds", default="1,8")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--hlo", action="store_true", help="write the compiled HLO (gzipped) per seed count")
    ap.add_argument("--lbs", default="sparse")
    ap.add_argument("--body", default="smplx-synthetic")
    ap.add_argument("--ab", default="", help="comma list: lbs_dots, lbs_stack, plane_sums_xla, ref, default, "
                    + ", ".join([*KERNEL_VARIANTS, *LBS_VARIANTS, *GEMM_VARIANTS, *SDF_VARIANTS, *SDF_PEN_VARIANTS])
                    + ", or '+'-joined kernel/gemm/sdf variants"
                    + " (timed at the largest seed count)")
    ap.add_argument("--ab-seeds", default="", help="comma list: seed counts at which each --ab variant is timed "
                    "(default: the largest of --seeds)")
    ap.add_argument("--trace-ab", action="store_true", help="also trace one update call of each --ab variant")
    ap.add_argument("--check", default="", help="comma list of kernel variants (first = reference): loss terms and "
                    "gradients at the state after the traced call, largest seed count (check.json)")
    ap.add_argument("--data-cache", default="", help="directory: reuse (or write) the MotionData built for these sizes")
    ap.add_argument("--deadline", type=float, default=0.0, help="seconds; later steps that would start after it are skipped")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    late = lambda: args.deadline > 0 and time.perf_counter() - t0 > args.deadline  # noqa: E731
    model, op_ids, cand, _ = load_body(args.body)
    t_body = time.perf_counter() - t0
    data = load_data(args.data_cache, args) if args.data_cache else None
    if data is None:
        case = build_case("carry_box", model, op_ids, cand, args.frames, jax.random.fold_in(jax.random.key(0), 0),
                          case_args(args))
        data = case["data"]
        if args.data_cache:
            save_data(args.data_cache, args, data)
    data = with_posedirs(data, model)
    cfg = MotionConfig.for_model(model, steps_per_call=args.steps_per_call, lbs=args.lbs)
    init, _ = make_motion_step(cfg)
    update = jax.jit(make_seeds_update(cfg), donate_argnums=(0,))
    w = MotionWeights.default()
    summary = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "frames": args.frames, "steps": args.steps,
               "sub_vertices": int(data.sub_rest.shape[0]), "skin_k": int(data.sub_skin_ids.shape[1]),
               "parts": int(data.parts.radius.shape[0]), "self_pen_pairs": int(data.parts.pair_a.shape[0]),
               "posedirs": list(data.sub_posedirs.shape), "gemm": cfg.gemm, "body_s": t_body,
               "setup_s": time.perf_counter() - t0}
    print("setup", summary, flush=True)
    md = []
    last_state = None
    for S in [int(s) for s in args.seeds.split(",")]:
        if late():
            summary[f"skipped_seed{S}"] = "deadline"
            continue
        t = time_run(update, init, data, w, args.steps, args.steps_per_call, jax.random.key(2), S, args.reps)
        summary[f"s_1000_seed{S}"] = t * 1000.0 / args.steps
        summary["kernels"] = {"capsule": part_volumes.CAPSULE_IMPL, "self_pen": part_volumes.SELF_PEN_IMPL,
                              "lbs_grad": motion_mod.LBS_GRAD_IMPL, "lbs_grad_chunk": motion_mod.LBS_GRAD_CHUNK,
                              "sdf_pen": sdf_kernel.PEN_IMPL, "sdf_pen_corners": sdf_kernel.PEN_CORNERS,
                              "sdf_grad": sdf_mod.SDF_GRAD_IMPL, "sdf_table": sdf_kernel.PEN_TABLE}
        print(f"seeds {S}: {t:.4f} s per {args.steps} steps", flush=True)
        if (args.trace or args.hlo) and not late():
            last_state = trace_one(update, init, data, w, S, args, out, md, f"seed{S}", f"{S} seed(s)")
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    S_ab = max(int(s) for s in args.seeds.split(","))
    ab_seeds = [int(s) for s in args.ab_seeds.split(",")] if args.ab_seeds else [S_ab]
    for name in [a for a in args.ab.split(",") if a]:
        if late():
            summary[f"ab_{name}_seed{S_ab}"] = "skipped (deadline)"
            continue
        cfg_b, old_kernels, ctx = cfg, None, None
        if "+" in name or name in GEMM_VARIANTS or name in SDF_VARIANTS or name in SDF_PEN_VARIANTS or name in ("ref", "default"):
            ctx = variant(name, cfg)
            cfg_b = ctx.__enter__()
        elif name in KERNEL_VARIANTS:
            old_kernels = set_kernels(*KERNEL_VARIANTS[name])
        elif name == "lbs_dots":  # subset-LBS backward: 4 products (g ⊙ v_b)·W instead of the 12-row outer stack
            motion_mod._skin_sparse.defvjp(motion_mod._skin_sparse_fwd, _skin_sparse_bwd_dots)
        elif name == "lbs_stack":  # subset-LBS backward as before session 6 (one product of the 12-row stack)
            motion_mod._skin_sparse.defvjp(motion_mod._skin_sparse_fwd, _skin_sparse_bwd_stack)
        elif name == "plane_sums_xla":  # translation gradient as jnp.sum (XLA's reduction) instead of the kernel
            old_plane, motion_mod.PLANE_SUM_IMPL = motion_mod.PLANE_SUM_IMPL, "xla"
        elif name in LBS_VARIANTS:  # subset-LBS ∂/∂A: the sparse kernel's settings, or "xla" (the dense products)
            old_lbs = (motion_mod.LBS_GRAD_IMPL, motion_mod.LBS_GRAD_CHUNK, motion_mod.lbs_transform_grad_pallas)
            impl, chunk, warps = LBS_VARIANTS[name]
            motion_mod.LBS_GRAD_IMPL, motion_mod.LBS_GRAD_CHUNK = impl, chunk
            motion_mod.lbs_transform_grad_pallas = functools.partial(old_lbs[2], num_warps=warps)
        else:
            raise SystemExit(f"unknown --ab variant {name!r}")
        try:
            init_b, _ = make_motion_step(cfg_b)
            update_b = jax.jit(make_seeds_update(cfg_b), donate_argnums=(0,))
            try:
                ts = {S: time_run(update_b, init_b, data, w, args.steps, args.steps_per_call, jax.random.key(2), S, args.reps)
                      for S in ab_seeds}
            except Exception as e:  # a kernel that fails to compile on this device: record it, go on
                summary[f"ab_{name}_error"] = repr(e)[:2000]
                print(f"A/B {name} failed: {e!r}"[:3000], flush=True)
                continue
            if args.trace_ab and not late():
                trace_one(update_b, init_b, data, w, S_ab, args, out, md, f"ab_{name}_seed{S_ab}", f"A/B {name}, {S_ab} seeds")
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
            motion_mod._skin_sparse.defvjp(motion_mod._skin_sparse_fwd, motion_mod._skin_sparse_bwd)
            if old_kernels is not None:
                set_kernels(*old_kernels)
            if name == "plane_sums_xla":
                motion_mod.PLANE_SUM_IMPL = old_plane
            if name in LBS_VARIANTS:
                motion_mod.LBS_GRAD_IMPL, motion_mod.LBS_GRAD_CHUNK, motion_mod.lbs_transform_grad_pallas = old_lbs
        for S, t in ts.items():
            summary[f"ab_{name}_s_1000_seed{S}"] = t * 1000.0 / args.steps
            print(f"A/B {name}, seeds {S}: {t:.4f} s per {args.steps} steps", flush=True)
        if 1 in ts and 8 in ts:
            summary[f"ab_{name}_seed8_over_seed1"] = ts[8] / ts[1]
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if args.check and last_state is not None and not late():
        try:
            chk = grad_check(cfg, data, w, last_state.params, tuple(args.check.split(",")))
        except Exception as e:
            chk = {"error": {"grad_max_abs_diff": None, "grad_max_abs": None, "term_max_rel_diff": repr(e)[:2000]}}
        (out / "check.json").write_text(json.dumps(chk, indent=1) + "\n")
        summary["check"] = {k: {"grad_max_abs_diff": v["grad_max_abs_diff"], "grad_max_abs": v["grad_max_abs"],
                                "grad_rel_l2": v.get("grad_rel_l2"), "term_max_rel_diff": v["term_max_rel_diff"]}
                            for k, v in chk.items() if k != "terms"}
        print("check", json.dumps(summary["check"]), flush=True)
    if "s_1000_seed1" in summary and "s_1000_seed8" in summary:
        summary["seed8_over_seed1"] = summary["s_1000_seed8"] / summary["s_1000_seed1"]
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "profile.md").write_text("\n".join(md))
    print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
