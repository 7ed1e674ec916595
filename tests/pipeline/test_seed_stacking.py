"""Seeds vmapped through the motion stage: per-seed MotionData with different self-penetration pair
counts (they depend on each seed's β) or skinning-table widths stack without changing any seed's loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from flax import struct

from anchorhoi_jax.body.part_volumes import PartVolumes, pose_part_volumes
from anchorhoi_jax.losses.penetration import part_occupancy_penetration
from anchorhoi_jax.losses.regularizers import self_penetration
from anchorhoi_jax.pipeline.errors import PipelineError
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix
from anchorhoi_jax.losses.floor import floor_penetration, floor_support
from anchorhoi_jax.pipeline.stage_motion import pad_part_pairs, pad_support_points, stack_seed_data


def _parts(pairs) -> PartVolumes:
    # Four capsules on four joints, parallel along x, 6 cm apart with 4 cm radii: neighbours overlap.
    q0 = jnp.asarray([[0.0, 0.06 * i, 0.0] for i in range(4)], jnp.float32)
    q1 = q0 + jnp.asarray([[0.3, 0.0, 0.0]], jnp.float32)
    a, b = (jnp.asarray([p[k] for p in pairs], jnp.int32) for k in (0, 1))
    return PartVolumes(q0=q0, q1=q1, radius=jnp.full((4,), 0.04, jnp.float32), joint=jnp.arange(4, dtype=jnp.int32),
                       pair_a=a, pair_b=b)


@jax.jit
def _terms(parts, T, points):
    p0, p1, r = pose_part_volumes(parts, T, jnp.float32(1.1))
    sp, _ = self_penetration(parts, p0, p1, r)
    pp, _ = part_occupancy_penetration(points, p0, p1, r)
    return sp + 3.0 * pp, (sp, pp)


def _poses(key):
    T = jnp.tile(jnp.eye(4, dtype=jnp.float32), (4, 1, 1))
    return T.at[:, :3, 3].set(0.003 * jax.random.normal(key, (4, 3)))


def test_padded_pairs_leave_every_seed_loss_and_gradient_unchanged():
    seeds = [_parts([(0, 1), (1, 2), (0, 2)]), _parts([(2, 3)]), _parts([(0, 1), (2, 3)])]
    padded = pad_part_pairs(seeds)
    assert {int(p.pair_a.shape[0]) for p in padded} == {3} and all(p.radius.shape == (5,) for p in padded)
    points = jax.random.uniform(jax.random.key(0), (64, 3), minval=-0.05, maxval=0.35)
    Ts = jnp.stack([_poses(k) for k in jax.random.split(jax.random.key(1), 3)])
    grad = jax.grad(lambda T, parts: _terms(parts, T, points)[0])
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *padded)
    v_all, (sp_all, _) = jax.vmap(lambda p, T: _terms(p, T, points))(stacked, Ts)
    g_all = jax.vmap(grad)(Ts, stacked)
    for s, (orig, pad) in enumerate(zip(seeds, padded)):
        v0, (sp0, pp0) = _terms(orig, Ts[s], points)
        v1, (sp1, pp1) = _terms(pad, Ts[s], points)
        assert float(sp0) > 0.0 and float(pp0) > 0.0, (s, float(sp0), float(pp0))  # both terms active
        onp.testing.assert_array_equal(onp.asarray(v1), onp.asarray(v0))
        onp.testing.assert_allclose(onp.asarray(v_all[s]), onp.asarray(v0), rtol=1e-6)
        onp.testing.assert_allclose(onp.asarray(sp_all[s]), onp.asarray(sp0), rtol=1e-6)
        onp.testing.assert_allclose(onp.asarray(g_all[s]), onp.asarray(grad(Ts[s], orig)), rtol=1e-5, atol=1e-7)
    # Equal counts (and one seed) are left untouched: single-seed runs keep their bits.
    same = [_parts([(0, 2)]), _parts([(1, 3)])]
    assert all(a is b for a, b in zip(pad_part_pairs(same), same))


@struct.dataclass
class _Data:
    parts: PartVolumes
    sub_skin_ids: jax.Array
    sub_skin_w: jax.Array
    other: jax.Array


def test_stack_seed_data_pads_and_names_the_field_that_cannot_stack():
    ids_a, w_a = jnp.asarray([[3, 1]], jnp.int32), jnp.asarray([[0.7, 0.3]], jnp.float32)
    ids_b, w_b = jnp.asarray([[2, 0, 4]], jnp.int32), jnp.asarray([[0.5, 0.3, 0.2]], jnp.float32)
    a = _Data(_parts([(0, 2), (1, 3)]), ids_a, w_a, jnp.zeros(2))
    b = _Data(_parts([(0, 3)]), ids_b, w_b, jnp.zeros(2))
    st = stack_seed_data([a, b])
    assert st.parts.pair_a.shape == (2, 2) and st.sub_skin_ids.shape == (2, 1, 3)
    A = jax.random.normal(jax.random.key(2), (5, 3, 4))
    blend = lambda ids, w: sum(w[:, k, None, None] * A[ids[:, k]] for k in range(ids.shape[1]))  # noqa: E731
    onp.testing.assert_array_equal(onp.asarray(blend(st.sub_skin_ids[0], st.sub_skin_w[0])),
                                   onp.asarray(blend(ids_a, w_a)))
    with pytest.raises(PipelineError, match=r"motion data field \.other differs in shape between seeds") as e:
        stack_seed_data([a, b.replace(other=jnp.zeros(3))])
    assert "\n" not in str(e.value)


def _floor_terms(hull, aa, t, floor):
    # As stages/motion._floor_terms: the hull under per-frame rigid motions, floor sum and clip support.
    pts = jnp.einsum("fab,hb->fha", axis_angle_to_matrix(aa), hull) + t[:, None]
    pen = jnp.mean(jax.vmap(lambda p: floor_penetration(p, floor)[0])(pts))
    return pen + floor_support(jnp.min(pts[..., 1], -1), floor)[0]


def test_padded_support_points_keep_the_floor_terms():
    # Seeds' object hulls have different vertex counts (H100 4 seeds: 256, 256, 93, 178); padding with the hull's
    # vertex mean must not change either floor term or its gradient while the object rests on / above the floor.
    k = jax.random.split(jax.random.key(3), 4)
    hulls = [jax.random.normal(k[0], (7, 3)), jax.random.normal(k[1], (4, 3)), jax.random.normal(k[2], (7, 3))]
    padded = pad_support_points(hulls)
    assert [p.shape for p in padded] == [(7, 3)] * 3 and padded[0] is hulls[0]
    aa, t = 2.0 * jax.random.normal(k[3], (5, 3)), jnp.zeros((5, 3)).at[:, 1].set(jnp.linspace(-1.0, 0.5, 5))
    g = jax.grad(_floor_terms, argnums=(1, 2))
    for h, p in zip(hulls, padded):
        floor = jnp.min(jnp.einsum("fab,hb->fha", axis_angle_to_matrix(aa), h)[..., 1] + t[:, 1:2]) + 0.2
        assert float(_floor_terms(h, aa, t, floor)) > 0.0  # some hull vertices below the floor: both terms active
        onp.testing.assert_allclose(onp.asarray(_floor_terms(p, aa, t, floor)), onp.asarray(_floor_terms(h, aa, t, floor)),
                                    rtol=1e-6)
        for a, b in zip(g(p, aa, t, floor), g(h, aa, t, floor)):
            onp.testing.assert_allclose(onp.asarray(a), onp.asarray(b), rtol=1e-5, atol=1e-7)
    assert pad_support_points([None, None]) == [None, None]


@struct.dataclass
class _FloorData(_Data):
    object_support_points: jax.Array


def test_stack_seed_data_pads_support_points():
    ids, w = jnp.asarray([[0]], jnp.int32), jnp.asarray([[1.0]], jnp.float32)
    hulls = [jnp.ones((5, 3)), jnp.arange(9.0).reshape(3, 3)]
    st = stack_seed_data([_FloorData(_parts([(0, 2)]), ids, w, jnp.zeros(2), h) for h in hulls])
    assert st.object_support_points.shape == (2, 5, 3)
    onp.testing.assert_array_equal(onp.asarray(st.object_support_points[1]), [[0, 1, 2], [3, 4, 5], [6, 7, 8],
                                                                              [3, 4, 5], [3, 4, 5]])


@struct.dataclass
class _SkinData(_Data):
    sub_skin_entries: tuple


def test_stack_seed_data_rebuilds_lbs_entries_and_the_kernel_runs_batched_over_seeds():
    # Seeds whose skinning tables differ in width K: the kernel's entry lists (S·K long) are rebuilt after
    # padding, stack, and the LBS-gradient kernel under the seed vmap (batched lists) equals each seed's dense ∂/∂A.
    from anchorhoi_jax.kernels.lbs import joint_entries, lbs_transform_grad_pallas

    S, J = 40, 6
    rng = onp.random.default_rng(0)
    tables = []
    for k in (2, 3):
        ids = onp.stack([rng.choice(J, k, replace=False) for _ in range(S)]).astype(onp.int32)
        w = rng.dirichlet(onp.ones(k), S).astype(onp.float32)
        tables.append((ids, w))
    datas = [_SkinData(_parts([(0, 2)]), jnp.asarray(i), jnp.asarray(w), jnp.zeros(2),
                       tuple(jnp.asarray(a) for a in joint_entries(i, w, J))) for i, w in tables]
    st = stack_seed_data(datas)
    assert st.sub_skin_ids.shape == (2, S, 3) and st.sub_skin_entries[1].shape == (2, S * 3)
    g = jnp.asarray(rng.normal(size=(2, 3, S)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(2, 3, S)), jnp.float32)
    got = jax.vmap(lambda a, b, e: lbs_transform_grad_pallas(a, b, e, interpret=True))(g, v, st.sub_skin_entries)
    for s, (ids, w) in enumerate(tables):
        W = onp.zeros((S, J))
        onp.add.at(W, (onp.arange(S)[:, None], ids), w)
        vh = onp.concatenate([onp.asarray(v[s], onp.float64), onp.ones((1, S))], 0)
        want = onp.einsum("as,bs,sj->abj", onp.asarray(g[s], onp.float64), vh, W).reshape(12, J)
        onp.testing.assert_allclose(onp.asarray(got[s, :, :J]), want, rtol=0, atol=5e-6)
