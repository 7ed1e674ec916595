"""SMPL-X forward on the GPU: ours (jit(vmap(pose))) vs `smplx` (torch CUDA) vs `body-models` (JAX).

One process, same inputs for all three (10 betas, 10 expression coefficients, full 45-D hand poses,
the file's mean hand pose added), on the synthetic SMPL-X file written by
`anchorhoi_jax.body.smplx_synthetic.write_synthetic_smplx`:

    python benchmarks/body_forward.py --out benchmarks/results

Rows: batch 1, 64, 512, 2048, 4096; fp32 (jax Precision.HIGHEST, torch allow_tf32=False) and TF32
(jax Precision.DEFAULT / default_matmul_precision('tensorfloat32'), torch allow_tf32=True); full
forward (vertices + joints) and joints-only. Times are medians of per-call wall times after warm-up,
each call synchronised (block_until_ready / torch.cuda.synchronize). Writes body_forward.json and
body_forward.md, and prints the table with ratios per row.

What each peer runs (their fastest path that gives the same output):
* ours full: `pose` -> vertices (V,3) and all 127 smplx joints; joints-only: `pose_joints` (127).
* smplx full: `SMPLX.forward` (vertices + 127 joints); it has no joints-only path, so its
  joints-only row is `forward(return_verts=False)`, which still skins the whole mesh.
* body-models full: `forward_vertices` (vertices only, no joints: favourable to it);
  joints-only: `forward_skeleton` (55 joint transforms, no vertex joints / landmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as onp

BATCHES = (1, 64, 512, 2048, 4096)

# Peak numbers of the H100 variants (NVIDIA datasheets; dense, no sparsity).
PEAKS = {
    "sxm": {"fp32_tflops": 67.0, "tf32_tflops": 494.7, "hbm_tb_s": 3.35},
    "pcie": {"fp32_tflops": 51.0, "tf32_tflops": 378.0, "hbm_tb_s": 2.0},
}


def _inputs(batch, seed=0):
    rng = onp.random.default_rng(seed + batch)
    x = dict(
        betas=rng.normal(size=(batch, 10)),
        expression=rng.normal(size=(batch, 10)) * 0.5,
        global_orient=rng.normal(size=(batch, 3)) * 0.5,
        body_pose=rng.normal(size=(batch, 63)) * 0.3,
        jaw_pose=rng.normal(size=(batch, 3)) * 0.1,
        leye_pose=rng.normal(size=(batch, 3)) * 0.1,
        reye_pose=rng.normal(size=(batch, 3)) * 0.1,
        left_hand_pose=rng.normal(size=(batch, 45)) * 0.3,
        right_hand_pose=rng.normal(size=(batch, 45)) * 0.3,
        transl=rng.normal(size=(batch, 3)),
    )
    return {k: v.astype(onp.float32) for k, v in x.items()}


def _median_ms(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def _gpu_kernel_profile(fn, calls, tmp):
    """Per-call GPU time by kernel/op name, from a jax.profiler trace of `calls` calls of fn.

    Returns {line name: {"us_per_call": total, "top": [[name, us per call, launches per call], ...]}}
    for every line of the /device:GPU planes (kernel streams and XLA's op/module lines).
    """
    import glob

    import jax
    from jax.profiler import ProfileData

    fn()
    d = tempfile.mkdtemp(dir=tmp)
    with jax.profiler.trace(d):
        for _ in range(calls):
            fn()
    pbs = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
    out = {}
    for plane in ProfileData.from_file(pbs[0]).planes:
        if not plane.name.startswith("/device:GPU"):
            continue
        for line in plane.lines:
            agg = {}
            for ev in line.events:
                a = agg.setdefault(ev.name, [0.0, 0])
                a[0] += ev.duration_ns
                a[1] += 1
            if not agg:
                continue
            top = sorted(agg.items(), key=lambda kv: -kv[1][0])[:25]
            out[f"{plane.name} | {line.name}"] = {
                "us_per_call": sum(v[0] for v in agg.values()) / calls / 1e3,
                "top": [[k[:110], v[0] / calls / 1e3, v[1] / calls] for k, v in top],
            }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--variants", action="store_true", help="also time implementation variants at batch 2048")
    ap.add_argument("--breakdown", action="store_true", help="per-part timings and a kernel profile at batch 2048")
    ap.add_argument("--breakdown-batch", type=int, default=2048, help="batch of --breakdown (2048; smaller for smoke tests)")
    ap.add_argument("--old-skinning", default=None, help="an earlier skinning.py to time beside the current one")
    ap.add_argument("--allow-cpu", action="store_true", help="smoke-test the script without a GPU (times not reportable)")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    # Batch 2048 (the target) first, so a run cut short still has it.
    order = sorted(batches, key=lambda b: (b != 2048, b))

    import jax
    import jax.numpy as jnp
    import torch

    import smplx
    from body_models.smplx.jax import SMPLX as BMSMPLX

    from anchorhoi_jax.body import skinning as sk
    from anchorhoi_jax.body.skinning import TF32X3, pose, pose_joints, with_tf32x3_blend
    from anchorhoi_jax.body.smplx import load_smplx, make_params
    from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx

    gpu = jax.devices()[0]
    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("needs a CUDA GPU (pass --allow-cpu for a smoke test)")
    on_gpu = gpu.platform == "gpu"
    tdev = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name(0) if tdev == "cuda" else platform.processor() or "cpu"
    variant = "pcie" if "PCIe" in device_name else "sxm"
    peaks = PEAKS[variant]
    tmp = tempfile.mkdtemp()
    t0 = time.perf_counter()
    path = write_synthetic_smplx(tmp, seed=0)
    write_s = time.perf_counter() - t0

    model, extras = load_smplx(tmp, num_betas=10, num_expression=10, use_pca=False, flat_hand_mean=False)
    model = jax.device_put(model, gpu)
    model3 = with_tf32x3_blend(model) if on_gpu else None  # the opt-in error-compensated TF32 variant
    old = None
    if args.old_skinning:
        import importlib.util

        spec = importlib.util.spec_from_file_location("skinning_old", args.old_skinning)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
    tm = smplx.SMPLX(model_path=tmp, gender="neutral", ext="npz", use_pca=False, flat_hand_mean=False,
                     num_betas=10, num_expression_coeffs=10, batch_size=1).to(tdev).eval()  # fmt: skip
    bm = BMSMPLX(model_path=path)

    HIGHEST, DEFAULT = jax.lax.Precision.HIGHEST, jax.lax.Precision.DEFAULT
    to_params = jax.jit(jax.vmap(lambda a: make_params(model, extras, **a)))

    def ours_full(prec, posefn=pose):
        def f(m, p):  # vertices and all 127 joints, both inside the one jit
            o = posefn(m, p, precision=prec)
            return o.vertices, o.all_joints

        return jax.jit(jax.vmap(f, in_axes=(None, 0)))

    def ours_joints(prec, fn=pose_joints):
        return jax.jit(jax.vmap(lambda m, p: fn(m, p, precision=prec), in_axes=(None, 0)))

    def bm_args(x):
        return dict(
            body_pose=x["body_pose"].reshape(-1, 21, 3),
            head_pose=jnp.stack([x["jaw_pose"], x["leye_pose"], x["reye_pose"]], 1),
            hand_pose=jnp.concatenate([x["left_hand_pose"].reshape(-1, 15, 3), x["right_hand_pose"].reshape(-1, 15, 3)], 1),
            pelvis_rotation=x["global_orient"],
            shape=x["betas"],
            expression=x["expression"],
            global_translation=x["transl"],
        )

    def bm_fn(kind, prec_name):
        def f(x):
            a = bm_args(x)
            return bm.forward_vertices(**a) if kind == "full" else bm.forward_skeleton(**a)

        jf = jax.jit(f)

        def call(x):  # the matmul precision is part of the jit cache key; set it where it is traced
            with jax.default_matmul_precision(prec_name):
                return jf(x)

        return call

    results = {"rows": []}
    os.makedirs(args.out, exist_ok=True)

    def save(tag="partial"):
        with open(os.path.join(args.out, f"body_forward_{tag}.json"), "w") as fh:
            json.dump(results, fh, indent=1)

    fns = {
        ("full", "fp32"): ours_full(HIGHEST),
        ("full", "tf32"): ours_full(DEFAULT),
        ("joints", "fp32"): ours_joints(HIGHEST),
        ("joints", "tf32"): ours_joints(DEFAULT),
    }
    bm_fns = {(k, p): bm_fn(k, {"fp32": "highest", "tf32": "tensorfloat32"}[p]) for k, p in fns}

    # --- parity on the GPU (fp32 everywhere) ---
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    xp = _inputs(64, seed=123)
    xj = {k: jnp.asarray(v) for k, v in xp.items()}
    p64 = to_params(xj)
    verts, joints = fns[("full", "fp32")](model, p64)
    tm.batch_size = 64
    with torch.no_grad():
        out = tm(**{k: torch.from_numpy(v).to(tdev) for k, v in xp.items()})
    v_ref, j_ref = out.vertices.cpu().numpy(), out.joints.cpu().numpy()

    def verr(v):
        return float(onp.abs(onp.asarray(v) - v_ref).max())

    v_bm = onp.asarray(bm_fns[("full", "fp32")](xj))
    results["parity_max_vertex_err_m"] = verr(verts)
    results["parity_max_joint_err_m"] = float(onp.abs(onp.asarray(joints) - j_ref).max())
    results["parity_max_joint_err_joints_only_m"] = float(
        onp.abs(onp.asarray(fns[("joints", "fp32")](model, p64)) - j_ref).max()
    )
    results["parity_body_models_vs_smplx_vertex_err_m"] = float(onp.abs(v_bm - v_ref).max())
    results["tf32_max_vertex_err_m"] = verr(fns[("full", "tf32")](model, p64)[0])
    vfns = {}  # variants of the full forward, timed at batch 2048 below
    if model3 is not None:
        vfns["tf32x3_stacked"] = (ours_full(TF32X3), model3)
    for name in ("TF32_TF32_F32_X3", "BF16_BF16_F32_X6"):
        vfns[name.lower()] = (ours_full(getattr(jax.lax.DotAlgorithmPreset, name)), model)
    if old is not None:
        vfns["previous_skinning_fp32"] = (ours_full(HIGHEST, old.pose), model)
        vfns["previous_skinning_joints_fp32"] = (ours_joints(HIGHEST, old.pose_joints), model)
    for name, (f, m) in list(vfns.items()):
        try:
            o = f(m, p64)
            v = o[0] if isinstance(o, tuple) else o
            ref = v_ref if isinstance(o, tuple) else j_ref
            kind = "vertex" if isinstance(o, tuple) else "joint"
            results[f"variant_{name}_{kind}_err_m"] = float(onp.abs(onp.asarray(v) - ref).max())
        except Exception as e:  # not every jax/GPU combination offers every algorithm
            results[f"variant_{name}_error"] = f"{type(e).__name__}: {e}"[:300]
            del vfns[name]
    print(f"parity vs smplx (GPU, fp32, batch 64): vertices {results['parity_max_vertex_err_m']:.2e} m, "
          f"joints {results['parity_max_joint_err_m']:.2e} m; TF32 vertices {results['tf32_max_vertex_err_m']:.2e} m",
          {k: v for k, v in results.items() if k.startswith("variant_")}, flush=True)  # fmt: skip
    save()

    # --- per-part timings at batch 2048, fp32 HIGHEST, each part jitted alone ---
    B, P, V = args.breakdown_batch, 486, model.num_vertices
    if args.breakdown:
        bd = results["breakdown_b2048"] = {}
        pb = jax.block_until_ready(to_params({k: jnp.asarray(v) for k, v in _inputs(B).items()}))
        n3 = 3 * V

        def t(f, *a):
            return _median_ms(lambda: jax.block_until_ready(f(*a)), args.reps)

        def feats_of(m, p):
            return sk._blend_features(m, p.betas, sk.rodrigues(p.pose))

        def transforms(fk_mod):
            def f(m, p):
                R = fk_mod.rodrigues(p.pose)
                j = fk_mod.rest_joints(m, p.betas)
                Rr = fk_mod.rest_orientations(m, p.betas)
                Rw, tw = fk_mod.forward_kinematics(m, R, j, Rr)
                return fk_mod._skin_transforms(Rw, tw, Rr, j, True), tw

            return jax.jit(jax.vmap(f, in_axes=(None, 0)))

        def lbs(m, blended, A, root, s, tr):
            return sk._place(sk._lbs(m, A, blended[:n3].reshape(-1, 3), HIGHEST), root, s, tr)

        f_feats = jax.jit(jax.vmap(feats_of, in_axes=(None, 0)))
        feats = jax.block_until_ready(f_feats(model, pb))
        gemm = jax.jit(lambda a, b: jnp.matmul(a, b, precision=HIGHEST))
        blended = jax.block_until_ready(gemm(feats, model.blend_dirs))
        f_tr = transforms(sk)
        A, tw = jax.block_until_ready(f_tr(model, pb))
        root = tw[:, 0]
        f_lbs = jax.jit(jax.vmap(lbs, in_axes=(None, 0, 0, 0, 0, 0)))
        verts_b = jax.block_until_ready(f_lbs(model, blended, A, root, pb.scale, pb.transl))
        f_extra = jax.jit(jax.vmap(sk._barycentric, in_axes=(0, None, None)))
        bd["features_ms"] = t(f_feats, model, pb)
        bd["gemm_ms"] = t(gemm, feats, model.blend_dirs)
        bd["fk_transforms_ms"] = t(f_tr, model, pb)
        if old is not None:
            bd["fk_transforms_previous_ms"] = t(transforms(old), model, pb)
        bd["lbs_place_ms"] = t(f_lbs, model, blended, A, root, pb.scale, pb.transl)
        bd["extra_points_ms"] = t(f_extra, verts_b, model.extra_vertex_ids, model.extra_bary)
        bd["full_ms"] = t(fns[("full", "fp32")], model, pb)
        bd["joints_only_ms"] = t(fns[("joints", "fp32")], model, pb)
        bd["sum_of_parts_ms"] = sum(bd[k] for k in ("features_ms", "gemm_ms", "fk_transforms_ms", "lbs_place_ms", "extra_points_ms"))
        # GEMM formulations of the same product (fp32 HIGHEST unless named).
        g = bd["gemm_layouts_ms"] = {}
        MT = jax.block_until_ready(model.blend_dirs.T.copy())
        dn = (((1,), (1,)), ((), ()))
        g["nn_padded"] = bd["gemm_ms"]
        g["nt_stored_transposed"] = t(jax.jit(lambda a, b: jax.lax.dot_general(a, b, dn, precision=HIGHEST)), feats, MT)
        g["output_transposed"] = t(jax.jit(lambda b, a: jax.lax.dot_general(b, a, dn, precision=HIGHEST)), MT, feats)
        g["nn_padded_tf32"] = t(jax.jit(lambda a, b: jnp.matmul(a, b, precision=DEFAULT)), feats, model.blend_dirs)
        if model3 is not None:
            g["tf32x3_stacked"] = t(jax.jit(sk._tf32x3_product), feats, model3.blend_dirs_tf32x3)
        for name in ("TF32_TF32_F32_X3",):
            try:
                alg = getattr(jax.lax.DotAlgorithmPreset, name)
                g[name.lower()] = t(jax.jit(lambda a, b, alg=alg: jnp.matmul(a, b, precision=alg)), feats, model.blend_dirs)
            except Exception as e:
                g[name.lower() + "_error"] = f"{type(e).__name__}: {e}"[:200]
        print("breakdown", json.dumps(bd), flush=True)
        save()
        if on_gpu:
            prof = results["kernel_profile_b2048"] = {}
            targets = {
                "ours_full_fp32": lambda: jax.block_until_ready(fns[("full", "fp32")](model, pb)),
                "ours_joints_fp32": lambda: jax.block_until_ready(fns[("joints", "fp32")](model, pb)),
                "body_models_full_fp32": lambda: jax.block_until_ready(bm_fns[("full", "fp32")](
                    {k: jnp.asarray(v) for k, v in _inputs(B).items()})),
            }  # fmt: skip
            if "tf32x3_stacked" in vfns:
                f3, m3 = vfns["tf32x3_stacked"]
                targets["ours_full_tf32x3_stacked"] = lambda: jax.block_until_ready(f3(m3, pb))
            if "previous_skinning_fp32" in vfns:
                fo, _ = vfns["previous_skinning_fp32"]
                targets["previous_full_fp32"] = lambda: jax.block_until_ready(fo(model, pb))
            for name, fn in targets.items():
                try:
                    prof[name] = _gpu_kernel_profile(fn, 5, tmp)
                except Exception as e:
                    prof[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            save()

    # --- timings ---
    for batch in order:
        x = _inputs(batch)
        xj = {k: jax.device_put(jnp.asarray(v), gpu) for k, v in x.items()}
        params = jax.block_until_ready(to_params(xj))
        xt = {k: torch.from_numpy(v).to(tdev) for k, v in x.items()}
        tm.batch_size = batch
        reps = args.reps if batch <= 2048 else max(5, args.reps // 2)
        for (kind, prec), f in fns.items():
            row = {"batch": batch, "output": kind, "precision": prec}
            row["ours_ms"] = _median_ms(lambda: jax.block_until_ready(f(model, params)), reps)
            g = bm_fns[(kind, prec)]
            row["body_models_ms"] = _median_ms(lambda: jax.block_until_ready(g(xj)), reps)
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            torch.backends.cudnn.allow_tf32 = prec == "tf32"

            def run_torch():
                with torch.no_grad():
                    tm(**xt, return_verts=kind == "full")
                if tdev == "cuda":
                    torch.cuda.synchronize()

            row["smplx_ms"] = _median_ms(run_torch, reps)
            row["ratio_smplx_over_ours"] = row["smplx_ms"] / row["ours_ms"]
            row["ratio_body_models_over_ours"] = row["body_models_ms"] / row["ours_ms"]
            results["rows"].append(row)
            print(
                f"B={batch:5d} {kind:6s} {prec}: ours {row['ours_ms']:8.3f} ms | smplx {row['smplx_ms']:8.3f} ms "
                f"({row['ratio_smplx_over_ours']:6.1f}x) | body-models {row['body_models_ms']:8.3f} ms "
                f"({row['ratio_body_models_over_ours']:5.2f}x)",
                flush=True,
            )
        del xt
        if batch == order[0] and args.variants:
            # Variants of the full forward in the same process, right after the b2048 rows.
            vb = results[f"variants_b{batch}_ms"] = {}
            for name, (f, m) in vfns.items():
                vb[name] = _median_ms(lambda: jax.block_until_ready(f(m, params)), args.reps)
            vb["current_fp32_again"] = _median_ms(lambda: jax.block_until_ready(fns[("full", "fp32")](model, params)), args.reps)
            vb["body_models_fp32_again"] = _median_ms(lambda: jax.block_until_ready(bm_fns[("full", "fp32")](xj)), args.reps)
            print(f"variants b{batch}", json.dumps(vb), flush=True)
        save()
    results["rows"].sort(key=lambda r: (r["batch"], r["output"] != "full", r["precision"]))

    # --- the floor at batch 2048 ---
    B, S = 2048, model.num_shape
    gemm_flops = 2.0 * B * P * 3 * V  # the pose-corrective product alone
    shape_flops = 2.0 * B * (1 + S) * 3 * V  # template + shape blend (fused into the same GEMM here)
    K = int(model.skin_joint_ids.shape[1])
    lbs_flops = 2.0 * B * V * (12 * K + 9)  # blend K 3x4 transforms, apply to the vertex
    fk_flops = 2.0 * B * model.num_joints * 60  # Rodrigues + 3x4 compose + skinning transform, per joint
    out_bytes = 4.0 * B * V * 3
    dirs_bytes = 4.0 * (1 + S + P) * 3 * V
    in_bytes = 4.0 * B * (S + 3 * model.num_joints + 4)
    flops = gemm_flops + shape_flops + lbs_flops + fk_flops
    floor_compute_ms = flops / (peaks["fp32_tflops"] * 1e12) * 1e3
    floor_memory_ms = (out_bytes + dirs_bytes + in_bytes) / (peaks["hbm_tb_s"] * 1e12) * 1e3
    floor_tf32_ms = max((gemm_flops + shape_flops) / (peaks["tf32_tflops"] * 1e12) * 1e3, floor_memory_ms)
    # Unfused: the GEMM writes the posed rest mesh and skinning reads it back (+2 x out_bytes).
    unfused_memory_ms = (3 * out_bytes + dirs_bytes) / (peaks["hbm_tb_s"] * 1e12) * 1e3
    results["floor"] = {
        "peaks": {"variant": variant, **peaks},
        "pose_gemm_gflop_b2048": gemm_flops / 1e9,
        "shape_blend_gflop_b2048": shape_flops / 1e9,
        "ours_gemm_gflop_b2048": (gemm_flops + shape_flops) / 1e9,
        "lbs_gflop_b2048": lbs_flops / 1e9,
        "fk_gflop_b2048": fk_flops / 1e9,
        "lbs_weights_per_vertex": K,
        "output_mb_b2048": out_bytes / 1e6,
        "blend_matrix_mb": dirs_bytes / 1e6,
        "floor_fp32_compute_ms": floor_compute_ms,
        "floor_memory_ms": floor_memory_ms,
        "floor_memory_unfused_ms": unfused_memory_ms,
        "floor_fp32_ms": max(floor_compute_ms, floor_memory_ms),
        "floor_tf32_ms": floor_tf32_ms,
    }
    if "breakdown_b2048" in results:
        bd = results["breakdown_b2048"]
        results["floor"]["gemm_only_ms_b2048_fp32"] = bd["gemm_ms"]
        results["floor"]["gemm_only_ms_b2048_tf32"] = bd["gemm_layouts_ms"]["nn_padded_tf32"]
        results["floor"]["gemm_only_tflops_fp32"] = (gemm_flops + shape_flops) / bd["gemm_ms"] / 1e9

    def row(b, kind, prec):
        return next(r for r in results["rows"] if (r["batch"], r["output"], r["precision"]) == (b, kind, prec))

    summary = {
        "device": f"{device_name} ({gpu.device_kind})",
        "versions": {
            "python": platform.python_version(), "jax": jax.__version__, "torch": torch.__version__,
            "smplx": getattr(smplx, "__version__", "0.1.28"), "body_models": _version("body-models"),
        },  # fmt: skip
        "command": "python benchmarks/body_forward.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "synthetic_write_s": write_s,
    }
    if 2048 in batches:
        r = row(2048, "full", "fp32")
        summary.update(
            smplx_ms_b2048_fp32=r["smplx_ms"],
            body_models_ms_b2048_fp32=r["body_models_ms"],
            jax_ms_b2048_fp32=r["ours_ms"],
            ratio_b2048_fp32=r["ratio_smplx_over_ours"],
            ratio_vs_body_models_b2048_fp32=r["ratio_body_models_over_ours"],
            gap_to_floor_b2048_fp32=r["ours_ms"] / results["floor"]["floor_fp32_ms"],
        )
        rt = row(2048, "full", "tf32")
        summary.update(jax_ms_b2048_tf32=rt["ours_ms"], gap_to_floor_b2048_tf32=rt["ours_ms"] / floor_tf32_ms)
    results = {**summary, **results}
    with open(os.path.join(args.out, "body_forward.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    table = _table(results)
    print(table)
    with open(os.path.join(args.out, "body_forward_table.md"), "w") as fh:
        fh.write(table + "\n")
    return results


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


def _table(results):
    lines = [
        "| batch | output | precision | ours ms | smplx ms | body-models ms | smplx/ours | body-models/ours |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['batch']} | {r['output']} | {r['precision']} | {r['ours_ms']:.3f} | {r['smplx_ms']:.3f} | "
            f"{r['body_models_ms']:.3f} | {r['ratio_smplx_over_ours']:.1f}x | {r['ratio_body_models_over_ours']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
