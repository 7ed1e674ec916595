"""Readers/writers for the motion stage's files (issue 5), validated so bad input fails with one line.

STATIC.npz — the static interaction X_s:
  body_model          "smplx" or "anny"
  betas (B,)          SMPL-X shape (or, for Anny, the blend coefficients of its phenotype)
  expression (E,)     SMPL-X only, optional
  phenotype_names (P,), phenotype_values (P,)   Anny only, optional (recorded, informative)
  scale ()            human scale s about the root joint (CONVENTIONS.md)
  global_orient (3,)  axis-angle
  body_pose (63,)     SMPL-X body joints 1..21 (Anny: 3·(J−1))
  jaw_pose, leye_pose, reye_pose (3,), left_hand_pose, right_hand_pose (45,)   optional (SMPL-X)
  transl (3,)         metres
  object_vertices (N,3), object_faces (M,3)   closed, outward-oriented, non-degenerate mesh
  object_rotation (3,3), object_translation (3,)   object frame -> world
KP.npz — body keypoints of the video (OpenPose-18 order, CONVENTIONS.md):
  keypoints (L,18,2) pixels, confidence (L,18) in [0,1], K (3,3), T_cam_world (4,4),
  image_size (2,) = (width, height), fps ()
motion.npz — the result:
  global_orient (L,3), body_pose (L,63 for SMPL-X), transl (L,3), object_rotation (L,3,3),
  object_translation (L,3), betas, expression (SMPL-X), scale, body_model, contact_pairs (C,4):
  rows (human vertex id, object-frame x, y, z) of the valid Eq. 3 pairs, fps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as onp

from anchorhoi_jax.geometry.mesh import MeshError, check_mesh


class FormatError(ValueError):
    """A motion-stage input or output file that does not match its documented format (one line)."""


def _load(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    try:
        with onp.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise FormatError(f"{p}: not a readable .npz file ({' '.join(str(e).split())})") from None


def _need(d: dict, name: str, key: str) -> onp.ndarray:
    if key not in d:
        raise FormatError(f"{name}: missing key '{key}'")
    return d[key]


def _float(d, name, key, shape, *, optional=False):
    """Fetch a finite float array of exactly `shape` (None entries match any size)."""
    if optional and key not in d:
        return None
    a = onp.asarray(_need(d, name, key))
    if a.dtype.kind not in "fiu":
        raise FormatError(f"{name}: '{key}' must be numeric, got dtype {a.dtype}")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise FormatError(f"{name}: '{key}' must have shape {want}, got {tuple(a.shape)}")
    a = a.astype(onp.float32)
    if not onp.all(onp.isfinite(a)):
        raise FormatError(f"{name}: '{key}' contains NaN or inf")
    return a


def _rotation(a, name, key):
    if abs(onp.linalg.det(a.astype(onp.float64)) - 1.0) > 1e-3 or onp.abs(a @ a.T - onp.eye(3)).max() > 1e-3:
        raise FormatError(f"{name}: '{key}' is not a rotation matrix (orthonormal, det +1)")


def read_keypoints(path) -> dict:
    """Read and validate KP.npz. Returns float32 arrays and python `fps`."""
    name = f"{Path(path).name}"
    d = _load(path)
    kp = _float(d, name, "keypoints", (None, 18, 2))
    L = kp.shape[0]
    if L < 3:
        raise FormatError(f"{name}: 'keypoints' has {L} frames; need at least 3")
    conf = _float(d, name, "confidence", (L, 18))
    if conf.min() < 0 or conf.max() > 1:
        raise FormatError(f"{name}: 'confidence' must lie in [0, 1], got range [{conf.min():.3g}, {conf.max():.3g}]")
    if not conf.any():
        raise FormatError(f"{name}: all keypoint confidences are zero; nothing to track")
    K = _float(d, name, "K", (3, 3))
    if K[0, 0] <= 0 or K[1, 1] <= 0 or onp.abs(K[2] - [0, 0, 1]).max() > 1e-6:
        raise FormatError(f"{name}: 'K' must be [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0")
    T = _float(d, name, "T_cam_world", (4, 4))
    if onp.abs(T[3] - [0, 0, 0, 1]).max() > 1e-6:
        raise FormatError(f"{name}: 'T_cam_world' last row must be [0, 0, 0, 1]")
    _rotation(T[:3, :3], name, "T_cam_world[:3,:3]")
    size = _float(d, name, "image_size", (2,))
    if (size <= 0).any():
        raise FormatError(f"{name}: 'image_size' must be positive (width, height), got {size.tolist()}")
    fps = float(_float(d, name, "fps", ()))
    if fps <= 0:
        raise FormatError(f"{name}: 'fps' must be positive, got {fps}")
    return {"keypoints": kp, "confidence": conf, "K": K, "T_cam_world": T, "image_size": size, "fps": fps}


SMPLX_OPTIONAL_POSES = {"jaw_pose": 3, "leye_pose": 3, "reye_pose": 3, "left_hand_pose": 45, "right_hand_pose": 45}


def read_static(path) -> dict:
    """Read and validate STATIC.npz (mesh checked: watertight, non-degenerate, outward)."""
    name = f"{Path(path).name}"
    d = _load(path)
    body = str(_need(d, name, "body_model"))
    if body not in ("smplx", "anny"):
        raise FormatError(f"{name}: 'body_model' must be 'smplx' or 'anny', got {body!r}")
    out = {"body_model": body}
    out["betas"] = _float(d, name, "betas", (None,))
    out["scale"] = _float(d, name, "scale", ())
    if out["scale"] <= 0:
        raise FormatError(f"{name}: 'scale' must be positive, got {float(out['scale'])}")
    out["global_orient"] = _float(d, name, "global_orient", (3,))
    bp = _float(d, name, "body_pose", (None,))
    if body == "smplx" and bp.shape[0] != 63:
        raise FormatError(f"{name}: 'body_pose' must have shape (63,) for SMPL-X, got {bp.shape}")
    if bp.shape[0] % 3:
        raise FormatError(f"{name}: 'body_pose' length must be a multiple of 3, got {bp.shape[0]}")
    out["body_pose"] = bp
    out["transl"] = _float(d, name, "transl", (3,))
    if body == "smplx":
        out["expression"] = _float(d, name, "expression", (None,), optional=True)
        for k, n in SMPLX_OPTIONAL_POSES.items():
            out[k] = _float(d, name, k, (n,), optional=True)
    else:
        if "phenotype_values" in d:
            out["phenotype_values"] = _float(d, name, "phenotype_values", (None,))
            out["phenotype_names"] = [str(x) for x in onp.asarray(_need(d, name, "phenotype_names")).reshape(-1)]
    v = _float(d, name, "object_vertices", (None, 3))
    f = onp.asarray(_need(d, name, "object_faces"))
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise FormatError(f"{name}: 'object_faces' must be an integer array of shape (M, 3), got {f.dtype} {tuple(f.shape)}")
    try:
        check_mesh(v, f, name=f"{name}: object mesh")
    except MeshError as e:
        raise FormatError(str(e)) from None
    out["object_vertices"], out["object_faces"] = v, f.astype(onp.int32)
    out["object_rotation"] = _float(d, name, "object_rotation", (3, 3))
    _rotation(out["object_rotation"], name, "object_rotation")
    out["object_translation"] = _float(d, name, "object_translation", (3,))
    return out


def write_static(path, **arrays) -> None:
    """Write STATIC.npz (validated by reading it back)."""
    _atomic_savez(path, arrays)
    read_static(path)


def write_keypoints(path, **arrays) -> None:
    """Write KP.npz (validated by reading it back)."""
    _atomic_savez(path, arrays)
    read_keypoints(path)


def write_motion(path, *, global_orient, body_pose, transl, object_rotation, object_translation, betas, scale,
                 body_model: str, contact_pairs, fps: float, expression=None, extra: dict | None = None) -> None:
    """Write motion.npz after checking that every per-frame array has the same length L."""
    L = onp.asarray(global_orient).shape[0]
    shapes = {"global_orient": (L, 3), "transl": (L, 3), "object_rotation": (L, 3, 3), "object_translation": (L, 3)}
    arrays = dict(global_orient=global_orient, transl=transl, object_rotation=object_rotation, object_translation=object_translation)
    for k, s in shapes.items():
        if onp.asarray(arrays[k]).shape != s:
            raise FormatError(f"motion.npz: '{k}' must have shape {s}, got {onp.asarray(arrays[k]).shape}")
    bp = onp.asarray(body_pose).reshape(L, -1)
    out = {k: onp.asarray(v, onp.float32) for k, v in arrays.items()}
    out.update(body_pose=bp.astype(onp.float32), betas=onp.asarray(betas, onp.float32),
               scale=onp.asarray(scale, onp.float32).reshape(()), body_model=onp.asarray(body_model),
               contact_pairs=onp.asarray(contact_pairs, onp.float32).reshape(-1, 4), fps=onp.asarray(fps, onp.float32))
    if expression is not None:
        out["expression"] = onp.asarray(expression, onp.float32)
    out.update(extra or {})
    _atomic_savez(path, out)


def read_motion(path) -> dict:
    """Read and validate motion.npz."""
    name = f"{Path(path).name}"
    d = _load(path)
    go = _float(d, name, "global_orient", (None, 3))
    L = go.shape[0]
    out = {"global_orient": go, "body_pose": _float(d, name, "body_pose", (L, None)),
           "transl": _float(d, name, "transl", (L, 3)), "object_rotation": _float(d, name, "object_rotation", (L, 3, 3)),
           "object_translation": _float(d, name, "object_translation", (L, 3)), "betas": _float(d, name, "betas", (None,)),
           "scale": _float(d, name, "scale", ()), "contact_pairs": _float(d, name, "contact_pairs", (None, 4)),
           "fps": float(_float(d, name, "fps", ())), "body_model": str(_need(d, name, "body_model"))}
    if out["body_pose"].shape[1] % 3:
        raise FormatError(f"{name}: 'body_pose' width must be a multiple of 3, got {out['body_pose'].shape[1]}")
    out["expression"] = _float(d, name, "expression", (None,), optional=True)
    return out


def _atomic_savez(path, arrays: dict) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.npz")
    onp.savez(tmp, **arrays)
    os.replace(tmp, p)
