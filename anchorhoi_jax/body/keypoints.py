"""Keypoint layouts (OpenPose BODY-18, COCO-17, BlazePose-33) regressed from SMPL-X and Anny bodies.

A keypoint is a fixed linear combination of posed points: joints and extra points
(`PosedBody.all_joints`) and, for Anny, mesh vertices. `keypoint_regressor(model, layout)` returns
those weights as a `KeypointRegressor` pytree; `body_keypoints(model, posed, layout)` applies them.
Both are pure JAX (Anny's vertex weights come from its traced `AnnyExtras`, so they jit and vmap).
Left/right are the subject's own sides (left toward +x in the project frame).

Which point produces each keypoint
----------------------------------
SMPL-X names are those of the `smplx` package's 127-point output (smplx/joint_names.py: 55 joints,
21 vertex joints, 51 face landmarks). Anny names are its bones (bone head) or rows of its COCO
regressor (`coco:` = anny/data/keypoints/coco.pth, a vertex average), or fixed vertices (`v:`).

| keypoint (BODY-18 order) | SMPL-X                        | Anny                                   |
|--------------------------|-------------------------------|----------------------------------------|
| 0 nose                   | nose (vertex joint)           | coco:nose                              |
| 1 neck                   | neck (joint 12, as SMPLify-X) | ½(coco:left_shoulder + coco:right_shoulder) (OpenPose's own neck definition) |
| 2/5 r/l shoulder         | right/left_shoulder           | coco:right/left_shoulder               |
| 3/6 r/l elbow            | right/left_elbow              | coco:right/left_elbow                  |
| 4/7 r/l wrist            | right/left_wrist              | coco:right/left_wrist                  |
| 8/11 r/l hip             | right/left_hip                | coco:right/left_hip                    |
| 9/12 r/l knee            | right/left_knee               | coco:right/left_knee                   |
| 10/13 r/l ankle          | right/left_ankle              | coco:right/left_ankle                  |
| 14/15 r/l eye            | right/left_eye (vertex joint) | coco:right/left_eye                    |
| 16/17 r/l ear            | right/left_ear (vertex joint) | coco:right/left_ear                    |

COCO-17 uses the same sources (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
BlazePose-33 adds:

| keypoint                     | SMPL-X                                  | Anny                                   |
|------------------------------|-----------------------------------------|----------------------------------------|
| l/r eye inner                | left_eye4 / right_eye4 (landmarks)      | v:13578 / v:13650 (medial end of the eye ring) |
| l/r eye outer                | left_eye1 / right_eye1 (landmarks)      | v:11467 / v:4865 (lateral end of the eye ring) |
| l/r mouth (mouth_left/right) | left_mouth_1 / right_mouth_1            | v:7256 / v:527 (lateral front of the mouth cavity) |
| l/r pinky (knuckle)          | left/right_pinky1                       | finger5-1.L/.R                         |
| l/r index (knuckle)          | left/right_index1                       | finger2-1.L/.R                         |
| l/r thumb                    | left/right_thumb2                       | finger1-2.L/.R                         |
| l/r heel                     | left/right_heel (vertex joint)          | coco:left/right_heel                   |
| l/r foot index               | left/right_big_toe (vertex joint)       | coco:left/right_big_toe                |

(Anny's fixed vertices were chosen on the anny 0.6.2 rest mesh as the extreme points of the COCO eye
regressor's support and of anny's "mouth_cavity" segment; tests check where they lie.)
"""

from __future__ import annotations

from typing import Literal, Union

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.body.model import BodyModel, PosedBody

HIGHEST = jax.lax.Precision.HIGHEST

Layout = Literal["openpose18", "coco17", "blazepose33"]

OPENPOSE18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
BLAZEPOSE33 = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)  # fmt: skip
LAYOUTS: dict[str, tuple[str, ...]] = {"openpose18": OPENPOSE18, "coco17": COCO17, "blazepose33": BLAZEPOSE33}

# The smplx package's 127 output points (joints ++ vertex joints ++ landmarks), smplx/joint_names.py.
SMPLX_POINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    *[f"left_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)],
    *[f"right_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)],
    "nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    *[f"{s}_{f}" for s in ("left", "right") for f in ("thumb", "index", "middle", "ring", "pinky")],
    *[f"right_eye_brow{i}" for i in (1, 2, 3, 4, 5)], *[f"left_eye_brow{i}" for i in (5, 4, 3, 2, 1)],
    "nose1", "nose2", "nose3", "nose4", "right_nose_2", "right_nose_1", "nose_middle", "left_nose_1",
    "left_nose_2", *[f"right_eye{i}" for i in (1, 2, 3, 4, 5, 6)],
    "left_eye4", "left_eye3", "left_eye2", "left_eye1", "left_eye6", "left_eye5",
    "right_mouth_1", "right_mouth_2", "right_mouth_3", "mouth_top", "left_mouth_3", "left_mouth_2",
    "left_mouth_1", "left_mouth_5", "left_mouth_4", "mouth_bottom", "right_mouth_4", "right_mouth_5",
    "right_lip_1", "right_lip_2", "lip_top", "left_lip_2", "left_lip_1", "left_lip_3", "lip_bottom",
    "right_lip_3",
)  # fmt: skip

# A source term: (kind, name, weight); kind "p" = a point of all_joints by name, "coco" = an Anny
# COCO-regressor row, "v" = an Anny vertex index.
Term = tuple[str, Union[str, int], float]

_SMPLX_SPECIAL: dict[str, list[Term]] = {
    "left_eye_inner": [("p", "left_eye4", 1.0)],
    "left_eye_outer": [("p", "left_eye1", 1.0)],
    "right_eye_inner": [("p", "right_eye4", 1.0)],
    "right_eye_outer": [("p", "right_eye1", 1.0)],
    "mouth_left": [("p", "left_mouth_1", 1.0)],
    "mouth_right": [("p", "right_mouth_1", 1.0)],
    "left_pinky": [("p", "left_pinky1", 1.0)],
    "right_pinky": [("p", "right_pinky1", 1.0)],
    "left_index": [("p", "left_index1", 1.0)],
    "right_index": [("p", "right_index1", 1.0)],
    "left_thumb": [("p", "left_thumb2", 1.0)],
    "right_thumb": [("p", "right_thumb2", 1.0)],
    "left_foot_index": [("p", "left_big_toe", 1.0)],
    "right_foot_index": [("p", "right_big_toe", 1.0)],
}

ANNY_VERTEX_IDS = {
    "left_eye_inner": 13578,
    "left_eye_outer": 11467,
    "right_eye_inner": 13650,
    "right_eye_outer": 4865,
    "mouth_left": 7256,
    "mouth_right": 527,
}
_ANNY_SPECIAL: dict[str, list[Term]] = {
    "neck": [("coco", "left_shoulder", 0.5), ("coco", "right_shoulder", 0.5)],
    **{k: [("v", i, 1.0)] for k, i in ANNY_VERTEX_IDS.items()},
    "left_pinky": [("p", "finger5-1.L", 1.0)],
    "right_pinky": [("p", "finger5-1.R", 1.0)],
    "left_index": [("p", "finger2-1.L", 1.0)],
    "right_index": [("p", "finger2-1.R", 1.0)],
    "left_thumb": [("p", "finger1-2.L", 1.0)],
    "right_thumb": [("p", "finger1-2.R", 1.0)],
    "left_foot_index": [("coco", "left_big_toe", 1.0)],
    "right_foot_index": [("coco", "right_big_toe", 1.0)],
}


def _spec(kind: str, name: str) -> list[Term]:
    if kind == "smplx":
        return _SMPLX_SPECIAL.get(name, [("p", name, 1.0)])
    return _ANNY_SPECIAL.get(name, [("coco", name, 1.0)])


@struct.dataclass
class KeypointRegressor:
    """keypoints = point_weights · all_joints + vertex_weights · vertices.

    Attributes:
      point_weights: (K, JE) weights over `PosedBody.all_joints` (joints ++ extra points).
      vertex_weights: (K, V) weights over posed vertices, or (K, 0) when no keypoint needs vertices
        (then joints-only posing, `pose_joints`, suffices).
      names: keypoint names in layout order.
    """

    point_weights: Float[Array, "K JE"]
    vertex_weights: Float[Array, "K V"]
    names: tuple[str, ...] = struct.field(pytree_node=False, default=())

    @property
    def needs_vertices(self) -> bool:
        return self.vertex_weights.shape[-1] > 0


def _resolve(model_kind_or_model) -> tuple[str, tuple[str, ...], object]:
    """(kind, point names, anny extras or None) for a kind string, a BodyModel or an AnnyBody."""
    from anchorhoi_jax.body.anny import AnnyBody, load_anny  # noqa: PLC0415 (avoid import cycle)

    if isinstance(model_kind_or_model, str):
        if model_kind_or_model == "smplx":
            return "smplx", SMPLX_POINT_NAMES, None
        if model_kind_or_model == "anny":
            body = load_anny()
            return "anny", body.model.joint_names + body.model.extra_names, body.extras
        raise ValueError(f"unknown body model kind {model_kind_or_model!r}; expected 'smplx' or 'anny'")
    if isinstance(model_kind_or_model, AnnyBody):
        m = model_kind_or_model.model
        return "anny", m.joint_names + m.extra_names, model_kind_or_model.extras
    if isinstance(model_kind_or_model, BodyModel):
        if model_kind_or_model.kind == "anny":
            raise ValueError("Anny keypoints need its COCO regressor: pass the AnnyBody from load_anny(), not .model")
        if model_kind_or_model.kind != "smplx":
            raise ValueError(f"unknown body model kind {model_kind_or_model.kind!r}; expected 'smplx' or 'anny'")
        return "smplx", model_kind_or_model.joint_names + model_kind_or_model.extra_names, None
    raise TypeError(f"expected 'smplx', 'anny', a BodyModel or an AnnyBody, got {type(model_kind_or_model).__name__}")


def keypoint_regressor(model_kind_or_model, layout: Layout) -> KeypointRegressor:
    """Weights that produce `layout`'s keypoints from a posed body of this model.

    Args:
      model_kind_or_model: "smplx" (the smplx package's 127-point layout), "anny" (loads the cached
        Anny body), a SMPL-X `BodyModel` (its joint_names ++ extra_names) or an `AnnyBody`.
      layout: "openpose18", "coco17" or "blazepose33".
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    kind, point_names, extras = _resolve(model_kind_or_model)
    names = LAYOUTS[layout]
    index = {n: i for i, n in enumerate(point_names)}
    P = onp.zeros((len(names), len(point_names)), onp.float32)
    coco_rows: list[tuple[int, int, float]] = []
    vert_terms: list[tuple[int, int, float]] = []
    for k, name in enumerate(names):
        for src, key, w in _spec(kind, name):
            if src == "p":
                if key not in index:
                    raise ValueError(f"{kind} model has no point {key!r} needed for {layout} keypoint {name!r}")
                P[k, index[key]] += w
            elif src == "coco":
                coco_rows.append((k, extras.keypoint_names.index(key), w))
            else:
                vert_terms.append((k, int(key), w))
    if kind == "smplx":
        return KeypointRegressor(jnp.asarray(P), jnp.zeros((len(names), 0), jnp.float32), names)
    # Anny: combine rows of its (traced) COCO regressor with fixed vertices; stays jit-able.
    reg = extras.keypoint_regressor
    combo = onp.zeros((len(names), reg.shape[0]), onp.float32)
    for k, r, w in coco_rows:
        combo[k, r] += w
    W = jnp.matmul(jnp.asarray(combo, reg.dtype), reg, precision=HIGHEST)
    if vert_terms:
        ks, vs, ws = (onp.asarray(x) for x in zip(*vert_terms))
        W = W.at[ks, vs].add(jnp.asarray(ws, reg.dtype))
    return KeypointRegressor(jnp.asarray(P, reg.dtype), W, names)


def regress_keypoints(
    reg: KeypointRegressor, all_joints: Float[Array, "JE 3"], vertices: Float[Array, "V 3"] | None = None
) -> Float[Array, "K 3"]:
    """Keypoints (K, 3) from posed joints ++ extra points and, if the regressor needs them, vertices.

    With a joints-only regressor (SMPL-X) this pairs with the `pose_joints` fast path.
    """
    with jax.named_scope("body.keypoints"):
        kp = jnp.matmul(reg.point_weights, all_joints, precision=HIGHEST)
        if reg.needs_vertices:
            if vertices is None:
                raise ValueError("this keypoint regressor needs posed vertices (Anny): pass vertices=")
            kp = kp + jnp.matmul(reg.vertex_weights, vertices, precision=HIGHEST)
        return kp


def apply_regressor(reg: KeypointRegressor, posed: PosedBody) -> Float[Array, "K 3"]:
    """Keypoints (K, 3) of one posed body (vmap for batches)."""
    return regress_keypoints(reg, posed.all_joints, posed.vertices)


def body_keypoints(model_kind_or_model, posed: PosedBody, layout: Layout) -> Float[Array, "K 3"]:
    """`layout`'s keypoints (K, 3), world frame, of a posed SMPL-X or Anny body."""
    return apply_regressor(keypoint_regressor(model_kind_or_model, layout), posed)
