"""Body-model pytrees: constants (`BodyModel`), optimised inputs (`BodyParams`), outputs (`PosedBody`).

One representation serves SMPL-X and Anny (CONVENTIONS.md frames: metres, y up, facing +z):

* rest vertices   v(β) = v_template + shapedirs · β                       (linear blend shapes)
* rest joints     j(β) = j_template + j_shapedirs · β                     (SMPL-X: J_regressor folded in
                                                                            at load time, exact; Anny: bone heads)
* rest frames     R_rest(β) = identity (SMPL-X)  or  special-Procrustes(M0 + Mdirs · β) (Anny)
* pose correctives  v += posedirs · vec(R_local[1:] − I)                  (SMPL-X only; 0 rows for Anny)
* LBS with `lbs_weights`, then scale about the root joint and `transl` (CONVENTIONS.md "Human placement").

Extra points (SMPL-X's vertex joints and face landmarks, keypoint vertices) are barycentric
combinations of posed vertices: `extra_vertex_ids` (E, 3) and `extra_bary` (E, 3).
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float, Int

RestOrient = Literal["identity", "procrustes"]


def depth_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Group joints by depth in the kinematic tree, so FK unrolls over ~15 levels, not J joints."""
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        if p >= 0:
            if p >= j:
                raise ValueError(f"kinematic tree must be topologically sorted: parent {p} of joint {j}")
            depth[j] = depth[p] + 1
    levels = [[] for _ in range(max(depth) + 1)]
    for j, d in enumerate(depth):
        levels[d].append(j)
    return tuple(tuple(level) for level in levels)


@struct.dataclass
class BodyModel:
    """Constants of a skinned body model. Arrays are leaves; names and topology are static."""

    v_template: Float[Array, "V 3"]
    shapedirs: Float[Array, "V 3 S"]
    j_template: Float[Array, "J 3"]
    j_shapedirs: Float[Array, "J 3 S"]
    posedirs: Float[Array, "P V3"]  # P = 9 (J-1) for SMPL-X, 0 for Anny
    lbs_weights: Float[Array, "V J"]
    faces: Int[Array, "F 3"]
    extra_vertex_ids: Int[Array, "E 3"]
    extra_bary: Float[Array, "E 3"]
    rest_orient_template: Float[Array, "J 3 3"]  # Procrustes cross-covariance M0 (Anny) / identity
    rest_orient_dirs: Float[Array, "J 3 3 S"]  # its linear blend directions (Anny) / zeros
    # Optional sparse skinning (skinning.with_sparse_skinning): each vertex's K non-zero weights and
    # their joints. When set, `pose` skins with these (exact, faster); `lbs_weights` stays the truth.
    skin_joint_ids: Int[Array, "V K"] | None = None
    skin_joint_weights: Float[Array, "V K"] | None = None
    # Optional fused blend matrix [v_template; shapedirs as (S, 3V); posedirs], zero-padded for GEMM
    # alignment (skinning.with_fused_blend): one GEMM gives the posed rest mesh. A second copy of posedirs.
    blend_dirs: Float[Array, "Qp V3p"] | None = None
    extra_blend_dirs: Float[Array, "Qp E9"] | None = None  # its columns for the extra points' vertices
    # Opt-in (skinning.with_tf32x3_blend, never filled at load): [M_hi; M_lo; M_hi] TF32 split of
    # blend_dirs for `pose(..., precision="fp32_3xtf32")` (CUDA only); used only while blend_dirs is set too.
    blend_dirs_tf32x3: Float[Array, "Qp3 V3p"] | None = None
    parents: tuple[int, ...] = struct.field(pytree_node=False, default=())
    joint_names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    extra_names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    kind: str = struct.field(pytree_node=False, default="smplx")
    rest_orient: RestOrient = struct.field(pytree_node=False, default="identity")
    metadata: tuple[tuple[str, object], ...] = struct.field(pytree_node=False, default=())

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_shape(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def levels(self) -> tuple[tuple[int, ...], ...]:
        return depth_levels(self.parents)

    def meta(self, key: str, default=None):
        return dict(self.metadata).get(key, default)


@struct.dataclass
class BodyParams:
    """What an optimiser changes. Single sample; add batch axes with vmap.

    Attributes:
      betas: (S,) linear shape coefficients (SMPL-X: betas ++ expression; Anny: blend-shape
        coefficients from `body.anny.phenotype_to_coeffs`).
      pose: (J, 3) axis-angle local joint rotations; pose[0] is the global orientation, about the
        root joint of the shaped rest body.
      transl: (3,) world translation added after rotation and scaling (metres).
      scale: () human scale s of paper Sec. 4, applied about the root joint before `transl`.
    """

    betas: Float[Array, "S"]
    pose: Float[Array, "J 3"]
    transl: Float[Array, "3"]
    scale: Float[Array, ""]

    @classmethod
    def zeros(cls, model: BodyModel, dtype=jnp.float32) -> "BodyParams":
        return cls(
            betas=jnp.zeros((model.num_shape,), dtype),
            pose=jnp.zeros((model.num_joints, 3), dtype),
            transl=jnp.zeros((3,), dtype),
            scale=jnp.ones((), dtype),
        )


@struct.dataclass
class PosedBody:
    """Output of `pose`: world-frame geometry after skinning, scale and translation."""

    vertices: Float[Array, "V 3"]
    joints: Float[Array, "J 3"]  # the kinematic joints
    extra: Float[Array, "E 3"]  # barycentric extra points (vertex joints, landmarks)
    T_world_joint: Float[Array, "J 4 4"]  # posed joint frames (scale folded into translation only)

    @property
    def all_joints(self) -> Float[Array, "JE 3"]:
        """Joints followed by extra points: the layout the `smplx` package returns."""
        return jnp.concatenate([self.joints, self.extra], axis=-2)


def identity_orient(num_joints: int, num_shape: int) -> tuple[onp.ndarray, onp.ndarray]:
    """Rest-orientation arrays for models whose rest frames are axis-aligned (SMPL-X)."""
    return (
        onp.broadcast_to(onp.eye(3, dtype=onp.float32), (num_joints, 3, 3)).copy(),
        onp.zeros((num_joints, 3, 3, num_shape), onp.float32),
    )
