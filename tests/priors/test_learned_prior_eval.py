"""Pieces of the issue-7 evaluation (benchmarks/learned_prior.py) that decide whether SDS can work at all:
the empty start of the coarse field, the white backdrop, the tuning-sweep parser and its guard."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import learned_prior as lp  # noqa: E402

from anchorhoi_jax.nerf import field as nerf_field  # noqa: E402
from anchorhoi_jax.nerf.field import FieldConfig  # noqa: E402
from anchorhoi_jax.stages import coarse  # noqa: E402

CFG = FieldConfig(n_levels=4, log2_table_size=10, max_resolution=64, hidden=16, blob_density=10.0, blob_radius=0.5)
POINTS = jnp.array([[0.0, 0.0, 0.0], [0.95, 0.95, 0.95], [0.0, 0.9, 0.0]], jnp.float32)  # centre, corner, top


def _density(params):
    return onp.asarray(nerf_field.density(params, CFG, POINTS))


def test_fresh_field_is_fog_without_offset_and_a_blob_with_it():
    st = coarse.init_seeds(jax.random.split(jax.random.key(0), 2), coarse.CoarseConfig(field=CFG, steps=10))
    one = jax.tree.map(lambda a: a[0], st.params)
    fog = _density(one)
    # trunc_exp(raw ~ 0 + Gaussian bias) >= ~1/m everywhere: the 2 m box is opaque at init
    assert fog[1] > 0.5 and fog[0] > 1e3
    shifted = lp.empty_outside_blob(st.params, 6.0)
    d = _density(jax.tree.map(lambda a: a[0], shifted))
    assert d[0] > 20.0  # the blob stays opaque: exp(10 - 6) ~ 55 / m
    assert d[1] < 0.02 and d[2] < 0.5  # outside it the box starts (nearly) empty
    onp.testing.assert_allclose(d, fog * onp.exp(-6.0), rtol=1e-4)


def test_offset_per_seed_matches_scalar_offsets():
    keys = jax.random.split(jax.random.key(1), 2)
    cfg = coarse.CoarseConfig(field=CFG, steps=10)
    a = lp.empty_outside_blob(coarse.init_seeds(keys, cfg).params, jnp.array([4.0, 6.0]))
    for s, off in enumerate((4.0, 6.0)):
        b = lp.empty_outside_blob(coarse.init_seeds(keys, cfg).params, off)
        onp.testing.assert_allclose(_density(jax.tree.map(lambda x: x[s], a)), _density(jax.tree.map(lambda x: x[s], b)),
                                    rtol=1e-6)


def test_over_white_composites_premultiplied_renders():
    rgb = jnp.array([[[0.2, 0.1, 0.0]]])
    alpha = jnp.array([[0.25]])
    onp.testing.assert_allclose(onp.asarray(lp.over_white(rgb, alpha)), [[[0.95, 0.85, 0.75]]], rtol=1e-6)


def test_parse_sweep_defaults_and_overrides():
    cfgs = lp.parse_sweep("scale=40,lr=0.003;offset=4")
    assert cfgs[0] == dict(scale=40.0, offset=6.0, tmax=0.98, tend=0.5, lr=0.003, est=0.0, k=4.0, sparsity=1.0)
    assert cfgs[1] == dict(scale=15.0, offset=4.0, tmax=0.98, tend=0.5, lr=0.01, est=0.0, k=4.0, sparsity=1.0)
    assert lp.parse_sweep("sparsity=100")[0]["sparsity"] == 100.0
    est = lp.parse_sweep("est=1,k=6,tend=0.3")[0]
    sds = lp.sds_settings(tmax=est["tmax"], tend=est["tend"], est=est["est"], k=est["k"], steps=100)
    assert (sds.estimator, sds.denoise_steps, sds.weighting, sds.t_range_end) == ("denoised", 6, "uniform", (0.02, 0.3))


def test_parse_sweep_unknown_key_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"--sweep: unknown key 'cfg'") as e:
        lp.parse_sweep("scale=20;cfg=3")
    assert "\n" not in str(e.value)


def test_pick_config_rules():
    rows = [dict(config={"scale": 20}, accuracy=0.5, accuracy_pose=0.5, human_prob=0.4),
            dict(config={"scale": 10}, accuracy=0.75, accuracy_pose=0.75, human_prob=0.1),
            dict(config={"scale": 5}, accuracy=0.75, accuracy_pose=1.0, human_prob=0.2),
            dict(config={"scale": 7}, accuracy=0.75, accuracy_pose=1.0, human_prob=0.2)]
    assert lp.pick_config(rows, "human_prob")["config"] == {"scale": 20}
    # accuracy first, then pose-only accuracy, then human probability, then the first listed
    assert lp.pick_config(rows, "accuracy")["config"] == {"scale": 5}


def test_pick_config_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match=r"--pick must be one of \('human_prob', 'accuracy'\), got 'best'"):
        lp.pick_config([dict(human_prob=0.1)], "best")
    with pytest.raises(ValueError, match=r"--pick accuracy needs a sweep.json with per-config accuracy"):
        lp.pick_config([dict(human_prob=0.1)], "accuracy")


def test_sweep_refuses_the_evaluation_keys(tmp_path):
    with pytest.raises(ValueError, match=r"use --seed-offset != 0 \(offset 0 are the evaluation keys\)"):
        lp.main(["--smoke", "--out", str(tmp_path), "--sweep", "scale=20"])


# ---- session 6: the keypoint-detection variants of the sweep and the evaluation
def test_flip_permutation_swaps_left_and_right_and_is_an_involution():
    perm = onp.asarray(lp.FLIP_OPENPOSE18)
    assert sorted(perm.tolist()) == list(range(18))
    onp.testing.assert_array_equal(perm[perm], onp.arange(18))
    # OpenPose-18: 2-4 right arm / 5-7 left arm, 8-10 right leg / 11-13 left leg, 14/15 eyes, 16/17 ears
    assert perm[[2, 3, 4, 8, 9, 10, 14, 16]].tolist() == [5, 6, 7, 11, 12, 13, 15, 17]
    assert perm[[0, 1]].tolist() == [0, 1]


class _MirrorNet(torch.nn.Module):
    """A 'detector' whose logits are the image's red channel for every channel: detections follow the image."""

    def forward(self, x, t, return_dict=False):
        return (x[:, :1].repeat(1, 21, 1, 1),)


def test_flip_test_of_a_mirror_symmetric_image_equals_the_plain_detection():
    img = onp.zeros((1, 8, 8, 3), onp.float32)
    img[0, 3, 2, 0] = img[0, 3, 5, 0] = 1.0  # two symmetric peaks: columns 2 and 5 of 8
    kp, conf, _ = lp.detect(_MirrorNet(), jnp.asarray(img))
    kpf, conff, _ = lp.detect(_MirrorNet(), jnp.asarray(img), flip=True)
    onp.testing.assert_allclose(kpf, kp, atol=1e-5)
    onp.testing.assert_allclose(conff, conf, atol=1e-6)


def test_flip_test_mirrors_an_asymmetric_peak_back():
    img = onp.zeros((1, 8, 8, 3), onp.float32)
    img[0, 3, 1, 0] = 1.0  # one peak at column 1: the mirrored pass sees it at column 6 and maps it back to 1
    kp, _, _ = lp.detect(_MirrorNet(), jnp.asarray(img), flip=True)
    onp.testing.assert_allclose(kp[0, :, 0], 1.5, atol=0.5)


def test_canonical_views_8_contain_the_4_anchor_views():
    v4, v8 = lp.canonical_views(4, 64), lp.canonical_views(8, 64)
    assert v4.azimuths_deg == (0.0, 90.0, 180.0, 270.0)
    assert v8.azimuths_deg[::2] == v4.azimuths_deg
    c4, c8 = lp.pf.canonical_cameras(v4), lp.pf.canonical_cameras(v8)
    onp.testing.assert_allclose(onp.asarray(c8.T_cam_world[::2]), onp.asarray(c4.T_cam_world), atol=1e-6)


def test_anchor_keypoints_bad_view_count_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"detection views must be 4 or 8, got 6"):
        lp.anchor_keypoints(None, jnp.zeros((1, 8, 4, 4, 3)), jnp.zeros((1, 8, 4, 4)), 6, False)


def test_pick_config_takes_the_detection_variant_and_prefers_the_first_listed_on_ties():
    rows = [dict(config={"scale": 10}, variant=dict(detect_views=4, detect_flip=False), accuracy=0.5, accuracy_pose=0.5,
                 human_prob=0.1),
            dict(config={"scale": 10}, variant=dict(detect_views=8, detect_flip=False), accuracy=0.75, accuracy_pose=0.75,
                 human_prob=0.1),
            dict(config={"scale": 15}, variant=dict(detect_views=4, detect_flip=False), accuracy=0.75, accuracy_pose=0.75,
                 human_prob=0.1)]
    r = lp.pick_config(rows, "accuracy")
    assert (r["config"], r["variant"]) == ({"scale": 10}, dict(detect_views=8, detect_flip=False))


# ---- session 7: keypoint sources (anchor renders, fused with / alongside the coarse renders)
def test_detect_with_context_averages_the_two_images_logits():
    img = onp.zeros((1, 8, 8, 3), onp.float32)
    img[0, 3, 2, 0] = 1.0
    ctx = onp.zeros((1, 8, 8, 3), onp.float32)
    ctx[0, 3, 2, 0] = 0.5
    ctx[0, 6, 6, 0] = 0.9  # a peak only in the context (logits 2x - 1 averaged: -0.1 there, 0.5 at the shared one)
    kp, conf, _ = lp.detect(_MirrorNet(), jnp.asarray(img), context=jnp.asarray(img))
    kp0, conf0, _ = lp.detect(_MirrorNet(), jnp.asarray(img))
    onp.testing.assert_allclose(kp, kp0, atol=1e-6)
    kpc, confc, _ = lp.detect(_MirrorNet(), jnp.asarray(img), context=jnp.asarray(ctx))
    onp.testing.assert_allclose(kpc[0, :, 1], 3.5, atol=0.5)  # the shared peak (row 3) wins
    onp.testing.assert_allclose(confc, 1 / (1 + onp.exp(-0.5)), atol=1e-5)  # sigmoid(0.5 * (1 + 0))
    with pytest.raises(ValueError, match=r"detect: context images \(1, 4, 4, 3\) must match the images \(1, 8, 8, 3\)"):
        lp.detect(_MirrorNet(), jnp.asarray(img), context=jnp.zeros((1, 4, 4, 3)))


def test_keypoint_source_both_stacks_anchor_then_coarse_views_on_doubled_cameras():
    a_rgb8, a_alpha8 = jnp.zeros((2, 8, 8, 8, 3)), jnp.zeros((2, 8, 8, 8))
    coarse = onp.zeros((2, 4, 8, 8, 3), onp.float32)
    coarse[:, :, 5, 1, 0] = 1.0  # the coarse render's peak: column 1, row 5 (the anchor renders are white)
    kp, conf = lp.anchor_keypoints(_MirrorNet(), a_rgb8, a_alpha8, 4, False, "both", jnp.asarray(coarse))
    assert kp.shape == (2, 8, 18, 2) and conf.shape == (2, 8, 18)
    onp.testing.assert_allclose(kp[:, 4:, :, 0], 1.5, atol=0.5)
    onp.testing.assert_allclose(kp[:, 4:, :, 1], 5.5, atol=0.5)
    c4, c8 = (lp.pf.canonical_cameras(lp.canonical_views(n, 8)) for n in (4, 8))
    cams = lp.keypoint_cameras(c4, c8, 4, "both")
    assert cams.K.shape == (8, 3, 3)
    onp.testing.assert_array_equal(onp.asarray(cams.T_cam_world[4:]), onp.asarray(c4.T_cam_world))
    assert lp.keypoint_cameras(c4, c8, 8, "anchor").K.shape == (8, 3, 3)


def test_keypoint_source_bad_inputs_are_one_line_errors():
    a, al = jnp.zeros((1, 8, 4, 4, 3)), jnp.zeros((1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"keypoint source must be one of \('anchor', 'fused', 'both', 'coarse'\), got 'x'"):
        lp.anchor_keypoints(None, a, al, 4, False, "x")
    with pytest.raises(ValueError, match=r"keypoint source 'fused' needs the coarse renders of the 4 canonical views "
                                         r"\(got 8 views\)"):
        lp.anchor_keypoints(None, a, al, 8, False, "fused", jnp.zeros((1, 4, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(got 4 views, no coarse renders\)"):
        lp.anchor_keypoints(None, a, al, 4, False, "both")


def test_pick_config_never_takes_the_coarse_only_diagnostic():
    v = lambda s: dict(detect_views=4, detect_flip=False, keypoint_source=s)  # noqa: E731
    rows = [dict(config={"scale": 10}, variant=v("anchor"), accuracy=0.5, accuracy_pose=0.5, human_prob=0.1),
            dict(config={"scale": 10}, variant=v("coarse"), accuracy=1.0, accuracy_pose=1.0, human_prob=0.1),
            dict(config={"scale": 10}, variant=v("both"), accuracy=0.75, accuracy_pose=0.75, human_prob=0.1)]
    assert lp.pick_config(rows, "accuracy")["variant"]["keypoint_source"] == "both"


# ---- session 8: occluder-aware anchor extraction (stages/anchor.alignment_rays(depth=, occluder_margin=))
def test_parse_margins_and_sweep_variants_tie_order():
    assert lp.parse_margins("0.1, 0.2,none") == [0.1, 0.2, None]
    rows = lp.sweep_variants([0.1, None])
    # per extraction the anchor-using sources in DETECT_VARIANTS order, the coarse-only diagnostic once, last
    assert [(r[2], r[3]) for r in rows] == [("anchor", 0.1), ("fused", 0.1), ("both", 0.1), ("anchor", None),
                                            ("fused", None), ("both", None), ("coarse", None)]
    for bad, msg in (("0.1,x", r"'x' is neither a number of metres nor 'none'"), ("-0.1", r"margins must be >= 0 m"),
                     ("0.1,0.1", r"need distinct entries"), ("", r"need distinct entries")):
        with pytest.raises(ValueError, match=r"--sweep-anchor-margins: " + msg) as e:
            lp.parse_margins(bad)
        assert "\n" not in str(e.value)


def test_occluder_rays_stop_behind_the_occluder_and_other_rays_are_whole():
    from anchorhoi_jax.geometry.cameras import ray_z_scale
    from anchorhoi_jax.render.volume import RenderConfig
    from anchorhoi_jax.stages import anchor as an

    cams = lp.pf.canonical_cameras(lp.canonical_views(4, 4))
    V = 4
    alpha = jnp.zeros((V, 4, 4)).at[:, 1, 1].set(1.0).at[:, 2, 2].set(0.8).at[:, 3, 3].set(0.3)
    mask = jnp.zeros((V, 4, 4)).at[:, 2, 2].set(0.9)  # (2, 2) human; (1, 1) opaque non-human: an occluder
    depth = alpha * 1.5  # surface at 1.5 m camera depth wherever something is
    rgb = jnp.zeros((V, 4, 4, 3))
    whole = an.alignment_rays(cams, rgb, alpha, mask)
    assert bool(jnp.all(jnp.isinf(whole.depth_limit)))
    r = an.alignment_rays(cams, rgb, alpha, mask, depth=depth, occluder_margin=0.1)
    lim = onp.asarray(r.depth_limit).reshape(V, 4, 4)
    onp.testing.assert_allclose(lim[:, 1, 1], 1.6, rtol=1e-6)  # occluder: its surface + margin
    assert onp.isinf(lim[:, 2, 2]).all() and onp.isinf(lim[:, 3, 3]).all() and onp.isinf(lim[:, 0, 0]).all()
    zs = onp.asarray(r.z_scale).reshape(V, 4, 4)
    onp.testing.assert_allclose(zs, onp.asarray(jax.vmap(ray_z_scale)(cams, r.directions.reshape(V, 4, 4, 3))), rtol=1e-6)
    # L_align on the occluder rays (pixel (1, 1), target: the backdrop): a body (the start blob, 2.5-3.5 m deep)
    # behind the occluder's surface (1.5 m) costs nothing with the limit -- behind it this view says nothing --
    # and must be erased without it (the 2D-masked rays)
    params = lp.empty_outside_blob(nerf_field.init(jax.random.key(0), CFG), 6.0)
    loss_fn = jax.jit(lambda b: an.align_loss(params, CFG, RenderConfig(n_coarse=16, n_fine=16), b, jax.random.key(1))[0])
    pick = lambda rays: jax.tree.map(lambda a: a.reshape(V, 16, *a.shape[1:])[:, 5], rays)  # noqa: E731
    loss = {name: float(loss_fn(pick(rays))) for name, rays in (("2d", whole), ("depth", r))}
    assert loss["depth"] < 1e-3 < 0.05 < loss["2d"], loss
    with pytest.raises(ValueError, match=r"alignment_rays: depth and occluder_margin go together \(both or neither\)"):
        an.alignment_rays(cams, rgb, alpha, mask, depth=depth)
    with pytest.raises(ValueError, match=r"alignment_rays: depth \(4, 4, 5\) must match alpha \(4, 4, 4\)"):
        an.alignment_rays(cams, rgb, alpha, mask, depth=jnp.zeros((4, 4, 5)), occluder_margin=0.1)
    with pytest.raises(ValueError, match=r"anchor_fields: occluder_margin needs the coarse renders' depth"):
        lp.anchor_fields(None, None, None, None, cams, rgb, alpha, mask, steps=1, n_rays=1, occluder_margin=0.1)
