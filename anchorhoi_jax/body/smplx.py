"""SMPL-X loader: the standard `SMPLX_{GENDER}.npz` (or, opted in, `.pkl`) files into a `BodyModel`.

Everything the `smplx` package computes is reproduced from the same arrays, in the same order:

* shape space = the first `num_betas` of the 300 body directions followed by the first
  `num_expression` of the 100 expression directions (index 300:), as `smplx.SMPLX` concatenates them;
* the joint regressor is folded into `j_template = J_regressor · v_template` and
  `j_shapedirs = J_regressor · shapedirs` (exact: joints are linear in the shaped vertices);
* `posedirs` as (486, V·3), the layout `smplx` multiplies with vec(R[1:] − I);
* the 127 points `smplx.SMPLX(use_face_contour=False)` returns: 55 joints, 21 vertex joints
  (nose, eyes, ears, toes, heels, fingertips) and 51 barycentric face landmarks;
* hand PCA and the hand mean pose (`flat_hand_mean`) in `smplx_full_pose`.

Reading `.pkl` needs `allow_pickle=True` because unpickling can run code; we use a restricted
unpickler that only builds NumPy/SciPy-sparse arrays and maps chumpy objects to their arrays, so
chumpy is not needed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.body.model import BodyModel, BodyParams, identity_orient
from anchorhoi_jax.body.skinning import sparse_skinning, with_fused_blend

NUM_JOINTS = 55
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)  # 486
SHAPE_SPACE_DIM = 300
EXPRESSION_SPACE_DIM = 100
GENDERS = ("neutral", "male", "female")

SMPLX_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)  # fmt: skip

# The vertex joints `smplx` appends after the 55 joints, in its order, with the key of its
# vertex_ids table (the ids themselves are those of the SMPL-X topology).
VERTEX_JOINTS = (
    ("nose", "nose", 9120), ("right_eye", "reye", 9929), ("left_eye", "leye", 9448),
    ("right_ear", "rear", 616), ("left_ear", "lear", 6),
    ("left_big_toe", "LBigToe", 5770), ("left_small_toe", "LSmallToe", 5780), ("left_heel", "LHeel", 8846),
    ("right_big_toe", "RBigToe", 8463), ("right_small_toe", "RSmallToe", 8474), ("right_heel", "RHeel", 8635),
    ("left_thumb", "lthumb", 5361), ("left_index", "lindex", 4933), ("left_middle", "lmiddle", 5058),
    ("left_ring", "lring", 5169), ("left_pinky", "lpinky", 5286),
    ("right_thumb", "rthumb", 8079), ("right_index", "rindex", 7669), ("right_middle", "rmiddle", 7794),
    ("right_ring", "rring", 7905), ("right_pinky", "rpinky", 8022),
)  # fmt: skip

LANDMARK_NAMES = (
    "right_eye_brow1", "right_eye_brow2", "right_eye_brow3", "right_eye_brow4", "right_eye_brow5",
    "left_eye_brow5", "left_eye_brow4", "left_eye_brow3", "left_eye_brow2", "left_eye_brow1",
    "nose1", "nose2", "nose3", "nose4", "right_nose_2", "right_nose_1", "nose_middle", "left_nose_1",
    "left_nose_2", "right_eye1", "right_eye2", "right_eye3", "right_eye4", "right_eye5", "right_eye6",
    "left_eye4", "left_eye3", "left_eye2", "left_eye1", "left_eye6", "left_eye5",
    "right_mouth_1", "right_mouth_2", "right_mouth_3", "mouth_top", "left_mouth_3", "left_mouth_2",
    "left_mouth_1", "left_mouth_5", "left_mouth_4", "mouth_bottom", "right_mouth_4", "right_mouth_5",
    "right_lip_1", "right_lip_2", "lip_top", "left_lip_2", "left_lip_1", "left_lip_3", "lip_bottom",
    "right_lip_3",
)  # fmt: skip

SMPLX_EXTRA_NAMES = tuple(n for n, _, _ in VERTEX_JOINTS) + LANDMARK_NAMES

REQUIRED_KEYS = (
    "v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs",
    "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx", "lmk_bary_coords",
)  # fmt: skip


class SmplxFileError(ValueError):
    """A file that is not a usable SMPL-X model (wrong keys, shapes or values)."""


class SmplxParamError(ValueError):
    """Parameters that cannot be posed (wrong sizes, NaN or inf)."""


@struct.dataclass
class SmplxExtras:
    """SMPL-X specifics that sit outside `BodyModel`: hand PCA and the hand mean pose."""

    hands_components_l: Float[Array, "C 45"]  # first `num_pca_comps` rows (all 45 if not use_pca)
    hands_components_r: Float[Array, "C 45"]
    hands_mean_l: Float[Array, "45"]  # zeros when flat_hand_mean
    hands_mean_r: Float[Array, "45"]
    use_pca: bool = struct.field(pytree_node=False, default=False)
    num_pca_comps: int = struct.field(pytree_node=False, default=6)
    flat_hand_mean: bool = struct.field(pytree_node=False, default=False)
    num_betas: int = struct.field(pytree_node=False, default=10)
    num_expression: int = struct.field(pytree_node=False, default=10)
    gender: str = struct.field(pytree_node=False, default="neutral")


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------


class _ChumpyArray:
    """Stand-in for chumpy objects: keeps the array a `Ch` was built from (its `x`)."""

    def __init__(self, *args, **kwargs):
        self.data = None

    def __setstate__(self, state):
        if isinstance(state, dict) and "x" in state:
            self.data = onp.asarray(state["x"])
        elif isinstance(state, dict) and "a" in state and "idxs" in state:  # chumpy reordering.Select
            src = state["a"].data if isinstance(state["a"], _ChumpyArray) else onp.asarray(state["a"])
            self.data = src.reshape(-1)[onp.asarray(state["idxs"]).reshape(-1)].reshape(state.get("preferred_shape", -1))
        else:
            self.data = None


_PICKLE_ALLOWED = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("copy_reg", "_reconstructor"): ("copyreg", "_reconstructor"),
    ("copyreg", "_reconstructor"): ("copyreg", "_reconstructor"),
    ("__builtin__", "object"): ("builtins", "object"),
    ("builtins", "object"): ("builtins", "object"),
    ("_codecs", "encode"): ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    ("__builtin__", "set"): ("builtins", "set"),  # chumpy object state holds sets of names
    ("builtins", "set"): ("builtins", "set"),
    ("__builtin__", "frozenset"): ("builtins", "frozenset"),
    ("builtins", "frozenset"): ("builtins", "frozenset"),
}
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only arrays: NumPy, SciPy sparse matrices, chumpy objects (as their arrays)."""

    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyArray
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(*_PICKLE_ALLOWED[(module, name)])
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (only arrays are allowed in SMPL-X files)")


def _to_array(value):
    if isinstance(value, _ChumpyArray):
        if value.data is None:
            raise SmplxFileError("unsupported chumpy object in SMPL-X pickle (only plain Ch arrays are understood)")
        return value.data
    if hasattr(value, "toarray"):  # scipy sparse (J_regressor in the .pkl files)
        return value.toarray()
    return value


def _read_arrays(path: Path, allow_pickle: bool) -> dict:
    if path.suffix == ".npz":
        try:
            with onp.load(path, allow_pickle=False) as data:
                missing = [k for k in REQUIRED_KEYS if k not in data.files]
                if missing:
                    raise SmplxFileError(f"not an SMPL-X file: {path} lacks keys {missing}")
                return {k: onp.asarray(data[k]) for k in REQUIRED_KEYS if k in data.files}
        except SmplxFileError:
            raise
        except Exception as e:  # a zip that is not an npz, a truncated file, object arrays
            raise SmplxFileError(f"not an SMPL-X file: {path} could not be read as .npz ({type(e).__name__}: {e})") from e
    if not allow_pickle:
        raise SmplxFileError(f"{path} is a .pkl; pass allow_pickle=True to read it (unpickling can run code)")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:
        raise SmplxFileError(f"not an SMPL-X file: {path} could not be unpickled ({e})") from e
    if not isinstance(data, dict):
        raise SmplxFileError(f"not an SMPL-X file: {path} does not hold a dict of arrays")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise SmplxFileError(f"not an SMPL-X file: {path} lacks keys {missing}")
    return {k: onp.asarray(_to_array(data[k])) for k in REQUIRED_KEYS}


def resolve_smplx_path(path_or_dir: str | os.PathLike, gender: str = "neutral", allow_pickle: bool = False) -> Path:
    """The model file for `path_or_dir`: the file itself, or `SMPLX_{GENDER}.npz` in a directory."""
    if gender not in GENDERS:
        raise ValueError(f"unknown gender {gender!r}; expected one of {GENDERS}")
    path = Path(path_or_dir)
    if path.is_dir():
        cand = path / f"SMPLX_{gender.upper()}.npz"
        if not cand.is_file() and allow_pickle and (path / f"SMPLX_{gender.upper()}.pkl").is_file():
            cand = path / f"SMPLX_{gender.upper()}.pkl"
        if not cand.is_file():
            raise FileNotFoundError(f"SMPL-X model not found: {cand} (directory {path} has no SMPLX_{gender.upper()}.npz)")
        return cand
    if not path.exists():
        raise FileNotFoundError(f"SMPL-X model not found: {path}")
    if path.suffix not in (".npz", ".pkl"):
        raise SmplxFileError(f"not an SMPL-X file: {path} (expected a .npz or .pkl file)")
    return path


def _check_shape(name, arr, expected):
    ok = arr.ndim == len(expected) and all(e is None or a == e for a, e in zip(arr.shape, expected))
    if not ok:
        exp = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise SmplxFileError(f"SMPL-X array '{name}' has shape {tuple(arr.shape)}, expected {exp}")


def _check_finite(name, arr):
    if arr.dtype.kind == "f" and not onp.all(onp.isfinite(arr)):
        raise SmplxFileError(f"SMPL-X array '{name}' contains NaN or inf")


def load_smplx(
    path_or_dir: str | os.PathLike,
    *,
    gender: str = "neutral",
    num_betas: int = 10,
    num_expression: int = 10,
    use_pca: bool = False,
    num_pca_comps: int = 6,
    flat_hand_mean: bool = False,
    allow_pickle: bool = False,
) -> tuple[BodyModel, SmplxExtras]:
    """Load an SMPL-X model file into (`BodyModel`, `SmplxExtras`).

    Args:
      path_or_dir: an `.npz` (or `.pkl`) SMPL-X file, or a directory holding `SMPLX_{GENDER}.npz`.
      gender: 'neutral', 'male' or 'female' (selects the file in a directory; recorded in metadata).
      num_betas: body shape components, 10..300 (at most what the file has).
      num_expression: expression components, 10..100 (at most what the file has).
      use_pca: hand poses are given as PCA coefficients (`num_pca_comps` per hand).
      flat_hand_mean: if False the file's mean hand pose is added to the hand pose (as smplx does).
      allow_pickle: required to read `.pkl` files (restricted unpickler; chumpy not needed).

    Returns:
      model: BodyModel with S = num_betas + num_expression shape coefficients, 55 joints and 72
        extra points (21 vertex joints + 51 face landmarks), in `smplx`'s joint order.
      extras: SmplxExtras for `smplx_full_pose` / `make_params`.
    """
    path = resolve_smplx_path(path_or_dir, gender, allow_pickle)
    if not (10 <= num_betas <= SHAPE_SPACE_DIM):
        raise ValueError(f"num_betas must be in 10..{SHAPE_SPACE_DIM}, got {num_betas}")
    if not (10 <= num_expression <= EXPRESSION_SPACE_DIM):
        raise ValueError(f"num_expression must be in 10..{EXPRESSION_SPACE_DIM}, got {num_expression}")
    if use_pca and not (1 <= num_pca_comps <= 45):
        raise ValueError(f"num_pca_comps must be in 1..45, got {num_pca_comps}")
    d = _read_arrays(path, allow_pickle)

    v_template = d["v_template"]
    _check_shape("v_template", v_template, (None, 3))
    V = v_template.shape[0]
    _check_shape("f", d["f"], (None, 3))
    _check_shape("J_regressor", d["J_regressor"], (NUM_JOINTS, V))
    _check_shape("weights", d["weights"], (V, NUM_JOINTS))
    _check_shape("kintree_table", d["kintree_table"], (2, NUM_JOINTS))
    shapedirs = d["shapedirs"]
    if shapedirs.ndim == 2:
        shapedirs = shapedirs[:, :, None]
    _check_shape("shapedirs", shapedirs, (V, 3, None))
    _check_shape("posedirs", d["posedirs"], (V, 3, NUM_POSE_FEATURES))
    for k in ("hands_componentsl", "hands_componentsr"):
        _check_shape(k, d[k], (45, 45))
    for k in ("hands_meanl", "hands_meanr"):
        _check_shape(k, d[k], (45,))
    _check_shape("lmk_faces_idx", d["lmk_faces_idx"], (len(LANDMARK_NAMES),))
    _check_shape("lmk_bary_coords", d["lmk_bary_coords"], (len(LANDMARK_NAMES), 3))
    for k, a in d.items():
        _check_finite(k, a)
    faces = d["f"].astype(onp.int64)
    if faces.min() < 0 or faces.max() >= V:
        raise SmplxFileError(f"SMPL-X array 'f' indexes vertices outside 0..{V - 1}")
    lmk_faces = d["lmk_faces_idx"].astype(onp.int64)
    if lmk_faces.min() < 0 or lmk_faces.max() >= len(faces):
        raise SmplxFileError(f"SMPL-X array 'lmk_faces_idx' indexes faces outside 0..{len(faces) - 1}")
    vid_max = max(v for _, _, v in VERTEX_JOINTS)
    if V <= vid_max:
        raise SmplxFileError(f"SMPL-X file has {V} vertices; the SMPL-X vertex joints need more than {vid_max}")

    # Shape space as smplx builds it: betas first, then expression (300: in the 400-direction
    # files; 10:20 in the old 20-direction files, which only have 10 of each).
    n_dirs = shapedirs.shape[-1]
    if n_dirs >= SHAPE_SPACE_DIM + EXPRESSION_SPACE_DIM:
        max_betas, expr_start, max_expr = SHAPE_SPACE_DIM, SHAPE_SPACE_DIM, EXPRESSION_SPACE_DIM
    else:
        max_betas, expr_start, max_expr = 10, 10, max(0, n_dirs - 10)
    if num_betas > max_betas:
        raise ValueError(f"num_betas={num_betas} but {path.name} has only {max_betas} shape components")
    if num_expression > max_expr:
        raise ValueError(f"num_expression={num_expression} but {path.name} has only {max_expr} expression components")
    dirs = onp.concatenate(
        [shapedirs[:, :, :num_betas], shapedirs[:, :, expr_start : expr_start + num_expression]], axis=-1
    ).astype(onp.float64)
    J_reg = d["J_regressor"].astype(onp.float64)
    v64 = v_template.astype(onp.float64)
    j_template = J_reg @ v64
    j_shapedirs = onp.einsum("jv,vcs->jcs", J_reg, dirs)

    parents = [int(p) for p in d["kintree_table"][0].astype(onp.int64)]
    parents[0] = -1
    for j, p in enumerate(parents[1:], start=1):
        if not (0 <= p < j):
            raise SmplxFileError(f"SMPL-X 'kintree_table' is not a tree sorted parents-first (joint {j}, parent {p})")

    posedirs = d["posedirs"].reshape(-1, NUM_POSE_FEATURES).T  # (486, V*3), smplx's layout
    weights = d["weights"].astype(onp.float32)
    vj_ids = onp.array([v for _, _, v in VERTEX_JOINTS], onp.int64)
    extra_ids = onp.concatenate([onp.repeat(vj_ids[:, None], 3, 1), faces[lmk_faces]], 0)
    extra_bary = onp.concatenate(
        [onp.tile(onp.array([[1.0, 0.0, 0.0]]), (len(vj_ids), 1)), d["lmk_bary_coords"].astype(onp.float64)], 0
    )
    S = num_betas + num_expression
    R0, Rdirs = identity_orient(NUM_JOINTS, S)
    skin_ids, skin_w = sparse_skinning(weights)
    model = BodyModel(
        v_template=jnp.asarray(v_template, jnp.float32),
        shapedirs=jnp.asarray(dirs, jnp.float32),
        j_template=jnp.asarray(j_template, jnp.float32),
        j_shapedirs=jnp.asarray(j_shapedirs, jnp.float32),
        posedirs=jnp.asarray(posedirs, jnp.float32),
        lbs_weights=jnp.asarray(weights),
        faces=jnp.asarray(faces, jnp.int32),
        extra_vertex_ids=jnp.asarray(extra_ids, jnp.int32),
        extra_bary=jnp.asarray(extra_bary, jnp.float32),
        rest_orient_template=jnp.asarray(R0),
        rest_orient_dirs=jnp.asarray(Rdirs),
        skin_joint_ids=jnp.asarray(skin_ids),
        skin_joint_weights=jnp.asarray(skin_w),
        parents=tuple(parents),
        joint_names=SMPLX_JOINT_NAMES,
        extra_names=SMPLX_EXTRA_NAMES,
        kind="smplx",
        rest_orient="identity",
        metadata=(
            ("gender", gender),
            ("num_betas", num_betas),
            ("num_expression", num_expression),
            ("source", str(path)),
        ),
    )
    # One posing GEMM with the template and shape rows fused in (skinning.posed_rest_vertices).
    model = with_fused_blend(model)
    n_comp = num_pca_comps if use_pca else 45
    mean_l = onp.zeros(45) if flat_hand_mean else d["hands_meanl"]
    mean_r = onp.zeros(45) if flat_hand_mean else d["hands_meanr"]
    extras = SmplxExtras(
        hands_components_l=jnp.asarray(d["hands_componentsl"][:n_comp], jnp.float32),
        hands_components_r=jnp.asarray(d["hands_componentsr"][:n_comp], jnp.float32),
        hands_mean_l=jnp.asarray(mean_l, jnp.float32),
        hands_mean_r=jnp.asarray(mean_r, jnp.float32),
        use_pca=use_pca,
        num_pca_comps=n_comp,
        flat_hand_mean=flat_hand_mean,
        num_betas=num_betas,
        num_expression=num_expression,
        gender=gender,
    )
    return model, extras


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def _as(x, n: int, name: str, dtype):
    """Flatten an optional pose block to (n,), zeros when None; shape errors are one line."""
    if x is None:
        return jnp.zeros((n,), dtype)
    x = jnp.asarray(x, dtype)
    if x.size != n:
        raise SmplxParamError(f"{name} must have {n} values, got shape {tuple(x.shape)}")
    return x.reshape(n)


def smplx_full_pose(
    extras: SmplxExtras,
    *,
    global_orient=None,
    body_pose=None,
    jaw_pose=None,
    leye_pose=None,
    reye_pose=None,
    left_hand_pose=None,
    right_hand_pose=None,
    dtype=jnp.float32,
) -> Float[Array, "55 3"]:
    """The (55, 3) axis-angle pose `smplx.SMPLX` builds from its pose blocks (one sample).

    Hands: PCA coefficients (`num_pca_comps`) when `extras.use_pca`, else 15×3 axis-angle; the
    file's mean hand pose is added unless `flat_hand_mean` (smplx adds it in both cases).
    Missing blocks are zero. Batch with `jax.vmap`.
    """
    n_hand = extras.num_pca_comps if extras.use_pca else 45
    lh = _as(left_hand_pose, n_hand, "left_hand_pose", dtype)
    rh = _as(right_hand_pose, n_hand, "right_hand_pose", dtype)
    if extras.use_pca:
        hp = jax.lax.Precision.HIGHEST
        lh = jnp.matmul(lh, extras.hands_components_l.astype(dtype), precision=hp)
        rh = jnp.matmul(rh, extras.hands_components_r.astype(dtype), precision=hp)
    lh = lh + extras.hands_mean_l.astype(dtype)
    rh = rh + extras.hands_mean_r.astype(dtype)
    full = jnp.concatenate(
        [
            _as(global_orient, 3, "global_orient", dtype),
            _as(body_pose, 63, "body_pose", dtype),
            _as(jaw_pose, 3, "jaw_pose", dtype),
            _as(leye_pose, 3, "leye_pose", dtype),
            _as(reye_pose, 3, "reye_pose", dtype),
            lh,
            rh,
        ]
    )
    return full.reshape(NUM_JOINTS, 3)


def make_params(
    model: BodyModel,
    extras: SmplxExtras,
    *,
    betas=None,
    expression=None,
    transl=None,
    scale=None,
    **pose_blocks,
) -> BodyParams:
    """`BodyParams` from smplx-style inputs (one sample; vmap for batches).

    Args:
      betas: (num_betas,) shape coefficients (fewer are zero-padded).
      expression: (num_expression,) expression coefficients (fewer are zero-padded).
      transl: (3,) metres; scale: () human scale about the root joint (default 1).
      **pose_blocks: global_orient, body_pose, jaw_pose, leye_pose, reye_pose, left_hand_pose,
        right_hand_pose as accepted by `smplx_full_pose`.
    """
    dtype = model.v_template.dtype
    nb, ne = extras.num_betas, extras.num_expression

    def pad(x, n, name):
        if x is None:
            return jnp.zeros((n,), dtype)
        x = jnp.asarray(x, dtype).reshape(-1)
        if x.shape[0] > n:
            raise SmplxParamError(f"{name} has {x.shape[0]} values but the model was loaded with {n}")
        return jnp.pad(x, (0, n - x.shape[0]))

    unknown = set(pose_blocks) - {
        "global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose", "right_hand_pose",
    }  # fmt: skip
    if unknown:
        raise TypeError(f"make_params got unknown pose blocks {sorted(unknown)}")
    return BodyParams(
        betas=jnp.concatenate([pad(betas, nb, "betas"), pad(expression, ne, "expression")]),
        pose=smplx_full_pose(extras, dtype=dtype, **pose_blocks),
        transl=_as(transl, 3, "transl", dtype),
        scale=jnp.ones((), dtype) if scale is None else jnp.asarray(scale, dtype).reshape(()),
    )


def validate_params(params: BodyParams, model: BodyModel | None = None) -> BodyParams:
    """Host-side check (outside jit): finite values and, given a model, matching sizes."""
    for name in ("betas", "pose", "transl", "scale"):
        a = onp.asarray(getattr(params, name))
        if not onp.all(onp.isfinite(a)):
            raise SmplxParamError(f"BodyParams.{name} contains NaN or inf")
    if model is not None:
        nb = onp.shape(params.betas)[-1]
        if nb != model.num_shape:
            raise SmplxParamError(f"BodyParams.betas has {nb} coefficients, the model has {model.num_shape}")
        if tuple(onp.shape(params.pose)[-2:]) != (model.num_joints, 3):
            raise SmplxParamError(
                f"BodyParams.pose has shape {tuple(onp.shape(params.pose))}, expected (..., {model.num_joints}, 3)"
            )
    return params
