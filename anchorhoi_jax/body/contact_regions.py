"""Contact-candidate vertex sets per body (hands, feet, buttocks, back of thighs, back, forearms).

After the heuristic contact regions of PROX (Hassan et al. 2019), which hand-picked the SMPL-X
vertices of the body parts that touch a scene (soles, buttocks and back of the thighs when
sitting, back when leaning or lying, hands and forearms when holding or resting). We derive them
geometrically instead, so the same rule works for any body in the shared representation (real or
synthetic SMPL-X, Anny): each rest vertex gets

* the semantic part of its dominant skinning bone (argmax of `lbs_weights`, `SEMANTIC_PARTS`),
* its area-weighted rest normal (the rest body faces +z, y up: CONVENTIONS.md),
* its height relative to the pelvis, hip and knee joints,

and a region is a part filter plus a side-of-the-body (normal) and height filter:

| region          | dominant bone part            | normal            | height                              |
|-----------------|-------------------------------|-------------------|-------------------------------------|
| left/right_hand | hand                          | any               | any                                 |
| left/right_foot | foot                          | n_y < −0.5 (sole) | any                                 |
| buttocks        | pelvis, thigh, torso          | n_z < −0.3 (back) | between ¼ hip→knee below the hips and just above the pelvis |
| back_of_thighs  | thigh                         | n_z < −0.3        | from 15 % above the knee up to the buttocks |
| back            | torso                         | n_z < −0.5        | above the buttocks, below the neck joint |
| left/right_forearm | forearm                    | any               | any                                 |

These are candidate sets for the contact term (paper Eq. 3); `union` joins them.
"""

from __future__ import annotations

import numpy as onp

from anchorhoi_jax.body.model import BodyModel

# Semantic part of each skinning bone, per model kind ("L"/"R" suffixes for sides).
_SMPLX_FINGERS = [f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]
_ANNY_FINGERS = [f"finger{f}-{i}" for f in (1, 2, 3, 4, 5) for i in (1, 2, 3)] + [f"metacarpal{i}" for i in (1, 2, 3, 4)]
_ANNY_TOES = ["toe1-1", "toe1-2"] + [f"toe{t}-{i}" for t in (2, 3, 4, 5) for i in (1, 2, 3)]  # big toe: 2 bones

SEMANTIC_PARTS: dict[str, dict[str, list[str]]] = {
    "smplx": {
        "pelvis": ["pelvis"],
        "torso": ["spine1", "spine2", "spine3"],
        "head": ["neck", "head", "jaw", "left_eye_smplhf", "right_eye_smplhf"],
        **{f"{p}.{s[0].upper()}": [f"{s}_{b}" for b in bones] for s in ("left", "right") for p, bones in (
            ("thigh", ["hip"]), ("shin", ["knee"]), ("foot", ["ankle", "foot"]),
            ("upperarm", ["collar", "shoulder"]), ("forearm", ["elbow"]), ("hand", ["wrist", *_SMPLX_FINGERS]),
        )},
    },  # fmt: skip
    "anny": {
        "pelvis": ["root", "pelvis.L", "pelvis.R", "spine05"],
        "torso": ["spine04", "spine03", "spine02", "spine01"],
        "head": ["neck01", "neck02", "neck03", "head", "eye.L", "eye.R"],
        **{f"{p}.{s}": [f"{b}.{s}" for b in bones] for s in ("L", "R") for p, bones in (
            ("thigh", ["upperleg01", "upperleg02"]), ("shin", ["lowerleg01", "lowerleg02"]),
            ("foot", ["foot", *_ANNY_TOES]), ("upperarm", ["clavicle", "shoulder01", "upperarm01", "upperarm02"]),
            ("forearm", ["lowerarm01", "lowerarm02"]), ("hand", ["wrist", *_ANNY_FINGERS]),
        )},
    },  # fmt: skip
}
# Joints that locate the pelvis, hips and knees (heights of the sitting regions).
_LANDMARK_JOINTS = {
    "smplx": {"pelvis": "pelvis", "hip.L": "left_hip", "hip.R": "right_hip", "knee.L": "left_knee",
              "knee.R": "right_knee", "neck": "neck"},
    "anny": {"pelvis": "root", "hip.L": "upperleg01.L", "hip.R": "upperleg01.R", "knee.L": "lowerleg01.L",
             "knee.R": "lowerleg01.R", "neck": "neck01"},
}  # fmt: skip

REGION_NAMES = (
    "left_hand", "right_hand", "left_foot", "right_foot", "buttocks", "back_of_thighs", "back",
    "left_forearm", "right_forearm",
)  # fmt: skip


def vertex_normals(vertices: onp.ndarray, faces: onp.ndarray) -> onp.ndarray:
    """Unit area-weighted vertex normals (V, 3) of a triangle mesh (counter-clockwise = outward)."""
    v = onp.asarray(vertices, onp.float64)
    f = onp.asarray(faces)
    fn = onp.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # |fn| = 2 area
    n = onp.zeros_like(v)
    for k in range(3):
        onp.add.at(n, f[:, k], fn)
    return n / onp.maximum(onp.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def vertex_parts(model: BodyModel) -> tuple[onp.ndarray, tuple[str, ...]]:
    """Semantic part index of every vertex (its dominant skinning bone's part) and the part names."""
    if model.kind not in SEMANTIC_PARTS:
        raise ValueError(f"no contact regions for body model kind {model.kind!r}; expected 'smplx' or 'anny'")
    table = SEMANTIC_PARTS[model.kind]
    parts = tuple(table)
    bone_part = onp.full((model.num_joints,), -1)
    for i, (part, bones) in enumerate(table.items()):
        for b in bones:
            if b not in model.joint_names:
                raise ValueError(f"{model.kind} model has no bone {b!r} (part {part!r})")
            bone_part[model.joint_names.index(b)] = i
    dominant = onp.asarray(model.lbs_weights).argmax(axis=1)
    return bone_part[dominant], parts


def contact_regions(model_or_body, betas: onp.ndarray | None = None) -> dict[str, onp.ndarray]:
    """PROX-style contact-candidate vertex indices of a body in its rest pose.

    Args:
      model_or_body: a SMPL-X `BodyModel` or an `AnnyBody` (or its `.model`).
      betas: optional shape coefficients (S,) of the rest body the rules are evaluated on
        (default: the template). The index sets are meant to be fixed per body, so evaluate them
        once, outside any jitted code.
    Returns:
      dict region name -> sorted int32 vertex indices (REGION_NAMES), plus "union".
    """
    model = getattr(model_or_body, "model", model_or_body)
    if not isinstance(model, BodyModel):
        raise TypeError(f"expected a BodyModel or an AnnyBody, got {type(model_or_body).__name__}")
    part, parts = vertex_parts(model)
    v = onp.asarray(model.v_template, onp.float64)
    j = onp.asarray(model.j_template, onp.float64)
    if betas is not None:
        b = onp.asarray(betas, onp.float64)
        if b.shape != (model.num_shape,):
            raise ValueError(f"betas must have shape ({model.num_shape},), got {b.shape}")
        v = v + onp.asarray(model.shapedirs, onp.float64) @ b
        j = j + onp.asarray(model.j_shapedirs, onp.float64) @ b
    n = vertex_normals(v, onp.asarray(model.faces))
    lm = {k: j[model.joint_names.index(name)] for k, name in _LANDMARK_JOINTS[model.kind].items()}
    y = v[:, 1]
    y_pelvis = lm["pelvis"][1]
    y_hip = 0.5 * (lm["hip.L"][1] + lm["hip.R"][1])
    y_knee = 0.5 * (lm["knee.L"][1] + lm["knee.R"][1])
    thigh = y_hip - y_knee
    is_part = {name: part == i for i, name in enumerate(parts)}
    backward = n[:, 2] < -0.3
    butt_lo = y_hip - 0.25 * thigh
    butt_hi = max(y_pelvis, y_hip) + 0.1 * thigh
    regions = {
        "left_hand": is_part["hand.L"],
        "right_hand": is_part["hand.R"],
        "left_foot": is_part["foot.L"] & (n[:, 1] < -0.5),
        "right_foot": is_part["foot.R"] & (n[:, 1] < -0.5),
        "buttocks": (is_part["pelvis"] | is_part["thigh.L"] | is_part["thigh.R"] | is_part["torso"])
        & backward
        & (y > butt_lo)
        & (y < butt_hi),
        "back_of_thighs": (is_part["thigh.L"] | is_part["thigh.R"]) & backward & (y <= butt_lo) & (y > y_knee + 0.15 * thigh),
        "back": is_part["torso"] & (n[:, 2] < -0.5) & (y >= butt_hi) & (y < lm["neck"][1]),
        "left_forearm": is_part["forearm.L"],
        "right_forearm": is_part["forearm.R"],
    }
    out = {k: onp.nonzero(regions[k])[0].astype(onp.int32) for k in REGION_NAMES}
    out["union"] = onp.unique(onp.concatenate([out[k] for k in REGION_NAMES])).astype(onp.int32)
    return out
