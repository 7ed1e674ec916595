"""`compile_pose`: the model-bound, ahead-of-time compiled forward equals jit(vmap(pose)) bit for bit.

The comparison is with the jitted reference (an eager vmap rounds differently: op-by-op vs fused), for
every output kind, batch shapes None / int / tuple, both float32 GEMM modes and every way of binding
the constants (embedded, passed, all embedded). It also checks that only the arrays the program reads
are handed over per call, and that each bad input raises its one-line error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body import skinning as sk
from anchorhoi_jax.body.compiled import OUTPUTS, bind_pose, compile_pose, params_spec
from anchorhoi_jax.body.model import BodyParams


def _params(model, batch, seed=0):
    rng = onp.random.default_rng(seed)
    shape = (batch,) if isinstance(batch, int) else tuple(batch)
    f = lambda *s: jnp.asarray(rng.normal(size=shape + s), jnp.float32)  # noqa: E731
    return BodyParams(betas=f(model.num_shape), pose=0.4 * f(model.num_joints, 3), transl=f(3), scale=1 + 0.1 * f())


def _reference(model, params, output, precision, batch_ndim):
    def one(p):
        if output == "all_joints":
            return sk.pose_joints(model, p, precision=precision)
        o = sk.pose(model, p, precision=precision)
        return {"posed": o, "vertices": o.vertices, "vertices_all_joints": (o.vertices, o.all_joints)}[output]

    f = one
    for _ in range(batch_ndim):
        f = jax.vmap(f)
    return jax.jit(f)(params)


def _assert_identical(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(la, lb):
        onp.testing.assert_array_equal(onp.asarray(x), onp.asarray(y))


@pytest.mark.parametrize("output", [o for o in OUTPUTS if o != "vertices"])  # "vertices": test_single_sample_and_3xtf32
def test_outputs_identical_to_jitted_pose(smplx_default_model, output):
    m = smplx_default_model
    p = _params(m, 3)
    prog = compile_pose(m, 3, output=output)
    _assert_identical(prog(p), _reference(m, p, output, "highest", 1))
    p2 = _params(m, 3, seed=1)  # new values, same compiled program
    _assert_identical(prog(p2), _reference(m, p2, output, "highest", 1))


def test_nothing_embedded_nested_batch_identical(smplx_default_model):
    m = smplx_default_model
    p = _params(m, (2, 2), seed=2)
    prog = compile_pose(m, (2, 2), output="vertices_all_joints", embed_bytes=0)
    _assert_identical(prog(p), _reference(m, p, "vertices_all_joints", "highest", 2))


def test_single_sample_and_3xtf32(smplx_default_model):
    m3 = sk.with_tf32x3_blend(smplx_default_model)
    p = _params(m3, 1, seed=3)
    one = jax.tree_util.tree_map(lambda x: x[0], p)
    prog = compile_pose(m3, None, output="vertices", precision="fp32_3xtf32")
    ref = jax.jit(lambda q: sk.pose(m3, q, precision="fp32_3xtf32").vertices)(one)
    _assert_identical(prog(one), ref)


def test_only_read_arrays_are_passed(smplx_default_model):
    m = smplx_default_model
    _, consts, _, _ = bind_pose(m, 2, output="vertices")
    # SMPL-X full forward: only the 64 MB fused blend matrix is passed; the small arrays are embedded
    assert [c.shape for c in consts] == [m.blend_dirs.shape]
    _, passed, _, _ = bind_pose(m, 2, output="vertices", embed_bytes=0)
    shapes = {c.shape for c in passed}
    # read: joint template/dirs, extra ids/bary, sparse skinning, blend matrix; never read: faces,
    # dense lbs_weights, posedirs, shapedirs, v_template, rest-frame arrays, the joints-only matrix
    assert m.blend_dirs.shape in shapes and m.skin_joint_ids.shape in shapes
    for unread in (m.faces, m.lbs_weights, m.posedirs, m.shapedirs, m.rest_orient_dirs, m.extra_blend_dirs):
        assert unread.shape not in shapes
    assert len(passed) == 7
    assert bind_pose(m, 2, output="vertices", embed_bytes=1 << 40)[1] == ()
    # joints-only path: the 1.3 MB columns of the blend matrix for the extra points' vertices
    assert [c.shape for c in bind_pose(m, 2, output="all_joints")[1]] == [m.extra_blend_dirs.shape]
    assert compile_pose(m, 2, output="all_joints").num_call_arrays == 5


def test_params_spec_shapes(smplx_default_model):
    m = smplx_default_model
    s = params_spec(m, (4, 2))
    assert s.betas.shape == (4, 2, m.num_shape) and s.pose.shape == (4, 2, m.num_joints, 3)
    assert s.transl.shape == (4, 2, 3) and s.scale.shape == (4, 2)


def test_bad_inputs(smplx_default_model):
    m = smplx_default_model
    with pytest.raises(ValueError, match=r"^unknown output 'mesh': use one of \['posed', 'vertices'"):
        compile_pose(m, 2, output="mesh")
    with pytest.raises(ValueError, match=r"^unknown precision 'fp64'"):
        compile_pose(m, 2, precision="fp64")
    for bad in (0, -1, (2, 0), 2.5, True):
        with pytest.raises(ValueError, match=r"^batch must be None, a positive int or a tuple of positive ints"):
            compile_pose(m, bad)
    with pytest.raises(ValueError, match=r"^embed_bytes must be a non-negative int"):
        compile_pose(m, 2, embed_bytes=-1)
    prog = compile_pose(m, 2, output="all_joints")
    with pytest.raises(ValueError, match=r"^compile_pose program for batch \(2,\) got params with shapes"):
        prog(_params(m, 3))
