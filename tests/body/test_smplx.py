"""SMPL-X loader and skinning vs the `smplx` package (torch, float32) on the synthetic SMPL-X file.

Tolerances are issue 2's acceptance numbers: vertices and all 127 joints within 1e-5 m, gradients
w.r.t. pose and shape within 1e-4 relative of torch autograd.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types

import chex
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.body.skinning import pose, pose_joints, with_sparse_skinning
from anchorhoi_jax.body.smplx import (
    SMPLX_EXTRA_NAMES,
    SMPLX_JOINT_NAMES,
    load_smplx,
    make_params,
    smplx_full_pose,
    validate_params,
)
from anchorhoi_jax.body.smplx_synthetic import (
    SMPLX_PARENTS,
    SMPLX_VERTEX_IDS,
    synthetic_smplx_arrays,
)

torch = pytest.importorskip("torch")
smplx = pytest.importorskip("smplx")

VERT_TOL_M = 1e-5
GRAD_RTOL = 1e-4
B = 64


@pytest.fixture(scope="session")
def model_dir(smplx_synthetic_file):
    return smplx_synthetic_file.parent  # tests/body/conftest.py: written once per session


def _inputs(seed, n_hand, nb=10, ne=10, batch=B):
    rng = onp.random.default_rng(seed)
    x = dict(
        betas=rng.normal(size=(batch, nb)) * 1.5,
        expression=rng.normal(size=(batch, ne)),
        global_orient=rng.normal(size=(batch, 3)) * 0.8,
        body_pose=rng.normal(size=(batch, 63)) * 0.4,
        jaw_pose=rng.normal(size=(batch, 3)) * 0.2,
        leye_pose=rng.normal(size=(batch, 3)) * 0.2,
        reye_pose=rng.normal(size=(batch, 3)) * 0.2,
        left_hand_pose=rng.normal(size=(batch, n_hand)) * 0.6,
        right_hand_pose=rng.normal(size=(batch, n_hand)) * 0.6,
        transl=rng.normal(size=(batch, 3)),
    )
    x["body_pose"][0] = 0.0  # include exact zero rotations (the Taylor branch)
    return {k: v.astype(onp.float32) for k, v in x.items()}


def _torch_model(model_dir, batch=B, **kw):
    return smplx.SMPLX(model_path=str(model_dir), gender="neutral", ext="npz", batch_size=batch, **kw)


# Shared jitted entry points: tests reuse compiled executables (same shapes) to stay fast on CPU.
_posed = jax.jit(jax.vmap(pose, in_axes=(None, 0)))
_joints = jax.jit(jax.vmap(pose_joints, in_axes=(None, 0)))
_single = jax.jit(pose)


@pytest.mark.parametrize(
    "use_pca,flat,nb,ne",
    [(False, False, 10, 10), (False, True, 10, 10), (True, False, 10, 10), (True, True, 16, 12)],
)
def test_parity_with_smplx(model_dir, use_pca, flat, nb, ne):
    n_hand = 6 if use_pca else 45
    tm = _torch_model(
        model_dir, use_pca=use_pca, num_pca_comps=6, flat_hand_mean=flat, num_betas=nb, num_expression_coeffs=ne
    )
    model, extras = load_smplx(
        model_dir, use_pca=use_pca, num_pca_comps=6, flat_hand_mean=flat, num_betas=nb, num_expression=ne
    )
    x = _inputs(1 + nb + int(use_pca) + 2 * int(flat), n_hand, nb, ne)
    with torch.no_grad():
        out = tm(**{k: torch.from_numpy(v) for k, v in x.items()})
    params = jax.vmap(lambda a: make_params(model, extras, **a))(x)
    posed = _posed(model, params)
    v_ref, j_ref = out.vertices.numpy(), out.joints.numpy()
    assert j_ref.shape == (B, 127, 3)
    assert onp.abs(onp.asarray(posed.vertices) - v_ref).max() <= VERT_TOL_M
    assert onp.abs(onp.asarray(posed.all_joints) - j_ref).max() <= VERT_TOL_M
    # The joints-only fast path gives the same 127 points.
    assert onp.abs(onp.asarray(_joints(model, params)) - j_ref).max() <= VERT_TOL_M


def test_unfused_and_dense_paths_match_fast_path(model_dir):
    """The plain paths (separate shape blend, dense 55-joint LBS) give the fused/sparse results."""
    model, extras = load_smplx(model_dir)
    plain = model.replace(skin_joint_ids=None, skin_joint_weights=None, blend_dirs=None, extra_blend_dirs=None)
    params = jax.vmap(lambda a: make_params(model, extras, **a))(_inputs(7, 45))
    a, b = _posed(model, params), _posed(plain, params)
    onp.testing.assert_allclose(onp.asarray(a.vertices), onp.asarray(b.vertices), atol=2e-6)
    onp.testing.assert_allclose(onp.asarray(_joints(plain, params)), onp.asarray(a.all_joints), atol=2e-6)
    again = with_sparse_skinning(plain)
    assert again.skin_joint_ids.shape == model.skin_joint_ids.shape
    # The fused blend matrix is padded for GEMM alignment; the padding is zero.
    assert model.blend_dirs.shape[0] % 32 == 0 and model.blend_dirs.shape[1] % 128 == 0
    assert not onp.any(onp.asarray(model.blend_dirs[1 + model.num_shape + 486 :]))


def test_gradients_match_torch_autograd(model_dir):
    nb = 8  # small batch: gradients are per sample anyway
    tm = _torch_model(model_dir, batch=nb, use_pca=False)
    model, extras = load_smplx(model_dir, use_pca=False)
    x = _inputs(11, 45, batch=nb)
    rng = onp.random.default_rng(3)
    cv = rng.normal(size=(nb, 10475, 3)).astype(onp.float32)
    cj = rng.normal(size=(nb, 127, 3)).astype(onp.float32)

    tx = {k: torch.from_numpy(v).requires_grad_(True) for k, v in x.items()}
    out = tm(**tx)
    loss = (out.vertices * torch.from_numpy(cv)).sum() + (out.joints * torch.from_numpy(cj)).sum()
    loss.backward()

    def f(inp):
        p = jax.vmap(lambda a: make_params(model, extras, **a))(inp)
        posed = jax.vmap(pose, in_axes=(None, 0))(model, p)
        return jnp.sum(posed.vertices * cv) + jnp.sum(posed.all_joints * cj)

    g = jax.jit(jax.grad(f))({k: jnp.asarray(v) for k, v in x.items()})
    for k in ("betas", "expression", "global_orient", "body_pose", "jaw_pose", "left_hand_pose", "right_hand_pose"):
        gt = tx[k].grad.numpy()
        err = onp.abs(onp.asarray(g[k]) - gt).max() / onp.abs(gt).max()
        assert err <= GRAD_RTOL, (k, err)


def test_vmap_equals_loop_and_no_retrace(model_dir):
    model, extras = load_smplx(model_dir, use_pca=True, num_pca_comps=12)
    x = _inputs(5, 12)
    params = jax.vmap(lambda a: make_params(model, extras, **a))(x)
    batched = _posed(model, params)
    for i in (0, 17, 63):
        one = _single(model, jax.tree.map(lambda a: a[i], params))
        onp.testing.assert_allclose(onp.asarray(one.vertices), onp.asarray(batched.vertices[i]), atol=1e-6)
        onp.testing.assert_allclose(onp.asarray(one.all_joints), onp.asarray(batched.all_joints[i]), atol=1e-6)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(model, params):
        return jax.vmap(pose_joints, in_axes=(None, 0))(model, params)

    step(model, params)
    params2 = jax.tree.map(lambda a: a + 0.1, params)
    out2 = step(model, params2)  # new values, same shapes: must not retrace
    assert onp.all(onp.isfinite(onp.asarray(out2)))


def test_zero_pose_is_shaped_template_and_joint_names(model_dir):
    model, extras = load_smplx(model_dir, flat_hand_mean=True)
    betas = jnp.linspace(-1.0, 1.0, model.num_shape)
    params = make_params(model, extras, betas=betas[:10], expression=betas[10:])
    posed = _single(model, params)
    rest = model.v_template + jnp.einsum("vcs,s->vc", model.shapedirs, betas, precision="highest")
    onp.testing.assert_allclose(onp.asarray(posed.vertices), onp.asarray(rest), atol=2e-6)
    assert model.joint_names == SMPLX_JOINT_NAMES and len(model.joint_names) == 55
    assert model.extra_names == SMPLX_EXTRA_NAMES and len(model.extra_names) == 72
    assert model.parents == SMPLX_PARENTS


def test_full_pose_blocks_and_hand_pca(model_dir):
    _, ex_pca = load_smplx(model_dir, use_pca=True, num_pca_comps=6)
    _, ex_full = load_smplx(model_dir, use_pca=False)
    coeffs = jnp.arange(6, dtype=jnp.float32) * 0.1
    fp = smplx_full_pose(ex_pca, left_hand_pose=coeffs, jaw_pose=jnp.ones(3))
    assert fp.shape == (55, 3)
    onp.testing.assert_allclose(onp.asarray(fp[22]), 1.0)
    hand = coeffs @ ex_pca.hands_components_l + ex_pca.hands_mean_l
    onp.testing.assert_allclose(onp.asarray(fp[25:40].reshape(-1)), onp.asarray(hand), atol=1e-6)
    fp_full = smplx_full_pose(ex_full, left_hand_pose=hand - ex_full.hands_mean_l)
    onp.testing.assert_allclose(onp.asarray(fp_full[25:40]), onp.asarray(fp[25:40]), atol=1e-6)


def test_synthetic_file_layout_and_body(model_dir):
    d = onp.load(model_dir / "SMPLX_NEUTRAL.npz", allow_pickle=True)
    expect = {
        "v_template": (10475, 3), "f": (20908, 3), "J_regressor": (55, 10475), "weights": (10475, 55),
        "kintree_table": (2, 55), "shapedirs": (10475, 3, 400), "posedirs": (10475, 3, 486),
        "hands_componentsl": (45, 45), "hands_componentsr": (45, 45), "hands_meanl": (45,), "hands_meanr": (45,),
        "lmk_faces_idx": (51,), "lmk_bary_coords": (51, 3), "dynamic_lmk_faces_idx": (79, 17),
        "dynamic_lmk_bary_coords": (79, 17, 3),
    }  # fmt: skip
    for k, s in expect.items():
        assert d[k].shape == s, k
    v, f, W, Jr = d["v_template"], d["f"].astype(onp.int64), d["weights"], d["J_regressor"]
    # Closed surface: every edge shared by exactly two faces, every vertex used.
    e = onp.sort(onp.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    _, counts = onp.unique(e, axis=0, return_counts=True)
    assert collections.Counter(counts.tolist()) == {2: 31362}
    assert len(onp.unique(f)) == 10475
    onp.testing.assert_allclose(W.sum(1), 1.0, atol=1e-12)
    assert (Jr >= 0).all() and onp.allclose(Jr.sum(1), 1.0)  # convex combinations
    J = Jr @ v
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.9 and abs(v[:, 1].min()) < 0.01 and 0.85 < J[0, 1] < 1.0
    assert J[16, 0] > 0.1 and J[17, 0] < -0.1  # left shoulder toward +x (SMPL-X convention)
    ids = SMPLX_VERTEX_IDS
    assert v[ids["nose"], 2] > J[15, 2] + 0.08 and v[ids["nose"], 1] > J[12, 1]
    assert v[ids["LHeel"], 1] < 0.03 and v[ids["LBigToe"], 2] > J[10, 2]
    assert onp.linalg.norm(v[ids["lmiddle"]] - J[20]) > 0.15 and v[ids["lmiddle"], 0] > J[20, 0]
    assert W[ids["rthumb"]].argmax() == 54 and W[ids["lear"]].argmax() == 15
    # Joints move with shape (height direction) and the landmark table indexes real faces.
    assert (Jr @ d["shapedirs"][:, 1, 0])[15] > 0.02
    assert d["lmk_faces_idx"].max() < 20908


def test_synthetic_is_deterministic(model_dir):
    again = synthetic_smplx_arrays(seed=0)
    with onp.load(model_dir / "SMPLX_NEUTRAL.npz", allow_pickle=True) as d:
        for k in ("v_template", "f", "weights", "shapedirs", "posedirs", "hands_componentsl", "lmk_faces_idx"):
            assert onp.array_equal(d[k], again[k]), k
        assert d[k].dtype == again[k].dtype


def test_smplx_package_reads_synthetic_dir(model_dir):
    tm = _torch_model(model_dir, batch=1)
    out = tm()
    assert out.vertices.shape == (1, 10475, 3) and out.joints.shape == (1, 127, 3)


# ------------------------------------------------------------------------------------------
# Bad inputs: one clear error each
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_arrays():
    """A consistent SMPL-X-shaped dict of zeros/identity (cheap to write compressed)."""
    V = 10475
    W = onp.zeros((V, 55), onp.float32)
    W[:, 0] = 1.0
    Jr = onp.zeros((55, V), onp.float32)
    Jr[:, 0] = 1.0
    return {
        "v_template": onp.zeros((V, 3), onp.float32),
        "f": onp.zeros((4, 3), onp.int32) + onp.arange(3),
        "J_regressor": Jr,
        "weights": W,
        "kintree_table": onp.stack([onp.array(SMPLX_PARENTS), onp.arange(55)]),
        "shapedirs": onp.zeros((V, 3, 20), onp.float32),
        "posedirs": onp.zeros((V, 3, 486), onp.float32),
        "hands_componentsl": onp.eye(45),
        "hands_componentsr": onp.eye(45),
        "hands_meanl": onp.zeros(45),
        "hands_meanr": onp.zeros(45),
        "lmk_faces_idx": onp.zeros(51, onp.int64),
        "lmk_bary_coords": onp.full((51, 3), 1.0 / 3.0),
    }


def _write(tmp_path, arrays, name="model.npz"):
    p = tmp_path / name
    onp.savez_compressed(p, **arrays)
    return p


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL-X model not found"):
        load_smplx(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="has no SMPLX_FEMALE.npz"):
        load_smplx(tmp_path, gender="female")


def test_unknown_gender_and_suffix(tmp_path, model_dir):
    with pytest.raises(ValueError, match="unknown gender 'other'"):
        load_smplx(model_dir, gender="other")
    p = tmp_path / "model.obj"
    p.write_text("v 0 0 0\n")
    with pytest.raises(ValueError, match="expected a .npz or .pkl file"):
        load_smplx(p)


def test_not_an_npz(tmp_path):
    p = tmp_path / "broken.npz"
    p.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="could not be read as .npz"):
        load_smplx(p)


def test_missing_keys_are_listed(tmp_path, small_arrays):
    arrays = {k: v for k, v in small_arrays.items() if k not in ("posedirs", "lmk_faces_idx")}
    with pytest.raises(ValueError, match=r"lacks keys \['posedirs', 'lmk_faces_idx'\]"):
        load_smplx(_write(tmp_path, arrays))


def test_wrong_shapes(tmp_path, small_arrays):
    bad = dict(small_arrays, posedirs=onp.zeros((10475, 3, 207), onp.float32))
    with pytest.raises(ValueError, match=r"'posedirs' has shape \(10475, 3, 207\), expected \(10475, 3, 486\)"):
        load_smplx(_write(tmp_path, bad))
    bad = dict(small_arrays, J_regressor=onp.zeros((24, 10475), onp.float32))
    with pytest.raises(ValueError, match=r"'J_regressor' has shape \(24, 10475\), expected \(55, 10475\)"):
        load_smplx(_write(tmp_path, bad, "b.npz"))


def test_nan_in_file(tmp_path, small_arrays):
    vt = small_arrays["v_template"].copy()
    vt[3, 1] = onp.nan
    with pytest.raises(ValueError, match="'v_template' contains NaN or inf"):
        load_smplx(_write(tmp_path, dict(small_arrays, v_template=vt)))


def test_component_counts(tmp_path, small_arrays, model_dir):
    p = _write(tmp_path, small_arrays)  # an old-style 10 + 10 direction file
    load_smplx(p, num_betas=10, num_expression=10)
    with pytest.raises(ValueError, match="num_betas=11 but model.npz has only 10 shape components"):
        load_smplx(p, num_betas=11)
    with pytest.raises(ValueError, match="num_betas must be in 10..300, got 5"):
        load_smplx(model_dir, num_betas=5)
    with pytest.raises(ValueError, match="num_betas must be in 10..300, got 301"):
        load_smplx(model_dir, num_betas=301)
    with pytest.raises(ValueError, match="num_expression must be in 10..100, got 101"):
        load_smplx(model_dir, num_expression=101)
    with pytest.raises(ValueError, match="num_pca_comps must be in 1..45, got 46"):
        load_smplx(model_dir, use_pca=True, num_pca_comps=46)


def _fake_chumpy():
    """A class that pickles as chumpy.ch.Ch (chumpy itself is not installed)."""
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    return mod


def test_pickle_needs_opt_in_and_reads_chumpy(tmp_path, small_arrays, monkeypatch):
    import scipy.sparse

    mod = _fake_chumpy()
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    a = dict(small_arrays)
    rng = onp.random.default_rng(0)
    a["v_template"] = rng.normal(size=(10475, 3)).astype(onp.float32)
    a["shapedirs"] = mod.Ch(rng.normal(size=(10475, 3, 20)))
    a["J_regressor"] = scipy.sparse.csc_matrix(small_arrays["J_regressor"])
    p = tmp_path / "SMPLX_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps(a, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    with pytest.raises(ValueError, match=r"is a .pkl; pass allow_pickle=True"):
        load_smplx(p)
    m_pkl, _ = load_smplx(p, allow_pickle=True)
    np_arrays = dict(small_arrays, v_template=a["v_template"], shapedirs=a["shapedirs"].x)
    m_npz, _ = load_smplx(_write(tmp_path, np_arrays))
    onp.testing.assert_allclose(onp.asarray(m_pkl.shapedirs), onp.asarray(m_npz.shapedirs))
    onp.testing.assert_allclose(onp.asarray(m_pkl.j_template), onp.asarray(m_npz.j_template))
    # A directory resolves the .pkl only when pickles are allowed.
    m_dir, _ = load_smplx(tmp_path, allow_pickle=True)
    assert m_dir.num_vertices == 10475


def test_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(ValueError, match="refusing to unpickle builtins.print"):
        load_smplx(p, allow_pickle=True)


def test_bad_params(model_dir):
    model, extras = load_smplx(model_dir)
    with pytest.raises(ValueError, match="body_pose must have 63 values, got shape"):
        make_params(model, extras, body_pose=jnp.zeros(60))
    with pytest.raises(ValueError, match="betas has 12 values but the model was loaded with 10"):
        make_params(model, extras, betas=jnp.zeros(12))
    p = make_params(model, extras)
    validate_params(p, model)
    with pytest.raises(ValueError, match=r"BodyParams.pose contains NaN or inf"):
        validate_params(p.replace(pose=p.pose.at[3, 1].set(jnp.nan)))
    with pytest.raises(ValueError, match=r"BodyParams.betas contains NaN or inf"):
        validate_params(p.replace(betas=p.betas.at[0].set(jnp.inf)))
    with pytest.raises(ValueError, match=r"BodyParams.betas has 5 coefficients, the model has 20"):
        validate_params(BodyParams.zeros(model).replace(betas=jnp.zeros(5)), model)
