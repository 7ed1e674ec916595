"""Anny in JAX vs anny's own torch forward (oracle), batching, retracing, frames and bad inputs."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body import anny as anny_mod
from anchorhoi_jax.body.anny import (
    C_PROJECT_ANNY,
    PHENOTYPE_LABELS,
    Phenotype,
    anny_keypoints,
    anny_params,
    anny_pose_to_local,
    load_anny,
    local_to_anny_pose,
    phenotype_to_coeffs,
    reference_pose,
)
from anchorhoi_jax.body.skinning import pose
from anchorhoi_jax.body.skinning import rest_joints, rest_orientations
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix

torch = pytest.importorskip("torch")
anny = pytest.importorskip("anny")
roma = pytest.importorskip("roma")

VERTEX_TOL_M = 1e-4  # issue 2 acceptance: max vertex error vs anny's forward
B = 3




@pytest.fixture(scope="module")
def body(anny_shared):
    return anny_shared  # tests/body/conftest.py: loaded once per session


@pytest.fixture(scope="module")
def anny_torch():
    return anny_mod.anny_torch_model()


def _random_inputs(seed: int, batch: int):
    rng = onp.random.default_rng(seed)
    ph = rng.uniform(0.0, 1.0, (batch, 6))
    ph[:, 1] = rng.uniform(-1.0 / 3.0, 1.0, batch)  # age spans newborn .. old
    rotvec = rng.normal(size=(batch, 104, 3)) * 0.3
    D = roma.rotvec_to_rotmat(torch.tensor(rotvec)).numpy()
    d0 = rng.normal(size=(batch, 3)) * 0.5
    return ph, D, d0


def _anny_forward(m, ph, D, d0):
    batch = ph.shape[0]
    P = torch.eye(4, dtype=torch.float64).repeat(batch, 104, 1, 1)
    P[:, :, :3, :3] = torch.tensor(D)
    P[:, 0, :3, 3] = torch.tensor(d0)
    kwargs = {k: torch.tensor(ph[:, i]) for i, k in enumerate(PHENOTYPE_LABELS)}
    with torch.no_grad():
        return m(pose_parameters=P, phenotype_kwargs=kwargs)


def _ours(body, ph, D, d0):
    p = Phenotype(**{k: ph[i] for i, k in enumerate(PHENOTYPE_LABELS)})
    params, L = anny_params(body, p, D, d0)
    return pose(body.model, params, rotations=L), params


# Jitted with the body as an argument (not a closure), so its 20 MB of constants never get folded
# into the compiled program.
# Compiles of the full 104-bone forward dominate this file's runtime, so every test shares these two.
_ours_jit = jax.jit(_ours)
@jax.jit
@chex.assert_max_traces(n=1)
def _ours_batch(body, ph, D, d0):
    return jax.vmap(_ours, in_axes=(None, 0, 0, 0))(body, ph, D, d0)


def test_representation(body):
    m = body.model
    assert m.kind == "anny" and m.rest_orient == "procrustes"
    assert m.v_template.shape == (13718, 3) and m.num_joints == 104
    assert m.posedirs.shape == (0, 3 * 13718) and m.faces.shape[1] == 3
    assert m.lbs_weights.shape == (13718, 104) and m.skin_joint_ids.shape[0] == 13718 and m.skin_joint_ids.shape[1] <= 9
    onp.testing.assert_allclose(onp.asarray(m.lbs_weights.sum(-1)), 1.0, atol=1e-5)
    assert m.joint_names[0] == "root" and "upperarm01.L" in m.joint_names
    assert body.extras.keypoint_names[:3] == ("nose", "left_eye", "right_eye")


def test_phenotype_coeffs_match_anny(body, anny_torch):
    ph, _, _ = _random_inputs(1, 8)
    ph[0] = 0.5  # neutral
    ph[1, :] = [0.0, -1.0 / 3.0, 1.0, 0.0, 1.0, 0.0]  # anchors exactly
    ph[2, :] = [1.2, 1.5, -0.2, 0.5, 0.5, 0.5]  # out of range: clamped
    ref = anny_torch._get_phenotype_blendshape_coefficients(
        torch.tensor(ph), torch.zeros(8, 0, dtype=torch.float64), torch.zeros(8, 0, dtype=torch.float64)
    ).numpy()
    # jitted (extras as an argument): eager dispatch of the anchor interpolation is slow on CPU.
    f = jax.jit(jax.vmap(lambda ex, v: phenotype_to_coeffs(ex, Phenotype(*[v[i] for i in range(6)])), in_axes=(None, 0)))
    ours = onp.asarray(f(body.extras, jnp.asarray(ph, jnp.float32)))
    onp.testing.assert_allclose(ours, ref, atol=2e-6)
    # Jacobian d coeffs / d phenotype vs torch autograd (inside the anchor segments).
    x = torch.tensor([[0.3, 0.55, 0.7, 0.2, 0.45, 0.8]], dtype=torch.float64)
    jac_ref = torch.autograd.functional.jacobian(
        lambda p: anny_torch._get_phenotype_blendshape_coefficients(
            p, torch.zeros(1, 0, dtype=torch.float64), torch.zeros(1, 0, dtype=torch.float64)
        )[0],
        x,
    )[:, 0].numpy()
    jac = jax.jit(jax.jacfwd(lambda v, ex: phenotype_to_coeffs(ex, Phenotype(*[v[i] for i in range(6)]))))(
        jnp.asarray(x.numpy()[0], jnp.float32), body.extras
    )
    onp.testing.assert_allclose(onp.asarray(jac), jac_ref, atol=1e-5)


def test_vertices_match_anny_forward(body, anny_torch):
    ph, D, d0 = _random_inputs(0, B)
    D[0], d0[0] = onp.eye(3), 0.0  # anny's zero pose (its reference pose, root head at the origin)
    out = _anny_forward(anny_torch, ph, D, d0)
    C = onp.asarray(C_PROJECT_ANNY)
    posed, _ = _ours_batch(body, jnp.asarray(ph, jnp.float32), jnp.asarray(D, jnp.float32), jnp.asarray(d0, jnp.float32))
    v_ref = out["vertices"].numpy() @ C.T
    err = onp.abs(onp.asarray(posed.vertices) - v_ref).max()
    assert err <= VERTEX_TOL_M, err
    heads_ref = out["bone_poses"][..., :3, 3].numpy() @ C.T
    assert onp.abs(onp.asarray(posed.joints) - heads_ref).max() <= VERTEX_TOL_M
    R_ref = onp.einsum("ab,njbc->njac", C, out["bone_poses"][..., :3, :3].numpy())
    assert onp.abs(onp.asarray(posed.T_world_joint[..., :3, :3]) - R_ref).max() <= 1e-4
    # Keypoints: anny's COCO regressor on anny's vertices vs ours on ours.
    reg = anny.KeypointsRegressor.coco(anny_torch)
    kp_ref = reg(out).numpy() @ C.T
    kp = jax.vmap(lambda v: anny_keypoints(body, v))(posed.vertices)
    assert onp.abs(onp.asarray(kp) - kp_ref).max() <= VERTEX_TOL_M
    assert list(reg.labels) == list(body.extras.keypoint_names)


def test_reference_pose_is_close_to_rest(body):
    """Anny's zero deltas (its reference pose) differ from the rest mesh by a few degrees per bone."""
    L = jax.jit(lambda b: reference_pose(b, phenotype_to_coeffs(b.extras, Phenotype.neutral())))(body)
    angle = onp.degrees(onp.arccos(onp.clip((onp.trace(onp.asarray(L), axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert angle.max() < 10.0 and angle.max() > 0.5


def test_pose_conversion_round_trip(body):
    ph, D, d0 = _random_inputs(3, 1)
    @jax.jit  # one compile instead of eager op-by-op dispatch
    def round_trip(body, ph, D, d0):
        coeffs = phenotype_to_coeffs(body.extras, Phenotype(*[ph[i] for i in range(6)]))
        L, transl = anny_pose_to_local(body, coeffs, D, d0)
        return local_to_anny_pose(body, coeffs, L, transl)

    D2, d02 = round_trip(body, jnp.asarray(ph[0], jnp.float32), jnp.asarray(D[0], jnp.float32),
                         jnp.asarray(d0[0], jnp.float32))
    onp.testing.assert_allclose(onp.asarray(D2), D[0], atol=1e-5)
    onp.testing.assert_allclose(onp.asarray(d02), d0[0], atol=1e-5)


def test_vmap_equals_loop_and_no_retrace(body):
    ph, D, d0 = (jnp.asarray(x, jnp.float32) for x in _random_inputs(4, B))
    v = _ours_batch(body, ph, D, d0)[0].vertices  # second call of _ours_batch in this module: no retrace
    loop = jnp.stack([_ours_jit(body, ph[i], D[i], d0[i])[0].vertices for i in range(B)])
    onp.testing.assert_allclose(onp.asarray(v), onp.asarray(loop), atol=1e-5)
    ph2, D2, d02 = (jnp.asarray(x, jnp.float32) for x in _random_inputs(5, B))
    v2 = _ours_batch(body, ph2, D2, d02)[0].vertices
    assert not onp.allclose(onp.asarray(v2), onp.asarray(v))  # new values, same trace


def test_gradients_finite(body):
    """Through phenotype -> coeffs -> Procrustes rest frames (SVD) and the pose conversion."""

    def loss(body, phv, D):
        betas = phenotype_to_coeffs(body.extras, Phenotype(*[phv[i] for i in range(6)]))
        L, transl = anny_pose_to_local(body, betas, D, jnp.zeros((3,), phv.dtype))
        j = rest_joints(body.model, betas)
        return jnp.sum(rest_orientations(body.model, betas) ** 3) + jnp.sum(j**2) + jnp.sum(L**3) + jnp.sum(transl**2)

    D = jnp.asarray(_random_inputs(7, 1)[1][0], jnp.float32)
    g_ph, g_D = jax.jit(jax.grad(loss, argnums=(1, 2)))(body, jnp.full((6,), 0.4, jnp.float32), D)
    assert bool(jnp.all(jnp.isfinite(g_ph))) and bool(jnp.all(jnp.isfinite(g_D)))
    assert float(jnp.abs(g_ph).max()) > 0.0 and float(jnp.abs(g_D).max()) > 0.0


def test_project_frame(body):
    """y up, facing +z, left toward +x (CONVENTIONS.md)."""
    names = body.model.joint_names
    j = onp.asarray(body.model.j_template)
    assert j[names.index("head"), 1] > j[names.index("root"), 1] > j[names.index("foot.L"), 1]
    assert j[names.index("wrist.L"), 0] > 0.2 > -0.2 > j[names.index("wrist.R"), 0]
    kp = onp.asarray(anny_keypoints(body, body.model.v_template))
    nose, lear, rear = kp[0], kp[3], kp[4]
    assert nose[2] > 0.5 * (lear[2] + rear[2]) + 0.03  # nose in front of the ears: facing +z
    toes = onp.asarray(body.model.v_template)[:, 2].max()
    assert toes > j[names.index("foot.L"), 2]


def test_cache_is_reused(tmp_path, monkeypatch):
    """A cache written once loads again without building (no anny/torch needed)."""
    src = anny_mod.default_cache_dir()
    version = anny_mod._installed_anny_version()
    cached = anny_mod._cache_path(src, version)
    if not cached.exists():
        load_anny()
    (tmp_path / cached.name).write_bytes(cached.read_bytes())
    monkeypatch.setattr(anny_mod, "build_anny_arrays", lambda: (_ for _ in ()).throw(AssertionError("rebuilt")))
    b = load_anny(cache_dir=tmp_path)
    assert b.model.num_joints == 104
    monkeypatch.setattr(anny_mod, "_installed_anny_version", lambda: None)
    assert load_anny(cache_dir=tmp_path).extras.anny_version == version


def test_missing_cache_without_anny_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(anny_mod, "_installed_anny_version", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"not cached in .* and the anny package is not installed: `pip install anny`"):
        load_anny(cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"load_anny\(rebuild=True\) needs the anny package"):
        load_anny(cache_dir=tmp_path, rebuild=True)


def test_env_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ANCHORHOI_CACHE", str(tmp_path))
    assert anny_mod.default_cache_dir() == tmp_path
    monkeypatch.delenv("ANCHORHOI_CACHE")
    assert anny_mod.default_cache_dir().name == "anchorhoi_jax"


def test_axis_angle_params_match_rotations(body):
    ph, D, d0 = (jnp.asarray(x[0], jnp.float32) for x in _random_inputs(6, 1))
    params, L = jax.jit(lambda b, ph, D, d0: anny_params(b, Phenotype(*[ph[i] for i in range(6)]), D, d0))(
        body, ph, D, d0)
    onp.testing.assert_allclose(onp.asarray(axis_angle_to_matrix(params.pose)), onp.asarray(L), atol=1e-5)
