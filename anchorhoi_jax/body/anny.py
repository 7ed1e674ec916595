"""Anny, the embedded default body, in the shared JAX `BodyModel` representation.

Anny (NAVER, pip `anny`) is a MakeHuman-derived body: 13,718 vertices, a 104-bone rig, phenotype
controls (gender, age, muscle, weight, height, proportions), linear blend shapes whose coefficients
are a piecewise-multilinear function of the phenotype, bone heads linear in those coefficients and
rest bone orientations obtained by special Procrustes of a cross-covariance matrix that is itself
linear in them (anny's ``bone_orientation="cached"``). Skinning is plain LBS, no pose correctives.

How Anny maps onto `BodyModel` (body/model.py):

* ``betas``        = Anny blend-shape coefficients (136: the compact phenotype basis anny ships),
                     computed from a `Phenotype` by `phenotype_to_coeffs` (pure JAX, differentiable).
* ``v_template / shapedirs``          = template vertices / blend shapes.
* ``j_template / j_shapedirs``        = bone heads and their blend shapes (joint = bone head).
* ``rest_orient = "procrustes"``, ``rest_orient_template / rest_orient_dirs`` = the cached
  cross-covariance M0 and its directions: R_rest(β) = special_procrustes(M0 + Mdirs·β).
* ``posedirs`` has 0 rows; ``extra_*`` are empty (Anny's keypoints come from a dense regressor,
  `AnnyExtras.keypoint_regressor`, see body/keypoints.py).
* Frame: Anny is z-up, facing −y, left toward +x, metres. Every position and every rest frame is
  rotated by ``C_PROJECT_ANNY`` = (x, y, z) ↦ (x, z, −y) into CONVENTIONS.md's frame (y up,
  facing +z, left toward +x). Local rotations are frame-free (they act in bone frames), so they
  are unchanged by the conversion.

Pose conventions. ``BodyParams.pose`` holds local rotations about the *rest* frames: zero pose is
Anny's rest mesh. Anny's own ``forward`` (pose parameterisation ``"local-ref"``) reads a delta
D_c per bone, in world-aligned axes, about a *reference* orientation U_c that differs from the rest
orientation R_c by up to ~6° (shoulders); its zero pose is that reference pose with the root head
at the origin. Matching the chain products (anny.utils.kinematics.forward_kinematic) bone by bone,

    Anny:  W_c = W_p [U_pᵀ D_c U_c | R_pᵀ (h_c − h_p)]        (translation: U_p U_pᵀ = I, A_p = U_p R_pᵀ)
    ours:  W_c = W_p [R_pᵀ R_c L_c | R_pᵀ (h_c − h_p)]

so the translations agree and the rotations agree iff L_c = R_cᵀ R_p U_pᵀ D_c U_c; at the root
W_0 = [U_0ᵀ D_0 U_0 | U_0ᵀ d_0] gives L_0 = R_0ᵀ U_0ᵀ D_0 U_0 and transl = U_0ᵀ d_0 − h_0.
`anny_pose_to_local` / `local_to_anny_pose` implement this exactly (it needs R(β), so it is a
function of the shape too). Non-root delta *translations* (bone stretching) are not expressible
by a rotation-only rig and are rejected by the conversion's contract (pass rotations only).

The arrays are built once from the anny package (torch, lazily imported, ~10 s with anny's own
cache warm, ~2 min cold) and cached as an .npz under ``$ANCHORHOI_CACHE`` or
``~/.cache/anchorhoi_jax``, keyed by the anny version, so later loads need neither torch nor anny.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import rest_joints, rest_orientations, with_sparse_skinning
from anchorhoi_jax.geometry.rotations import matrix_to_axis_angle

HIGHEST = jax.lax.Precision.HIGHEST

# Anny frame (z up, facing -y) -> project frame (y up, facing +z); left stays toward +x.
C_PROJECT_ANNY = onp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Bump when the cached array layout changes.
CACHE_FORMAT = 1

# anny.models.model_data.PHENOTYPE_VARIATIONS, in anny's order (the stacked mask's columns).
# Checked against the installed package when the cache is built.
PHENOTYPE_VARIATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("race", ("african", "asian", "caucasian")),
    ("gender", ("male", "female")),
    ("age", ("newborn", "baby", "child", "young", "old")),
    ("muscle", ("minmuscle", "averagemuscle", "maxmuscle")),
    ("weight", ("minweight", "averageweight", "maxweight")),
    ("height", ("minheight", "maxheight")),
    ("proportions", ("idealproportions", "uncommonproportions")),
    ("cupsize", ("mincup", "averagecup", "maxcup")),
    ("firmness", ("minfirmness", "averagefirmness", "maxfirmness")),
)
# The phenotypes anny exposes by default (its compact blend-shape basis spans exactly the rest
# shapes they reach; cupsize, firmness and the race mix stay at anny's defaults).
PHENOTYPE_LABELS = ("gender", "age", "muscle", "weight", "height", "proportions")
_FIXED_PHENOTYPES = {"cupsize": 0.5, "firmness": 0.5, "african": 0.5, "asian": 0.5, "caucasian": 0.5}


@struct.dataclass
class Phenotype:
    """Anny's phenotype controls, each a scalar in [0, 1] (age in [−1/3, 1]; values are clamped).

    0.5 is anny's neutral default. gender 0 male … 1 female; age −1/3 newborn, 0 baby, 1/3 child,
    2/3 young adult, 1 old; muscle/weight/height/proportions min … max.
    """

    gender: Float[Array, ""] = 0.5
    age: Float[Array, ""] = 0.5
    muscle: Float[Array, ""] = 0.5
    weight: Float[Array, ""] = 0.5
    height: Float[Array, ""] = 0.5
    proportions: Float[Array, ""] = 0.5

    @classmethod
    def neutral(cls, dtype=jnp.float32) -> "Phenotype":
        return cls(**{k: jnp.asarray(0.5, dtype) for k in PHENOTYPE_LABELS})

    def as_array(self) -> Float[Array, "6"]:
        return jnp.stack([jnp.asarray(getattr(self, k)) for k in PHENOTYPE_LABELS], -1)


@struct.dataclass
class AnnyExtras:
    """Anny-specific constants beside the generic `BodyModel`.

    Attributes:
      phenotype_mask: (K, 26) 0/1 mask of the phenotype variations each original blend shape is a
        product of (anny's ``stacked_phenotype_blend_shapes_mask``).
      phenotype_projection: (K, S) map from original blend-shape weights to the S compact
        coefficients (``betas``).
      reference_orient: (J, 3, 3) Anny's reference bone orientations U_c in the project frame.
      keypoint_regressor: (23, V) anny's COCO(+feet) regressor over posed vertices (rows sum to 1).
      keypoint_names: the 23 names (COCO-17 order, then big toe, small toe, heel, left before right).
    """

    phenotype_mask: Float[Array, "K 26"]
    phenotype_projection: Float[Array, "K S"]
    reference_orient: Float[Array, "J 3 3"]
    keypoint_regressor: Float[Array, "N V"]
    keypoint_names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    anny_version: str = struct.field(pytree_node=False, default="")


@struct.dataclass
class AnnyBody:
    """The Anny body: generic skinning constants plus phenotype and keypoint constants."""

    model: BodyModel
    extras: AnnyExtras


# --------------------------------------------------------------------------------------------
# Phenotype -> blend-shape coefficients (anny.models.phenotype.phenotype_blendshape_weights)


def _anchors(group: str, n: int) -> onp.ndarray:
    # Anny spreads the age anchors over [-1/3, 1] (newborn below baby=0), all others over [0, 1].
    lo = -1.0 / 3.0 if group == "age" else 0.0
    return onp.linspace(lo, 1.0, n)


def _interpolation_weights(value: Float[Array, ""], anchors: onp.ndarray) -> Float[Array, "n"]:
    """Piecewise-linear hat weights of `value` on `anchors`, clamped to their range.

    Same segment choice as anny (searchsorted 'left', clamped to [1, n-1]) so values on an anchor
    get the same one-sided gradient.
    """
    a = jnp.asarray(anchors, value.dtype)
    v = jnp.where(value < a[0], a[0], value)
    v = jnp.where(v > a[-1], a[-1], v)
    idx = jnp.clip(jnp.searchsorted(a, v, side="left"), 1, a.shape[0] - 1)
    lo, hi = a[idx - 1], a[idx]
    alpha = (v - lo) / (hi - lo)
    n = a.shape[0]
    onehot_lo = jax.nn.one_hot(idx - 1, n, dtype=value.dtype)
    onehot_hi = jax.nn.one_hot(idx, n, dtype=value.dtype)
    return onehot_lo * (1.0 - alpha) + onehot_hi * alpha


def phenotype_variation_weights(phenotype: Phenotype) -> Float[Array, "26"]:
    """Weight of each of anny's 26 phenotype variations (race, gender, age, ... firmness)."""
    values = {k: jnp.asarray(getattr(phenotype, k)) for k in PHENOTYPE_LABELS}
    dtype = jnp.result_type(*values.values(), jnp.float32)
    values = {k: v.astype(dtype) for k, v in values.items()}
    values.update({k: jnp.asarray(v, dtype) for k, v in _FIXED_PHENOTYPES.items()})
    parts = []
    for group, names in PHENOTYPE_VARIATIONS:
        if group == "race":
            race = jnp.stack([values[n] for n in names])
            parts.append(race / jnp.sum(race))  # the fixed 0.5s give anny's 1/3 each
        else:
            parts.append(_interpolation_weights(values[group], _anchors(group, len(names))))
    return jnp.concatenate(parts)


def phenotype_to_coeffs(extras: AnnyExtras, phenotype: Phenotype) -> Float[Array, "S"]:
    """Anny's blend-shape coefficients (`BodyParams.betas`) for a phenotype; pure, jit/vmap/grad-able.

    Each original blend shape k is the product of the weights of the variations it combines
    (mask row k), then the compact basis maps them to the S coefficients.
    """
    with jax.named_scope("anny.phenotype_to_coeffs"):
        w = phenotype_variation_weights(phenotype).astype(extras.phenotype_mask.dtype)
        mask = extras.phenotype_mask
        per_shape = jnp.prod(w[None, :] * mask + (1.0 - mask), axis=-1)
        return jnp.matmul(per_shape, extras.phenotype_projection, precision=HIGHEST)


# --------------------------------------------------------------------------------------------
# Pose conversion between anny's "local-ref" deltas and our local rotations


def anny_pose_to_local(
    body: AnnyBody,
    betas: Float[Array, "S"],
    D: Float[Array, "J 3 3"],
    root_translation: Float[Array, "3"],
) -> tuple[Float[Array, "J 3 3"], Float[Array, "3"]]:
    """Anny "local-ref" pose deltas (in anny's own z-up frame) → our local rotations and transl.

    Args:
      body: loaded Anny body.
      betas: (S,) blend-shape coefficients (the rest frames depend on shape).
      D: (J, 3, 3) anny delta rotations (the top-left block of its (J, 4, 4) pose parameters).
      root_translation: (3,) anny's root delta translation d_0 (metres, anny frame). Non-root
        delta translations have no rotation-only equivalent and are not accepted.
    Returns:
      (R_local (J,3,3) for `pose(..., rotations=R_local)`, transl (3,) in the project frame).
    """
    C = jnp.asarray(C_PROJECT_ANNY, D.dtype)
    D_p = jnp.matmul(jnp.matmul(C, D, precision=HIGHEST), C.T, precision=HIGHEST)  # world axes -> project
    R = rest_orientations(body.model, betas)  # project frame, = C R_anny
    U = body.extras.reference_orient  # project frame, = C U_anny
    parents = onp.asarray(body.model.parents)
    par = onp.where(parents < 0, 0, parents)
    # L_c = R_cᵀ R_p U_pᵀ D_c U_c. Root (anny frame): L_0 = R_0ᵀ U_0ᵀ D_0 U_0, which in project-frame
    # quantities (R = C R_anny, U = C U_anny) reads R_0ᵀ (C U_0ᵀ) D_0 U_0: anny's world frame acts as
    # a virtual parent with rest orientation C and reference orientation I.
    RpUpT = jnp.matmul(R[par], jnp.swapaxes(U[par], -1, -2), precision=HIGHEST)
    RpUpT = RpUpT.at[0].set(jnp.matmul(C, U[0].T, precision=HIGHEST))
    L = jnp.einsum("jba,jbc,jcd,jde->jae", R, RpUpT, D_p, U, precision=HIGHEST)
    # Anny puts the root head at U_0ᵀ d_0 (anny frame); ours at h_0 + transl (project frame).
    h0 = rest_joints(body.model, betas)[0]
    U0_anny = jnp.matmul(C.T, U[0], precision=HIGHEST)
    transl = jnp.matmul(C, jnp.matmul(U0_anny.T, root_translation, precision=HIGHEST), precision=HIGHEST) - h0
    return L, transl


def local_to_anny_pose(
    body: AnnyBody, betas: Float[Array, "S"], R_local: Float[Array, "J 3 3"], transl: Float[Array, "3"]
) -> tuple[Float[Array, "J 3 3"], Float[Array, "3"]]:
    """Inverse of `anny_pose_to_local`: our (R_local, transl) → anny (D (J,3,3), d_0 (3,)), anny frame."""
    C = jnp.asarray(C_PROJECT_ANNY, R_local.dtype)
    R = rest_orientations(body.model, betas)
    U = body.extras.reference_orient
    parents = onp.asarray(body.model.parents)
    par = onp.where(parents < 0, 0, parents)
    UpRpT = jnp.matmul(U[par], jnp.swapaxes(R[par], -1, -2), precision=HIGHEST)
    UpRpT = UpRpT.at[0].set(jnp.matmul(U[0], C.T, precision=HIGHEST))
    # D_c = U_p R_pᵀ R_c L_c U_cᵀ (project-frame world axes), then back to anny axes.
    D_p = jnp.einsum("jab,jbc,jcd,jed->jae", UpRpT, R, R_local, U, precision=HIGHEST)
    D = jnp.matmul(jnp.matmul(C.T, D_p, precision=HIGHEST), C, precision=HIGHEST)
    h0 = rest_joints(body.model, betas)[0]
    U0_anny = jnp.matmul(C.T, U[0], precision=HIGHEST)
    d0 = jnp.matmul(U0_anny, jnp.matmul(C.T, transl + h0, precision=HIGHEST), precision=HIGHEST)
    return D, d0


def reference_pose(body: AnnyBody, betas: Float[Array, "S"]) -> Float[Array, "J 3 3"]:
    """Local rotations of Anny's neutral (reference) pose, the pose anny's zero deltas give."""
    J = body.model.num_joints
    eye = jnp.broadcast_to(jnp.eye(3, dtype=betas.dtype), (J, 3, 3))
    return anny_pose_to_local(body, betas, eye, jnp.zeros((3,), betas.dtype))[0]


def anny_params(
    body: AnnyBody,
    phenotype: Phenotype,
    D: Float[Array, "J 3 3"],
    root_translation: Float[Array, "3"],
) -> tuple[BodyParams, Float[Array, "J 3 3"]]:
    """`BodyParams` (axis-angle pose) and exact local rotations for an anny phenotype + pose.

    Pass the returned rotations to `pose(model, params, rotations=...)` for bit-level fidelity;
    `params.pose` is their axis-angle form.
    """
    betas = phenotype_to_coeffs(body.extras, phenotype)
    L, transl = anny_pose_to_local(body, betas, D, root_translation)
    params = BodyParams(
        betas=betas,
        pose=matrix_to_axis_angle(L),
        transl=transl,
        scale=jnp.ones((), betas.dtype),
    )
    return params, L


# --------------------------------------------------------------------------------------------
# Loading and caching


def default_cache_dir() -> Path:
    """$ANCHORHOI_CACHE, else ~/.cache/anchorhoi_jax."""
    env = os.environ.get("ANCHORHOI_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "anchorhoi_jax"


def _installed_anny_version() -> str | None:
    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return None


def _cache_path(cache_dir: Path, version: str) -> Path:
    return cache_dir / f"anny-{version}-f{CACHE_FORMAT}.npz"


def anny_torch_model():
    """The anny package's own (torch) full-body model in the configuration this module mirrors.

    Single source of that configuration for the cache builder and the parity tests.
    """
    import warnings

    import anny  # noqa: PLC0415  (lazy: torch only where the anny package itself is used)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anny.Anny(
            rig="anny",
            topology="anny",
            local_changes="none",
            facial_actions="none",
            phenotypes="default",
            pose_parameterization="local-ref",
            skinning_method="lbs",
        )


def build_anny_arrays() -> dict[str, onp.ndarray]:
    """Arrays of the Anny body in the project frame, read from the installed anny package.

    Imports torch and anny lazily: this runs once, when the cache is built.
    """
    import torch  # noqa: PLC0415
    from anny.models.model_data import PHENOTYPE_VARIATIONS as ANNY_VARIATIONS  # noqa: PLC0415
    from anny.paths import get_anny_root_dir  # noqa: PLC0415

    ours = {g: tuple(n) for g, n in PHENOTYPE_VARIATIONS}
    theirs = {g: tuple(n) for g, n in ANNY_VARIATIONS.items()}
    if list(theirs.items()) != list(ours.items()):
        raise RuntimeError(f"anny's PHENOTYPE_VARIATIONS changed ({theirs}); update body/anny.py")
    m = anny_torch_model()
    if list(m.phenotype_labels) != list(PHENOTYPE_LABELS):
        raise RuntimeError(f"anny exposes phenotypes {m.phenotype_labels}, expected {PHENOTYPE_LABELS}")
    if m.bone_orientation != "cached" or m.rest_orientation_refiner is not None or m.root_identity_orientation:
        raise RuntimeError("anny's default rig is no longer 'cached' Procrustes orientation; update body/anny.py")

    def np64(t):
        return t.detach().cpu().to(torch.float64).numpy()

    C = C_PROJECT_ANNY
    J = m.bone_count
    blend = np64(m.blendshapes)  # (S, V, 3)
    heads_blend = np64(m.bone_heads_blendshapes)  # (S, J, 3)
    M0 = np64(m.bone_template_orientation_matrices)  # (J, 3, 3)
    Mdirs = np64(m.bone_orientation_blendshapes)  # (S, J, 3, 3)
    # Bones with shape-independent orientation (the root: M0 = I) have repeated singular values,
    # where the SVD's derivative is undefined (NaN even though dM/dβ = 0). Replace M0 by R0·diag(3,2,1):
    # same special-Procrustes rotation R0, distinct singular values, finite (zero) gradient.
    for j in range(J):
        if onp.abs(Mdirs[:, j]).max() == 0.0:
            u, _, vt = onp.linalg.svd(M0[j])
            d = onp.sign(onp.linalg.det(u @ vt))
            R0 = u @ onp.diag([1.0, 1.0, d]) @ vt
            M0[j] = R0 @ onp.diag([3.0, 2.0, 1.0])
    kp = torch.load(get_anny_root_dir() / "data" / "keypoints" / "coco.pth", weights_only=True)
    kp_names = list(kp.keys())
    base_ids = m.base_mesh_vertex_indices.numpy()
    regressor = onp.stack([kp[k].to(torch.float64).numpy()[base_ids] for k in kp_names])
    faces = m.faces.numpy()
    if faces.shape[1] != 3:
        faces = onp.asarray(m.get_triangular_faces().numpy())
    f32 = onp.float32
    return dict(
        v_template=(np64(m.template_vertices) @ C.T).astype(f32),
        shapedirs=onp.einsum("ab,svb->vas", C, blend).astype(f32),
        j_template=(np64(m.template_bone_heads) @ C.T).astype(f32),
        j_shapedirs=onp.einsum("ab,sjb->jas", C, heads_blend).astype(f32),
        lbs_weights_ids=m.vertex_bone_indices.numpy().astype(onp.int32),
        lbs_weights_vals=np64(m.vertex_bone_weights).astype(f32),
        faces=faces.astype(onp.int32),
        rest_orient_template=onp.einsum("ab,jbc->jac", C, M0).astype(f32),
        rest_orient_dirs=onp.einsum("ab,sjbc->jacs", C, Mdirs).astype(f32),
        reference_orient=onp.einsum("ab,jbc->jac", C, np64(m.reference_bone_orientations)).astype(f32),
        phenotype_mask=np64(m.stacked_phenotype_blend_shapes_mask).astype(f32),
        phenotype_projection=np64(m.phenotype_blendshape_projection).astype(f32),
        keypoint_regressor=regressor.astype(f32),
        keypoint_names=onp.array(kp_names),
        parents=onp.asarray(m.bone_parents, onp.int32),
        joint_names=onp.array(m.bone_labels),
        anny_version=onp.array(_installed_anny_version() or "unknown"),
    )


def _arrays_to_body(a: dict[str, onp.ndarray], dtype=jnp.float32) -> AnnyBody:
    V = a["v_template"].shape[0]
    J = a["parents"].shape[0]
    dense_w = onp.zeros((V, J), onp.float32)
    ids = a["lbs_weights_ids"]
    onp.add.at(dense_w, (onp.arange(V)[:, None].repeat(ids.shape[1], 1), ids), a["lbs_weights_vals"])
    S = a["shapedirs"].shape[-1]
    model = BodyModel(
        v_template=jnp.asarray(a["v_template"], dtype),
        shapedirs=jnp.asarray(a["shapedirs"], dtype),
        j_template=jnp.asarray(a["j_template"], dtype),
        j_shapedirs=jnp.asarray(a["j_shapedirs"], dtype),
        posedirs=jnp.zeros((0, 3 * V), dtype),
        lbs_weights=jnp.asarray(dense_w, dtype),
        faces=jnp.asarray(a["faces"], jnp.int32),
        extra_vertex_ids=jnp.zeros((0, 3), jnp.int32),
        extra_bary=jnp.zeros((0, 3), dtype),
        rest_orient_template=jnp.asarray(a["rest_orient_template"], dtype),
        rest_orient_dirs=jnp.asarray(a["rest_orient_dirs"], dtype),
        parents=tuple(int(p) for p in a["parents"]),
        joint_names=tuple(str(n) for n in a["joint_names"]),
        extra_names=(),
        kind="anny",
        rest_orient="procrustes",
        metadata=(("anny_version", str(a["anny_version"])), ("num_shape", S)),
    )
    extras = AnnyExtras(
        phenotype_mask=jnp.asarray(a["phenotype_mask"], dtype),
        phenotype_projection=jnp.asarray(a["phenotype_projection"], dtype),
        reference_orient=jnp.asarray(a["reference_orient"], dtype),
        keypoint_regressor=jnp.asarray(a["keypoint_regressor"], dtype),
        keypoint_names=tuple(str(n) for n in a["keypoint_names"]),
        anny_version=str(a["anny_version"]),
    )
    return AnnyBody(model=model, extras=extras)


def load_anny(
    *,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
    sparse_skinning: bool = True,
    dtype=jnp.float32,
) -> AnnyBody:
    """Load the Anny body (project frame), building and caching it from the anny package on first use.

    Args:
      cache_dir: where the .npz lives; default `default_cache_dir()`.
      rebuild: rebuild from the anny package even when a cache exists.
      sparse_skinning: also fill `skin_joint_ids/weights` (each Anny vertex has at most 9 bones of
        104; exact, and `pose` then skins with them).
      dtype: float dtype of the arrays.
    Raises:
      FileNotFoundError: no cache and the anny package is not installed.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    version = _installed_anny_version()
    if version is not None:
        path = _cache_path(cache, version)
    else:  # anny absent (e.g. the GPU machine): any cache of this format will do
        if rebuild:
            raise FileNotFoundError("load_anny(rebuild=True) needs the anny package: `pip install anny`")
        found = sorted(cache.glob(f"anny-*-f{CACHE_FORMAT}.npz"))
        path = found[-1] if found else None
        if path is None:
            raise FileNotFoundError(
                f"Anny body data is not cached in {cache} and the anny package is not installed: "
                "`pip install anny` (or set $ANCHORHOI_CACHE to a directory holding anny-*.npz)"
            )
    if rebuild or not path.exists():
        arrays = build_anny_arrays()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique temporary name + atomic rename: parallel test workers may build at the same time.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        onp.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    with onp.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    body = _arrays_to_body(arrays, dtype)
    if sparse_skinning:
        body = body.replace(model=with_sparse_skinning(body.model))
    return body


def anny_keypoints(body: AnnyBody, vertices: Float[Array, "V 3"]) -> Float[Array, "23 3"]:
    """Anny's 23 COCO(+feet) keypoints regressed from posed vertices (names: extras.keypoint_names)."""
    return jnp.matmul(body.extras.keypoint_regressor, vertices, precision=HIGHEST)
