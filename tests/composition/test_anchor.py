"""Anchor extraction (paper Sec. 4): the anchor NeRF keeps the human of a coarse human-object NeRF and
drops the object; L_align's masked-RGB features; bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.geometry.cameras import orbit_cameras
from anchorhoi_jax.losses.align import feature_alignment_loss, masked_rgb_features
from anchorhoi_jax.stages import anchor as an

from .scenes import fitted_hoi_scene

S = 40


def test_masked_rgb_features_and_loss():
    rgb = jnp.array([[0.4, 0.2, 0.1], [0.3, 0.3, 0.3]])
    alpha = jnp.array([0.5, 1.0])
    bg = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]])
    f = masked_rgb_features(rgb, alpha, jnp.array([1.0, 0.0]), bg)
    # Inside the mask: C + (1 − α)·b; outside: the background alone (the object is removed).
    onp.testing.assert_allclose(f, [[0.9, 0.7, 0.6], [0.0, 0.5, 1.0]], atol=1e-6)
    v, aux = feature_alignment_loss(f, f + jnp.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]), jnp.array([1.0, 3.0]))
    onp.testing.assert_allclose(v, 0.01 / 4, rtol=1e-5)
    assert float(aux["align_mse"]) == pytest.approx(float(v))


def test_anchor_nerf_keeps_the_human_and_drops_the_object():
    f = fitted_hoi_scene(S)
    align, evalc, scene, human, fcfg, rcfg = (f[k] for k in ("align", "evalc", "scene", "human", "fcfg", "rcfg"))
    visible_human, n_t, n_a = f["visible_human"], f["n_t"], f["n_a"]
    coarse_params = f["coarse"]

    render = jax.jit(lambda p, c: an.render_views(p, fcfg, c, None, rcfg))
    c_rgb, c_alpha = render(coarse_params, align)
    rays = an.alignment_rays(align, c_rgb, c_alpha, visible_human[n_t : n_t + n_a])
    update = jax.jit(an.make_update(fcfg, an.AnchorConfig(steps_per_call=50, n_rays=512, render=rcfg)))
    state, aux = update(an.init(jax.random.key(1), coarse_params), rays, an.AnchorWeights.default())

    _, coarse_eval = render(coarse_params, evalc)
    _, anchor_eval = render(state.params, evalc)
    iou_coarse = float(an.mask_iou(coarse_eval, human["alpha"]))
    iou_anchor = float(an.mask_iou(anchor_eval, human["alpha"]))
    obj = (scene["alpha"][n_t + n_a :] > 0.5) & (human["alpha"] <= 0.5)
    obj_covered = float(jnp.sum((anchor_eval > 0.5) & obj) / jnp.sum(obj))
    print(f"IoU with the human: coarse {iou_coarse:.3f}, anchor {iou_anchor:.3f}; object covered {obj_covered:.3f}")
    assert iou_anchor > 0.8 and iou_anchor > iou_coarse + 0.15, (iou_coarse, iou_anchor)
    assert obj_covered < 0.05, obj_covered


def test_alignment_rays_bad_shapes():
    cams = orbit_cameras(2, height=4, width=4)
    with pytest.raises(ValueError, match="alignment_rays: expected rgb"):
        an.alignment_rays(cams, jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 4)), jnp.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="do not match the renders"):
        an.alignment_rays(cams, jnp.zeros((3, 4, 4, 3)), jnp.zeros((3, 4, 4)), jnp.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="need steps_per_call >= 1"):
        an.AnchorConfig(steps_per_call=0)
