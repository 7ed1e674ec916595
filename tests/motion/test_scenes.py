"""The synthetic ground truth of the motion benchmark must be physically valid: a method with a
penetration term (Eq. 4's L_pen) cannot be judged against a ground truth that is inside the object."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as onp
import pytest

import synthetic_scenes
from anchorhoi_jax.geometry.sdf import signed_distance
from synthetic_scenes import SCENES


def _gt_signed_distance(model, sc):
    """Exact signed distance (m, < 0 inside) of every used body vertex of every frame to the object."""
    used = onp.unique(onp.asarray(model.faces))
    v = onp.asarray(synthetic_scenes._vertices_seq(model, jnp.asarray(sc.pose, jnp.float32),
                                                   jnp.asarray(sc.transl, jnp.float32)))[:, used]
    local = onp.einsum("lna,lab->lnb", v - sc.t_obj[:, None], sc.R_obj)  # world -> object frame
    sd = signed_distance(jnp.asarray(local.reshape(-1, 3), jnp.float32), sc.object_vertices, sc.object_faces)
    return onp.asarray(sd).reshape(local.shape[:2])


@pytest.mark.parametrize("seed", [None, 3, 6])
@pytest.mark.parametrize("name", sorted(SCENES))
def test_ground_truth_never_penetrates_the_object(body, name, seed):
    model, _ = body
    rng = None if seed is None else onp.random.default_rng(seed)
    sc = SCENES[name](model, 40, rng=rng)  # 40 frames at 24 fps cover the deepest phases of every motion
    sd = _gt_signed_distance(model, sc)
    assert sd.min() > -1e-3, f"{name}@{seed}: ground truth {-1000 * sd.min():.1f} mm inside the object"
    if name == "sit_chair":  # the body rests ON the seat (touches it), it does not float above it
        assert sd.min() < 2e-3


def test_sit_chair_refuses_a_penetrating_chair(body, monkeypatch):
    model, _ = body
    boxes = synthetic_scenes._chair_boxes
    # A chair with a block where the pelvis sits: the generator must notice, not return it.
    monkeypatch.setattr(synthetic_scenes, "_chair_boxes",
                        lambda top, zb, zf: boxes(top, zb, zf) + [((0.1, 0.1, 0.1), (0.0, top + 0.08, 0.0))])
    with pytest.raises(RuntimeError, match="ground-truth body is .* mm inside the chair"):
        SCENES["sit_chair"](model, 8)
