"""Synthetic human-object interaction renders for the learned prior of issue 7 (CPU, needs Anny).

    python benchmarks/learned_prior_data.py --scenes-per-class 1000 --views 2 --out .cache/prior

Four labelled interaction classes (`CLASSES`), each a joint-angle template on Anny's reference pose
plus uniform noise, with an object placed so the interaction is physically consistent:

* "sitting on a box"      thighs horizontal, shanks vertical; a seat box (half of them with a
                          backrest: the chair-like box) whose top touches the buttocks, feet on the floor;
* "lifting a box"         slight squat, upper arms forward, elbows bent; a box held between the palms;
* "pushing a crate"       forward lean, stride, arms forward; a crate on the floor touching the hands;
* "standing beside a box" upright, arms hanging; a box on the floor beside the body.

Phenotypes (`demo.random_phenotype`) and clothing/skin/object colours are random; the background is
white by default (`--background white`: the evaluation's SDS views use the same white, so a field that
paints its whole box one colour is not a mode of the prior; `random` = a uniform random colour per view,
session 2's data, on which every coarse field filled its box with a backdrop colour; with white, session 3's
fields emptied instead, see benchmarks/results/learned_prior.md); cameras come from
`geometry.cameras.sample_views` with its defaults (the distribution the SDS stages sample), the scene
centred on the look-at target. Images are hard-rasterised
(render/raster.py) at 2x and box-filtered to 64 px, Lambert-shaded by a headlight.

Writes OUT/data.npz (uint8 images (N,64,64,3), human/object coverage (N,64,64) uint8, OpenPose-18
keypoints in pixels (N,18,2) with in-frame flags, class and view-tag ids, the per-scene pose
features and relation geometry) and OUT/anny/anny-frozen-f1.npz: the Anny body with the average
phenotype's shape baked in (S = 1), small enough to carry to the GPU machine where the anny package
is not installed (`load_anny(cache_dir=OUT/anny)` finds it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as onp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anchorhoi_jax.body.anny import (  # noqa: E402
    C_PROJECT_ANNY,
    CACHE_FORMAT,
    Phenotype,
    anny_params,
    phenotype_to_coeffs,
    reference_pose,
)
from anchorhoi_jax.body.keypoints import apply_regressor, keypoint_regressor  # noqa: E402
from anchorhoi_jax.body.model import BodyParams  # noqa: E402
from anchorhoi_jax.body.skinning import pose, pose_joints, rest_joints, rest_orientations  # noqa: E402
from anchorhoi_jax.demo import random_phenotype  # noqa: E402
from anchorhoi_jax.geometry.cameras import project, sample_views  # noqa: E402
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from anchorhoi_jax.render.raster import downsample, rasterize, supersampled_camera  # noqa: E402

CLASSES = ("sitting on a box", "lifting a box", "pushing a crate", "standing beside a box")
VIEW_TAGS = ("front", "side", "back", "overhead")  # = geometry.cameras.VIEW_TAG_NAMES = priors.sds.VIEW_TAGS
RES = 64
BACKGROUNDS = ("white", "black", "random")
SUPERSAMPLE = 2


def class_prompt(c: int) -> str:
    """The text prompt of class c (the SDS stage appends ", <tag> view")."""
    return f"a person {CLASSES[c]}"


# ------------------------------------------------------------------------------------------------
# Pose templates. Each joint's delta rotation (anny "local-ref", world-aligned axes: x = the body's
# left, y up, z forward) is a product of elementary rotations, outermost first: ("x", mean, half
# range) is R_x(mean + U(-h, h)). Signs (as in demo.py): a bone hanging down swings forward for
# negative x; a bone pointing up bends forward for positive x; positive z lifts a left limb
# sideways. Right-side joints mirror the left (x kept, y and z negated). "elbow" is flexion about
# the elbow's own axis (upper arm x forearm of the reference pose).
# ------------------------------------------------------------------------------------------------
_SPINE = ("spine01", "spine02", "spine03", "spine04")
TEMPLATES = {
    0: {  # sitting: hip flexion ~90 deg, knee ~90 deg, hands resting forward
        "upperleg01.L": [("x", -1.50, 0.15), ("z", 0.10, 0.08)],
        "lowerleg01.L": [("x", 1.45, 0.20)],
        "upperarm01.L": [("x", -0.45, 0.30), ("z", -0.60, 0.12)],
        "elbow.L": 0.55, "elbow_h": 0.35,
        "spine": (0.03, 0.04),
    },
    1: {  # lifting: slight squat, upper arms forward, elbows bent, box between the palms
        "upperleg01.L": [("x", -0.40, 0.20), ("z", 0.05, 0.05)],
        "lowerleg01.L": [("x", 0.55, 0.25)],
        "upperarm01.L": [("x", -0.75, 0.20), ("z", -0.62, 0.06)],
        "elbow.L": 1.00, "elbow_h": 0.20,
        "spine": (0.05, 0.04),
    },
    2: {  # pushing: forward lean, stride (front leg chosen at random), arms forward
        "front_leg": [[("x", -0.55, 0.15)], [("x", 0.65, 0.20)]],
        "back_leg": [[("x", 0.30, 0.10)], [("x", 0.20, 0.15)]],
        "root_lean": (0.22, 0.06),
        "upperarm01.L": [("x", -1.20, 0.15), ("z", -0.55, 0.08)],
        "elbow.L": 0.30, "elbow_h": 0.20,
        "spine": (0.12, 0.04),
    },
    3: {  # standing: upright, arms hanging
        "upperleg01.L": [("x", 0.0, 0.08), ("z", 0.03, 0.03)],
        "lowerleg01.L": [("x", 0.05, 0.05)],
        "upperarm01.L": [("x", 0.0, 0.20), ("z", -0.55, 0.15)],
        "elbow.L": 0.20, "elbow_h": 0.15,
        "spine": (0.0, 0.03),
    },
}


def _elem(axis: str, angle):
    v = jnp.zeros(3, jnp.float32).at["xyz".index(axis)].set(angle)
    return axis_angle_to_matrix(v)


def _mirror_terms(terms):
    return [(a, m if a == "x" else -m, h) for a, m, h in terms]


def _chain(key, terms, mirror: bool):
    """Product of elementary rotations with uniform noise; mirrored for the right side."""
    R = jnp.eye(3, dtype=jnp.float32)
    keys = jax.random.split(key, max(len(terms), 1))
    for k, (a, m, h) in zip(keys, _mirror_terms(terms) if mirror else terms):
        R = R @ _elem(a, m + jax.random.uniform(k, (), minval=-h, maxval=h) * (-1.0 if (mirror and a != "x") else 1.0))
    return R


def sample_world_deltas(key, c: int, joint_names, ref_joints) -> jnp.ndarray:
    """(J, 3, 3) world-axes delta rotations of class c (see TEMPLATES), Python-level class switch."""
    t = TEMPLATES[c]
    J = len(joint_names)
    D = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (J, 3, 3))
    ks = iter(jax.random.split(key, 32))
    idx = joint_names.index

    def setj(D, name, R):
        return D.at[idx(name)].set(R)

    if c == 2:
        # stride: which leg is in front is random (a coin in the key), lean from the root
        front_left = jax.random.bernoulli(next(ks))
        for side, mir in (("L", False), ("R", True)):
            is_front = front_left if side == "L" else ~front_left
            up_f, lo_f = (_chain(next(ks), t["front_leg"][i], mir) for i in range(2))
            up_b, lo_b = (_chain(next(ks), t["back_leg"][i], mir) for i in range(2))
            D = setj(D, f"upperleg01.{side}", jnp.where(is_front, up_f, up_b))
            D = setj(D, f"lowerleg01.{side}", jnp.where(is_front, lo_f, lo_b))
        m, h = t["root_lean"]
        D = setj(D, "root", _elem("x", m + jax.random.uniform(next(ks), (), minval=-h, maxval=h)))
    else:
        for side, mir in (("L", False), ("R", True)):
            D = setj(D, f"upperleg01.{side}", _chain(next(ks), t["upperleg01.L"], mir))
            D = setj(D, f"lowerleg01.{side}", _chain(next(ks), t["lowerleg01.L"], mir))
    # global yaw noise: the view tags stay meaningful (body faces +z within +-0.2 rad)
    yaw = _elem("y", jax.random.uniform(next(ks), (), minval=-0.2, maxval=0.2))
    D = D.at[0].set(yaw @ D[0])
    rest = jnp.asarray(ref_joints)
    for side, mir in (("L", False), ("R", True)):
        D = setj(D, f"upperarm01.{side}", _chain(next(ks), t["upperarm01.L"], mir))
        s, e, w = (idx(f"{n}.{side}") for n in ("upperarm01", "lowerarm01", "wrist"))
        axis = jnp.cross(rest[e] - rest[s], rest[w] - rest[e])
        ang = t["elbow.L"] + jax.random.uniform(next(ks), (), minval=-t["elbow_h"], maxval=t["elbow_h"])
        D = setj(D, f"lowerarm01.{side}", axis_angle_to_matrix(axis / jnp.linalg.norm(axis) * jnp.maximum(ang, 0.0)))
    m, h = t["spine"]
    for n in _SPINE:
        D = setj(D, n, _elem("x", m + jax.random.uniform(next(ks), (), minval=-h, maxval=h)))
    return D


# ------------------------------------------------------------------------------------------------
# Pose features: the joint angles the classifier uses (model-agnostic, from OpenPose-18 keypoints)
# ------------------------------------------------------------------------------------------------
FEATURE_NAMES = ("hip", "hip_other", "knee", "knee_other", "shoulder", "shoulder_other", "elbow", "elbow_other")


def _angle(a, b):
    cos = jnp.sum(a * b, -1) / jnp.maximum(jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1), 1e-9)
    return jnp.arccos(jnp.clip(cos, -1.0, 1.0))


def pose_features(kp3d):
    """(..., 8) hip, knee, shoulder and elbow angles (radians) from OpenPose-18 3D keypoints.

    hip: torso-down (neck -> mid-hip) vs thigh; knee: thigh vs shank; shoulder: torso-down vs upper
    arm; elbow: upper arm vs forearm. Left/right are sorted (larger first) so a mirrored pose (the
    stride's front leg) has the same features.
    """
    neck = kp3d[..., 1, :]
    midhip = 0.5 * (kp3d[..., 8, :] + kp3d[..., 11, :])
    down = midhip - neck
    out = []
    for (sh, el, wr), (hp, kn, an) in (((2, 3, 4), (8, 9, 10)), ((5, 6, 7), (11, 12, 13))):
        thigh = kp3d[..., kn, :] - kp3d[..., hp, :]
        shank = kp3d[..., an, :] - kp3d[..., kn, :]
        upper = kp3d[..., el, :] - kp3d[..., sh, :]
        fore = kp3d[..., wr, :] - kp3d[..., el, :]
        out.append(jnp.stack([_angle(down, thigh), _angle(thigh, shank), _angle(down, upper), _angle(upper, fore)], -1))
    r, l = out
    hi, lo = jnp.maximum(r, l), jnp.minimum(r, l)
    return jnp.stack([hi[..., 0], lo[..., 0], hi[..., 1], lo[..., 1], hi[..., 2], lo[..., 2], hi[..., 3], lo[..., 3]], -1)


# ------------------------------------------------------------------------------------------------
# Objects: axis-aligned boxes with 4 vertices per face (flat normals), outward CCW winding.
# ------------------------------------------------------------------------------------------------
_BOX_FACES = onp.array([[0, 1, 2], [0, 2, 3]], onp.int32)


def box_mesh(center, size):
    """24 vertices, 12 faces of an axis-aligned box (center (3,), size (3,))."""
    quads = []
    for axis in range(3):
        for sgn in (-1.0, 1.0):
            u, v = [a for a in range(3) if a != axis]
            corners = []
            for cu, cv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = [0.0, 0.0, 0.0]
                p[axis] = sgn
                p[u] = cu
                p[v] = cv
                corners.append(p)
            corners = onp.array(corners, onp.float32)
            n = onp.cross(corners[1] - corners[0], corners[2] - corners[0])
            if onp.dot(n, onp.eye(3)[axis] * sgn) < 0:
                corners = corners[::-1]
            quads.append(corners)
    unit = jnp.asarray(onp.concatenate(quads), jnp.float32)  # (24, 3) in [-1, 1]
    faces = onp.concatenate([_BOX_FACES + 4 * q for q in range(6)])
    return center[None] + 0.5 * size[None] * unit, jnp.asarray(faces)


N_OBJ_BOXES = 2  # every object is two boxes (the second has zero size unless it is a backrest)


def place_object(key, c: int, verts, kp3d, joints, joint_names):
    """Two boxes (centers (2,3), sizes (2,3)) and an RGB colour for class c, touching the body as the
    class requires. `verts` are posed vertices with the feet on the floor (y = 0)."""
    k = jax.random.split(key, 8)
    u = lambda i, lo, hi, shape=(): jax.random.uniform(k[i], shape, minval=lo, maxval=hi)  # noqa: E731
    idx = joint_names.index
    pelvis = joints[idx("root")]
    zero = jnp.zeros(3, jnp.float32)
    if c == 0:
        # seat top = lowest body point within 0.15 m (horizontally) of the pelvis: the buttocks
        d = jnp.linalg.norm((verts - pelvis[None])[:, jnp.array([0, 2])], axis=-1)
        seat = jnp.min(jnp.where(d < 0.15, verts[:, 1], 10.0))
        w, dpt = u(0, 0.38, 0.55), u(1, 0.38, 0.50)
        c0 = jnp.stack([pelvis[0], 0.5 * seat, pelvis[2] + 0.5 * dpt - 0.12])
        s0 = jnp.stack([w, seat, dpt])
        back = jax.random.bernoulli(k[2])  # chair-like box: a backrest behind the seat
        bh = u(3, 0.35, 0.55) * back
        c1 = jnp.stack([c0[0], seat + 0.5 * bh, c0[2] - 0.5 * dpt + 0.03])
        s1 = jnp.stack([w, bh, 0.06 * back])
        color = jnp.stack([u(4, 0.25, 0.55), u(5, 0.18, 0.40), u(6, 0.10, 0.30)])  # wood / dark
    elif c == 1:
        lw, rw = kp3d[7], kp3d[4]
        mid = 0.5 * (lw + rw)
        gap = jnp.abs(lw[0] - rw[0])
        w = jnp.clip(gap - 0.06, 0.20, 0.60)
        h = u(0, 0.22, 0.34)
        dpt = u(1, 0.25, 0.38)
        chest_z = jnp.max(jnp.where(jnp.abs(verts[:, 1] - mid[1]) < 0.1, verts[:, 2], -10.0) *
                          (jnp.abs(verts[:, 0] - mid[0]) < 0.12))
        cz = jnp.maximum(mid[2], chest_z + 0.5 * dpt + 0.02)
        c0 = jnp.stack([mid[0], mid[1], cz])
        s0 = jnp.stack([w, h, dpt])
        c1, s1 = zero, zero
        color = jnp.stack([u(4, 0.60, 0.80), u(5, 0.42, 0.58), u(6, 0.22, 0.36)])  # cardboard
    elif c == 2:
        lw, rw = kp3d[7], kp3d[4]
        mid = 0.5 * (lw + rw)
        front = jnp.maximum(lw[2], rw[2])
        h = mid[1] + u(0, 0.08, 0.20)
        w, dpt = u(1, 0.60, 0.85), u(2, 0.50, 0.70)
        c0 = jnp.stack([mid[0], 0.5 * h, front + 0.5 * dpt])
        s0 = jnp.stack([w, h, dpt])
        c1, s1 = zero, zero
        color = jnp.stack([u(4, 0.35, 0.55), u(5, 0.22, 0.36), u(6, 0.10, 0.20)])  # crate wood
    else:
        side = jnp.where(jax.random.bernoulli(k[0]), 1.0, -1.0)
        s = u(1, 0.32, 0.50)
        half = jnp.max(jnp.abs(verts[:, 0] - pelvis[0]) * (verts[:, 1] < 0.9 * jnp.max(verts[:, 1])))
        cx = pelvis[0] + side * (jnp.minimum(half, 0.35) + 0.5 * s + u(2, 0.05, 0.25))
        c0 = jnp.stack([cx, 0.5 * s, pelvis[2] + u(3, -0.15, 0.15)])
        s0 = jnp.stack([s, s, s * u(5, 0.8, 1.2)])
        c1, s1 = zero, zero
        color = jnp.stack([u(4, 0.60, 0.80), u(6, 0.42, 0.58), u(7, 0.22, 0.36)])
    return jnp.stack([c0, c1]), jnp.stack([s0, s1]), color


# ------------------------------------------------------------------------------------------------
# Colours
# ------------------------------------------------------------------------------------------------
def part_ids(model) -> onp.ndarray:
    """(V,) int: 0 skin (head, hands), 1 shirt (torso, upper arms), 2 trousers (legs), 3 shoes, 4 forearms."""
    ids = []
    for n in model.joint_names:
        if n.startswith(("head", "neck", "eye", "jaw", "wrist", "finger", "metacarpal", "tongue")):
            ids.append(0)
        elif n.startswith(("foot", "toe")):
            ids.append(3)
        elif n.startswith(("upperleg", "lowerleg")):
            ids.append(2)
        elif n.startswith("lowerarm"):
            ids.append(4)
        else:
            ids.append(1)
    return onp.asarray(ids, onp.int32)[onp.asarray(model.lbs_weights).argmax(-1)]


def random_colors(key, parts):
    """Per-vertex colours: a skin tone, shirt, trousers and shoes colour; forearms bare or sleeved."""
    k = jax.random.split(key, 6)
    skin = jnp.array([0.95, 0.75, 0.60]) * jax.random.uniform(k[0], (), minval=0.45, maxval=1.0)
    shirt = jax.random.uniform(k[1], (3,), minval=0.05, maxval=0.95)
    pants = jax.random.uniform(k[2], (3,), minval=0.05, maxval=0.7)
    shoes = jax.random.uniform(k[3], (3,), minval=0.02, maxval=0.35)
    fore = jnp.where(jax.random.bernoulli(k[4]), shirt, skin)
    table = jnp.stack([skin, shirt, pants, shoes, fore])
    return table[parts]


# ------------------------------------------------------------------------------------------------
# One scene: pose, place, centre, render V views
# ------------------------------------------------------------------------------------------------
def _shade(out, cam):
    R = cam.T_cam_world[:3, :3]
    light = R.T @ jnp.array([-0.4, -0.5, -1.0], jnp.float32)
    light = light / jnp.linalg.norm(light)
    shade = 0.55 + 0.45 * jnp.abs(jnp.einsum("hwc,c->hw", out["normal"], light))
    return out["rgb"] * shade[..., None]


def make_scene_fn(body, views: int, background: str = "white"):
    """jit-able `scene(key, c) -> dict`: one posed, coloured, placed scene of class c (traced int) and
    `views` renders. Every class's pose and object are built and the one of class c is selected, so one
    compiled program serves all classes."""
    model = body.model
    names = model.joint_names
    reg = keypoint_regressor(body, "openpose18")
    parts = jnp.asarray(part_ids(model))
    C = jnp.asarray(C_PROJECT_ANNY, jnp.float32)
    Fb = model.faces.shape[0]

    def scene(key, c):
        k_phen, k_pose, k_obj, k_col, k_cam, k_bg = jax.random.split(key, 6)
        phen = random_phenotype(k_phen, 0.15)
        betas = phenotype_to_coeffs(body.extras, phen)
        zero = BodyParams(betas=betas, pose=jnp.zeros((model.num_joints, 3)), transl=jnp.zeros(3), scale=jnp.ones(()))
        ref_j = pose_joints(model, zero, rotations=reference_pose(body, betas), with_extra=False)
        Dw = jnp.stack([sample_world_deltas(k_pose, i, names, ref_j) for i in range(len(CLASSES))])[c]
        D = jnp.einsum("ba,jbc,cd->jad", C, Dw, C)  # world axes -> anny axes (as demo.py)
        params, L = anny_params(body, phen, D, jnp.zeros(3))
        posed = pose(model, params, rotations=L)
        floor = jnp.min(posed.vertices[:, 1])
        off = jnp.zeros(3).at[1].set(-floor)
        verts = posed.vertices + off
        joints = posed.joints + off
        kp3d = apply_regressor(reg, posed) + off
        objs = [place_object(k_obj, i, verts, kp3d, joints, names) for i in range(len(CLASSES))]
        centers, sizes, ocol = (jnp.stack([o[j] for o in objs])[c] for j in range(3))
        bv, bf = zip(*[box_mesh(centers[i], sizes[i]) for i in range(N_OBJ_BOXES)])
        obj_v = jnp.concatenate(bv)
        obj_f = jnp.concatenate([f + 24 * i for i, f in enumerate(bf)])
        # centre the scene's bounding box on the cameras' look-at target (the origin)
        lo = jnp.minimum(verts.min(0), jnp.where(sizes[:, :1] > 0, centers - 0.5 * sizes, 10.0).min(0))
        hi = jnp.maximum(verts.max(0), jnp.where(sizes[:, :1] > 0, centers + 0.5 * sizes, -10.0).max(0))
        shift = -0.5 * (lo + hi)
        verts, joints, kp3d, obj_v, centers = verts + shift, joints + shift, kp3d + shift, obj_v + shift, centers + shift
        colors = jnp.concatenate([random_colors(k_col, parts), jnp.broadcast_to(ocol, obj_v.shape)])
        V_all = jnp.concatenate([verts, obj_v])
        F_all = jnp.concatenate([model.faces, obj_f + verts.shape[0]])
        vs = sample_views(k_cam, views, height=RES, width=RES)
        if background == "random":
            bg = jax.random.uniform(k_bg, (views, 3), minval=0.0, maxval=1.0)
        else:
            bg = jnp.full((views, 3), 1.0 if background == "white" else 0.0, jnp.float32)

        def render(cam, bgc):
            big = supersampled_camera(cam, SUPERSAMPLE)
            out = rasterize(V_all, F_all, colors, big, mode="hard", background=0.0, cull_backfaces=False)
            fid = out["face_ids"]
            human = (fid >= 0) & (fid < Fb)
            obj = fid >= Fb
            rgb = _shade(out, big)
            rgb = jnp.where((fid >= 0)[..., None], rgb, bgc)
            stack = jnp.concatenate([rgb, human[..., None].astype(jnp.float32), obj[..., None].astype(jnp.float32)], -1)
            small = downsample(stack, SUPERSAMPLE)
            uv, depth = project(cam.K, cam.T_cam_world, kp3d)
            return small, uv, depth

        small, uv, depth = jax.vmap(render)(vs.camera, bg)
        return dict(
            image=small[..., :3], human=small[..., 3], obj=small[..., 4], uv=uv, depth=depth,
            tag=vs.tag, azimuth=vs.azimuth_deg, elevation=vs.elevation_deg,
            kp3d=kp3d, features=pose_features(kp3d), pelvis=joints[names.index("root")],
            obj_centers=centers, obj_sizes=sizes, overflow=jnp.zeros(()),
        )

    return scene


def frozen_anny_arrays(body, phen: Phenotype) -> dict[str, onp.ndarray]:
    """Anny cache arrays with `phen`'s shape baked into the template (S = 1, zero blend directions).

    The rest frames keep special-Procrustes form: M0 = R_rest diag(3, 2, 1) has distinct singular values
    (finite SVD gradients) and its Procrustes rotation is R_rest exactly.
    """
    from anchorhoi_jax.body.skinning import rest_vertices

    m = body.model
    betas = phenotype_to_coeffs(body.extras, phen)
    V, J = m.num_vertices, m.num_joints
    R = onp.asarray(rest_orientations(m, betas), onp.float64)
    f32 = onp.float32
    K = body.extras.phenotype_mask.shape[0]
    return dict(
        v_template=onp.asarray(rest_vertices(m, betas), f32),
        shapedirs=onp.zeros((V, 3, 1), f32),
        j_template=onp.asarray(rest_joints(m, betas), f32),
        j_shapedirs=onp.zeros((J, 3, 1), f32),
        lbs_weights_ids=onp.asarray(m.skin_joint_ids, onp.int32),
        lbs_weights_vals=onp.asarray(m.skin_joint_weights, f32),
        faces=onp.asarray(m.faces, onp.int32),
        rest_orient_template=(R @ onp.diag([3.0, 2.0, 1.0])).astype(f32),
        rest_orient_dirs=onp.zeros((J, 3, 3, 1), f32),
        reference_orient=onp.asarray(body.extras.reference_orient, f32),
        phenotype_mask=onp.asarray(body.extras.phenotype_mask, f32),
        phenotype_projection=onp.zeros((K, 1), f32),
        keypoint_regressor=onp.asarray(body.extras.keypoint_regressor, f32),
        keypoint_names=onp.array(body.extras.keypoint_names),
        parents=onp.asarray(m.parents, onp.int32),
        joint_names=onp.array(m.joint_names),
        anny_version=onp.array("frozen"),
    )


def load_frozen_anny(path):
    """The frozen body written by `frozen_anny_arrays` (betas = zeros(1)), without the anny package."""
    from anchorhoi_jax.body.anny import _arrays_to_body
    from anchorhoi_jax.body.skinning import with_sparse_skinning

    with onp.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    body = _arrays_to_body(arrays)
    return body.replace(model=with_sparse_skinning(body.model))


def generate(body, scenes_per_class: int, views: int, seed: int, batch: int = 16, log=print,
             background: str = "white") -> dict[str, onp.ndarray]:
    """All classes' scenes and renders as host arrays (see module docstring)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    root = jax.random.key(seed)
    chunks = []
    fn = jax.jit(jax.vmap(make_scene_fn(body, views, background)))
    for c in range(len(CLASSES)):
        t0 = time.perf_counter()
        for start in range(0, scenes_per_class, batch):
            n = min(batch, scenes_per_class - start)
            keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(root, c), i))(jnp.arange(start, start + batch))
            out = jax.tree.map(lambda a: onp.asarray(a)[:n], fn(keys, jnp.full((batch,), c, jnp.int32)))
            out["cls"] = onp.full((n,), c, onp.int32)
            chunks.append(out)
        log(f"class {c} '{CLASSES[c]}': {scenes_per_class} scenes x {views} views in {time.perf_counter() - t0:.1f} s")
    return {k: onp.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}


def class_statistics(data: dict[str, onp.ndarray]) -> dict:
    """Per-class mean and std of the pose features (the nearest-class-mean classifier) and the
    relation geometry the evaluation checks, from packed data."""
    feats, cls = data["features"], data["scene_cls"]
    out = dict(classes=list(CLASSES), feature_names=list(FEATURE_NAMES), mean=[], std=[])
    for c in range(len(CLASSES)):
        f = feats[cls == c]
        out["mean"].append(f.mean(0).tolist())
        out["std"].append(f.std(0).tolist())
    return out


def pack(data: dict[str, onp.ndarray]) -> dict[str, onp.ndarray]:
    """Flatten scenes x views into one image axis; uint8 images and coverage, float16 keypoints."""
    S, V = data["image"].shape[:2]
    img = lambda a: onp.clip(onp.round(a * 255.0), 0, 255).astype(onp.uint8).reshape(S * V, *a.shape[2:])  # noqa: E731
    rep = lambda a: onp.repeat(a, V, axis=0)  # noqa: E731
    uv = data["uv"].reshape(S * V, 18, 2)
    inframe = (data["depth"].reshape(S * V, 18) > 0) & onp.all((uv >= 0) & (uv < RES), -1)
    return dict(
        image=img(data["image"]), human=img(data["human"]), obj=img(data["obj"]),
        keypoints=uv.astype(onp.float16), inframe=inframe, tag=data["tag"].reshape(-1).astype(onp.int8),
        azimuth=data["azimuth"].reshape(-1).astype(onp.float32), elevation=data["elevation"].reshape(-1).astype(onp.float32),
        cls=rep(data["cls"]).astype(onp.int8), scene=onp.repeat(onp.arange(S), V).astype(onp.int32),
        # per scene
        scene_cls=data["cls"].astype(onp.int8), features=data["features"].astype(onp.float32),
        kp3d=data["kp3d"].astype(onp.float32), pelvis=data["pelvis"].astype(onp.float32),
        obj_centers=data["obj_centers"].astype(onp.float32), obj_sizes=data["obj_sizes"].astype(onp.float32),
        classes=onp.array(CLASSES), view_tags=onp.array(VIEW_TAGS),
    )


def main(argv=None) -> None:
    from anchorhoi_jax.body.anny import load_anny

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes-per-class", type=int, default=1000)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--background", default="white", choices=BACKGROUNDS)
    ap.add_argument("--out", default=".cache/prior")
    ap.add_argument("--anny-cache", default=None, help="directory of the anny-*.npz cache (default: load_anny's)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    body = load_anny(cache_dir=args.anny_cache)
    (out / "anny").mkdir(exist_ok=True)
    onp.savez_compressed(out / "anny" / f"anny-frozen-f{CACHE_FORMAT}.npz", **frozen_anny_arrays(body, Phenotype()))
    t0 = time.perf_counter()
    data = pack(generate(body, args.scenes_per_class, args.views, args.seed, args.batch, background=args.background))
    onp.savez_compressed(out / "data.npz", **data)
    (out / "classes.json").write_text(json.dumps(class_statistics(data), indent=1))
    size = (out / "data.npz").stat().st_size / 2**20
    print(f"wrote {len(data['image'])} images ({size:.1f} MiB) to {out / 'data.npz'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
