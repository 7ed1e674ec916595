"""Keypoint layouts and PROX-style contact regions on SMPL-X (synthetic file) and Anny.

Keypoints: geometry of a T-posed body, weights, errors. Contact regions: sizes, sides, normals,
locations (they live here because both are per-body vertex/joint selections).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body.anny import Phenotype, phenotype_to_coeffs
from anchorhoi_jax.body.contact_regions import REGION_NAMES, contact_regions, vertex_normals
from anchorhoi_jax.body.keypoints import (
    ANNY_VERTEX_IDS,
    BLAZEPOSE33,
    COCO17,
    LAYOUTS,
    OPENPOSE18,
    SMPLX_POINT_NAMES,
    apply_regressor,
    regress_keypoints,
    body_keypoints,
    keypoint_regressor,
)
from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.body.skinning import pose, pose_joints
from anchorhoi_jax.body.skinning import rest_orientations


_pose_jit = jax.jit(lambda model, params, rotations=None: pose(model, params, rotations=rotations))


@pytest.fixture(scope="module")
def smplx_model(smplx_default_model):
    return smplx_default_model  # tests/body/conftest.py: written and loaded once per session


@pytest.fixture(scope="module")
def anny_body(anny_shared):
    return anny_shared


def _rot_between(a, b):
    """Rotation taking unit vector a to unit vector b (Rodrigues)."""
    a, b = a / onp.linalg.norm(a), b / onp.linalg.norm(b)
    v, c = onp.cross(a, b), float(a @ b)
    K = onp.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return onp.eye(3) + K + K @ K / (1.0 + c)


@pytest.fixture(scope="module")
def anny_tpose(anny_body):
    """Anny (rest: arms down ~45°) with both upper arms raised to horizontal: a T-pose."""
    m = anny_body.model
    params = BodyParams.zeros(m)
    R_rest = onp.asarray(rest_orientations(m, params.betas))
    j = onp.asarray(m.j_template)
    L = onp.broadcast_to(onp.eye(3), (m.num_joints, 3, 3)).copy()
    for side, sx in (("L", 1.0), ("R", -1.0)):
        a = m.joint_names.index(f"upperarm01.{side}")
        w = m.joint_names.index(f"wrist.{side}")
        Rw = _rot_between(j[w] - j[a], onp.array([sx, 0.0, 0.0]))
        L[a] = R_rest[a].T @ Rw @ R_rest[a]  # world rotation Rw about the shoulder, as a local rotation
    return _pose_jit(m, params, jnp.asarray(L, jnp.float32))


@pytest.fixture(scope="module")
def smplx_tpose(smplx_model):
    return _pose_jit(smplx_model, BodyParams.zeros(smplx_model))


def _check_body18(kp):
    kp = onp.asarray(kp)
    n = {name: kp[i] for i, name in enumerate(OPENPOSE18)}
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert n[f"left_{part}"][0] > 0.01 > -0.01 > n[f"right_{part}"][0], part  # left toward +x
    assert abs(n["nose"][0]) < 0.01 and abs(n["neck"][0]) < 0.02
    y = {k: v[1] for k, v in n.items()}
    assert y["nose"] > y["neck"] > max(y["left_hip"], y["right_hip"]) > max(y["left_knee"], y["right_knee"])
    assert max(y["left_knee"], y["right_knee"]) > max(y["left_ankle"], y["right_ankle"])
    assert min(y.values()) in (y["left_ankle"], y["right_ankle"])  # ankles lowest
    assert y["left_eye"] > y["nose"] and y["neck"] < min(y["left_ear"], y["right_ear"])
    # Facing +z: the nose is in front of the ears and the neck.
    assert n["nose"][2] > max(n["left_ear"][2], n["right_ear"][2]) + 0.02
    # T-pose: arms horizontal, extending outward.
    for s in ("left", "right"):
        sh, el, wr = n[f"{s}_shoulder"], n[f"{s}_elbow"], n[f"{s}_wrist"]
        assert abs(wr[0]) > abs(el[0]) + 0.1 > abs(sh[0]) + 0.2
        assert abs(wr[1] - sh[1]) < 0.1 and abs(el[1] - sh[1]) < 0.1
    height = y["nose"] - min(y.values())
    assert 1.2 < height < 2.0


def test_layouts():
    assert len(OPENPOSE18) == 18 and len(COCO17) == 17 and len(BLAZEPOSE33) == 33
    assert OPENPOSE18[1] == "neck" and OPENPOSE18[14:] == ("right_eye", "left_eye", "right_ear", "left_ear")
    assert len(SMPLX_POINT_NAMES) == 127


def test_smplx_point_names_match_smplx_package():
    smplx_names = pytest.importorskip("smplx.joint_names")
    assert tuple(smplx_names.JOINT_NAMES[:127]) == SMPLX_POINT_NAMES


def test_smplx_names_match_loaded_model(smplx_model):
    assert smplx_model.joint_names + smplx_model.extra_names == SMPLX_POINT_NAMES


def test_smplx_tpose_body18(smplx_model, smplx_tpose):
    _check_body18(body_keypoints(smplx_model, smplx_tpose, "openpose18"))


def test_anny_tpose_body18(anny_body, anny_tpose):
    _check_body18(body_keypoints(anny_body, anny_tpose, "openpose18"))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("which", ["smplx", "anny"])
def test_weights_are_affine(layout, which, smplx_model, anny_body):
    model = smplx_model if which == "smplx" else anny_body
    reg = keypoint_regressor(model, layout)
    total = onp.asarray(reg.point_weights.sum(-1) + reg.vertex_weights.sum(-1))
    onp.testing.assert_allclose(total, 1.0, atol=1e-4)  # affine: keypoints move rigidly with the body
    assert reg.names == LAYOUTS[layout] and reg.needs_vertices == (which == "anny")


def test_kind_string_equals_model(smplx_model):
    a = keypoint_regressor("smplx", "blazepose33")
    b = keypoint_regressor(smplx_model, "blazepose33")
    onp.testing.assert_array_equal(onp.asarray(a.point_weights), onp.asarray(b.point_weights))
    op = onp.asarray(keypoint_regressor("smplx", "openpose18").point_weights)
    assert op[1, SMPLX_POINT_NAMES.index("neck")] == 1.0  # SMPLify-X's neck


def test_anny_coco17_is_its_regressor(anny_body, anny_tpose):
    kp = body_keypoints(anny_body, anny_tpose, "coco17")
    ref = anny_body.extras.keypoint_regressor[:17] @ anny_tpose.vertices
    onp.testing.assert_allclose(onp.asarray(kp), onp.asarray(ref), atol=1e-6)


def test_blazepose_face_and_hands(anny_body, anny_tpose, smplx_model, smplx_tpose):
    for model, posed in ((anny_body, anny_tpose), (smplx_model, smplx_tpose)):
        kp = onp.asarray(body_keypoints(model, posed, "blazepose33"))
        n = {name: kp[i] for i, name in enumerate(BLAZEPOSE33)}
        for s, sign in (("left", 1.0), ("right", -1.0)):
            assert 0 < sign * n[f"{s}_eye_inner"][0] < sign * n[f"{s}_eye"][0] + 0.005
            assert sign * n[f"{s}_eye"][0] < sign * n[f"{s}_eye_outer"][0] + 0.005
            assert sign * n[f"{s}_index"][0] > sign * n[f"{s}_wrist"][0]  # T-pose: hand beyond the wrist
            assert n[f"{s}_foot_index"][2] > n[f"{s}_heel"][2] + 0.1  # toes forward (+z)
        assert n["left_eye"][1] > n["nose"][1] > n["mouth_left"][1]
        assert n["mouth_left"][0] > 0 > n["mouth_right"][0]


def test_jit_vmap(anny_body, anny_tpose):
    f = jax.jit(lambda body, posed: body_keypoints(body, posed, "openpose18"))
    batch = jax.tree.map(lambda x: jnp.stack([x, x + 1.0]), anny_tpose)
    kp = jax.vmap(f, in_axes=(None, 0))(anny_body, batch)
    onp.testing.assert_allclose(onp.asarray(kp[1] - kp[0]), 1.0, atol=1e-4)
    reg = keypoint_regressor(anny_body, "openpose18")
    onp.testing.assert_allclose(onp.asarray(apply_regressor(reg, anny_tpose)), onp.asarray(kp[0]), atol=1e-5)


def test_smplx_joints_only_fast_path(smplx_model, smplx_tpose):
    reg = keypoint_regressor(smplx_model, "openpose18")
    joints = jax.jit(pose_joints)(smplx_model, BodyParams.zeros(smplx_model))
    kp = regress_keypoints(reg, joints)
    onp.testing.assert_allclose(onp.asarray(kp), onp.asarray(apply_regressor(reg, smplx_tpose)), atol=1e-5)


def test_anny_fixed_vertices_exist(anny_body):
    assert max(ANNY_VERTEX_IDS.values()) < anny_body.model.num_vertices


def test_bad_inputs(anny_body, smplx_model):
    with pytest.raises(ValueError, match="unknown keypoint layout 'body25'"):
        keypoint_regressor("smplx", "body25")
    with pytest.raises(ValueError, match="unknown body model kind 'smpl'"):
        keypoint_regressor("smpl", "coco17")
    with pytest.raises(ValueError, match="pass the AnnyBody from load_anny"):
        keypoint_regressor(anny_body.model, "coco17")
    with pytest.raises(ValueError, match="needs posed vertices"):
        regress_keypoints(keypoint_regressor(anny_body, "coco17"), jnp.zeros((104, 3)))
    with pytest.raises(TypeError, match="expected 'smplx', 'anny', a BodyModel or an AnnyBody"):
        keypoint_regressor(3, "coco17")
    no_landmarks = smplx_model.replace(extra_names=smplx_model.extra_names[:21])
    with pytest.raises(ValueError, match="smplx model has no point 'left_eye4' needed for blazepose33"):
        keypoint_regressor(no_landmarks, "blazepose33")


# ------------------------------------------------------------------ contact regions


@pytest.fixture(scope="module", params=["smplx", "anny"])
def case(request, smplx_model, anny_body):
    model = smplx_model if request.param == "smplx" else anny_body.model
    names = {"smplx": ("pelvis", "left_wrist", "right_wrist", "neck"), "anny": ("root", "wrist.L", "wrist.R", "neck01")}
    joints = {k: onp.asarray(model.j_template)[model.joint_names.index(n)] for k, n in zip(("pelvis", "lw", "rw", "neck"), names[request.param])}
    v = onp.asarray(model.v_template)
    return model, contact_regions(anny_body if request.param == "anny" else model), v, vertex_normals(v, onp.asarray(model.faces)), joints


def test_contact_region_sizes(case):
    model, r, *_ = case
    V = model.num_vertices
    assert set(r) == set(REGION_NAMES) | {"union"}
    for name in REGION_NAMES:
        assert 0.005 * V < len(r[name]) < 0.15 * V, (name, len(r[name]))
    assert len(r["left_hand"]) == len(r["right_hand"]) and abs(len(r["left_foot"]) - len(r["right_foot"])) <= 2
    union = onp.unique(onp.concatenate([r[k] for k in REGION_NAMES]))
    onp.testing.assert_array_equal(r["union"], union)
    assert len(r["union"]) < 0.5 * V
    assert not set(r["buttocks"]) & set(r["back_of_thighs"]) and not set(r["buttocks"]) & set(r["back"])


def test_contact_region_sides_and_locations(case):
    model, r, v, n, j = case
    for s, sign, w in (("left", 1, j["lw"]), ("right", -1, j["rw"])):
        assert onp.all(sign * v[r[f"{s}_hand"], 0] > 0) and onp.all(sign * v[r[f"{s}_foot"], 0] > 0)
        assert onp.all(sign * v[r[f"{s}_forearm"], 0] > 0)
        assert onp.linalg.norm(v[r[f"{s}_hand"]] - w, axis=-1).max() < 0.25  # hands around the wrists
        assert onp.linalg.norm(v[r[f"{s}_forearm"]] - w, axis=-1).max() < 0.35
    # Soles: downward normals, at floor level.
    feet = onp.concatenate([r["left_foot"], r["right_foot"]])
    assert onp.all(n[feet, 1] < -0.5) and v[feet, 1].max() < v[:, 1].min() + 0.08


def test_buttocks_face_backward_near_pelvis(case):
    model, r, v, n, j = case
    b = r["buttocks"]
    assert onp.all(n[b, 2] < -0.3) and n[b, 2].mean() < -0.6  # backward-facing (body faces +z)
    assert onp.all(v[b, 2] < j["pelvis"][2] + 0.02)  # behind the pelvis joint
    assert onp.linalg.norm(v[b] - j["pelvis"], axis=-1).max() < 0.3
    thighs, back = r["back_of_thighs"], r["back"]
    assert onp.all(n[thighs, 2] < -0.3) and onp.all(n[back, 2] < -0.5)
    assert v[thighs, 1].max() <= v[b, 1].min() + 1e-6 < v[back, 1].min()  # thighs < buttocks < back
    assert v[back, 1].max() < j["neck"][1]


def test_shape_dependent_regions(anny_body):
    betas = onp.asarray(phenotype_to_coeffs(anny_body.extras, Phenotype(weight=1.0, height=0.0)))
    r = contact_regions(anny_body, betas=betas)
    assert all(len(r[k]) > 0 for k in REGION_NAMES)


def test_contact_region_bad_inputs(anny_body, smplx_model):
    with pytest.raises(ValueError, match=r"betas must have shape \(136,\), got \(3,\)"):
        contact_regions(anny_body, betas=onp.zeros(3))
    with pytest.raises(ValueError, match="no contact regions for body model kind 'mano'"):
        contact_regions(smplx_model.replace(kind="mano"))
    with pytest.raises(TypeError, match="expected a BodyModel or an AnnyBody, got dict"):
        contact_regions({})
    renamed = smplx_model.replace(joint_names=("hips",) + smplx_model.joint_names[1:])
    with pytest.raises(ValueError, match="smplx model has no bone 'pelvis'"):
        contact_regions(renamed)
