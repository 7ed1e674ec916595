"""Forward posing compiled once for a fixed batch: `compile_pose(model, batch) -> CompiledPose`.

Why this exists (benchmarks/results/body_forward.md, sessions 4-5): a synchronised call of
`jax.jit(jax.vmap(pose, in_axes=(None, 0)))(model, params)` pays host-side costs on top of the GPU
kernels, and part of them grows with the number of arrays handed over per call. The full SMPL-X
`BodyModel` has 15 array leaves (16 with the 3xTF32 split) and `BodyParams` has 4. Every call flattens
all 19 leaves, builds their signatures for the jit cache and passes them to the runtime. This
includes the leaves that `pose` never reads: faces, dense `lbs_weights`, `posedirs`, `shapedirs` and
`v_template` once the fused blend matrix exists, and the Anny-only rest-frame dirs. XLA prunes them
from the executable, but only after that host-side work.

Measured: on CPU (jax 0.10.2) the host dispatch of the joints-only forward drops from 23 to 16 us
(sync call 122 -> 110 us). On the H100 (session 5) a jitted no-op costs 27 us more when it also
receives the model (0.138 vs 0.111 ms). The 2 ms full forward at batch 2048 showed no measurable gain:
2.16-2.69 ms per call vs 2.06-2.14 for jit(model, params) in interleaved rounds, 1.81 vs 1.78 ms
pipelined. There, most per-call overhead does not scale with the argument count.

`compile_pose` binds the model once:
* the leaves the chosen output reads are found from the traced program; nothing else is passed;
* small ones (<= `embed_bytes`, default 1 MiB: joint template/dirs, sparse skinning ids/weights,
  extra-point ids and barycentric weights) are closed over, so they are part of the executable and
  not arguments at all;
* large ones (the 64 MB fused blend matrix, its 193 MB 3xTF32 split) stay device arrays passed by
  reference: closing over them would copy them into the executable and slow compilation;
* the program is lowered and compiled ahead of time for one batch shape. A call never traces and
  never looks up a cache, and a wrong shape raises one ValueError.

Per call the runtime then receives the 4 `BodyParams` arrays plus 1 (SMPL-X) or 0-2 (others) bound
constants, not 19. The values are those of `jax.jit(jax.vmap(pose))`: the same traced computation,
checked bit for bit in tests/body/test_compiled.py (CPU) and by the benchmark on the H100 at batch
2048 (max difference 0.0).

Forward only: to differentiate, call `pose` inside your own jitted step (STYLE.md: jit at stage-step
boundaries), where the model is closed over once anyway.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from anchorhoi_jax.body import skinning as sk
from anchorhoi_jax.body.model import BodyModel, BodyParams

# What a compiled program returns (one sample's shapes; the batch axes lead):
#   "posed"               PosedBody (vertices, joints, extra, T_world_joint), as `pose`
#   "vertices"            (V, 3)
#   "vertices_all_joints" ((V, 3), (J + E, 3)): the mesh and the points the `smplx` package returns
#   "all_joints"          (J + E, 3) through the joints-only fast path `pose_joints` (no mesh)
OUTPUTS = ("posed", "vertices", "vertices_all_joints", "all_joints")
EMBED_BYTES = 1 << 20


def _output_fn(output: str, precision) -> Callable[[BodyModel, BodyParams], Any]:
    if output == "posed":
        return lambda m, p: sk.pose(m, p, precision=precision)
    if output == "vertices":
        return lambda m, p: sk.pose(m, p, precision=precision).vertices
    if output == "vertices_all_joints":

        def f(m, p):
            o = sk.pose(m, p, precision=precision)
            return o.vertices, o.all_joints

        return f
    return lambda m, p: sk.pose_joints(m, p, precision=precision)


def _batch_shape(batch) -> tuple[int, ...]:
    if batch is None:
        return ()
    shape = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"batch must be None, a positive int or a tuple of positive ints, got {batch!r}")
    return shape


def params_spec(model: BodyModel, batch=None) -> BodyParams:
    """`BodyParams` of `jax.ShapeDtypeStruct`s with leading `batch` axes (what `compile_pose` lowers for)."""
    shape = _batch_shape(batch)
    dt = model.v_template.dtype
    return BodyParams(
        betas=jax.ShapeDtypeStruct(shape + (model.num_shape,), dt),
        pose=jax.ShapeDtypeStruct(shape + (model.num_joints, 3), dt),
        transl=jax.ShapeDtypeStruct(shape + (3,), dt),
        scale=jax.ShapeDtypeStruct(shape, dt),
    )


def _used_inputs(fn, args) -> list[bool]:
    """Which flat inputs of `fn(*args)` its traced program reads (top-level jaxpr operands and outputs)."""
    closed = jax.make_jaxpr(fn)(*args)
    jaxpr = closed.jaxpr
    read = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
    return [id(v) in read for v in jaxpr.invars]


class CompiledPose:
    """A posing program compiled for one batch shape, with its model constants bound.

    Call it with a `BodyParams` whose arrays carry the leading batch axes it was compiled for. It
    returns what `output` names (see `OUTPUTS`). Attributes: `output`, `batch` (tuple),
    `precision`, `constants` (the device arrays passed per call), `compiled` (the
    `jax.stages.Compiled`, for cost analysis or its HLO text).
    """

    def __init__(self, compiled, constants: tuple, output: str, batch: tuple[int, ...], precision):
        self.compiled = compiled
        self.constants = constants
        self.output = output
        self.batch = batch
        self.precision = precision

    @property
    def num_call_arrays(self) -> int:
        """Arrays handed to the runtime per call: the bound constants and the 4 BodyParams leaves."""
        return len(self.constants) + 4

    def __call__(self, params: BodyParams):
        try:
            return self.compiled(self.constants, params)
        except TypeError as e:  # AOT programs accept exactly the shapes they were lowered for
            got = jax.tree_util.tree_map(lambda x: tuple(jnp.shape(x)), params)
            raise ValueError(
                f"compile_pose program for batch {self.batch} got params with shapes {got}; compile one per batch shape"
            ) from e


def compile_pose(
    model: BodyModel,
    batch: int | tuple[int, ...] | None = None,
    *,
    output: str = "posed",
    precision="highest",
    embed_bytes: int = EMBED_BYTES,
) -> CompiledPose:
    """Compile `pose` (or `pose_joints`) of `model` for params with leading axes `batch`, model bound.

    Args:
      model: the body (after `with_fused_blend` / `with_tf32x3_blend` as loaded; nothing is changed).
      batch: leading axes of the params: None (one sample), an int, or a tuple (nested vmap).
      output: one of `OUTPUTS` ("posed" = the `PosedBody` of `pose`).
      precision: as `pose` (`skinning.GEMM_MODES` names or a jax precision); "fp32_3xtf32" uses the
        TF32 split only if the model carries it (`with_tf32x3_blend`).
      embed_bytes: model arrays up to this size that the program reads are closed over (embedded in
        the executable); larger ones are passed per call by reference. 0 passes every read array.
    Returns:
      `CompiledPose`: `f(params)` -> the output, values identical to
      `jax.jit(vmap(pose, in_axes=(None, 0)))(model, params)` for the same batch shape.
    """
    program, constants, spec, shape = bind_pose(
        model, batch, output=output, precision=precision, embed_bytes=embed_bytes
    )
    compiled = jax.jit(program).lower(constants, spec).compile()
    return CompiledPose(compiled, constants, output, shape, precision)


def bind_pose(
    model: BodyModel, batch=None, *, output: str = "posed", precision="highest", embed_bytes: int = EMBED_BYTES
):
    """What `compile_pose` compiles, without compiling: `(program, constants, params_spec, batch_shape)`.

    `program(constants, params)` is the traced function. `constants` are the model arrays it reads that
    are larger than `embed_bytes`; it closes over every other array it reads. Arguments and errors as
    in `compile_pose`.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: use one of {list(OUTPUTS)}")
    sk._gemm_precision(precision)  # one-line ValueError for an unknown name, before any tracing
    shape = _batch_shape(batch)
    if not isinstance(embed_bytes, int) or embed_bytes < 0:
        raise ValueError(f"embed_bytes must be a non-negative int, got {embed_bytes!r}")
    one = _output_fn(output, precision)
    leaves, treedef = jax.tree_util.tree_flatten(model)
    spec = params_spec(model, shape)

    def program(passed_idx: tuple[int, ...]):
        def run(passed, params):
            ls = list(leaves)  # closed over: only the leaves the program reads enter it
            for i, a in zip(passed_idx, passed):
                ls[i] = a
            m = jax.tree_util.tree_unflatten(treedef, ls)
            f = lambda p: one(m, p)  # noqa: E731
            for _ in shape:
                f = jax.vmap(f)
            return f(params)

        return run

    # Trace once with every leaf as an input to learn which ones the output reads.
    everything = tuple(range(len(leaves)))
    used = _used_inputs(program(everything), (tuple(leaves), spec))[: len(leaves)]
    passed_idx = tuple(i for i in everything if used[i] and leaves[i].nbytes > embed_bytes)
    return program(passed_idx), tuple(leaves[i] for i in passed_idx), spec, shape
