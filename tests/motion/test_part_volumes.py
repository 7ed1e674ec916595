"""body/part_volumes.py: capsule fit on the procedural body, inside depth vs NumPy, posing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.body.part_volumes import fit_part_volumes, inside_depth, pose_part_volumes, self_penetration_depths
from anchorhoi_jax.body.skinning import pose


def _fit(model):
    return fit_part_volumes(model.v_template, model.j_template, model.rest_orient_template, model.lbs_weights,
                            model.faces, model.parents)


def test_fit_recovers_capsule_radii(body):
    model, _ = body
    parts = _fit(model)
    r = dict(zip(onp.asarray(parts.joint).tolist(), onp.asarray(parts.radius).tolist()))
    # The procedural body is built from capsules of these radii (synthetic_body._bones); the fit is
    # the inscribed radius of the polygonal skin minus the 2 mm margin, so slightly below.
    for j, want in ((1, 0.075), (4, 0.052), (16, 0.048), (18, 0.038), (15, 0.095)):
        assert want - 0.012 < r[j] <= want, (j, r[j], want)
    # Hand-finger joints own no vertices: no capsule.
    assert 30 not in r
    # Thigh and the other thigh's shin are non-adjacent and checked; thigh and its own shin are not.
    pairs = set(zip(onp.asarray(parts.joint)[parts.pair_a].tolist(), onp.asarray(parts.joint)[parts.pair_b].tolist()))
    assert (1, 5) in pairs and (1, 4) not in pairs


def test_inside_depth_vs_numpy(body):
    model, _ = body
    parts = _fit(model)
    posed = pose(model, BodyParams.zeros(model))
    p0, p1, r = pose_part_volumes(parts, posed.T_world_joint, jnp.ones(()))
    x = onp.random.default_rng(0).uniform([-0.8, 0, -0.3], [0.8, 1.8, 0.3], (200, 3))
    a, b, rr = (onp.asarray(t, onp.float64) for t in (p0, p1, r))
    ab = b - a
    t = onp.clip(((x[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1).clip(1e-12), 0, 1)
    d = onp.linalg.norm(x[:, None] - (a + t[..., None] * ab), axis=-1)
    ref = (rr - d).max(1)
    onp.testing.assert_allclose(onp.asarray(inside_depth(jnp.asarray(x, jnp.float32), p0, p1, r)), ref, atol=1e-5)
    # Mid-shin and mid-forearm are deep inside the body; a point 1 m in front is not.
    mid = 0.5 * (posed.joints[jnp.array([4, 18])] + posed.joints[jnp.array([7, 20])])
    assert float(inside_depth(mid, p0, p1, r).min()) > 0.025
    assert float(inside_depth(jnp.array([[0.0, 1.0, 1.0]]), p0, p1, r)[0]) < -0.5


def test_capsules_follow_bones_and_scale(body):
    model, _ = body
    parts = _fit(model)
    aa = jnp.zeros((model.num_joints, 3)).at[18].set(jnp.array([0.0, -1.2, 0.0]))  # bend left elbow
    params = BodyParams.zeros(model).replace(pose=aa, transl=jnp.array([0.3, 0.0, -1.0]), scale=jnp.asarray(1.1))
    posed = pose(model, params)
    p0, p1, r = pose_part_volumes(parts, posed.T_world_joint, params.scale)
    k = int(onp.flatnonzero(onp.asarray(parts.joint) == 18)[0])
    # The forearm axis runs from the elbow towards the wrist.
    axis = onp.asarray(p1[k] - p0[k])
    bone = onp.asarray(posed.joints[20] - posed.joints[18])
    cos = axis @ bone / onp.linalg.norm(axis) / onp.linalg.norm(bone)
    assert cos > 0.999
    assert float(r[k]) == jnp.float32(1.1) * float(parts.radius[k])
    # Rest pose: no self-penetration between non-adjacent parts; arms folded into the chest: some.
    p0z, p1z, rz = pose_part_volumes(parts, pose(model, BodyParams.zeros(model)).T_world_joint, jnp.ones(()))
    assert float(self_penetration_depths(parts, p0z, p1z, rz).max()) == 0.0
    fold = jnp.zeros((model.num_joints, 3)).at[16].set(jnp.array([0.0, -1.5, 0.0])).at[18].set(jnp.array([0.0, -2.4, 0.0]))
    p0f, p1f, rf = pose_part_volumes(parts, pose(model, BodyParams.zeros(model).replace(pose=fold)).T_world_joint, jnp.ones(()))
    assert float(self_penetration_depths(parts, p0f, p1f, rf).max()) > 0.003
    assert jax.grad(lambda s: inside_depth(jnp.zeros((1, 3)), *pose_part_volumes(parts, posed.T_world_joint, s)).sum())(1.0) != 0.0


def test_capsules_stay_inside_the_skin(body):
    """Inscribed fit: no skin sample (vertex, edge midpoint, face centroid) lies inside any capsule,
    so an object resting on the skin is not read as penetration by L_pen. The percentile fit
    (inscribed=False) protrudes."""
    model, _ = body
    f = onp.asarray(model.faces)
    v = onp.asarray(model.v_template)
    tri = v[f]
    skin = onp.concatenate([v[onp.unique(f)], tri.mean(1), 0.5 * (tri[:, 0] + tri[:, 1])])
    posed = pose(model, BodyParams.zeros(model))
    depth = {}
    for inscribed in (True, False):
        parts = fit_part_volumes(model.v_template, model.j_template, model.rest_orient_template, model.lbs_weights,
                                 model.faces, model.parents, inscribed=inscribed)
        p0, p1, r = pose_part_volumes(parts, posed.T_world_joint, jnp.ones(()))
        depth[inscribed] = float(inside_depth(jnp.asarray(skin, jnp.float32), p0, p1, r).max())
    assert depth[True] <= -0.0015, depth
    assert depth[False] > 0.0, depth
