"""A synthetic static HOI for demos, notebooks and tests: the embedded Anny body in its rest pose
with a box under its right hand, written in the STATIC.npz layout (io/formats.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as onp

__all__ = ["box_mesh", "box_static"]


def box_mesh(extents=(0.4, 0.4, 0.4)) -> tuple[onp.ndarray, onp.ndarray]:
    """Closed, outward-oriented box centred at the origin: (vertices (8, 3), faces (12, 3))."""
    import trimesh

    m = trimesh.creation.box(extents=extents)
    return onp.asarray(m.vertices, onp.float32), onp.asarray(m.faces, onp.int32)


def box_static(path, *, offset=(0.0, 0.0, 0.0), size: float = 0.4, gap: float = 0.04) -> Path:
    """Write STATIC.npz: Anny (rest pose, average shape) with a `size` m box whose top is `gap` m under
    the right wrist joint, shifted by `offset` (metres). Returns the path."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.anny import load_anny
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.io.formats import write_static

    m = load_anny().model
    J = m.num_joints
    params = BodyParams(betas=jnp.zeros(m.num_shape), pose=jnp.zeros((J, 3)), transl=jnp.zeros(3), scale=jnp.ones(()))
    wrist = onp.asarray(jax.jit(pose)(m, params).joints[m.joint_names.index("wrist.R")])
    v, f = box_mesh((size, size, size))
    t = wrist - onp.array([0.0, size / 2 + gap, 0.0]) + onp.asarray(offset)
    write_static(path, body_model=onp.asarray("anny"), betas=onp.zeros(m.num_shape, onp.float32),
                 scale=onp.float32(1.0), global_orient=onp.zeros(3, onp.float32),
                 body_pose=onp.zeros(3 * (J - 1), onp.float32), transl=onp.zeros(3, onp.float32),
                 object_vertices=v, object_faces=f, object_rotation=onp.eye(3, dtype=onp.float32),
                 object_translation=t.astype(onp.float32))
    return Path(path)
