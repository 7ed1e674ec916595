"""Synthetic inputs for the pipeline tests: an Anny static instance touching a box."""

from __future__ import annotations

from pathlib import Path

import numpy as onp

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"
SMOKE_ANIMATE = REPO / "configs" / "smoke_animate.yaml"


def box_mesh(extents=(0.4, 0.4, 0.4)):
    import trimesh

    m = trimesh.creation.box(extents=extents)
    return onp.asarray(m.vertices, onp.float32), onp.asarray(m.faces, onp.int32)


def anny_static(path: Path, *, offset=(0.0, 0.0, 0.0)) -> Path:
    """Anny in its rest pose with a 40 cm box under its right hand, written as STATIC.npz."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.anny import load_anny
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.io.formats import write_static

    body = load_anny()
    m = body.model
    J = m.num_joints
    params = BodyParams(betas=jnp.zeros(m.num_shape), pose=jnp.zeros((J, 3)), transl=jnp.zeros(3), scale=jnp.ones(()))
    posed = jax.jit(pose)(m, params)
    wrist = onp.asarray(posed.joints[m.joint_names.index("wrist.R")])
    v, f = box_mesh()
    t = wrist - onp.array([0.0, 0.2 + 0.04, 0.0]) + onp.asarray(offset)  # box top ~4 cm under the wrist joint
    write_static(path, body_model=onp.asarray("anny"), betas=onp.zeros(m.num_shape, onp.float32),
                 scale=onp.float32(1.0), global_orient=onp.zeros(3, onp.float32),
                 body_pose=onp.zeros(3 * (J - 1), onp.float32), transl=onp.zeros(3, onp.float32),
                 object_vertices=v, object_faces=f, object_rotation=onp.eye(3, dtype=onp.float32),
                 object_translation=t.astype(onp.float32))
    return path
