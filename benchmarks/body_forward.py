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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--variants", action="store_true", help="also time implementation variants at batch 2048")
    ap.add_argument("--allow-cpu", action="store_true", help="smoke-test the script without a GPU (times not reportable)")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]

    import jax
    import jax.numpy as jnp
    import torch

    import smplx
    from body_models.smplx.jax import SMPLX as BMSMPLX

    from anchorhoi_jax.body.skinning import pose, pose_joints
    from anchorhoi_jax.body.smplx import load_smplx, make_params
    from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx

    gpu = jax.devices()[0]
    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("needs a CUDA GPU (pass --allow-cpu for a smoke test)")
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
    tm = smplx.SMPLX(model_path=tmp, gender="neutral", ext="npz", use_pca=False, flat_hand_mean=False,
                     num_betas=10, num_expression_coeffs=10, batch_size=1).to(tdev).eval()  # fmt: skip
    bm = BMSMPLX(model_path=path)

    HIGHEST, DEFAULT = jax.lax.Precision.HIGHEST, jax.lax.Precision.DEFAULT
    to_params = jax.jit(jax.vmap(lambda a: make_params(model, extras, **a)))

    def ours_full(prec):
        f = jax.jit(jax.vmap(lambda m, p: pose(m, p, precision=prec), in_axes=(None, 0)))
        return lambda m, p: (lambda o: (o.vertices, o.all_joints))(f(m, p))

    def ours_joints(prec):
        return jax.jit(jax.vmap(lambda m, p: pose_joints(m, p, precision=prec), in_axes=(None, 0)))

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
    params = to_params(xj)
    verts, joints = fns[("full", "fp32")](model, params)
    tm.batch_size = 64
    with torch.no_grad():
        out = tm(**{k: torch.from_numpy(v).to(tdev) for k, v in xp.items()})
    v_ref, j_ref = out.vertices.cpu().numpy(), out.joints.cpu().numpy()
    v_bm = onp.asarray(bm_fns[("full", "fp32")](xj))
    results["parity_max_vertex_err_m"] = float(onp.abs(onp.asarray(verts) - v_ref).max())
    results["parity_max_joint_err_m"] = float(onp.abs(onp.asarray(joints) - j_ref).max())
    results["parity_max_joint_err_joints_only_m"] = float(
        onp.abs(onp.asarray(fns[("joints", "fp32")](model, params)) - j_ref).max()
    )
    results["parity_body_models_vs_smplx_vertex_err_m"] = float(onp.abs(v_bm - v_ref).max())
    v_tf, _ = fns[("full", "tf32")](model, params)
    results["tf32_max_vertex_err_m"] = float(onp.abs(onp.asarray(v_tf) - v_ref).max())
    print(f"parity vs smplx (GPU, fp32, batch 64): vertices {results['parity_max_vertex_err_m']:.2e} m, "
          f"joints {results['parity_max_joint_err_m']:.2e} m; TF32 vertices {results['tf32_max_vertex_err_m']:.2e} m",
          flush=True)  # fmt: skip

    # --- timings ---
    for batch in batches:
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

    # --- the floor: the pose-corrective GEMM and LBS at batch 2048 ---
    B, P, V = 2048, 486, model.num_vertices
    S = model.num_shape
    gemm_flops = 2.0 * B * P * 3 * V
    ours_gemm_flops = 2.0 * B * (1 + S + P) * 3 * V  # template and shape rows ride along
    K = int(model.skin_joint_ids.shape[1])
    lbs_flops = 2.0 * B * V * (12 * K + 9)
    out_bytes = 4.0 * B * V * 3
    dirs_bytes = 4.0 * (1 + S + P) * 3 * V
    floor_compute_ms = (gemm_flops + lbs_flops) / (peaks["fp32_tflops"] * 1e12) * 1e3
    floor_memory_ms = (out_bytes + dirs_bytes) / (peaks["hbm_tb_s"] * 1e12) * 1e3
    floor_tf32_ms = max((gemm_flops) / (peaks["tf32_tflops"] * 1e12) * 1e3, floor_memory_ms)
    # The GEMM alone, as XLA runs it (what the rest of the forward adds on top of it).
    feats = jax.random.normal(jax.random.key(0), (B, model.blend_dirs.shape[0]), jnp.float32)
    mat = jax.random.normal(jax.random.key(1), model.blend_dirs.shape, jnp.float32)  # padded, as `pose` runs it
    gemm = jax.jit(lambda a, b: jnp.matmul(a, b, precision=HIGHEST))
    gemm_ms = _median_ms(lambda: jax.block_until_ready(gemm(feats, mat)), args.reps)
    gemm_tf = jax.jit(lambda a, b: jnp.matmul(a, b, precision=DEFAULT))
    gemm_tf_ms = _median_ms(lambda: jax.block_until_ready(gemm_tf(feats, mat)), args.reps)
    results["floor"] = {
        "peaks": {"variant": variant, **peaks},
        "pose_gemm_gflop_b2048": gemm_flops / 1e9,
        "ours_gemm_gflop_b2048": ours_gemm_flops / 1e9,
        "lbs_gflop_b2048": lbs_flops / 1e9,
        "lbs_weights_per_vertex": K,
        "output_mb_b2048": out_bytes / 1e6,
        "blend_matrix_mb": dirs_bytes / 1e6,
        "floor_fp32_compute_ms": floor_compute_ms,
        "floor_memory_ms": floor_memory_ms,
        "floor_fp32_ms": max(floor_compute_ms, floor_memory_ms),
        "floor_tf32_ms": floor_tf32_ms,
        "gemm_only_ms_b2048_fp32": gemm_ms,
        "gemm_only_ms_b2048_tf32": gemm_tf_ms,
        "gemm_only_tflops_fp32": ours_gemm_flops / gemm_ms / 1e9,
    }

    if args.variants:
        # Fp32-accurate products on tensor cores (error-compensated splits); not Precision.HIGHEST,
        # reported beside it with their parity error. And the GEMM alone at the unpadded shape.
        vb = 2048 if 2048 in batches else max(batches)
        results["variant_batch"] = vb
        params = to_params({k: jnp.asarray(v) for k, v in _inputs(vb).items()})
        p64 = to_params({k: jnp.asarray(v) for k, v in _inputs(64, seed=123).items()})
        for name in ("TF32_TF32_F32_X3", "BF16_BF16_F32_X6"):
            try:
                f3 = ours_full(getattr(jax.lax.DotAlgorithmPreset, name))
                v3, _ = f3(model, p64)
                results[f"variant_{name.lower()}_vertex_err_m"] = float(onp.abs(onp.asarray(v3) - v_ref).max())
                results[f"variant_{name.lower()}_ms"] = _median_ms(lambda: jax.block_until_ready(f3(model, params)), 10)
            except Exception as e:  # not every jax/GPU combination offers every algorithm
                results[f"variant_{name.lower()}_error"] = f"{type(e).__name__}: {e}"[:200]
        fu = jax.random.normal(jax.random.key(0), (vb, 1 + S + P), jnp.float32)
        mu = jax.random.normal(jax.random.key(1), (1 + S + P, 3 * V), jnp.float32)
        results["variant_unpadded_gemm_only_ms_fp32"] = _median_ms(lambda: jax.block_until_ready(gemm(fu, mu)), 10)
        results["variant_unpadded_gemm_only_ms_tf32"] = _median_ms(lambda: jax.block_until_ready(gemm_tf(fu, mu)), 10)
        print({k: v for k, v in results.items() if k.startswith("variant")}, flush=True)

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
    os.makedirs(args.out, exist_ok=True)
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
