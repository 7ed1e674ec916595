"""Synthetic human-object interactions with known motion, for contact tests and the motion benchmark.

Three interaction types (issue 5 acceptance): carry a box (box rigidly held between the palms while
walking), push an object (palm tips on the back face of a large box sliding with the walker),
sit on a chair (pelvis on the seat; upper body, arms and shins move; chair static). Each scene
returns the ground-truth per-frame pose, the static instance (= frame 0), the object mesh and a
monocular camera; `observe` projects OpenPose-18 points with pixel noise and zero confidence for
keypoints hidden behind the object.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import pose, pose_joints
from anchorhoi_jax.geometry.cameras import intrinsics_from_fov, look_at, project
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from anchorhoi_jax.geometry.sdf import signed_distance


def box_mesh(size, center=(0.0, 0.0, 0.0)):
    """Closed, outward-oriented box with each face split in 2x2 quads (so normals are per-face)."""
    sx, sy, sz = (0.5 * onp.asarray(size, float)).tolist()
    c = onp.asarray(center, float)
    v = onp.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)]) + c
    f = onp.array([
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
    ])
    return v, f


def merge_meshes(parts):
    vs, fs, off = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    return onp.concatenate(vs), onp.concatenate(fs)


def _R(axis, deg):
    aa = onp.zeros(3)
    aa["xyz".index(axis)] = onp.deg2rad(deg)
    return onp.asarray(axis_angle_to_matrix(jnp.asarray(aa, jnp.float32)), onp.float64)


def _aa(R):
    return onp.asarray(matrix_to_axis_angle(jnp.asarray(R, jnp.float32)))


@dataclasses.dataclass
class Scene:
    name: str
    pose: onp.ndarray  # (L, J, 3) full local pose, ground truth
    transl: onp.ndarray  # (L, 3)
    R_obj: onp.ndarray  # (L, 3, 3)
    t_obj: onp.ndarray  # (L, 3)
    object_vertices: onp.ndarray  # object frame
    object_faces: onp.ndarray
    K: onp.ndarray
    T_cam_world: onp.ndarray
    image_size: tuple[int, int]  # (width, height)
    fps: float = 24.0


class _Jitter:
    """Held-out variation of a scene: factors and offsets drawn from `rng`, identity when rng is None.

    The benchmark scenes (rng=None) were used while developing the tracker; a held-out variant
    draws another motion (amplitude, frequency, speed), object size and camera (yaw, distance,
    height), so accuracy numbers can be checked on configurations nothing was tuned on."""

    def __init__(self, rng: onp.random.Generator | None):
        self.rng = rng

    def f(self, lo: float, hi: float) -> float:  # multiplicative factor
        return 1.0 if self.rng is None else float(self.rng.uniform(lo, hi))

    def a(self, lo: float, hi: float) -> float:  # additive offset
        return 0.0 if self.rng is None else float(self.rng.uniform(lo, hi))


def _camera(target, yaw_deg: float, distance: float = 4.5, height: float = 1.3, size=(640, 480), jit: _Jitter | None = None):
    if jit is not None:
        yaw_deg, distance, height = yaw_deg + jit.a(-20.0, 20.0), distance * jit.f(0.8, 1.2), height + jit.a(-0.3, 0.4)
    yaw = onp.deg2rad(yaw_deg)
    eye = onp.asarray(target) + distance * onp.array([onp.sin(yaw), 0.0, onp.cos(yaw)])
    eye[1] = height
    T = onp.asarray(look_at(jnp.asarray(eye, jnp.float32), jnp.asarray(target, jnp.float32)))
    K = onp.asarray(intrinsics_from_fov(45.0, size[1], size[0]))
    return K, T


def _arms_forward(J: int, down_deg: float, twist_deg: float = 0.0):
    """Local poses of shoulders/elbows: both arms forward, forearms horizontal, optional twist of
    the forearm about its own axis (−90° turns SMPL-X palms from down to facing each other)."""
    p = onp.zeros((J, 3))
    for sh, el, sgn in ((16, 18, 1.0), (17, 19, -1.0)):
        R_target = _R("y", -90.0 * sgn)  # rest arm (±x) -> forward (+z)
        R_sh = _R("x", down_deg) @ R_target
        p[sh] = _aa(R_sh)
        p[el] = _aa(R_sh.T @ R_target @ _R("x", twist_deg))
    return p


def _walk(p, t, amp=0.35, freq=0.9):
    w = 2 * onp.pi * freq * t
    p[1] = [-amp * onp.sin(w), 0, 0]
    p[2] = [amp * onp.sin(w), 0, 0]
    p[4] = [0.35 * (1 + onp.sin(w - 1.2)), 0, 0]
    p[5] = [0.35 * (1 - onp.sin(w - 1.2)), 0, 0]
    return p


def _frames(L, fps):
    return onp.arange(L) / fps


_pose_jit = jax.jit(pose)  # scenes pose the body per frame: one compile per model shape, not 120 eager calls


def _posed(model, betas, pose_, transl):
    return _pose_jit(model, BodyParams(betas=jnp.asarray(betas, jnp.float32), pose=jnp.asarray(pose_, jnp.float32),
                                       transl=jnp.asarray(transl, jnp.float32), scale=jnp.ones((), jnp.float32)))


def _owned(model: BodyModel, joints) -> onp.ndarray:
    """Face-referenced vertices whose dominant skinning joint is in `joints`."""
    owner = onp.argmax(onp.asarray(model.lbs_weights), axis=1)
    used = onp.zeros(model.num_vertices, bool)
    used[onp.asarray(model.faces).reshape(-1)] = True
    return onp.flatnonzero(onp.isin(owner, list(joints)) & used)


LEFT_HAND = [20] + list(range(25, 40))
RIGHT_HAND = [21] + list(range(40, 55))


def carry_box(model: BodyModel, L: int = 120, fps: float = 24.0, rng: onp.random.Generator | None = None) -> Scene:
    J = model.num_joints
    jit = _Jitter(rng)
    base = _arms_forward(J, down_deg=35.0 + jit.a(-15.0, 15.0), twist_deg=-90.0)
    betas = onp.zeros(model.num_shape)
    v0 = onp.asarray(_posed(model, betas, base, onp.zeros(3)).vertices)
    lh, rh = v0[_owned(model, LEFT_HAND)], v0[_owned(model, RIGHT_HAND)]
    fore = v0[_owned(model, [18, 19])]
    # The box fills the gap between the palms (touching the innermost hand points) and starts just
    # beyond the forearms, so the hands hold it from the sides.
    half_x = 0.5 * (lh[:, 0].min() - rh[:, 0].max())
    z0 = fore[:, 2].max() + 0.01
    amp, freq, speed, sway = jit.f(0.6, 1.3), jit.f(0.8, 1.25), jit.f(0.6, 1.4), jit.f(0.5, 1.5)
    size = (2 * half_x, 0.26 * jit.f(0.7, 1.4), 0.3 * jit.f(0.7, 1.4))
    centre0 = onp.array([0.5 * (lh[:, 0].min() + rh[:, 0].max()), 0.5 * (lh[:, 1].mean() + rh[:, 1].mean()), z0 + 0.5 * size[2]])
    v, f = box_mesh(size)
    poses, transls, Rs, ts = [], [], [], []
    T0 = None
    for t in _frames(L, fps):
        p = _walk(base.copy(), t, amp=0.35 * amp, freq=0.9 * freq)
        p[0] = [0.0, 0.08 * sway * onp.sin(2 * onp.pi * 0.45 * t), 0.0]
        p[3] = [0.05 * onp.sin(2 * onp.pi * 0.9 * freq * t), 0.0, 0.0]
        tr = onp.array([0.0, 0.015 * onp.sin(2 * onp.pi * 1.8 * freq * t), 0.3 * speed * t])
        posed = _posed(model, betas, p, tr)
        Tc = onp.asarray(posed.T_world_joint[9], onp.float64)
        if T0 is None:
            T0 = Tc
        rel = Tc @ onp.linalg.inv(T0)  # the box rides rigidly with the chest (arms fixed relative to it)
        Rs.append(rel[:3, :3])
        ts.append(rel[:3, :3] @ centre0 + rel[:3, 3])
        poses.append(p)
        transls.append(tr)
    K, T = _camera(onp.array([0.0, 1.0, 0.3 * speed * L / fps / 2]), yaw_deg=40.0, jit=jit)
    return Scene("carry_box", onp.stack(poses), onp.stack(transls), onp.stack(Rs), onp.stack(ts), v, f, K, T, (640, 480), fps)


def push_box(model: BodyModel, L: int = 120, fps: float = 24.0, rng: onp.random.Generator | None = None) -> Scene:
    J = model.num_joints
    jit = _Jitter(rng)
    base = _arms_forward(J, down_deg=12.0 + jit.a(-8.0, 10.0))
    base[3] = [0.15 * jit.f(0.3, 1.6), 0.0, 0.0]  # lean forward
    base[20] = [0.0, 0.0, onp.pi / 2]  # wrists extended: palms face forward, fingers up
    base[21] = [0.0, 0.0, -onp.pi / 2]
    betas = onp.zeros(model.num_shape)
    v0 = onp.asarray(_posed(model, betas, base, onp.zeros(3)).vertices)
    hands = v0[onp.concatenate([_owned(model, LEFT_HAND), _owned(model, RIGHT_HAND)])]
    # The box's back face touches the foremost hand points (palms).
    z_face = hands[:, 2].max()
    size = (0.8 * jit.f(0.8, 1.3), hands[:, 1].mean() + 0.15, 0.6 * jit.f(0.7, 1.3))
    centre0 = onp.array([0.0, 0.5 * size[1], z_face + 0.5 * size[2]])
    v, f = box_mesh(size)
    amp, freq, speed = jit.f(0.6, 1.3), jit.f(0.8, 1.25), jit.f(0.6, 1.4)
    poses, transls, Rs, ts = [], [], [], []
    for t in _frames(L, fps):
        p = _walk(base.copy(), t, amp=0.3 * amp, freq=0.9 * freq)
        tr = onp.array([0.0, 0.0, 0.35 * speed * t])
        poses.append(p)
        transls.append(tr)
        Rs.append(onp.eye(3))
        ts.append(centre0 + tr)
    K, T = _camera(onp.array([0.0, 0.9, 0.35 * speed * L / fps / 2 + 0.3]), yaw_deg=65.0, jit=jit)
    return Scene("push_box", onp.stack(poses), onp.stack(transls), onp.stack(Rs), onp.stack(ts), v, f, K, T, (640, 480), fps)


def _chair_boxes(seat_top: float, z_back: float, z_front: float):
    """(size, centre) of the chair's parts: seat slab, backrest and four legs (axis-aligned boxes)."""
    zc, zl = 0.5 * (z_back + z_front), z_front - z_back
    boxes = [((0.5, 0.05, zl), (0.0, seat_top - 0.025, zc)), ((0.5, 0.5, 0.04), (0.0, seat_top + 0.25, z_back - 0.02))]
    boxes += [((0.04, seat_top - 0.05, 0.04), (x, 0.5 * (seat_top - 0.05), z))
              for x in (-0.22, 0.22) for z in (z_back + 0.03, z_front - 0.03)]
    return boxes


def chair_mesh(seat_top: float, z_back: float, z_front: float):
    """Seat slab, backrest and four legs: separate closed boxes (a watertight union)."""
    return merge_meshes([box_mesh(size, centre) for size, centre in _chair_boxes(seat_top, z_back, z_front)])


def boxes_depth(points, boxes) -> onp.ndarray:
    """Exact depth (m, > 0 inside) of points in a union of axis-aligned boxes [(size, centre)]."""
    p = onp.asarray(points, onp.float64)
    d = [onp.min(0.5 * onp.asarray(s) - onp.abs(p - onp.asarray(c)), axis=-1) for s, c in boxes]
    return onp.max(onp.stack(d), axis=0)


@jax.jit
def _vertices_seq(model, poses, transl):
    def verts(p, tr):
        return pose(model, BodyParams(betas=jnp.zeros(model.num_shape), pose=p, transl=tr, scale=jnp.ones(()))).vertices

    return jax.vmap(verts)(poses, transl)


CHAIR_CLEARANCE = 0.005  # m between the moving body and the backrest / seat front edge over the whole motion


def sit_chair(model: BodyModel, L: int = 120, fps: float = 24.0, rng: onp.random.Generator | None = None) -> Scene:
    """Sitting on a chair: the chair is built around the *whole* motion, not frame 0 alone, so the ground
    truth never penetrates it (a penetration term cannot be judged against a ground truth that is inside the
    object): the seat top is the lowest buttock/thigh point over all frames (the body rests on it), the
    backrest stands behind the rearmost body point above the seat in any frame, the seat's front edge before
    the rearmost calf/foot point below the seat top. Checked exactly at the end (RuntimeError otherwise)."""
    J = model.num_joints
    jit = _Jitter(rng)
    base = onp.zeros((J, 3))
    base[1] = base[2] = [-onp.pi / 2, 0, 0]  # hips flexed: thighs forward
    base[4] = base[5] = [onp.pi / 2, 0, 0]  # knees flexed: shins down
    betas = onp.zeros(model.num_shape)
    posed0 = _posed(model, betas, base, onp.zeros(3))
    seat_top = 0.45 * jit.f(0.85, 1.15)
    poses = []
    k = [jit.f(0.5, 1.5) for _ in range(6)]  # amplitudes
    freq = jit.f(0.7, 1.4)
    for t in _frames(L, fps):
        w = 2 * onp.pi * 0.5 * freq * t
        p = base.copy()
        p[3] = [0.25 * k[0] * onp.sin(w), 0.0, 0.0]
        p[9] = [0.0, 0.3 * k[1] * onp.sin(0.7 * w), 0.0]
        p[15] = [0.0, 0.5 * k[2] * onp.sin(1.3 * w), 0.0]
        p[16] = [0.0, 0.0, -0.6 - 0.4 * k[3] * onp.sin(w)]
        p[17] = [0.0, 0.0, 0.6 + 0.4 * k[4] * onp.sin(1.5 * w)]
        p[18] = [0.0, -0.5 * k[5] * (1 + onp.sin(2 * w)), 0.0]
        p[4] = [onp.pi / 2 - 0.3 * (1 + onp.sin(w)), 0, 0]
        p[5] = [onp.pi / 2 - 0.2 * (1 + onp.sin(1.5 * w)), 0, 0]
        poses.append(p)
    poses = onp.stack(poses)
    used = onp.zeros(model.num_vertices, bool)
    used[onp.asarray(model.faces).reshape(-1)] = True
    V = onp.asarray(_vertices_seq(model, jnp.asarray(poses, jnp.float32), jnp.zeros((L, 3), jnp.float32)))[:, used]
    owner = onp.argmax(onp.asarray(model.lbs_weights), axis=1)[used]
    # The lowest buttock/thigh point of the whole motion rests on the seat.
    transl = onp.array([0.0, seat_top - V[:, onp.isin(owner, [0, 1, 2]), 1].min(), 0.0])
    V = V + transl
    half_w = 0.25 + CHAIR_CLEARANCE  # the seat and backrest are 0.5 m wide
    in_x = onp.abs(V[..., 0]) <= half_w
    above = in_x & (V[..., 1] >= seat_top - CHAIR_CLEARANCE) & (V[..., 1] <= seat_top + 0.5 + CHAIR_CLEARANCE)
    back0 = V[0, onp.isin(owner, [0, 3, 6, 9]), 2]
    z_back = min(back0.min() - 0.03, V[..., 2][above].min() - CHAIR_CLEARANCE)
    lower_leg = in_x & onp.isin(owner, [4, 5, 7, 8, 10, 11])[None] & (V[..., 1] < seat_top + CHAIR_CLEARANCE)
    knee_z = float(posed0.joints[4][2])
    z_front = min(knee_z - 0.08, V[..., 2][lower_leg].min() - CHAIR_CLEARANCE) if lower_leg.any() else knee_z - 0.08
    boxes = _chair_boxes(seat_top, z_back, z_front)
    depth = boxes_depth(V.reshape(-1, 3), boxes).max()
    if depth > 1e-4:  # the lowest seat point touches the seat exactly (depth 0 up to float rounding)
        raise RuntimeError(f"sit_chair: the ground-truth body is {1000 * depth:.1f} mm inside the chair")
    v, f = chair_mesh(seat_top, z_back, z_front)
    K, T = _camera(onp.array([0.0, 0.8, 0.15]), yaw_deg=30.0, distance=3.5, jit=jit)
    return Scene("sit_chair", poses, onp.tile(transl, (L, 1)), onp.tile(onp.eye(3), (L, 1, 1)), onp.zeros((L, 3)), v, f,
                 K, T, (640, 480), fps)


SCENES = {"carry_box": carry_box, "push_box": push_box, "sit_chair": sit_chair}


@jax.jit
def _joints_seq(model, poses, transl):
    def joints(p, tr):
        return pose_joints(model, BodyParams(betas=jnp.zeros(model.num_shape), pose=p, transl=tr, scale=jnp.ones(())))

    return jax.vmap(joints)(poses, transl)


def observe(scene: Scene, model: BodyModel, openpose_ids, *, noise_px: float = 2.0, seed: int = 0, dropout: float = 0.03):
    """OpenPose-18 keypoints of the ground truth: projected, + N(0, noise_px²) pixel noise; confidence
    0 where the object blocks the line of sight (32 samples of its exact SDF along the ray) or by
    random detector misses, else U(0.6, 1)."""
    rng = onp.random.default_rng(seed)
    L = len(scene.pose)

    P = _joints_seq(model, jnp.asarray(scene.pose, jnp.float32), jnp.asarray(scene.transl, jnp.float32))
    op = onp.asarray(P)[:, onp.asarray(openpose_ids)]
    uv, _ = project(jnp.asarray(scene.K), jnp.asarray(scene.T_cam_world), jnp.asarray(op))
    uv = onp.asarray(uv) + noise_px * rng.standard_normal((L, 18, 2))
    cam = onp.asarray(-scene.T_cam_world[:3, :3].T @ scene.T_cam_world[:3, 3])
    s = onp.linspace(0.02, 0.97, 32)
    ray = cam[None, None, None] + s[None, None, :, None] * (op[:, :, None] - cam[None, None, None])  # (L,18,32,3)
    local = onp.einsum("lba,lkna->lknb", scene.R_obj, ray - scene.t_obj[:, None, None])
    sd = onp.asarray(signed_distance(jnp.asarray(local.reshape(-1, 3)), jnp.asarray(scene.object_vertices), jnp.asarray(scene.object_faces)))
    occluded = (sd.reshape(L, 18, 32) < 0).any(-1)
    conf = rng.uniform(0.6, 1.0, (L, 18))
    conf[occluded] = 0.0
    conf[rng.uniform(size=(L, 18)) < dropout] = 0.0
    return uv.astype(onp.float32), conf.astype(onp.float32), occluded


def static_of(scene, model: BodyModel):
    """The scene's static instance (= frame 0, zero betas, unit scale) as stages.motion.StaticInstance."""
    from anchorhoi_jax.stages.motion import StaticInstance
    return StaticInstance(betas=jnp.zeros(model.num_shape), scale=jnp.ones(()), pose=jnp.asarray(scene.pose[0], jnp.float32),
                          transl=jnp.asarray(scene.transl[0], jnp.float32), R_world_obj=jnp.asarray(scene.R_obj[0], jnp.float32),
                          t_world_obj=jnp.asarray(scene.t_obj[0], jnp.float32))
