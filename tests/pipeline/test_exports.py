"""Export helpers without a full run: the AMASS-style SMPL-X npz, prompt splitting, packing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.io.export import write_npz
from anchorhoi_jax.pipeline.exports import amass_arrays
from anchorhoi_jax.pipeline.pack import pack, pack_json, unpack, unpack_json
from anchorhoi_jax.pipeline.prompt import split_prompt


def test_amass_layout(tmp_path):
    L = 5
    st = {"betas": onp.arange(10, dtype=onp.float32), "scale": onp.float32(1.0),
          "left_hand_pose": onp.full(45, 0.1, onp.float32)}
    go, bp, tr = onp.ones((L, 3)), onp.full((L, 21, 3), 0.2), onp.zeros((L, 3))
    a = amass_arrays(st, go, bp, tr, 30.0, "female")
    p = write_npz(tmp_path / "amass.npz", a)
    with onp.load(p, allow_pickle=False) as z:
        assert z["poses"].shape == (L, 165) and z["trans"].shape == (L, 3) and z["betas"].shape == (10,)
        assert str(z["gender"]) == "female" and float(z["mocap_framerate"]) == 30.0
        onp.testing.assert_array_equal(z["poses"][:, :3], 1.0)
        onp.testing.assert_allclose(z["poses"][:, 3:66], 0.2)
        onp.testing.assert_array_equal(z["poses"][:, 66:75], 0.0)  # jaw, eyes absent -> zeros
        onp.testing.assert_allclose(z["poses"][:, 75:120], 0.1)  # left hand
        onp.testing.assert_array_equal(z["poses"][:, 120:], 0.0)


def test_split_prompt():
    assert split_prompt("A man with sideburns sitting on a sofa") == ("A man with sideburns", "sitting on", "a sofa")
    assert split_prompt("a woman | rides | a bicycle") == ("a woman", "rides", "a bicycle")
    with pytest.raises(ValueError, match="cannot split the prompt 'a sofa' into human, action and object"):
        split_prompt("a sofa")


def test_pack_roundtrip_with_keys():
    tree = {"w": jnp.ones((2, 3)), "s": (jnp.int32(4), jax.random.key(1))}
    back = unpack(pack(tree), tree)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    assert jnp.array_equal(jax.random.key_data(back["s"][1]), jax.random.key_data(tree["s"][1]))
    with pytest.raises(ValueError, match="stage output has 3 leaves, its template 1"):
        unpack(pack(tree), {"x": jnp.zeros(1)})
    assert unpack_json(pack_json([{"a": 1}])) == [{"a": 1}]
