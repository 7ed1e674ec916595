"""SMPL-X forward on the GPU: ours (jit(vmap(pose))) vs `smplx` (torch CUDA) vs `body-models` (JAX).

One process, same inputs for all three (10 betas, 10 expression coefficients, full 45-D hand poses,
the file's mean hand pose added), on the synthetic SMPL-X file written by
`anchorhoi_jax.body.smplx_synthetic.write_synthetic_smplx`:

    python benchmarks/body_forward.py --out benchmarks/results [--quick] [--diagnose]

Rows: batch 1, 64, 512, 2048, 4096; fp32 (jax Precision.HIGHEST, torch allow_tf32=False) and TF32
(jax Precision.DEFAULT / default_matmul_precision('tensorfloat32'), torch allow_tf32=True); full
forward (vertices + joints) and joints-only; plus our opt-in float32-accurate "fp32_3xtf32" GEMM mode
(full; its peers are their fp32 times). Two timings per cell, the same method for all three libraries:
* per call: median wall time of single calls, each followed by a sync (block_until_ready /
  torch.cuda.synchronize), after 3 warm-up calls: latency, includes host dispatch and the sync;
* pipelined: K calls dispatched back to back, ONE sync after the K-th, wall / K (median of R
  repeats): throughput, host dispatch overlaps the GPU work of earlier calls.
Writes body_forward.json and body_forward_table.md (`--diagnose` adds HLO text files), and prints
the table with ratios per row.

What each peer runs (their fastest path that gives the same output):
* ours full: `pose` -> vertices (V,3) and all 127 smplx joints; joints-only: `pose_joints` (127).
* smplx full: `SMPLX.forward` (vertices + 127 joints); it has no joints-only path, so its
  joints-only row is `forward(return_verts=False)`, which still skins the whole mesh.
* body-models full: `forward_vertices` (vertices only, no joints: favourable to it);
  joints-only: `forward_skeleton` (55 joint transforms, no vertex joints / landmarks).

`--compare` (batch 2048): candidates in interleaved rounds (`--rounds`) against body-models and smplx in the
same process; session-6 A/B options: `--fused` (GEMM + LBS as one Pallas/Triton kernel), `--lbs` (tiled Pallas
LBS after the cuBLAS GEMM), `--k-rows`, `--layouts`, `--trace-host` (profiler trace with host-thread events per
call); `--keep-order` times the batches as given; `--cache-dir` keeps compiled programs for a later device call.

`--diagnose` (batch 2048): where per-call wall time goes beyond GPU kernel time (a profiler trace
with one annotation per call: launch delay, GPU span, kernel busy time, tail; probes: a jitted no-op
with the same arguments, a 257 MB write, the model closed over, command buffers off) and the TF32
row (optimized HLO, kernels, and variants: Triton GEMM off, the explicit TF32 algorithm, vertices
only, the previous skinning.py). Session 4 also timed the TF32 GEMM features behind an
optimization_barrier (same kernels, no change; that knob was removed afterwards).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, NamedTuple

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


def _timed(call, block, reps, k, pipe_reps, warmup=3):
    """(per-call ms, pipelined ms per call) of `call` (dispatch) with `block` (sync on an output).

    Per call: median of `reps` single calls, each followed by `block`. Pipelined: `k` calls back to
    back and one `block` on the last (same stream: all k are done), wall / k, median of `pipe_reps`.
    The same function times ours, body-models (block_until_ready) and smplx (torch.cuda.synchronize).
    """
    for _ in range(warmup):
        block(call())
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        block(call())
        ts.append((time.perf_counter() - t0) * 1e3)
    ps = []
    for _ in range(pipe_reps):
        t0 = time.perf_counter()
        for _ in range(k - 1):
            call()
        block(call())
        ps.append((time.perf_counter() - t0) * 1e3 / k)
    return statistics.median(ts), statistics.median(ps)


def _trace_calls(targets, n, tmp, host=False):
    """Where the per-call wall time goes: a profiler trace of `n` synchronised calls of each target.

    Each call runs inside a TraceAnnotation; GPU events (the /device:GPU "Stream" lines: kernels and
    copies) that start inside its window belong to it. Per call: wall (annotation), launch delay
    (annotation start -> first GPU event), GPU span (first start -> last end), kernel busy (sum of
    event durations; span - busy = gaps between kernels), tail (last GPU end -> annotation end:
    completion noticed, output handed back). Medians over the calls, plus the top GPU events.
    """
    import glob

    import jax
    from jax.profiler import ProfileData, TraceAnnotation

    for fn in targets.values():
        fn()
    d = tempfile.mkdtemp(dir=tmp)
    with jax.profiler.trace(d):
        for name, fn in targets.items():
            for i in range(n):
                with TraceAnnotation(f"bench|{name}|{i}"):
                    fn()
    pb = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)[0]
    calls, events, modules, host_events = [], [], [], []
    for plane in ProfileData.from_file(pb).planes:
        gpu = plane.name.startswith("/device:GPU")
        for line in plane.lines:
            if host and not gpu:  # host threads: what the CPU does inside each call (dispatch, allocation, waits)
                host_events.extend(
                    (ev.start_ns, ev.duration_ns, f"{line.name[:24]}|{ev.name[:80]}")
                    for ev in line.events
                    if not ev.name.startswith("bench|")
                )
            if gpu and "Module" in line.name:  # one event per executable run on the GPU (clock-free check)
                modules.extend((ev.start_ns, ev.duration_ns, ev.name) for ev in line.events)
            if gpu and not line.name.startswith("Stream"):
                continue  # XLA op/module lines repeat the stream events under other names
            for ev in line.events:
                if gpu:
                    events.append((ev.start_ns, ev.duration_ns, ev.name))
                elif ev.name.startswith("bench|"):
                    calls.append((ev.start_ns, ev.duration_ns, ev.name.split("|")[1]))
    events.sort()
    modules.sort()
    out = {
        "_events": {
            "annotations": len(calls),
            "gpu_events": len(events),
            "annotation_range_ns": [min(c[0] for c in calls), max(c[0] + c[1] for c in calls)] if calls else None,
            "gpu_range_ns": [events[0][0], max(e[0] + e[1] for e in events)] if events else None,
        },
        "_gpu_module_runs_us": [[m[2][:60], round(m[1] / 1e3, 1)] for m in modules][:200],
    }
    for name in targets:
        rows, top, htop = [], {}, {}
        for s, dur, who in calls:
            if who != name:
                continue
            ks = [e for e in events if s <= e[0] <= s + dur]
            row = {"wall_us": dur / 1e3, "gpu_events": len(ks)}
            if ks:
                first, last = ks[0][0], max(e[0] + e[1] for e in ks)
                row.update(
                    launch_delay_us=(first - s) / 1e3,
                    gpu_span_us=(last - first) / 1e3,
                    kernel_busy_us=sum(e[1] for e in ks) / 1e3,
                    tail_us=(s + dur - last) / 1e3,
                )
                for e in ks:
                    top[e[2]] = top.get(e[2], 0) + e[1]
            if host:
                for hs, hd, hn in host_events:
                    if s <= hs <= s + dur:
                        a = htop.setdefault(hn, [0.0, 0, 0.0])
                        a[0] += hd
                        a[1] += 1
                        a[2] += (hs - s)  # start offset inside the call
            rows.append(row)
        keys = sorted({k for r in rows for k in r})
        out[name] = {
            "median": {k: statistics.median([r[k] for r in rows if k in r]) for k in keys},
            "calls": len(rows),
            "top_gpu_events_us_per_call": [
                [k[:110], v / 1e3 / max(1, len(rows))] for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]
            ],
        }
        if host:  # [name, us per call, events per call, mean start offset in the call us]
            out[name]["top_host_events_us_per_call"] = [
                [k, v[0] / 1e3 / max(1, len(rows)), v[1] / max(1, len(rows)), v[2] / 1e3 / max(1, v[1])]
                for k, v in sorted(htop.items(), key=lambda kv: -kv[1][0])[:30]
            ]
    return out


def _hlo_summary(text):
    """GEMM back ends and fusion kinds in an optimized HLO module (cuBLAS custom calls, Triton GEMM fusions)."""
    import re

    count = lambda xs: {x: xs.count(x) for x in sorted(set(xs))}  # noqa: E731
    return {
        "custom_call_targets": count(re.findall(r'custom_call_target="([^"]+)"', text)),
        "fusion_backend_kinds": count(re.findall(r'"kind":"(__[a-z_]+)"', text)),
        "fusion_kinds": count(re.findall(r"kind=(k[A-Za-z]+)", text)),
        "dot_lines": [ln.strip()[:300] for ln in text.splitlines() if " dot(" in ln][:12],
    }


def _lbs_kernel(row_ref, a_ref, ids_ref, w_ref, place_ref, out_ref, *, V, K, VB):
    """Pallas (Triton) LBS + placement for VB vertices of one sample: each lane one vertex, all 3 coordinates.

    XLA's loop fusion computes each output coordinate in its own thread, so every thread reloads the
    vertex's K ids and weights, its 3 rest coordinates and 4·K gathered transform entries (~24 loads per
    output value). Here a lane loads ids/weights/rest point once and gathers the 12·K transform
    entries once for the three coordinates (~16 loads per output value). Experiment (--compare).
    """
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt
    import jax.numpy as jnp

    v0 = pl.program_id(0) * VB
    vv = v0 + jnp.arange(VB, dtype=jnp.int32)
    mask = vv < V
    vv = vv * 3
    p = [plt.load(row_ref.at[vv + c], mask=mask, other=0.0) for c in range(3)]
    T = None
    for k in range(K):
        idk = ids_ref[k, pl.ds(v0, VB)] * 12
        wk = w_ref[k, pl.ds(v0, VB)]
        t = [wk * a_ref[idk + e] for e in range(12)]  # same products and sum order as skinning._apply_sparse_lbs
        T = t if T is None else [a + b for a, b in zip(T, t)]
    s = place_ref[3]
    for c in range(3):
        o = T[4 * c] * p[0] + T[4 * c + 1] * p[1] + T[4 * c + 2] * p[2] + T[4 * c + 3]
        root = place_ref[c]
        plt.store(out_ref.at[vv + c], root + s * (o - root) + place_ref[4 + c], mask=mask)


def _pallas_lbs_pose(model, VB=256, interpret=False):
    """`pose(...).vertices, .all_joints` (fp32 HIGHEST) with the LBS pass as the Pallas kernel above."""
    import functools

    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    from anchorhoi_jax.body import skinning as sk

    V, K = model.num_vertices, int(model.skin_joint_ids.shape[1])
    nv = -(-V // VB)
    Vp = nv * VB
    ids_t = jnp.pad(model.skin_joint_ids.T, ((0, 0), (0, Vp - V)))
    w_t = jnp.pad(model.skin_joint_weights.T, ((0, 0), (0, Vp - V)))
    # Interpret mode (CPU smoke runs) discharges masked stores as scatters: it writes a padded output instead.
    Vo = Vp if interpret else V
    call = pl.pallas_call(
        functools.partial(_lbs_kernel, V=Vo, K=K, VB=VB),
        out_shape=jax.ShapeDtypeStruct((3 * Vo,), model.v_template.dtype), grid=(nv,), interpret=interpret,
    )  # fmt: skip
    HIGHEST = jax.lax.Precision.HIGHEST

    def f(m, p):
        R = sk.rodrigues(p.pose)
        row = jnp.matmul(sk._blend_features(m, p.betas, R), m.blend_dirs, precision=HIGHEST)
        j_rest, R_rest = sk.rest_joints(m, p.betas), sk.rest_orientations(m, p.betas)
        Rw, tw = sk.forward_kinematics(m, R, j_rest, R_rest)
        A = sk._skin_transforms(Rw, tw, R_rest, j_rest, True)
        root = j_rest[0]
        place = jnp.concatenate([root, p.scale[None], p.transl, jnp.zeros((1,), root.dtype)])
        verts = call(row, A.reshape(-1), ids_t, w_t, place)[: 3 * V].reshape(V, 3)
        extra = sk._barycentric(verts, m.extra_vertex_ids, m.extra_bary)
        return verts, jnp.concatenate([sk._place(tw, root, p.scale, p.transl), extra])

    return jax.jit(jax.vmap(f, in_axes=(None, 0)))


# --- Session-6 experiments (--fused, --lbs): the pose-corrective GEMM + LBS as one Pallas/Triton kernel
# (float32 FFMA, Triton's "ieee" dot), and the LBS pass alone as a 2-D-tiled kernel after XLA's cuBLAS
# GEMM. Both equal jit(vmap(pose)) bit for bit on the H100 (max |diff| 0.0) and both were SLOWER there
# (benchmarks/results/body_forward.md, session 6), so neither is in the library.
#
# Fused kernel: each program computes a (BM samples x BN vertices) tile of the posed rest mesh for x, y
# and z (three accumulators against a coordinate-planar copy of the blend matrix, so a vertex's three
# coordinates share a register position), then skins and places the tile in its epilogue and writes
# only the output vertices (no 258 MB round trip, no separate LBS pass).


@dataclasses.dataclass(frozen=True)
class FusedConfig:
    """Tile of one program: BM samples × BN vertices (× 3 coordinates), K-steps of BK features."""

    bm: int = 64
    bn: int = 64
    bk: int = 16
    num_warps: int = 4
    num_stages: int = 3

    def __post_init__(self):
        for name in ("bm", "bn", "bk"):
            v = getattr(self, name)
            if v < 16 or v & (v - 1):
                raise ValueError(f"FusedConfig.{name} must be a power of two >= 16, got {v}")


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def planar_blend(blend_dirs: Any, num_vertices: int, bn: int) -> Any:
    """The fused blend matrix with its columns split by coordinate: (3, Qp, Vp), Vp a multiple of `bn`.

    Column 3v + c of `blend_dirs` becomes [c, :, v]; padding columns are zero (host-side, once).
    """
    import jax.numpy as jnp

    M = onp.asarray(blend_dirs, onp.float32)
    V = num_vertices
    Vp = _round_up(V, bn)
    planes = M[:, : 3 * V].reshape(M.shape[0], V, 3).transpose(2, 0, 1)
    return jnp.asarray(onp.pad(planes, ((0, 0), (0, 0), (0, Vp - V))))


def planar_skinning(ids: Any, w: Any, Vp: int):
    """Sparse skinning ids/weights transposed to (K, Vp) and zero-padded (padding: joint 0, weight 0)."""
    import jax.numpy as jnp

    ids = onp.asarray(ids, onp.int32).T
    w = onp.asarray(w, onp.float32).T
    pad = ((0, 0), (0, Vp - ids.shape[1]))
    return jnp.asarray(onp.pad(ids, pad)), jnp.asarray(onp.pad(w, pad))


def _fused_kernel(f_ref, m_ref, a_ref, ids_ref, w_ref, p_ref, o_ref, *, cfg, Q, V, Vo, K, J12, nb):
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    BM, BN, BK = cfg.bm, cfg.bn, cfg.bk
    pid = pl.program_id(0)
    # Batch tiles vary fastest: consecutive programs share one column block of the blend matrix
    # (3·Qp·BN floats), so it is read from HBM once and reused from L2 by every batch tile.
    i = pid % nb
    j = pid // nb
    b0 = pl.multiple_of(i * BM, BM)
    v0 = pl.multiple_of(j * BN, BN)

    def body(t, acc):
        k0 = pl.multiple_of(t * BK, BK)
        a = f_ref[pl.ds(b0, BM), pl.ds(k0, BK)]
        return tuple(
            acc[c] + jnp.dot(a, m_ref[c, pl.ds(k0, BK), pl.ds(v0, BN)], precision=jax.lax.Precision.HIGHEST,
                             preferred_element_type=jnp.float32)
            for c in range(3)
        )  # fmt: skip

    z = jnp.zeros((BM, BN), jnp.float32)
    p = jax.lax.fori_loop(0, Q // BK, body, (z, z, z))

    _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, b0=b0, v0=v0, BM=BM, BN=BN, V=V, Vo=Vo, K=K, J12=J12)


def _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, *, b0, v0, BM, BN, V, Vo, K, J12):
    """Skin and place a (BM samples × BN vertices) tile of rest coordinates p = (x, y, z) and store it."""
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    rows = b0 + jnp.arange(BM, dtype=jnp.int32)
    cols = v0 + jnp.arange(BN, dtype=jnp.int32)
    mask = jnp.broadcast_to((cols < V)[None, :], (BM, BN))
    abase = rows[:, None] * J12
    ids = [ids_ref[k, pl.ds(v0, BN)] * 12 for k in range(K)]
    ws = [w_ref[k, pl.ds(v0, BN)][None, :] for k in range(K)]
    scale = p_ref[pl.ds(b0, BM), 3][:, None]
    for c in range(3):
        # Same products and sum order as skinning._apply_sparse_lbs and skinning._place.
        T = []
        for e in range(4):
            t = None
            for k in range(K):
                g = ws[k] * a_ref[abase + ids[k][None, :] + (4 * c + e)]
                t = g if t is None else t + g
            T.append(t)
        o = T[0] * p[0] + T[1] * p[1] + T[2] * p[2] + T[3]
        root = p_ref[pl.ds(b0, BM), c][:, None]
        o = root + scale * (o - root) + p_ref[pl.ds(b0, BM), 4 + c][:, None]
        plt.store(o_ref.at[rows[:, None] * (3 * Vo) + cols[None, :] * 3 + c], o, mask=mask)


def _tiled_lbs_kernel(r_ref, a_ref, ids_ref, w_ref, p_ref, o_ref, *, BM, BN, N, V, Vo, K, J12, nb, nv, vertex_fastest):
    """LBS + placement of a (BM × BN) tile of an already computed posed rest mesh (B, N ≥ 3V)."""
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    pid = pl.program_id(0)
    if vertex_fastest:  # consecutive programs stream along the same rows
        i, j = pid // nv, pid % nv
    else:
        i, j = pid % nb, pid // nb
    b0 = pl.multiple_of(i * BM, BM)
    v0 = pl.multiple_of(j * BN, BN)
    rows = b0 + jnp.arange(BM, dtype=jnp.int32)
    cols = v0 + jnp.arange(BN, dtype=jnp.int32)
    mask = jnp.broadcast_to((cols < V)[None, :], (BM, BN))
    base = rows[:, None] * N + cols[None, :] * 3
    # Every load of the tile is issued before any use: BM·BN·3 independent loads per program keep
    # enough bytes in flight for HBM bandwidth (one output value per thread does not).
    p = tuple(plt.load(r_ref.at[base + c], mask=mask, other=0.0) for c in range(3))
    _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, b0=b0, v0=v0, BM=BM, BN=BN, V=V, Vo=Vo, K=K, J12=J12)


def lbs_vertices(
    rest: Any,
    A: Any,
    ids_t: Any,
    w_t: Any,
    root: Any,
    scale: Any,
    transl: Any,
    *,
    num_vertices: int,
    bm: int = 8,
    bn: int = 128,
    num_warps: int = 4,
    vertex_fastest: bool = True,
    interpret: bool = False,
) -> Any:
    """Skinned, scaled and translated vertices from the posed rest mesh rows `rest` (x, y, z interleaved).

    The LBS pass alone as a 2-D-tiled kernel (BM samples × BN vertices per program); `ids_t`/`w_t`
    from `planar_skinning` with Vp a multiple of `bn`.
    """
    import functools

    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    B, N = rest.shape
    V = num_vertices
    Vp = ids_t.shape[1]
    if Vp % bn or N < 3 * V or B % bm:
        raise ValueError(f"lbs tile {bm}x{bn} does not fit rest {rest.shape} / skinning {ids_t.shape}")
    J = A.shape[-3]
    K = ids_t.shape[0]
    nb, nv = B // bm, Vp // bn
    place = jnp.concatenate([root, scale[:, None], transl, jnp.zeros((B, 1), root.dtype)], -1)
    Vo = Vp if interpret else V
    if interpret:  # masked loads read past the row end there too: pad the rows
        rest = jnp.pad(rest, ((0, 0), (0, max(0, 3 * Vp - N))))
    kern = functools.partial(_tiled_lbs_kernel, BM=bm, BN=bn, N=rest.shape[1], V=V, Vo=Vo, K=K, J12=J * 12, nb=nb, nv=nv,
                             vertex_fastest=vertex_fastest)
    out = pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct((B * 3 * Vo,), jnp.float32),
        grid=(nb * nv,),
        interpret=interpret,
        compiler_params=plt.CompilerParams(num_warps=num_warps),
    )(rest.reshape(-1), A.reshape(-1), ids_t, w_t, place)
    return out.reshape(B, Vo, 3)[:, :V]


def fused_vertices(
    feats: Any,
    planar: Any,
    A: Any,
    ids_t: Any,
    w_t: Any,
    root: Any,
    scale: Any,
    transl: Any,
    *,
    num_vertices: int,
    cfg: FusedConfig = FusedConfig(),
    interpret: bool = False,
) -> Any:
    """Skinned, scaled and translated vertices of a batch: place(LBS(A, feats · blend_dirs)).

    `planar` from `planar_blend` (its Vp a multiple of cfg.bn), `ids_t`/`w_t` from `planar_skinning`,
    A the per-sample skinning transforms (`skinning._skin_transforms`). The batch is padded to a
    multiple of cfg.bm internally. `interpret=True` runs the kernel body in JAX (CPU tests).
    """
    import functools

    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    B, Q = feats.shape
    V = num_vertices
    Vp = planar.shape[-1]
    if planar.shape[:2] != (3, Q) or Vp % cfg.bn or Vp < V or Q % cfg.bk:
        raise ValueError(f"planar blend {planar.shape} does not fit features {feats.shape} and tile {cfg}")
    J = A.shape[-3]
    K = ids_t.shape[0]
    Bp = _round_up(B, cfg.bm)
    nb, nv = Bp // cfg.bm, Vp // cfg.bn
    pad = lambda x: jnp.pad(x, ((0, Bp - B),) + ((0, 0),) * (x.ndim - 1))  # noqa: E731
    place = jnp.concatenate([root, scale[:, None], transl, jnp.zeros((B, 1), root.dtype)], -1)
    # Interpret mode discharges masked stores as full scatters: give it a padded output instead.
    Vo = Vp if interpret else V
    kern = functools.partial(_fused_kernel, cfg=cfg, Q=Q, V=V, Vo=Vo, K=K, J12=J * 12, nb=nb)
    out = pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct((Bp * 3 * Vo,), jnp.float32),
        grid=(nb * nv,),
        interpret=interpret,
        compiler_params=plt.CompilerParams(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
    )(pad(feats), planar, pad(A.reshape(B, J * 12)).reshape(-1), ids_t, w_t, pad(place))
    return out.reshape(Bp, Vo, 3)[:B, :V]


class FusedBlend(NamedTuple):
    """Host-prepared constants of the fused kernel for one model and tile width (see `prepare`)."""

    planar: Any
    ids_t: Any
    w_t: Any


def prepare_fused(model, cfg: FusedConfig = FusedConfig()) -> FusedBlend:
    """Planar blend matrix and transposed sparse skinning of `model` (needs blend_dirs and skin ids)."""
    if model.blend_dirs is None or model.skin_joint_ids is None or model.posedirs.shape[0] == 0:
        raise ValueError("the fused kernel needs a model with pose correctives, blend_dirs and sparse skinning")
    planar = planar_blend(model.blend_dirs, model.num_vertices, cfg.bn)
    ids_t, w_t = planar_skinning(model.skin_joint_ids, model.skin_joint_weights, planar.shape[-1])
    return FusedBlend(planar=planar, ids_t=ids_t, w_t=w_t)


def _blend_inputs(model, p):
    """One sample's blend features, skinning transforms, root joint and posed joints (the kernels' inputs)."""
    from anchorhoi_jax.body import skinning as sk

    R = sk.rodrigues(p.pose)
    f = sk._blend_features(model, p.betas, R)
    j_rest = sk.rest_joints(model, p.betas)
    R_rest = sk.rest_orientations(model, p.betas)
    Rw, tw = sk.forward_kinematics(model, R, j_rest, R_rest)
    A = sk._skin_transforms(Rw, tw, R_rest, j_rest, True)
    root = j_rest[0]
    return f, A, root, sk._place(tw, root, p.scale, p.transl)


def pose_vertices_joints(model, fused: FusedBlend, params, *, cfg: FusedConfig = FusedConfig(), interpret=False):
    """Batched (vertices (B,V,3), all joints (B,J+E,3)) = `pose(model, p)` for each sample, fp32 HIGHEST.

    FK, features and transforms run as in `skinning.pose` (vmapped); the GEMM + LBS + placement is
    the fused kernel. `params` carries a leading batch axis.
    """
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body import skinning as sk

    if model.rest_orient != "identity":
        raise ValueError("the fused kernel supports identity rest frames (SMPL-X) only")

    f, A, root, joints = jax.vmap(lambda p: _blend_inputs(model, p))(params)
    verts = fused_vertices(
        f, fused.planar, A, fused.ids_t, fused.w_t, root, params.scale, params.transl,
        num_vertices=model.num_vertices, cfg=cfg, interpret=interpret,
    )  # fmt: skip
    extra = jax.vmap(sk._barycentric, in_axes=(0, None, None))(verts, model.extra_vertex_ids, model.extra_bary)
    return verts, jnp.concatenate([joints, extra], 1)


def pose_vertices_joints_lbs(model, fused: FusedBlend, params, *, bm=8, bn=128, num_warps=4, vertex_fastest=True,
                             interpret=False):
    """As `pose_vertices_joints`, but the GEMM is XLA's (cuBLAS FFMA) and only the LBS pass is the tiled kernel.

    `fused` from `prepare_fused(model, FusedConfig(bn=bn))` (its planar matrix is not used here).
    """
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body import skinning as sk

    f, A, root, joints = jax.vmap(lambda p: _blend_inputs(model, p))(params)
    rest = jnp.matmul(f, model.blend_dirs, precision=jax.lax.Precision.HIGHEST)
    verts = lbs_vertices(
        rest, A, fused.ids_t, fused.w_t, root, params.scale, params.transl, num_vertices=model.num_vertices,
        bm=bm, bn=bn, num_warps=num_warps, vertex_fastest=vertex_fastest, interpret=interpret,
    )  # fmt: skip
    extra = jax.vmap(sk._barycentric, in_axes=(0, None, None))(verts, model.extra_vertex_ids, model.extra_bary)
    return verts, jnp.concatenate([joints, extra], 1)


def _parity(results, fns, bm_fns, model, model3, extras, tm, to_params, tdev):
    """Batch-64 parity vs smplx (torch, fp32): vertices, 127 joints, joints-only path, and gradients of
    a random linear loss w.r.t. every input (relative to the largest torch autograd entry), for
    Precision.HIGHEST and fp32_3xtf32; TF32's vertex error for reference."""
    import jax
    import jax.numpy as jnp
    import torch

    from anchorhoi_jax.body.skinning import FP32_3XTF32, pose
    from anchorhoi_jax.body.smplx import make_params

    HIGHEST = jax.lax.Precision.HIGHEST
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    xp = _inputs(64, seed=123)
    xj = {k: jnp.asarray(v) for k, v in xp.items()}
    p64 = to_params(xj)
    tm.batch_size = 64
    tx = {k: torch.from_numpy(v).to(tdev).requires_grad_(True) for k, v in xp.items()}
    out = tm(**tx)
    rng = onp.random.default_rng(7)
    cv = rng.normal(size=tuple(out.vertices.shape)).astype(onp.float32)
    cj = rng.normal(size=tuple(out.joints.shape)).astype(onp.float32)
    ((out.vertices * torch.from_numpy(cv).to(tdev)).sum() + (out.joints * torch.from_numpy(cj).to(tdev)).sum()).backward()
    v_ref, j_ref = out.vertices.detach().cpu().numpy(), out.joints.detach().cpu().numpy()
    g_ref = {k: t.grad.cpu().numpy() for k, t in tx.items() if k != "transl"}

    def err(a, ref):
        return float(onp.abs(onp.asarray(a) - ref).max())

    for (kind, prec), (f, m) in fns.items():
        o = f(m, p64)
        tag = "" if prec == "fp32" else f"_{prec}"
        if kind == "full":
            results[f"parity{tag}_max_vertex_err_m"] = err(o[0], v_ref)
            results[f"parity{tag}_max_joint_err_m"] = err(o[1], j_ref)
        else:
            results[f"parity{tag}_max_joint_err_joints_only_m"] = err(o, j_ref)
    results["tf32_max_vertex_err_m"] = results.pop("parity_tf32_max_vertex_err_m")
    results["parity_body_models_vs_smplx_vertex_err_m"] = err(bm_fns[("full", "fp32")](xj), v_ref)

    def grad_errs(prec, m):
        def loss(inp):
            p = jax.vmap(lambda a: make_params(model, extras, **a))(inp)
            o = jax.vmap(lambda q: pose(m, q, precision=prec))(p)
            return jnp.sum(o.vertices * cv) + jnp.sum(o.all_joints * cj)

        g = jax.jit(jax.grad(loss))(xj)
        return {k: float(onp.abs(onp.asarray(g[k]) - r).max() / onp.abs(r).max()) for k, r in g_ref.items()}

    for prec, m, tag in ((HIGHEST, model, ""), (FP32_3XTF32, model3, f"_{FP32_3XTF32}")):
        ge = grad_errs(prec, m)
        results[f"parity{tag}_grad_rel_err"] = ge
        results[f"parity{tag}_max_grad_rel_err"] = max(ge.values())



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--reps", type=int, default=15, help="single synchronised calls per cell (median)")
    ap.add_argument("--pipeline", type=int, default=10, help="K calls per pipelined measurement")
    ap.add_argument("--pipe-reps", type=int, default=5, help="pipelined measurements per cell (median)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (reps 9, K 8, 3 pipelined; smplx fewer)")
    ap.add_argument("--deadline", type=float, default=None, help="seconds: start no new batch after this")
    ap.add_argument("--diagnose", action="store_true", help="wall-time decomposition and the TF32 row at batch 2048")
    ap.add_argument("--variants", action="store_true", help="also time implementation variants at batch 2048")
    ap.add_argument("--breakdown", action="store_true", help="per-part timings and a kernel profile at batch 2048")
    ap.add_argument("--breakdown-batch", type=int, default=2048, help="batch of --breakdown/--diagnose (2048)")
    ap.add_argument("--old-skinning", default=None, help="an earlier skinning.py to time beside the current one")
    ap.add_argument("--compare", action="store_true",
                    help="batch 2048: jit(model, params) vs compile_pose variants, body-models and smplx, same process")
    ap.add_argument("--no-compiled", action="store_true", help="no compile_pose column in the batch table")
    ap.add_argument("--keep-order", action="store_true", help="time the batches in the order given (default: 2048 first)")
    ap.add_argument("--compare-compiled", action="store_true", help="--compare: also the compile_pose binding variants")
    ap.add_argument("--compare-pallas-lbs", action="store_true", help="--compare: also the session-5 Pallas LBS kernel")
    ap.add_argument("--fused", default="",
                    help="--compare: fused GEMM+LBS kernel configs 'bm,bn,bk,warps,stages;...' (the session-6 kernels above)")
    ap.add_argument("--lbs", default="",
                    help="--compare: XLA GEMM + tiled Pallas LBS kernel configs 'bm,bn,warps,vertex_fastest;...'")
    ap.add_argument("--k-rows", type=int, default=0,
                    help="--compare: also the full forward with the blend matrix cut to this many rows (>= 507)")
    ap.add_argument("--layouts", action="store_true",
                    help="--compare: GEMM output as a jit output (not a temp) and the coordinate-planar XLA layout")
    ap.add_argument("--trace-host", action="store_true",
                    help="--compare: profiler trace of the main candidates with host-thread events per call")
    ap.add_argument("--rounds", type=int, default=2, help="--compare: interleaved timing rounds")
    ap.add_argument("--cache-dir", default=None,
                    help="persistent JAX compilation cache (a later device call reuses unchanged programs' compiles)")
    ap.add_argument("--no-parity", action="store_true", help="skip the parity/gradient section (table-only runs)")
    ap.add_argument("--wait-for", default=None, help="before timing anything, wait (<= 120 s) until this file exists")
    ap.add_argument("--allow-cpu", action="store_true", help="smoke-test the script without a GPU (times not reportable)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.quick:
        args.reps, args.pipeline, args.pipe_reps = min(args.reps, 9), min(args.pipeline, 8), min(args.pipe_reps, 3)
    batches = [int(b) for b in args.batches.split(",")]
    # Batch 2048 (the issue's target) first, then the largest, so a run cut short keeps the big rows.
    order = batches if args.keep_order else sorted(batches, key=lambda b: (b != 2048, -b))

    import jax
    import jax.numpy as jnp
    import torch

    import smplx

    if args.cache_dir:  # compile time, not run time: cached executables are the same programs
        jax.config.update("jax_compilation_cache_dir", args.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from body_models.smplx.jax import SMPLX as BMSMPLX

    from anchorhoi_jax.body import skinning as sk
    from anchorhoi_jax.body.compiled import compile_pose
    from anchorhoi_jax.body.skinning import FP32_3XTF32, pose, pose_joints, with_tf32x3_blend
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
    model3 = with_tf32x3_blend(model)  # carries the split; on CPU the mode computes plain fp32
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

    # (output, precision) -> (our function, the model it takes)
    fns = {
        ("full", "fp32"): (ours_full(HIGHEST), model),
        ("full", "tf32"): (ours_full(DEFAULT), model),
        ("full", FP32_3XTF32): (ours_full(FP32_3XTF32), model3),
        ("joints", "fp32"): (ours_joints(HIGHEST), model),
        ("joints", "tf32"): (ours_joints(DEFAULT), model),
    }
    peer_prec = {"fp32": "fp32", "tf32": "tf32", FP32_3XTF32: "fp32"}  # 3xTF32 is float32-accurate: peers at fp32
    bm_fns = {(k, p): bm_fn(k, {"fp32": "highest", "tf32": "tensorfloat32"}[p]) for k in ("full", "joints") for p in ("fp32", "tf32")}

    # --- parity on the GPU (fp32 everywhere), values and gradients, batch 64 ---
    if not args.no_parity:
        _parity(results, fns, bm_fns, model, model3, extras, tm, to_params, tdev)
        print("parity vs smplx (batch 64, fp32):", json.dumps({k: v for k, v in results.items() if k != "rows"}), flush=True)
        save()

    if args.wait_for:  # e.g. a GPU test run started beside this process: no timing while it runs
        t_wait = time.perf_counter()
        while not os.path.exists(args.wait_for) and time.perf_counter() - t_wait < 120:
            time.sleep(0.5)
        results["waited_for_s"] = time.perf_counter() - t_wait

    B, P, V = args.breakdown_batch, 486, model.num_vertices
    pb = jax.block_until_ready(to_params({k: jnp.asarray(v) for k, v in _inputs(B).items()}))

    def jtimed(f, *a, reps=None):
        ms, pipe = _timed(lambda: f(*a), jax.block_until_ready, reps or args.reps, args.pipeline, args.pipe_reps)
        return {"per_call_ms": ms, "pipelined_ms": pipe}

    # --- where the wall time goes, and the TF32 row (batch 2048) ---
    if args.diagnose:
        dg = results[f"diagnose_b{B}"] = {}
        f32, _ = fns[("full", "fp32")]
        ftf, _ = fns[("full", "tf32")]
        f3x, _ = fns[("full", FP32_3XTF32)]
        fj, _ = fns[("joints", "fp32")]
        xb = {k: jnp.asarray(v) for k, v in _inputs(B).items()}
        nop = jax.jit(lambda m, p: p.transl + 1.0)
        nop_p = jax.jit(lambda p: p.transl + 1.0)
        write = jax.jit(lambda p: jnp.zeros((p.transl.shape[0], V, 3), p.transl.dtype) + p.transl[:, None, :])
        closed = jax.jit(jax.vmap(lambda p: (lambda o: (o.vertices, o.all_joints))(pose(model, p)), in_axes=0))
        probes = {
            "nop_model_and_params": (nop, model, pb),
            "nop_params_only": (nop_p, pb),
            "write_257mb_output": (write, pb),
            "ours_full_fp32": (f32, model, pb),
            "ours_full_fp32_model_closed_over": (closed, pb),
            "ours_full_tf32": (ftf, model, pb),
            "ours_full_fp32_3xtf32": (f3x, model3, pb),
        }
        compiled_variants = {
            "ours_full_fp32_compiled_default": (f32, {}),
            "ours_full_fp32_command_buffers_off": (f32, {"xla_gpu_enable_command_buffer": ""}),
            "ours_full_tf32_triton_gemm_off": (ftf, {"xla_gpu_enable_triton_gemm": False}),
        }
        for name, (f, opts) in compiled_variants.items():
            try:
                c = f.lower(model, pb).compile(compiler_options=opts or None)
                probes[name] = (c, model, pb)
            except Exception as e:
                dg[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        probes["ours_full_tf32_explicit_algorithm"] = (ours_full(jax.lax.DotAlgorithmPreset.TF32_TF32_F32), model, pb)
        # Session 1 timed vertices only inside the jit (joints concatenated outside): is the TF32 row's jump from that?
        for pn, pr in (("fp32", HIGHEST), ("tf32", DEFAULT)):
            vo = jax.jit(jax.vmap(lambda m, p, pr=pr: pose(m, p, precision=pr).vertices, in_axes=(None, 0)))
            probes[f"ours_full_{pn}_vertices_only"] = (vo, model, pb)
            if old is not None:
                probes[f"previous_skinning_full_{pn}"] = (ours_full(pr, old.pose), model, pb)
        probes["body_models_full_fp32"] = (bm_fns[("full", "fp32")], xb)
        tm_ = {}
        for name, (f, *a) in probes.items():
            try:
                tm_[name] = jtimed(f, *a)
            except Exception as e:
                dg[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        dg["timings"] = tm_
        print("diagnose timings", json.dumps(tm_), flush=True)
        save()
        # Optimized HLO of the full forward per precision (what XLA runs; GEMM back end and fusions).
        hlo = dg["hlo"] = {}
        for name, (f, m) in (("full_fp32", (f32, model)), ("full_tf32", (ftf, model)), ("full_fp32_3xtf32", (f3x, model3))):
            try:
                txt = f.lower(m, pb).compile().as_text()
                with open(os.path.join(args.out, f"body_forward_hlo_{name}_b{B}.txt"), "w") as fh:
                    fh.write(txt)
                hlo[name] = _hlo_summary(txt)
            except Exception as e:
                hlo[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        save()
        if on_gpu:
            targets = {n: (lambda f=f, a=a: jax.block_until_ready(f(*a))) for n, (f, *a) in probes.items() if n in tm_}
            try:
                dg["trace"] = _trace_calls(targets, 5, tmp)
            except Exception as e:
                dg["trace_error"] = f"{type(e).__name__}: {e}"[:300]
            save()
        print("diagnose", json.dumps({k: v for k, v in dg.items() if k != "timings"})[:4000], flush=True)

    # --- host overhead: jit(model, params) vs compile_pose (model bound once), batch 2048, same process ---
    if args.compare:
        cp = results[f"compare_b{B}"] = {"compile_s": {}}
        xb = {k: jax.device_put(jnp.asarray(v), gpu) for k, v in _inputs(B).items()}
        pc = jax.block_until_ready(to_params(xb))
        cands = {
            "jit_model_params_full_fp32": (lambda: fns[("full", "fp32")][0](model, pc)),
            "jit_model_params_full_fp32_3xtf32": (lambda: fns[("full", FP32_3XTF32)][0](model3, pc)),
            "jit_model_params_joints_fp32": (lambda: fns[("joints", "fp32")][0](model, pc)),
            "nop_model_and_params": (lambda f=jax.jit(lambda m, p: p.transl + 1.0): f(model, pc)),
            "nop_params_only": (lambda f=jax.jit(lambda p: p.transl + 1.0): f(pc)),
            "body_models_full_fp32": (lambda: bm_fns[("full", "fp32")](xb)),
        }
        progs = {"compile_pose_full_fp32": (model, "vertices_all_joints", HIGHEST, {})}
        if args.compare_compiled:
            progs.update({
                "compile_pose_full_fp32_pass_all": (model, "vertices_all_joints", HIGHEST, {"embed_bytes": 0}),
                "compile_pose_full_fp32_embed_all": (model, "vertices_all_joints", HIGHEST, {"embed_bytes": 1 << 40}),
                "compile_pose_full_fp32_3xtf32": (model3, "vertices_all_joints", FP32_3XTF32, {}),
                "compile_pose_joints_fp32": (model, "all_joints", HIGHEST, {}),
            })  # fmt: skip
        for name, (m, out, pr, kw) in progs.items():
            t_c = time.perf_counter()
            try:
                prog = compile_pose(m, B, output=out, precision=pr, **kw)
                cands[name] = lambda prog=prog: prog(pc)
                cp["compile_s"][name] = time.perf_counter() - t_c
                cp.setdefault("call_arrays", {})[name] = prog.num_call_arrays
            except Exception as e:
                cp[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        for VB in (256, 512) if args.compare_pallas_lbs else ():
            try:
                fp = _pallas_lbs_pose(model, VB, interpret=not on_gpu)
                jax.block_until_ready(fp(model, pc))
                cands[f"pallas_lbs_vb{VB}_full_fp32"] = lambda fp=fp: fp(model, pc)
            except Exception as e:
                cp[f"pallas_lbs_vb{VB}_error"] = f"{type(e).__name__}: {e}"[:400]
        if args.layouts:
            # Is the posed rest mesh being an XLA temp (258 MB) part of the per-call overhead? Same program,
            # but the GEMM output is also returned (its buffer becomes an output, CSE keeps one GEMM).
            def with_rest(m, p):
                o = pose(m, p)
                f = sk._blend_features(m, p.betas, sk.rodrigues(p.pose))
                return o.vertices, o.all_joints, jnp.matmul(f, m.blend_dirs, precision=HIGHEST)

            f_wr = jax.jit(jax.vmap(with_rest, in_axes=(None, 0)))
            cands["gemm_out_as_output_full_fp32"] = lambda: f_wr(model, pc)
            # Coordinate-planar GEMM columns [x(Vp) | y(Vp) | z(Vp)]: the LBS fusion reads three planes.
            Vp = -(-V // 128) * 128
            planar_m = jnp.asarray(
                onp.pad(onp.asarray(model.blend_dirs)[:, : 3 * V].reshape(-1, V, 3).transpose(0, 2, 1),
                        ((0, 0), (0, 0), (0, Vp - V))).reshape(model.blend_dirs.shape[0], 3 * Vp)
            )  # fmt: skip

            def planar_pose(m, pm, p):
                R = sk.rodrigues(p.pose)
                rest = jnp.matmul(sk._blend_features(m, p.betas, R), pm, precision=HIGHEST)
                v_rest = rest.reshape(3, Vp)[:, :V].T
                j_rest, R_rest = sk.rest_joints(m, p.betas), sk.rest_orientations(m, p.betas)
                Rw, tw = sk.forward_kinematics(m, R, j_rest, R_rest)
                A = sk._skin_transforms(Rw, tw, R_rest, j_rest, True)
                root = j_rest[0]
                verts = sk._place(sk._lbs(m, A, v_rest, HIGHEST), root, p.scale, p.transl)
                extra = sk._barycentric(verts, m.extra_vertex_ids, m.extra_bary)
                return verts, jnp.concatenate([sk._place(tw, root, p.scale, p.transl), extra])

            f_pl = jax.jit(jax.vmap(planar_pose, in_axes=(None, None, 0)))
            cands["planar_columns_xla_full_fp32"] = lambda: f_pl(model, planar_m, pc)
        if args.fused:
            for spec in args.fused.split(";"):
                bm_, bn_, bk_, nw_, ns_ = (int(v) for v in spec.split(","))
                fcfg = FusedConfig(bm=bm_, bn=bn_, bk=bk_, num_warps=nw_, num_stages=ns_)
                name = f"fused_gemm_lbs_{bm_}x{bn_}x{bk_}_w{nw_}_s{ns_}_full_fp32"
                t_c = time.perf_counter()
                try:
                    fb = prepare_fused(model, fcfg)
                    ff = jax.jit(lambda m, fb, p, fcfg=fcfg: pose_vertices_joints(
                        m, fb, p, cfg=fcfg, interpret=not on_gpu))  # fmt: skip
                    jax.block_until_ready(ff(model, fb, pc))
                    cands[name] = lambda ff=ff, fb=fb: ff(model, fb, pc)
                    cp["compile_s"][name] = time.perf_counter() - t_c
                except Exception as e:
                    cp[f"{name}_error"] = f"{type(e).__name__}: {e}"[:600]
                    print(name, "failed:", cp[f"{name}_error"], flush=True)
        if args.k_rows:  # fewer zero rows in the GEMM's K (507 real rows; 512 is the default padding)
            mk = model.replace(blend_dirs=jax.block_until_ready(model.blend_dirs[: args.k_rows]))
            cands[f"jit_k{args.k_rows}_full_fp32"] = lambda mk=mk: fns[("full", "fp32")][0](mk, pc)
        if args.lbs:

            for spec in args.lbs.split(";"):
                bm_, bn_, nw_, vf_ = (int(v) for v in spec.split(","))
                name = f"xla_gemm_tiled_lbs_{bm_}x{bn_}_w{nw_}_{'vfast' if vf_ else 'bfast'}_full_fp32"
                t_c = time.perf_counter()
                try:
                    fb = prepare_fused(model, FusedConfig(bn=bn_))
                    ff = jax.jit(lambda m, fb, p, bm_=bm_, bn_=bn_, nw_=nw_, vf_=vf_: pose_vertices_joints_lbs(
                        m, fb, p, bm=bm_, bn=bn_, num_warps=nw_, vertex_fastest=bool(vf_), interpret=not on_gpu))
                    jax.block_until_ready(ff(model, fb, pc))
                    cands[name] = lambda ff=ff, fb=fb: ff(model, fb, pc)
                    cp["compile_s"][name] = time.perf_counter() - t_c
                except Exception as e:
                    cp[f"{name}_error"] = f"{type(e).__name__}: {e}"[:600]
                    print(name, "failed:", cp[f"{name}_error"], flush=True)
        for name, fn in cands.items():  # compile and warm every candidate before any timing
            jax.block_until_ready(fn())
        v_ref = onp.asarray(cands["jit_model_params_full_fp32"]()[0])
        j_ref = onp.asarray(cands["jit_model_params_full_fp32"]()[1])
        cp["compile_pose_full_fp32_max_abs_diff_vs_jit"] = float(
            onp.abs(onp.asarray(cands["compile_pose_full_fp32"]()[0]) - v_ref).max()
        )
        for n in cands:
            if n.startswith(("pallas_lbs", "fused_", "planar_", "gemm_out", "xla_gemm_tiled", "compile_pose_tiled", "jit_k")):
                o = cands[n]()
                cp[f"{n}_max_abs_diff_vs_jit_m"] = float(onp.abs(onp.asarray(o[0]) - v_ref).max())
                cp[f"{n}_max_joint_diff_vs_jit_m"] = float(onp.abs(onp.asarray(o[1]) - j_ref).max())
        print("compare diffs", json.dumps({k: v for k, v in cp.items() if "diff" in k or "error" in k}), flush=True)
        rounds = cp["rounds"] = []
        for _ in range(args.rounds):  # interleaved rounds: drift on the machine hits every candidate alike
            rounds.append({n: jtimed(fn) for n, fn in cands.items()})
        cp["timings_per_round"] = {n: [[r[n]["per_call_ms"], r[n]["pipelined_ms"]] for r in rounds] for n in cands}
        cp["timings"] = {
            n: {k: statistics.mean(r[n][k] for r in rounds) for k in ("per_call_ms", "pipelined_ms")} for n in cands
        }
        xt = {k: torch.from_numpy(v).to(tdev) for k, v in _inputs(B).items()}
        tm.batch_size = B
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

        def run_torch_full():
            with torch.no_grad():
                return tm(**xt)

        ms, pipe = _timed(run_torch_full, lambda _: torch.cuda.synchronize() if tdev == "cuda" else None, 5, 4, 2)
        cp["timings"]["smplx_full_fp32"] = {"per_call_ms": ms, "pipelined_ms": pipe}
        del xt
        print("compare", json.dumps(cp["timings"]), flush=True)
        save()
        if args.trace_host and on_gpu:
            best = [min((n for n in cands if n.startswith(pre)), default=None,
                        key=lambda n: cp["timings"][n]["per_call_ms"]) for pre in ("fused_", "xla_gemm_tiled")]
            names = ["jit_model_params_full_fp32", "nop_model_and_params", "body_models_full_fp32", *best]
            targets = {n: (lambda fn=cands[n]: jax.block_until_ready(fn())) for n in names if n in cands}
            try:
                cp["trace"] = _trace_calls(targets, 5, tmp, host=True)
            except Exception as e:
                cp["trace_error"] = f"{type(e).__name__}: {e}"[:300]
            save()

    # --- per-part timings at batch 2048, fp32 HIGHEST, each part jitted alone ---
    vfns = {}
    if args.variants:
        for name in ("TF32_TF32_F32_X3", "BF16_BF16_F32_X6"):
            vfns[name.lower()] = (ours_full(getattr(jax.lax.DotAlgorithmPreset, name)), model)
        if old is not None:
            vfns["previous_skinning_fp32"] = (ours_full(HIGHEST, old.pose), model)
            vfns["previous_skinning_joints_fp32"] = (ours_joints(HIGHEST, old.pose_joints), model)
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
        bd["full_ms"] = t(fns[("full", "fp32")][0], model, pb)
        bd["joints_only_ms"] = t(fns[("joints", "fp32")][0], model, pb)
        bd["sum_of_parts_ms"] = sum(bd[k] for k in ("features_ms", "gemm_ms", "fk_transforms_ms", "lbs_place_ms", "extra_points_ms"))
        # GEMM formulations of the same product (fp32 HIGHEST unless named).
        g = bd["gemm_layouts_ms"] = {}
        MT = jax.block_until_ready(model.blend_dirs.T.copy())
        dn = (((1,), (1,)), ((), ()))
        g["nn_padded"] = bd["gemm_ms"]
        g["nt_stored_transposed"] = t(jax.jit(lambda a, b: jax.lax.dot_general(a, b, dn, precision=HIGHEST)), feats, MT)
        g["output_transposed"] = t(jax.jit(lambda b, a: jax.lax.dot_general(b, a, dn, precision=HIGHEST)), MT, feats)
        g["nn_padded_tf32"] = t(jax.jit(lambda a, b: jnp.matmul(a, b, precision=DEFAULT)), feats, model.blend_dirs)
        if on_gpu:
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
                "ours_full_fp32": lambda: jax.block_until_ready(fns[("full", "fp32")][0](model, pb)),
                "ours_joints_fp32": lambda: jax.block_until_ready(fns[("joints", "fp32")][0](model, pb)),
                "ours_full_fp32_3xtf32": lambda: jax.block_until_ready(fns[("full", FP32_3XTF32)][0](model3, pb)),
                "body_models_full_fp32": lambda: jax.block_until_ready(bm_fns[("full", "fp32")](
                    {k: jnp.asarray(v) for k, v in _inputs(B).items()})),
            }  # fmt: skip
            if "previous_skinning_fp32" in vfns:
                fo, _ = vfns["previous_skinning_fp32"]
                targets["previous_full_fp32"] = lambda: jax.block_until_ready(fo(model, pb))
            for name, fn in targets.items():
                try:
                    prof[name] = _gpu_kernel_profile(fn, 5, tmp)
                except Exception as e:
                    prof[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            save()


    # --- timings: every cell per call and pipelined, same method for all three libraries ---
    skipped = []
    for batch in order:
        if args.deadline is not None and time.perf_counter() - t_start > args.deadline:
            skipped.append(batch)
            continue
        x = _inputs(batch)
        xj = {k: jax.device_put(jnp.asarray(v), gpu) for k, v in x.items()}
        params = jax.block_until_ready(to_params(xj))
        xt = {k: torch.from_numpy(v).to(tdev) for k, v in x.items()}
        tm.batch_size = batch
        peers = {}  # (output, peer precision) -> timings, shared by the fp32 and 3xTF32 rows
        progs = {}
        if not args.no_compiled:  # the same forward through compile_pose (model bound once, AOT)
            progs[("full", "fp32")] = compile_pose(model, batch, output="vertices_all_joints", precision=HIGHEST)
        # smplx is 10-150x slower per call: fewer of its calls carry the same relative noise.
        t_reps, t_k, t_pr = max(5, args.reps // 2), max(4, args.pipeline // 2), max(2, args.pipe_reps - 1)
        for (kind, prec), (f, m) in fns.items():
            row = {"batch": batch, "output": kind, "precision": prec}
            row["ours_ms"], row["ours_pipelined_ms"] = _timed(
                lambda: f(m, params), jax.block_until_ready, args.reps, args.pipeline, args.pipe_reps
            )
            if (kind, prec) in progs:
                prog = progs[(kind, prec)]
                row["ours_compiled_ms"], row["ours_compiled_pipelined_ms"] = _timed(
                    lambda: prog(params), jax.block_until_ready, args.reps, args.pipeline, args.pipe_reps
                )
            pp = peer_prec[prec]
            if (kind, pp) not in peers:
                g = bm_fns[(kind, pp)]
                bm_t = _timed(lambda: g(xj), jax.block_until_ready, args.reps, args.pipeline, args.pipe_reps)
                torch.backends.cuda.matmul.allow_tf32 = pp == "tf32"
                torch.backends.cudnn.allow_tf32 = pp == "tf32"

                def run_torch():
                    with torch.no_grad():
                        return tm(**xt, return_verts=kind == "full")

                def sync(_):
                    if tdev == "cuda":
                        torch.cuda.synchronize()

                peers[(kind, pp)] = (bm_t, _timed(run_torch, sync, t_reps, t_k, t_pr))
            (row["body_models_ms"], row["body_models_pipelined_ms"]), (row["smplx_ms"], row["smplx_pipelined_ms"]) = peers[
                (kind, pp)
            ]
            if prec != pp:
                row["peer_precision"] = pp
            for who in ("smplx", "body_models"):
                row[f"ratio_{who}_over_ours"] = row[f"{who}_ms"] / row["ours_ms"]
                row[f"ratio_{who}_over_ours_pipelined"] = row[f"{who}_pipelined_ms"] / row["ours_pipelined_ms"]
                if "ours_compiled_ms" in row:
                    row[f"ratio_{who}_over_ours_compiled"] = row[f"{who}_ms"] / row["ours_compiled_ms"]
                    row[f"ratio_{who}_over_ours_compiled_pipelined"] = (
                        row[f"{who}_pipelined_ms"] / row["ours_compiled_pipelined_ms"]
                    )
            results["rows"].append(row)
            print(
                f"B={batch:5d} {kind:6s} {prec:11s}: ours {row['ours_ms']:7.3f} / {row['ours_pipelined_ms']:7.3f} ms | "
                f"smplx {row['smplx_ms']:8.3f} / {row['smplx_pipelined_ms']:8.3f} | body-models {row['body_models_ms']:7.3f}"
                f" / {row['body_models_pipelined_ms']:7.3f} (per call / pipelined)"
                + (f" | compiled {row['ours_compiled_ms']:.3f} / {row['ours_compiled_pipelined_ms']:.3f}"
                   if "ours_compiled_ms" in row else "")
                + f" t={time.perf_counter() - t_start:.0f}s",
                flush=True,
            )
        del xt
        if batch == order[0] and vfns:
            vb = results[f"variants_b{batch}_ms"] = {}
            for name, (f, m) in vfns.items():
                try:
                    vb[name] = _timed(lambda: f(m, params), jax.block_until_ready, args.reps, args.pipeline, args.pipe_reps)
                except Exception as e:  # not every jax/GPU combination offers every algorithm
                    vb[name + "_error"] = f"{type(e).__name__}: {e}"[:300]
            print(f"variants b{batch}", json.dumps(vb), flush=True)
        save()
    results["batches_not_run_deadline"] = skipped
    results["rows"].sort(key=lambda r: (r["batch"], r["output"] != "full", r["precision"]))
    results["elapsed_s"] = time.perf_counter() - t_start

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
        return next((r for r in results["rows"] if (r["batch"], r["output"], r["precision"]) == (b, kind, prec)), None)

    summary = {
        "device": f"{device_name} ({gpu.device_kind})",
        "versions": {
            "python": platform.python_version(), "jax": jax.__version__, "torch": torch.__version__,
            "smplx": getattr(smplx, "__version__", "0.1.28"), "body_models": _version("body-models"),
        },  # fmt: skip
        "command": "python benchmarks/body_forward.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "timing": (
            f"per call: median of {args.reps} synchronised calls after 3 warm-up calls; pipelined: {args.pipeline} calls "
            f"back to back + one sync, / {args.pipeline}, median of {args.pipe_reps}; smplx: fewer calls "
            "(see _timed / the timing loop)"
        ),
        "synthetic_write_s": write_s,
    }
    r = row(2048, "full", "fp32")
    if r is not None:
        summary.update(
            smplx_ms_b2048_fp32=r["smplx_ms"],
            body_models_ms_b2048_fp32=r["body_models_ms"],
            jax_ms_b2048_fp32=r["ours_ms"],
            ratio_b2048_fp32=r["ratio_smplx_over_ours"],
            ratio_vs_body_models_b2048_fp32=r["ratio_body_models_over_ours"],
            gap_to_floor_b2048_fp32=r["ours_ms"] / results["floor"]["floor_fp32_ms"],
            smplx_pipelined_ms_b2048_fp32=r["smplx_pipelined_ms"],
            body_models_pipelined_ms_b2048_fp32=r["body_models_pipelined_ms"],
            jax_pipelined_ms_b2048_fp32=r["ours_pipelined_ms"],
            ratio_pipelined_b2048_fp32=r["ratio_smplx_over_ours_pipelined"],
            ratio_vs_body_models_pipelined_b2048_fp32=r["ratio_body_models_over_ours_pipelined"],
        )
    r3 = row(2048, "full", FP32_3XTF32)
    if r3 is not None:
        summary.update(
            jax_ms_b2048_fp32_3xtf32=r3["ours_ms"],
            jax_pipelined_ms_b2048_fp32_3xtf32=r3["ours_pipelined_ms"],
            ratio_b2048_fp32_3xtf32=r3["ratio_smplx_over_ours"],
            ratio_vs_body_models_b2048_fp32_3xtf32=r3["ratio_body_models_over_ours"],
            ratio_vs_body_models_pipelined_b2048_fp32_3xtf32=r3["ratio_body_models_over_ours_pipelined"],
            parity_max_vertex_err_m_fp32_3xtf32=results.get(f"parity_{FP32_3XTF32}_max_vertex_err_m"),
            parity_max_joint_err_m_fp32_3xtf32=results.get(f"parity_{FP32_3XTF32}_max_joint_err_m"),
            parity_max_grad_rel_err_fp32_3xtf32=results.get(f"parity_{FP32_3XTF32}_max_grad_rel_err"),
        )
    rt = row(2048, "full", "tf32")
    if rt is not None:
        summary.update(
            jax_ms_b2048_tf32=rt["ours_ms"], jax_pipelined_ms_b2048_tf32=rt["ours_pipelined_ms"],
            gap_to_floor_b2048_tf32=rt["ours_ms"] / floor_tf32_ms,
        )  # fmt: skip
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
        "| batch | output | precision | ours ms | smplx ms | body-models ms | smplx/ours | body-models/ours |"
        " ours pipelined | smplx pipelined | body-models pipelined | smplx/ours pipelined | body-models/ours pipelined |"
        " ours compile_pose | body-models/compile_pose | compile_pose pipelined | body-models/compile_pose pipelined |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        prec = r["precision"] + (f" (peers {r['peer_precision']})" if "peer_precision" in r else "")
        lines.append(
            f"| {r['batch']} | {r['output']} | {prec} | {r['ours_ms']:.3f} | {r['smplx_ms']:.3f} | "
            f"{r['body_models_ms']:.3f} | {r['ratio_smplx_over_ours']:.1f}x | {r['ratio_body_models_over_ours']:.2f}x | "
            f"{r['ours_pipelined_ms']:.3f} | {r['smplx_pipelined_ms']:.3f} | {r['body_models_pipelined_ms']:.3f} | "
            f"{r['ratio_smplx_over_ours_pipelined']:.1f}x | {r['ratio_body_models_over_ours_pipelined']:.2f}x | "
            + (
                f"{r['ours_compiled_ms']:.3f} | {r['ratio_body_models_over_ours_compiled']:.2f}x | "
                f"{r['ours_compiled_pipelined_ms']:.3f} | {r['ratio_body_models_over_ours_compiled_pipelined']:.2f}x |"
                if "ours_compiled_ms" in r
                else "| | | |"
            )
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
