"""Weight-free pose prior (joint limits + L2) on SMPL-X and Anny, and the VPoser v2 decoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body.pose_prior import (
    ANNY_JOINTS,
    SMPLX_JOINTS,
    angle_prior_loss,
    joint_limit_loss,
    limit_components,
    make_pose_prior,
)
from anchorhoi_jax.body.skinning import rest_orientations


@pytest.fixture(scope="module")
def smplx_model(smplx_default_model):
    return smplx_default_model  # tests/body/conftest.py: written and loaded once per session


@pytest.fixture(scope="module")
def anny_body(anny_shared):
    return anny_shared


# (model kind) -> semantic joint name -> (bone, child) names in that model
_BONES = {
    "smplx": {"left_knee": ("left_knee", "left_ankle"), "right_knee": ("right_knee", "right_ankle"),
              "left_elbow": ("left_elbow", "left_wrist"), "right_elbow": ("right_elbow", "right_wrist"),
              "left_hip": ("left_hip", "left_knee")},
    "anny": {"left_knee": ("lowerleg01.L", "foot.L"), "right_knee": ("lowerleg01.R", "foot.R"),
             "left_elbow": ("lowerarm01.L", "wrist.L"), "right_elbow": ("lowerarm01.R", "wrist.R"),
             "left_hip": ("upperleg01.L", "lowerleg01.L")},
}  # fmt: skip


@pytest.fixture(scope="module", params=["smplx", "anny"])
def case(request, smplx_model, anny_body):
    model = smplx_model if request.param == "smplx" else anny_body.model
    return request.param, model, make_pose_prior(anny_body if request.param == "anny" else model)


def _local_pose_moving_tip(model, bone, child, toward, angle):
    """Axis-angle pose (J,3) rotating only `bone` so its child joint moves toward world direction `toward`."""
    names = model.joint_names
    j = onp.asarray(model.j_template)
    k = names.index(bone)
    d = j[names.index(child)] - j[k]
    axis = onp.cross(d, toward)
    axis = axis / onp.linalg.norm(axis)
    R_rest = onp.asarray(rest_orientations(model, jnp.zeros((model.num_shape,), jnp.float32)))
    pose = onp.zeros((model.num_joints, 3), onp.float32)
    pose[k] = R_rest[k].T @ (angle * axis)  # world-axis rotation R_rest L R_restᵀ about the joint
    return jnp.asarray(pose)


def test_rest_pose_is_free(case):
    kind, model, prior = case
    zero = jnp.zeros((model.num_joints, 3), jnp.float32)
    assert float(joint_limit_loss(prior, zero)[0]) == 0.0 and float(angle_prior_loss(prior, zero)[0]) == 0.0
    expected = len(SMPLX_JOINTS) if kind == "smplx" else len(ANNY_JOINTS)
    assert len(prior.names) == expected and prior.joint_ids.shape == (expected,)


@pytest.mark.parametrize("joint,natural", [("left_knee", -1), ("right_knee", -1), ("left_elbow", 1), ("right_elbow", 1), ("left_hip", 1)])
def test_hinges_bend_one_way(case, joint, natural):
    """Knees bend backward (ankle toward −z), elbows and hip flexion forward (+z); the other way is penalised."""
    kind, model, prior = case
    bone, child = _BONES[kind][joint]
    forward = onp.array([0.0, 0.0, 1.0])
    good = _local_pose_moving_tip(model, bone, child, natural * forward, 1.2)
    bad = _local_pose_moving_tip(model, bone, child, -natural * forward, 1.2)
    loss_good, aux = joint_limit_loss(prior, good)
    loss_bad, aux_bad = joint_limit_loss(prior, bad)
    assert float(loss_good) == 0.0, dict(zip(prior.names, onp.asarray(aux["per_joint"])))
    assert float(loss_bad) > 0.1
    i = prior.names.index(bone)
    assert float(aux_bad["per_joint"][i]) == float(loss_bad)  # the violation is on that joint only
    c = onp.asarray(limit_components(prior, good))[i]
    assert abs(abs(c[0]) - 1.2) < 0.05 and abs(c[1]) < 0.05  # pure flexion, no twist


def test_penalty_gradient_points_back_into_range(case):
    kind, model, prior = case
    bone, child = _BONES[kind]["left_knee"]
    bad = _local_pose_moving_tip(model, bone, child, onp.array([0.0, 0.0, 1.0]), 0.6)
    g = jax.jit(jax.grad(lambda p: joint_limit_loss(prior, p)[0]))(bad)
    assert bool(jnp.all(jnp.isfinite(g)))
    step = bad - 0.1 * g
    assert float(joint_limit_loss(prior, step)[0]) < float(joint_limit_loss(prior, bad)[0])
    gz = jax.grad(lambda p: joint_limit_loss(prior, p)[0] + angle_prior_loss(prior, p)[0])(jnp.zeros_like(bad))
    assert bool(jnp.all(gz == 0.0))


def test_angle_prior(case):
    kind, model, prior = case
    pose = jnp.zeros((model.num_joints, 3), jnp.float32).at[0].set(1.0)
    assert float(angle_prior_loss(prior, pose)[0]) == 0.0  # global orientation is free
    pose = pose.at[3].set(jnp.array([0.3, 0.0, 0.4]))
    value, aux = angle_prior_loss(prior, pose)
    assert abs(float(value) - 0.25) < 1e-6 and float(aux["per_joint"][3]) == pytest.approx(0.25)


def test_jit_vmap(case):
    kind, model, prior = case
    poses = jax.random.normal(jax.random.key(0), (4, model.num_joints, 3)) * 0.5
    f = jax.jit(jax.vmap(lambda p: joint_limit_loss(prior, p)[0]))
    loop = jnp.stack([joint_limit_loss(prior, p)[0] for p in poses])
    onp.testing.assert_allclose(onp.asarray(f(poses)), onp.asarray(loop), rtol=1e-5)
    assert float(loop.min()) > 0.0  # random poses violate some limits


def test_bad_inputs(smplx_model):
    prior = make_pose_prior(smplx_model)
    with pytest.raises(ValueError, match=r"pose must be \(55, 3\) axis-angle local rotations, got \(21, 3\)"):
        joint_limit_loss(prior, jnp.zeros((21, 3)))
    with pytest.raises(ValueError, match="no pose prior for body model kind 'mano'"):
        make_pose_prior(smplx_model.replace(kind="mano"))
    with pytest.raises(ValueError, match=r"betas must have shape \(20,\), got \(5,\)"):
        make_pose_prior(smplx_model, betas=onp.zeros(5))
    with pytest.raises(TypeError, match="expected a BodyModel or an AnnyBody, got str"):
        make_pose_prior("smplx")
    renamed = smplx_model.replace(joint_names=tuple("hipL" if n == "left_hip" else n for n in smplx_model.joint_names))
    with pytest.raises(ValueError, match="smplx model has no joint 'left_hip' needed by the pose prior"):
        make_pose_prior(renamed)


# ------------------------------------------------------------------ VPoser v2 decoder

from anchorhoi_jax.body.vposer import (  # noqa: E402
    convert_vposer_checkpoint,
    decoder_from_state_dict,
    init_vposer,
    load_vposer,
    vposer_decode,
    vposer_decode_aa,
    vposer_latent_loss,
)


def test_vposer_random_init_shapes_and_zero_decode():
    params = init_vposer(jax.random.key(0))
    assert params.w0.shape == (32, 512) and params.w2.shape == (512, 126) and params.latent_dim == 32
    # jitted: eager (op-by-op) decoding of the 512-wide MLP and the 6D->matrix maps is slow on CPU.
    R = jax.jit(vposer_decode)(params, jnp.zeros((32,)))
    assert R.shape == (21, 3, 3)
    R = onp.asarray(R)
    onp.testing.assert_allclose(R @ onp.swapaxes(R, -1, -2), onp.broadcast_to(onp.eye(3), (21, 3, 3)), atol=1e-5)
    onp.testing.assert_allclose(onp.linalg.det(R), 1.0, atol=1e-5)
    z = jax.random.normal(jax.random.key(1), (8, 32)).at[0].set(0.0)
    aa = jax.jit(jax.vmap(lambda zz: vposer_decode_aa(params, zz)))(z)
    angles = onp.linalg.norm(onp.asarray(aa[0]), axis=-1)  # z = 0
    assert angles.max() < 0.6 and angles.mean() < 0.3  # a plausible near-rest pose
    assert aa.shape == (8, 21, 3) and float(jnp.abs(aa[0] - aa[1]).max()) > 1e-3


def test_vposer_loss_gradient_finite():
    params = init_vposer(jax.random.key(0))

    def loss(params, z):
        pose = vposer_decode_aa(params, z)
        return vposer_latent_loss(z)[0] + jnp.sum((pose - 0.1) ** 2)

    g_params, g_z = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, jnp.zeros((32,)))
    leaves = jax.tree.leaves(g_params) + [g_z]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert float(jnp.abs(g_z).max()) > 0.0
    value, aux = vposer_latent_loss(jnp.full((32,), 0.5))
    assert float(value) == pytest.approx(8.0) and float(aux["latent_norm"]) == pytest.approx(8.0**0.5)


class _NotATensor:  # a pickled non-tensor object, like Lightning's hyper-parameter containers
    pass


def _torch_reference_decoder(torch):
    """The official architecture (human_body_prior VPoser v2), written out as the oracle."""
    nn = torch.nn
    net = nn.Sequential(
        nn.Linear(32, 512), nn.LeakyReLU(), nn.Dropout(0.1), nn.Linear(512, 512), nn.LeakyReLU(), nn.Linear(512, 126)
    )
    net.eval()

    def decode(z):
        x = net(z).view(-1, 3, 2)
        b1 = torch.nn.functional.normalize(x[:, :, 0], dim=1)
        b2 = torch.nn.functional.normalize(x[:, :, 1] - (b1 * x[:, :, 1]).sum(1, keepdim=True) * b1, dim=-1)
        return torch.stack([b1, b2, torch.cross(b1, b2, dim=1)], dim=-1).view(z.shape[0], 21, 3, 3)

    return net, decode


def test_vposer_official_checkpoint_layout_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net, decode = _torch_reference_decoder(torch)
    state = {f"vp_model.decoder_net.{k}": v for k, v in net.state_dict().items()}
    state["vp_model.encoder_net.2.weight"] = torch.zeros(512, 63)  # encoder keys ride along, unused
    ckpt = tmp_path / "V02_05_epoch=08_val_loss=0.03.ckpt"
    torch.save({"state_dict": state, "epoch": 8}, ckpt)
    npz = convert_vposer_checkpoint(ckpt, tmp_path / "vposer_v2.npz")
    params = load_vposer(npz)
    z = torch.randn(4, 32)
    with torch.no_grad():
        ref = decode(z).numpy()
    ours = jax.vmap(lambda zz: vposer_decode(params, zz))(jnp.asarray(z.numpy()))
    onp.testing.assert_allclose(onp.asarray(ours), ref, atol=1e-5)
    # A checkpoint that pickles other objects needs explicit trust.
    torch.save({"state_dict": state, "hyper_parameters": _NotATensor()}, ckpt)
    with pytest.raises(ValueError, match="holds pickled objects besides tensors; pass allow_pickle=True"):
        convert_vposer_checkpoint(ckpt, tmp_path / "x.npz")


def test_vposer_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VPoser weights not found at .*: download VPoser v2.0 \(V02_05\) from https://smpl-x.is.tue.mpg.de"):
        load_vposer(tmp_path / "vposer.npz")
    with pytest.raises(FileNotFoundError, match="VPoser checkpoint not found at"):
        convert_vposer_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out.npz")
    (tmp_path / "v.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="load_vposer reads an .npz state dict, got v.ckpt"):
        load_vposer(tmp_path / "v.ckpt")
    with pytest.raises(ValueError, match="not a VPoser v2 state dict: missing decoder_net.0.weight"):
        decoder_from_state_dict({"decoder_net.0.bias": onp.zeros(512)})
    params = init_vposer(jax.random.key(0))
    sd = {"decoder_net.0.weight": onp.asarray(params.w0).T, "decoder_net.0.bias": onp.asarray(params.b0),
          "decoder_net.3.weight": onp.zeros((512, 300)), "decoder_net.3.bias": onp.asarray(params.b1),
          "decoder_net.5.weight": onp.asarray(params.w2).T, "decoder_net.5.bias": onp.asarray(params.b2)}  # fmt: skip
    with pytest.raises(ValueError, match=r"VPoser decoder_net.3.weight has shape \(512, 300\), expected \(512, 512\)"):
        decoder_from_state_dict(sd)
