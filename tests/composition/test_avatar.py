"""Canonical avatar (paper Sec. 4): SDS on (β, D, C) of a rasterised body, its regularisers against
NumPy float64, the seed axis, bitwise resume, traced weights, bad inputs.

The body is a small skinned mesh in the SMPL-X joint layout (`mesh_body`: a box around every bone of
tests/composition/bodies.py's skeleton), so the soft rasterizer and its gradients stay cheap on CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
import torch

from anchorhoi_jax.body.model import BodyModel
from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance
from anchorhoi_jax.stages import avatar as av

from .bodies import PARENTS, stick_body
from .scenes import box_mesh

RES = 32


def _box_between(a, b, r):
    """Closed box of half-width r around segment a→b (outward CCW faces kept: the frame has det +1)."""
    a, b = onp.asarray(a, onp.float64), onp.asarray(b, onp.float64)
    u = b - a
    L = onp.linalg.norm(u)
    u = u / L
    t = onp.cross(u, [0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else onp.cross(u, [1.0, 0.0, 0.0])
    t /= onp.linalg.norm(t)
    s = onp.cross(t, u)  # (t, u, s) right-handed
    v, f = box_mesh((0.0, 0.0, 0.0), (r, 0.5 * L + r, r))
    R = onp.stack([t, u, s], 1)
    return (v.astype(onp.float64) @ R.T + 0.5 * (a + b)).astype(onp.float32), f


def mesh_body(num_shape: int = 2, seed: int = 0) -> BodyModel:
    """The stick skeleton's SMPL-X-named joints with a closed box around each bone (rigidly skinned to the
    bone's parent joint) and a head box; the first vertices stay the stick body's (its extra points)."""
    stick = stick_body(num_shape, seed)
    j = onp.asarray(stick.j_template)
    verts = [onp.asarray(stick.v_template)]
    faces, owner = [], []
    n = verts[0].shape[0]
    head = 15
    for c, p in enumerate(PARENTS):
        if p < 0 or c in (22, 23):  # no boxes for the finger bases
            continue
        v, f = _box_between(j[p], j[c], 0.035)
        verts.append(v), faces.append(f + n), owner.append(onp.full(8, p))
        n += 8
    v, f = box_mesh(j[head] + onp.array([0.0, 0.06, 0.0], onp.float32), (0.08, 0.1, 0.09))
    verts.append(v), faces.append(f + n), owner.append(onp.full(8, head))
    V = onp.concatenate(verts)
    nv0 = stick.v_template.shape[0]
    W = onp.zeros((V.shape[0], len(PARENTS)), onp.float32)
    W[:nv0] = onp.asarray(stick.lbs_weights)
    W[onp.arange(nv0, V.shape[0]), onp.concatenate(owner)] = 1.0
    rng = onp.random.default_rng(seed + 1)
    sd = onp.concatenate([onp.asarray(stick.shapedirs),
                          (0.01 * rng.standard_normal((V.shape[0] - nv0, 3, num_shape))).astype(onp.float32)])
    return stick.replace(v_template=jnp.asarray(V), shapedirs=jnp.asarray(sd), lbs_weights=jnp.asarray(W),
                         faces=jnp.asarray(onp.concatenate(faces), jnp.int32))


# ---------------------------------------------------------------------------------------------------
# Shared fixtures: one config and two seeds throughout, so the compiled step is built once per process
# (the chain test's smoke preset with avatar.shading=albedo shares it too).
# ---------------------------------------------------------------------------------------------------
CFG = av.AvatarConfig(steps=0, resolution=RES, views=4, log_every=1, shading="albedo")
TARGET = (0.85, 0.25, 0.15)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # The tiny torch models are much faster single-threaded on a loaded 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def body():
    return mesh_body()


@pytest.fixture(scope="module")
def guidance():
    """Analytic SDS prior (priors.sds.GaussianPrior): images ~ N(TARGET colour everywhere, 0.1²)."""
    mu = (torch.tensor(TARGET) * 2 - 1).view(3, 1, 1).expand(3, RES, RES).clone()
    return SDSGuidance(GaussianPrior(mu, 0.1), "a person", SDSConfig(guidance_scale=1.0, t_range_start=(0.02, 0.6)))


def _keys(*ints):
    return jnp.stack([jax.random.key(i) for i in ints])


def _run(body, guidance, keys, steps, weights=None, state=None):
    st = av.init_seeds(keys, body, CFG) if state is None else state
    w = av.AvatarWeights.default() if weights is None else weights
    return av.fit(st, body, dataclasses_replace(CFG, steps=steps), w, guidance)


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


# ---------------------------------------------------------------------------------------------------
# Regularisers vs NumPy float64.
# ---------------------------------------------------------------------------------------------------
def _np_topology(faces):
    edges = sorted({tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))) for f in faces for i in range(3)})
    inc: dict = {}
    for fi, f in enumerate(faces):
        for i in range(3):
            inc.setdefault(tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))), []).append(fi)
    pairs = sorted(tuple(sorted(v)) for v in inc.values() if len(v) == 2)
    return onp.asarray(edges), onp.asarray(pairs)


def test_regularizers_match_numpy_float64(body):
    faces = onp.asarray(body.faces)
    V = body.v_template.shape[0]
    topo = av.mesh_topology(faces)
    e_ref, p_ref = _np_topology(faces)
    onp.testing.assert_array_equal(onp.asarray(topo.edges), e_ref)
    assert sorted(map(tuple, onp.sort(onp.asarray(topo.face_pairs), 1).tolist())) == [tuple(p) for p in p_ref.tolist()]

    rng = onp.random.default_rng(0)
    D = rng.normal(0, 0.01, (V, 3))
    verts = onp.asarray(body.v_template, onp.float64) + D
    # Uniform Laplacian over the edge graph; vertices on no edge contribute 0 to the mean.
    nb = [[] for _ in range(V)]
    for a, b in e_ref:
        nb[a].append(b), nb[b].append(a)
    lap = onp.stack([D[i] - D[nb[i]].mean(0) if nb[i] else onp.zeros(3) for i in range(V)])
    ref_lap = (lap**2).sum(1).mean()
    ref_mag = (D**2).sum(1).mean()
    tri = verts[faces]
    n = onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= onp.linalg.norm(n, axis=1, keepdims=True)
    ref_nc = (1.0 - (n[p_ref[:, 0]] * n[p_ref[:, 1]]).sum(1)).mean()

    v_lap, _ = av.laplacian_term(jnp.asarray(D, jnp.float32), topo.edges)
    v_mag, aux = av.displacement_term(jnp.asarray(D, jnp.float32))
    v_nc, _ = av.normal_consistency_term(jnp.asarray(verts, jnp.float32), body.faces, topo.face_pairs)
    onp.testing.assert_allclose(float(v_lap), ref_lap, rtol=1e-4)
    onp.testing.assert_allclose(float(v_mag), ref_mag, rtol=1e-5)
    onp.testing.assert_allclose(float(aux["displacement_rms_m"]), onp.sqrt(ref_mag), rtol=1e-5)
    onp.testing.assert_allclose(float(v_nc), ref_nc, rtol=1e-4, atol=1e-6)
    # Zero displacement: both displacement terms vanish; boxes have right-angle creases, so the normal
    # consistency of the undisplaced body is a known positive number (the oracle's).
    assert float(av.laplacian_term(jnp.zeros((V, 3)), topo.edges)[0]) == 0.0


def test_avatar_vertices_carry_displacements_through_skinning(body):
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose as pose_body

    V = body.v_template.shape[0]
    p0 = av.init(jax.random.key(0), body, CFG).params
    D = 0.01 * jax.random.normal(jax.random.key(1), (V, 3))
    p1 = p0.replace(displacements=D)
    # Standing rest pose: LBS with identity transforms, so vertices move by exactly D.
    onp.testing.assert_allclose(onp.asarray(av.avatar_vertices(p1, body) - av.avatar_vertices(p0, body)), D, atol=1e-6)
    # Posed: identical to posing a model whose template carries D (D is skinned with the body).
    pose = 0.3 * jax.random.normal(jax.random.key(2), (body.num_joints, 3))
    bp = BodyParams(betas=jnp.zeros((2,)), pose=pose, transl=jnp.array([0.1, 0.0, -0.2]), scale=jnp.float32(1.2))
    ref = pose_body(body.replace(v_template=body.v_template + D), bp).vertices
    onp.testing.assert_allclose(onp.asarray(av.avatar_vertices(p1, body, bp)), onp.asarray(ref), atol=1e-5)
    v, f, c = av.avatar_mesh(p1, body, bp)
    assert f.shape == body.faces.shape and onp.allclose(c, 0.5)


def test_anny_shape_is_its_phenotype():
    from anchorhoi_jax.body.anny import Phenotype, load_anny, phenotype_to_coeffs

    anny = load_anny()
    p = av.init(jax.random.key(0), anny, CFG).params
    assert p.shape.shape == (6,) and p.displacements.shape == (anny.model.num_vertices, 3)
    onp.testing.assert_allclose(onp.asarray(av.avatar_betas(p, anny)),
                                onp.asarray(phenotype_to_coeffs(anny.extras, Phenotype.neutral())), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# SDS: the analytic prior pulls the colours to its target; seeds; resume; traced weights.
# ---------------------------------------------------------------------------------------------------
def test_sds_with_analytic_prior_moves_colours_to_target(body, guidance):
    st0 = av.init_seeds(_keys(0, 1), body, CFG)
    w = av.AvatarWeights.default().replace(lr_color=jnp.float32(0.08))
    st, hist = av.fit(st0, body, dataclasses_replace(CFG, steps=40, log_every=10), w, guidance)
    assert [h["step"] for h in hist] == [10, 20, 30, 40] and onp.asarray(st.step).tolist() == [40, 40]
    box = slice(29, None)  # the boxes' vertices (the first 29 are the skeleton's, on no face)
    err0 = onp.abs(onp.asarray(jax.nn.sigmoid(st0.params.color_logits))[:, box] - onp.asarray(TARGET)).mean((1, 2))
    err = onp.abs(onp.asarray(jax.nn.sigmoid(st.params.color_logits))[:, box] - onp.asarray(TARGET)).mean((1, 2))
    print("colour error per seed:", err0, "->", err)
    assert (err < 0.4 * err0).all(), (err0, err)
    assert all(onp.isfinite(h["sds_loss"]) for h in hist)
    # The seeds drew different views: different results.
    assert not onp.array_equal(onp.asarray(st.params.color_logits[0]), onp.asarray(st.params.color_logits[1]))


def test_seeds_are_independent_and_resume_is_bitwise(body, guidance):
    a, _ = _run(body, guidance, _keys(0, 1), 4)
    b, _ = _run(body, guidance, _keys(0, 7), 4)
    # Seed 0 sees the same views and, at the same batch position, the same torch noise whatever seed 1 is.
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        onp.testing.assert_array_equal(onp.asarray(x[0]), onp.asarray(y[0]))
    assert not onp.array_equal(onp.asarray(a.params.color_logits[1]), onp.asarray(b.params.color_logits[1]))
    half, _ = _run(body, guidance, _keys(0, 1), 2)
    assert onp.asarray(half.step).tolist() == [2, 2]
    seen = []
    rest, hist = av.fit(half, body, dataclasses_replace(CFG, steps=4), av.AvatarWeights.default(), guidance,
                        callback=lambda s, st, info: seen.append((s, onp.asarray(st.step).tolist())))
    assert seen == [(3, [3, 3]), (4, [4, 4])] and [h["step"] for h in hist] == [3, 4]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(rest)):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        onp.testing.assert_array_equal(onp.asarray(x), onp.asarray(y))
    # Already at cfg.steps: nothing to do, state unchanged.
    same, hist = av.fit(rest, body, dataclasses_replace(CFG, steps=4), av.AvatarWeights.default(), guidance)
    assert hist == [] and onp.array_equal(onp.asarray(same.params.shape), onp.asarray(rest.params.shape))


def test_weight_sweep_does_not_recompile(body, guidance):
    step, _ = av._sds_step(av._static_key(CFG))
    _run(body, guidance, _keys(3, 4), 1)
    n_fwd, n_upd = step.forward._cache_size(), step.update._cache_size()
    w = av.AvatarWeights.default().replace(laplacian=jnp.float32(1.0), lr_color=jnp.float32(0.5))
    st, _ = _run(body, guidance, _keys(3, 4), 1, weights=w)
    assert (step.forward._cache_size(), step.update._cache_size()) == (n_fwd, n_upd)
    assert float(st.opt_state.hyperparams["lr_color"][0]) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------------
# Bad inputs: one-line errors.
# ---------------------------------------------------------------------------------------------------
def test_bad_inputs(body, guidance):
    with pytest.raises(ValueError, match=r"views \(3\) must be a positive multiple of views_per_sample \(2\)"):
        av.AvatarConfig(views=3, views_per_sample=2)
    with pytest.raises(ValueError, match="shading must be 'lambertian' or 'albedo'"):
        av.AvatarConfig(shading="phong")
    with pytest.raises(ValueError, match=r"resolution must be in \[8, 1024\]"):
        av.AvatarConfig(resolution=4)
    with pytest.raises(ValueError, match="the body model has no faces"):
        av.init(jax.random.key(0), stick_body(), CFG)
    with pytest.raises(TypeError, match="body must be an AnnyBody or a BodyModel"):
        av.init(jax.random.key(0), "anny", CFG)
    with pytest.raises(ValueError, match=r"mesh_topology: faces must be \(F, 3\)"):
        av.mesh_topology(onp.zeros((0, 3), int))
    other = mesh_body().replace(v_template=jnp.zeros((10, 3)), faces=jnp.array([[0, 1, 2]]))
    st = av.init_seeds(_keys(0, 1), body, CFG)
    with pytest.raises(ValueError, match="the state has 205 vertices, the body 10"):
        av.fit(st, other, CFG, av.AvatarWeights.default(), guidance)
    with pytest.raises(ValueError, match=r"all seeds must be at the same step, got \[0, 1\]"):
        av.fit(st.replace(step=jnp.array([0, 1])), body, CFG, av.AvatarWeights.default(), guidance)
