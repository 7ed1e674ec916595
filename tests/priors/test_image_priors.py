"""IF / SD / MVDream priors on tiny random instances of the real classes; weights manifest."""

from __future__ import annotations

import time

import numpy as onp
import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm

from anchorhoi_jax.priors import manifest
from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.image import (
    IF_I_XL_UNET_CONFIG,
    SD21_BASE_UNET_CONFIG,
    IFPrior,
    SDPrior,
    make_tiny_if,
    make_tiny_sd,
)
from anchorhoi_jax.priors.mvdream import (
    CHECKPOINT_PREFIX,
    MultiViewUNet,
    MVDreamPrior,
    MVDreamUNetConfig,
    load_mvdream_unet,
    make_tiny_mvdream,
    mvdream_cameras,
)
from anchorhoi_jax.priors.sds import SDSConfig, SDSGuidance

VIEWS4 = ViewInfo(azimuth_deg=onp.array([0.0, 90.0, 180.0, 270.0]), elevation_deg=onp.zeros(4), views_per_sample=4)


def _orbit_c2w(az_deg, el_deg=15.0, radius=2.0):
    """OpenCV camera-to-world on a y-up orbit looking at the origin (built without project code)."""
    out = []
    for a in onp.deg2rad(az_deg):
        e = onp.deg2rad(el_deg)
        eye = radius * onp.array([onp.cos(e) * onp.sin(a), onp.sin(e), onp.cos(e) * onp.cos(a)])
        z = -eye / onp.linalg.norm(eye)
        x = onp.cross(z, [0.0, 1.0, 0.0])
        x /= onp.linalg.norm(x)
        y = onp.cross(z, x)
        m = onp.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
        out.append(m)
    return onp.stack(out)


def _sds_once(prior, views=VIEWS4, size=24):
    g = SDSGuidance(prior, "a person sitting on a chair", SDSConfig(guidance_scale=7.5))
    prior.free_text_encoder()
    x = torch.rand(views.azimuth_deg.shape[0], 3, size, size) * 2 - 1
    return g(x, views=views, step=0, generator=torch.Generator().manual_seed(0))


def test_tiny_if_sds_gradient_and_text_encoder_freed():
    prior = make_tiny_if()
    grad, info = _sds_once(prior)
    assert grad.shape == (4, 3, 24, 24) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert info["sds_loss"] > 0
    assert prior.text_encoder is None
    with pytest.raises(RuntimeError, match="text encoder already freed"):
        prior.embed(["x"])


def test_if_eps_is_first_three_of_six_channels():
    prior = make_tiny_if()
    z = torch.randn(2, 3, 16, 16)
    t = torch.tensor([5, 900])
    emb = prior.embed(["a", ""])
    full = prior.unet(z, t, encoder_hidden_states=emb).sample
    assert full.shape[1] == 6
    assert torch.allclose(prior.predict_eps(z, t, emb), full[:, :3])


def test_tiny_sd_latent_sds_backpropagates_through_vae():
    prior = make_tiny_sd()
    grad, _ = _sds_once(prior)
    assert grad.shape == (4, 3, 24, 24) and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_v_prediction_is_converted_to_eps():
    prior = make_tiny_sd(prediction_type="v_prediction")
    z0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([100, 800])
    a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * z0

    class FakeUNet(torch.nn.Module):
        def forward(self, x, t, encoder_hidden_states=None, return_dict=False):
            return (v,)

    prior.unet = FakeUNet()
    assert torch.allclose(prior.predict_eps(z_t, t, torch.zeros(2, 16, 32)), eps, atol=1e-5)


def test_mvdream_unet_matches_diffusers_ldm_conversion():
    """Key names and computation equal diffusers' SD UNet after its LDM->diffusers converter (F=1)."""
    cfg = MVDreamUNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(2, 4),
                            num_head_channels=16, context_dim=24, norm_groups=8, camera_dim=None)
    torch.manual_seed(0)
    ours = MultiViewUNet(cfg).eval()
    for p in ours.parameters():
        p.data.normal_(0, 0.05)
    ldm = {CHECKPOINT_PREFIX + k: v for k, v in ours.state_dict().items()}
    orig = {"model": {"params": {
        "unet_config": {"params": dict(in_channels=4, out_channels=4, model_channels=32, channel_mult=[1, 2, 2],
                                       num_res_blocks=2, attention_resolutions=[2, 4], num_head_channels=16,
                                       context_dim=24, use_linear_in_transformer=True, transformer_depth=1)},
        "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}}}}}
    dcfg = dict(create_unet_diffusers_config_from_ldm(orig, ldm), norm_num_groups=8)
    ref = UNet2DConditionModel(**dcfg).eval()
    missing, unexpected = ref.load_state_dict(convert_ldm_unet_checkpoint(ldm, dcfg), strict=False)
    assert not missing and not unexpected
    x, t, c = torch.randn(2, 4, 16, 16), torch.tensor([10, 700]), torch.randn(2, 5, 24)
    with torch.no_grad():
        assert torch.allclose(ours(x, t, c), ref(x, t, c).sample, atol=1e-5)


def test_real_size_unet_parameter_counts():
    """Published sizes: SD-2.1 865.9 M (+1.66 M camera MLP for MVDream); IF-I-XL 4.3 B."""
    with torch.device("meta"):
        mv = MultiViewUNet()
        sd = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG)
        if_xl = UNet2DConditionModel(**IF_I_XL_UNET_CONFIG)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(sd) == 865_910_724
    assert n(mv) == n(sd) + n(mv.camera_embed) and n(mv.camera_embed) == 16 * 1280 + 1280 + 1280 * 1280 + 1280
    assert abs(n(if_xl) / 1e9 - 4.3) < 0.05
    keys = set(mv.state_dict())
    for k in ("time_embed.0.weight", "camera_embed.2.bias", "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
              "input_blocks.3.0.op.weight", "middle_block.1.proj_in.weight", "output_blocks.2.1.conv.weight",
              "output_blocks.5.2.conv.weight", "out.2.weight", "input_blocks.4.0.skip_connection.weight"):
        assert k in keys, k


def test_multiview_attention_couples_views_only_within_a_sample():
    torch.manual_seed(0)
    unet = MultiViewUNet(MVDreamUNetConfig(model_channels=16, channel_mult=(1,), num_res_blocks=1,
                                           attention_resolutions=(1,), num_head_channels=8, context_dim=8,
                                           norm_groups=4)).eval()
    for p in unet.parameters():
        p.data.normal_(0, 0.1)
    x, t, c, cam = torch.randn(8, 4, 8, 8), torch.full((8,), 300), torch.randn(8, 3, 8), torch.randn(8, 16)
    x2 = x.clone()
    x2[1] += 1.0  # perturb view 1 of sample 0
    with torch.no_grad():
        a, b = unet(x, t, c, cam, num_frames=4), unet(x2, t, c, cam, num_frames=4)
        a1, b1 = unet(x, t, c, cam, num_frames=1), unet(x2, t, c, cam, num_frames=1)
    assert (a[0] - b[0]).abs().max() > 1e-6  # same sample: coupled (F = 1 gives exactly 0 below)
    assert torch.allclose(a[4:], b[4:])  # other sample: untouched
    assert torch.equal(a1[0], b1[0])  # F = 1: independent views
    with pytest.raises(ValueError, match="not a multiple of num_frames=4"):
        unet(x[:6], t[:6], c[:6], cam[:6], num_frames=4)


def test_mvdream_camera_convention():
    cams = mvdream_cameras(_orbit_c2w([0.0, 90.0], el_deg=15.0)).reshape(2, 4, 4)
    e = onp.deg2rad(15.0)
    # z-up ("blender") world: y_up -> z, z -> -y; camera on the unit sphere.
    onp.testing.assert_allclose(cams[0, :3, 3], [0.0, -onp.cos(e), onp.sin(e)], atol=1e-6)
    onp.testing.assert_allclose(cams[1, :3, 3], [onp.cos(e), 0.0, onp.sin(e)], atol=1e-6)
    # OpenGL axes: the camera's z axis points backwards (away from the origin).
    onp.testing.assert_allclose(cams[0, :3, 2], cams[0, :3, 3], atol=1e-6)
    onp.testing.assert_allclose(onp.linalg.det(cams[:, :3, :3]), 1.0, atol=1e-6)


def test_tiny_mvdream_sds_and_checkpoint_round_trip(tmp_path):
    prior = make_tiny_mvdream()
    views = ViewInfo(VIEWS4.azimuth_deg, VIEWS4.elevation_deg, camera_to_world=_orbit_c2w(VIEWS4.azimuth_deg),
                     views_per_sample=4)
    grad, info = _sds_once(prior, views)
    assert grad.shape == (4, 3, 24, 24) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs ViewInfo.camera_to_world"):
        prior.predict_eps(torch.zeros(4, 4, 8, 8), torch.zeros(4, dtype=torch.long), torch.zeros(4, 16, 32), VIEWS4)
    # An official-style checkpoint (whole LDM state dict) loads strictly into a fresh UNet.
    ck = {CHECKPOINT_PREFIX + k: v for k, v in prior.unet.state_dict().items()}
    ck["first_stage_model.encoder.conv_in.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "mv.pt")
    loaded = load_mvdream_unet(tmp_path / "mv.pt", prior.unet.cfg, dtype=torch.float32)
    for k, v in prior.unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no 'model.diffusion_model.\\*' keys"):
        load_mvdream_unet(tmp_path / "bad.pt", prior.unet.cfg)


# ---------------------------------------------------------------------------------------------
# Manifest / missing weights
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def empty_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


@pytest.mark.parametrize("name", sorted(manifest.MANIFEST))
def test_missing_weights_one_clear_line(empty_weights, name):
    t0 = time.time()
    with pytest.raises(manifest.MissingWeightsError) as e:
        manifest.resolve_weights(name, allow_download=True)  # offline wins over allow_download
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"missing weights for '{name}'")
    assert manifest.MANIFEST[name].repo_id in msg and str(empty_weights / "weights" / name) in msg
    assert time.time() - t0 < 5.0  # no network attempt
    assert not (empty_weights / "hf").exists() or not any((empty_weights / "hf").rglob("*.safetensors"))


def test_prior_constructors_raise_missing_weights(empty_weights):
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'if-i-xl'.*DeepFloyd/IF-I-XL-v1.0"):
        IFPrior.from_pretrained(device="cpu")
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'sd-2.1-base'"):
        SDPrior.from_pretrained(device="cpu")
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'mvdream-sd21'.*sd-v2.1-base-4view.pt"):
        MVDreamPrior.from_pretrained(device="cpu")
    with pytest.raises(KeyError, match="unknown prior weights 'nope'"):
        manifest.resolve_weights("nope")


def test_local_dir_and_checksum(empty_weights, monkeypatch):
    d = empty_weights / "mv"
    d.mkdir()
    (d / "sd-v2.1-base-4view.pt").write_bytes(b"abc")
    assert manifest.resolve_weights("mvdream-sd21", d) == d
    spec = manifest.MANIFEST["mvdream-sd21"]
    bad = manifest.WeightSpec(spec.name, spec.repo_id, spec.files, spec.required, sha256=(("sd-v2.1-base-4view.pt", "0" * 64),))
    monkeypatch.setitem(manifest.MANIFEST, "mvdream-sd21", bad)
    with pytest.raises(manifest.MissingWeightsError, match="checksum mismatch for 'mvdream-sd21'"):
        manifest.resolve_weights("mvdream-sd21", d)
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'mvdream-sd21'"):
        manifest.resolve_weights("mvdream-sd21", empty_weights / "elsewhere")
