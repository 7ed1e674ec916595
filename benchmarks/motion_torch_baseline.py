"""Eager PyTorch + smplx implementation of the motion objective (Eq. 4-6), the baseline a researcher
would otherwise write: `smplx.SMPLX` forward on the whole batch of frames every step, the same
loss terms (reprojection GM, contact pairs, object SDF at the same vertex subset, part capsules at
object points, self-penetration, smoothness, pose prior), `torch.optim.Adam(lr=0.01)`.

It reads the constants (contacts, SDF grid, capsules, keypoints) from the JAX `MotionData`, so both
sides optimise the same objective; `time_torch_baseline` also reports the relative difference of
the initial loss against the JAX `motion_loss` (a check that the objectives agree).
"""

from __future__ import annotations

import time

import numpy as onp


def _t(x, dev, dtype=None):
    import torch

    a = onp.asarray(x)
    return torch.as_tensor(a.astype(onp.float32) if a.dtype.kind == "f" else a, device=dev)


def _rodrigues(aa):
    import torch

    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)[..., None]
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))[..., None]
    x, y, z = aa.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2)
    eye = torch.eye(3, device=aa.device, dtype=aa.dtype).expand(K.shape)
    return eye + a * K + b * (K @ K)


def _gm(r2, sigma):
    s2 = sigma**2
    return s2 * r2 / (s2 + r2)


def _seg_dist(x, a, b):
    import torch

    ab = b - a
    t = (((x - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    d = x - (a + t[..., None] * ab)
    return torch.sqrt((d * d).sum(-1) + 1e-12)


def _sample_sdf(values, origin, spacing, p):
    """Trilinear interpolation, clamped, plus the distance outside the grid (as geometry/sdf.py)."""
    import torch

    r = torch.tensor(values.shape, device=p.device, dtype=p.dtype)
    u = (p - origin) / spacing
    uc = torch.minimum(torch.maximum(u, torch.zeros_like(u)), r - 1)
    outside = torch.sqrt((((u - uc) * spacing) ** 2).sum(-1) + 1e-20) * (((u - uc) ** 2).sum(-1) > 0)
    i0 = torch.minimum(torch.floor(uc), r - 2)
    f = uc - i0
    i0 = i0.long()
    acc = 0
    for dx in (0, 1):
        wx = f[..., 0] if dx else 1 - f[..., 0]
        for dy in (0, 1):
            wy = f[..., 1] if dy else 1 - f[..., 1]
            for dz in (0, 1):
                wz = f[..., 2] if dz else 1 - f[..., 2]
                acc = acc + wx * wy * wz * values[i0[..., 0] + dx, i0[..., 1] + dy, i0[..., 2] + dz]
    return acc + outside


class TorchMotion:
    """The Eq. 4 objective over L frames with smplx.SMPLX as the body."""

    def __init__(self, smplx_path, data, cfg, weights, device):
        import smplx
        import torch

        self.dev = device
        L = int(data.keypoints.shape[0])
        self.L = L
        st = data.static
        self.body = smplx.SMPLX(smplx_path, num_betas=10, num_expression=10, use_pca=False, flat_hand_mean=True,
                                batch_size=L).to(device)
        pose = onp.asarray(st.pose)
        self.fixed = {k: _t(onp.broadcast_to(pose[a:b].reshape(-1), (L, 3 * (b - a))), device)
                      for k, (a, b) in dict(jaw_pose=(22, 23), leye_pose=(23, 24), reye_pose=(24, 25),
                                            left_hand_pose=(25, 40), right_hand_pose=(40, 55)).items()}
        betas = onp.asarray(st.betas)
        self.betas = _t(onp.broadcast_to(betas[:10], (L, 10)), device)
        self.expr = _t(onp.broadcast_to(betas[10:20], (L, 10)), device)
        self.scale = float(st.scale)
        self.pose_joints = list(cfg.pose_joints)
        self.static_bp = _t(pose[self.pose_joints], device)
        self.R0 = _t(st.R_world_obj, device)
        self.w = {k: float(getattr(weights, k)) for k in ("keypoints", "contact", "pen_object", "pen_parts",
                                                           "smooth_joints", "smooth_object", "self_pen", "pose_prior")}
        self.sigma = cfg.sigma_px
        self.kp, self.conf = _t(data.keypoints, device), _t(data.confidence, device)
        self.K, self.T = _t(data.K, device), _t(data.T_cam_world, device)
        self.norm = float(onp.max(onp.asarray(data.image_size)))
        self.op = _t(data.openpose, device).long()
        # The pair slots L_C sums over (compacted, valid first: MotionData.contact_slots), as in JAX.
        slots = onp.arange(data.contacts.mask.shape[0]) if data.contact_slots is None else onp.asarray(data.contact_slots)
        mask = data.contacts.mask if data.contact_slots is None else data.contact_slot_mask
        self.contact_v = _t(onp.asarray(data.contacts.human_vertex)[slots], device).long()
        # Eq. 6 targets as the JAX side uses them (static offsets by default, else the surface points).
        target = onp.asarray(data.contacts.object_point)[slots] if data.contact_target is None else data.contact_target
        self.contact_o = _t(target, device)
        self.contact_m = _t(mask, device)
        self.pen_v = _t(self._pen_vertex_ids(data), device).long()
        self.sdf = (_t(data.sdf.values, device), _t(data.sdf.origin, device), _t(data.sdf.spacing, device))
        self.obj_pts = _t(data.object_points, device)
        parts = data.parts
        jr = onp.asarray(data.j_rest)
        self.q0 = _t(jr[onp.asarray(parts.joint)] + onp.asarray(parts.q0), device)  # rest world (R_rest = I)
        self.q1 = _t(jr[onp.asarray(parts.joint)] + onp.asarray(parts.q1), device)
        self.rad = _t(parts.radius, device)
        self.pjoint = _t(parts.joint, device).long()
        self.pa, self.pb = _t(parts.pair_a, device).long(), _t(parts.pair_b, device).long()
        self.j_rest = _t(jr, device)
        self.parents = torch.as_tensor(onp.asarray(self.body.parents.cpu()), device=device)
        # Optimised leaves, initialised at the static instance in every frame.
        rep = lambda x: _t(onp.broadcast_to(onp.asarray(x), (L,) + onp.asarray(x).shape).copy(), device).requires_grad_(True)  # noqa: E731
        self.params = dict(go=rep(pose[0]), bp=rep(pose[self.pose_joints]), tr=rep(st.transl),
                           orot=rep(onp.zeros(3, onp.float32)), otr=rep(st.t_world_obj))
        self.opt = torch.optim.Adam(self.params.values(), lr=cfg.learning_rate)

    @staticmethod
    def _pen_vertex_ids(data):
        # MotionData keeps the subset by position; recover the vertex ids recorded at prepare time.
        return onp.asarray(data.pen_vertex_ids)

    def loss(self):
        import torch
        from smplx.lbs import batch_rigid_transform

        p = self.params
        L = self.L
        body_pose = p["bp"].reshape(L, -1)
        out = self.body(betas=self.betas, expression=self.expr, global_orient=p["go"], body_pose=body_pose,
                        transl=torch.zeros(L, 3, device=self.dev), **self.fixed)
        root = self.j_rest[0]
        place = lambda x: root + self.scale * (x - root) + p["tr"].reshape(L, *([1] * (x.dim() - 2)), 3)  # noqa: E731
        verts = place(out.vertices)
        joints = place(out.joints)
        # OpenPose-18 from joints ++ extra points; L_J (Eq. 5).
        op = joints[:, self.op]
        pc = op @ self.T[:3, :3].T + self.T[:3, 3]
        z = pc[..., 2]
        uv = torch.stack([self.K[0, 0] * pc[..., 0] / z + self.K[0, 2], self.K[1, 1] * pc[..., 1] / z + self.K[1, 2]], -1)
        r2 = (((uv - self.kp) / self.norm) ** 2).sum(-1)
        l_kp = (self.conf * (z > 0) * _gm(r2, self.sigma / self.norm)).mean()
        R = _rodrigues(p["orot"]) @ self.R0
        t = p["otr"]
        # L_C (Eq. 6).
        po = torch.einsum("lab,nb->lna", R, self.contact_o) + t[:, None]
        d2 = ((verts[:, self.contact_v] - po) ** 2).sum(-1)
        l_c = ((d2 * self.contact_m).sum(-1) / self.contact_m.sum().clamp_min(1)).mean()
        # L_pen: object SDF at the vertex subset; capsules at object points.
        vo = torch.einsum("lba,lnb->lna", R, verts[:, self.pen_v] - t[:, None])
        l_po = (torch.relu(-_sample_sdf(*self.sdf, vo)) ** 2).sum(-1).mean()
        rot_mats = _rodrigues(torch.cat([p["go"][:, None], self._full_local(body_pose)], 1))
        _, A = batch_rigid_transform(rot_mats, self.j_rest.expand(L, -1, -1), self.parents)
        Aj = A[:, self.pjoint]
        rest_root = self.j_rest[0]

        def move(q):
            x = torch.einsum("lpab,pb->lpa", Aj[..., :3, :3], q) + Aj[..., :3, 3]
            return rest_root + self.scale * (x - rest_root) + p["tr"][:, None]

        p0, p1, rad = move(self.q0), move(self.q1), self.scale * self.rad
        ow = torch.einsum("lab,nb->lna", R, self.obj_pts) + t[:, None]
        depth = (rad - _seg_dist(ow[:, :, None], p0[:, None], p1[:, None])).amax(-1)
        l_pp = (torch.relu(depth) ** 2).sum(-1).mean()
        ts = torch.linspace(0, 1, 5, device=self.dev)
        a0, a1 = p0[:, self.pa], p1[:, self.pa]
        pts = a0[:, :, None] + ts[None, None, :, None] * (a1 - a0)[:, :, None]
        dd = _seg_dist(pts, p0[:, self.pb][:, :, None], p1[:, self.pb][:, :, None])
        l_sp = (torch.relu(rad[self.pa][:, None] + rad[self.pb][:, None] - dd) ** 2).sum((-1, -2)).mean()
        j = joints[:, :55]
        acc = j[2:] - 2 * j[1:-1] + j[:-2]
        l_sj = (acc**2).sum(-1).mean()
        at = t[2:] - 2 * t[1:-1] + t[:-2]
        aR = R[2:] - 2 * R[1:-1] + R[:-2]
        l_so = (at**2).sum(-1).mean() + 0.1 * (aR**2).sum((-1, -2)).mean()
        l_pr = ((p["bp"] - self.static_bp) ** 2).sum((-1, -2)).mean()
        w = self.w
        return (w["keypoints"] * l_kp + w["contact"] * l_c + w["pen_object"] * l_po + w["pen_parts"] * l_pp
                + w["self_pen"] * l_sp + w["smooth_joints"] * l_sj + w["smooth_object"] * l_so + w["pose_prior"] * l_pr)

    def _full_local(self, body_pose):
        import torch

        L = self.L
        full = torch.cat([body_pose.reshape(L, -1, 3)] + [v.reshape(L, -1, 3) for v in self.fixed.values()], 1)
        return full

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return loss


def time_torch_baseline(smplx_path, model, data, cfg, weights, *, steps: int = 10, warmup: int = 2) -> dict:
    """Seconds per Adam step of the eager baseline on the default torch device, and the relative
    difference of its initial loss from the JAX objective's."""
    import jax
    import torch

    from anchorhoi_jax.stages.motion import initial_params, motion_loss

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tm = TorchMotion(smplx_path, data, cfg, weights, dev)
    with torch.no_grad():
        l_torch = float(tm.loss())
    l_jax = float(motion_loss(initial_params(data, cfg), data, weights, cfg)[0])
    for _ in range(warmup):
        tm.step()
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        tm.step()
    if dev == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return {"s_per_step": dt, "device": dev, "torch": torch.__version__, "loss_torch": l_torch, "loss_jax": l_jax,
            "loss_rel_diff": abs(l_torch - l_jax) / max(abs(l_jax), 1e-12), "jax_device": str(jax.devices()[0])}
