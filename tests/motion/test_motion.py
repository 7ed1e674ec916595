"""stages/motion.py: traced weights (no recompiles), vmapped seeds == looped, loss decreases and the
objective recovers a known shift; the rendered-frame hook is off without a video."""

from __future__ import annotations

import dataclasses

import chex
import optax
import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import SCENES, observe, static_of

from anchorhoi_jax.stages.motion import (
    MotionConfig, MotionState, MotionWeights, StaticInstance, initial_params, keypoint_initial_params, keypoint_translations,
    make_motion_step, make_seeds_update, motion_loss, prepare_motion_data, sigma_schedule,
)


@pytest.fixture(scope="module")
def setup(body):
    model, ex = body
    sc = SCENES["carry_box"](model, 4)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    # Static instance shifted 5 cm from frame 0 of the truth: tracking must move it back.
    st = StaticInstance(betas=jnp.zeros(model.num_shape), scale=jnp.ones(()), pose=jnp.asarray(sc.pose[0], jnp.float32),
                        transl=jnp.asarray(sc.transl[0] + [0.05, 0.0, 0.0], jnp.float32),
                        R_world_obj=jnp.asarray(sc.R_obj[0], jnp.float32),
                        t_world_obj=jnp.asarray(sc.t_obj[0] + [0.05, 0.0, 0.0], jnp.float32))
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=kp, confidence=conf, K=sc.K,
                               T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=24)
    cfg = MotionConfig.for_model(model, steps_per_call=10, init_noise=0.02)
    return model, sc, data, cfg


@pytest.fixture(scope="module")
def compiled(setup):
    """One compiled single-seed and one seed-vmapped update, shared by the tests of this module."""
    model, sc, data, cfg = setup
    init, update = make_motion_step(cfg)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, data, weights):
        return jax.vmap(update, in_axes=(0, None, None))(state, data, weights)

    return init, update, step, jax.jit(update)


def test_weight_sweep_never_recompiles_and_vmapped_seeds(setup, compiled):
    model, sc, data, cfg = setup
    init, update, step, upd1 = compiled

    keys = jnp.stack([jax.random.fold_in(jax.random.key(3), i) for i in range(2)])
    s0 = jax.vmap(init, in_axes=(None, 0))(data, keys)
    w = MotionWeights.default()
    losses = []
    state = s0
    for wd in ({}, {"contact": 0.0}, {"keypoints": 0.0, "smooth_joints": 5.0}):
        state, l, terms = step(s0, data, MotionWeights.default(**wd))
        losses.append(onp.asarray(l))
    assert not onp.allclose(losses[0], losses[1])  # the weights reached the traced program
    # Seeds start differently (init_noise) and vmapped == one seed at a time.
    s1, l1, _ = step(s0, data, w)
    for i in range(2):
        one = jax.tree.map(lambda x: x[i], s0)
        si, li, _ = upd1(one, data, w)
        onp.testing.assert_allclose(onp.asarray(li), onp.asarray(l1[i]), rtol=2e-4, atol=1e-9)
        onp.testing.assert_allclose(onp.asarray(si.params.transl), onp.asarray(s1.params.transl[i]), atol=2e-5)
    assert not onp.allclose(onp.asarray(s0.params.body_pose[0]), onp.asarray(s0.params.body_pose[1]))
    # The paper's start (cfg.init_translation=False): every frame at the static instance (noise aside).
    p_static = initial_params(data, cfg)
    onp.testing.assert_allclose(onp.asarray(p_static.transl), onp.broadcast_to(onp.asarray(data.static.transl), (4, 3)))


def test_flat_seed_update_equals_vmapped_seeds(setup, compiled):
    """make_seeds_update (seeds' frames on one flat axis, one Adam over the stack) == vmap(update)."""
    model, sc, data, cfg = setup
    init, update, step, _ = compiled
    keys = jnp.stack([jax.random.fold_in(jax.random.key(5), i) for i in range(2)])  # the compiled 2-seed shape
    s0 = jax.vmap(init, in_axes=(None, 0))(data, keys)
    w = MotionWeights.default(contact=2.0)
    flat = jax.jit(make_seeds_update(cfg))
    sa, la, ta = step(s0, data, w)
    sb, lb, tb = flat(s0, data, w)
    sa, la2, _ = step(sa, data, w)  # a second call: Adam moments and step counters carried alike
    sb, lb2, _ = flat(sb, data, w)
    assert lb.shape == la.shape == (2, cfg.steps_per_call) and tb["contact"].shape == (2,)
    onp.testing.assert_allclose(onp.asarray(lb), onp.asarray(la), rtol=2e-4, atol=1e-9)
    onp.testing.assert_allclose(onp.asarray(lb2), onp.asarray(la2), rtol=2e-4, atol=1e-9)
    for name in ("transl", "body_pose", "object_translation"):
        onp.testing.assert_allclose(onp.asarray(getattr(sb.params, name)), onp.asarray(getattr(sa.params, name)), atol=5e-5)
    onp.testing.assert_array_equal(onp.asarray(sb.step), onp.asarray(sa.step))


def test_tracking_recovers_shift_and_keeps_contact(setup, compiled):
    """Static start (keypoint init off): the optimiser itself must move the 5 cm shift back."""
    model, sc, data, cfg = setup
    _, _, _, upd = compiled
    w = MotionWeights.default()
    params = initial_params(data, cfg)
    state = MotionState(params=params, opt_state=optax.adam(cfg.learning_rate).init(params), step=jnp.zeros((), jnp.int32),
                        key=jax.random.key(0))
    l0 = float(motion_loss(state.params, data, w, cfg)[0])
    for _ in range(12):
        state, losses, terms = upd(state, data, w)
    assert float(losses[-1]) < 0.5 * l0
    err0 = onp.abs(onp.asarray(data.static.transl)[0] - sc.transl[:, 0]).mean()
    err = onp.abs(onp.asarray(state.params.transl)[:, 0] - sc.transl[:, 0]).mean()
    assert err < 0.85 * err0, (err, err0)  # 120 Adam steps at lr 0.01: moving, not converged
    # The box follows the hands (contact term): its x moves back toward the truth too.
    obj_err = onp.abs(onp.asarray(state.params.object_translation)[:, 0] - sc.t_obj[:, 0]).mean()
    assert obj_err < 0.05
    assert float(terms["render"]) == 0.0


def test_render_hook_contributes_when_given(setup, body):
    model, sc, data, _ = setup
    L = data.num_frames
    frames = jnp.zeros((L, 4, 4, 3))

    def render_fn(verts, R, t, i):  # toy renderer: image brightness = mean vertex height
        return jnp.broadcast_to(jnp.mean(verts[:, 1]), (4, 4, 3)), None

    cfg = MotionConfig.for_model(model, render_fn=render_fn, render_model=model)
    d = data.replace(frames=frames)
    p = initial_params(d, cfg)
    total, terms = motion_loss(p, d, MotionWeights.default(render=1.0), cfg)
    assert float(terms["render"]) > 0.1
    # Default weight 0: the term is computed but does not enter L_total.
    total0, _ = motion_loss(p, d, MotionWeights.default(), cfg)
    assert float(total) - float(total0) == pytest.approx(float(terms["render"]), rel=1e-3)


def test_ground_truth_scores_below_static_init(body):
    """The default weights must prefer the true walking motion over the static start: with the
    earlier smoothness weight (30) a 24-frame walk scored worse than standing still, so the
    optimiser never left the static instance."""
    from anchorhoi_jax.geometry.rotations import matrix_to_axis_angle
    from anchorhoi_jax.stages.motion import MotionParams

    model, ex = body
    L = 24
    sc = SCENES["carry_box"](model, L)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=2.0)
    st = static_of(sc, model)
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=kp, confidence=conf, K=sc.K,
                               T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=24)
    cfg = MotionConfig.for_model(model)
    dR = jnp.einsum("lab,cb->lac", jnp.asarray(sc.R_obj, jnp.float32), st.R_world_obj)
    gt = MotionParams(global_orient=jnp.asarray(sc.pose[:, 0], jnp.float32), body_pose=jnp.asarray(sc.pose[:, 1:22], jnp.float32),
                      transl=jnp.asarray(sc.transl, jnp.float32), object_delta_rot=matrix_to_axis_angle(dR),
                      object_translation=jnp.asarray(sc.t_obj, jnp.float32))
    loss = jax.jit(lambda p, w: motion_loss(p, data, w, cfg)[0])
    w = MotionWeights.default()
    assert float(loss(gt, w)) < 0.7 * float(loss(initial_params(data, cfg), w))
    assert float(loss(gt, MotionWeights.default(smooth_joints=30.0, smooth_object=30.0))) > float(
        loss(initial_params(data, cfg), MotionWeights.default(smooth_joints=30.0, smooth_object=30.0)))


def test_keypoint_translation_init_is_exact_for_a_rigid_linear_walk(setup):
    """Keypoints of the static pose moved along a straight line (zero second differences, so the
    smoothness prior is inactive at the truth): the linear least squares must return that line,
    and the object (contacts exist) is carried along by the same displacement."""
    from anchorhoi_jax.geometry.cameras import project
    from anchorhoi_jax.stages.motion import frame_forward

    model, sc, data, cfg = setup
    st = data.static
    out = frame_forward(data, cfg, st.pose[0], st.pose[1:22], st.transl, jnp.zeros(3), st.t_world_obj)
    L = data.num_frames
    t_true = st.transl[None] + jnp.arange(L, dtype=jnp.float32)[:, None] * jnp.array([[0.3, 0.0, -0.2]])
    pts = out.openpose[None] - st.transl[None, None] + t_true[:, None]
    uv, _ = project(data.K, data.T_cam_world, pts)
    d = data.replace(keypoints=uv, confidence=jnp.ones_like(data.confidence))
    t = keypoint_translations(d, cfg)
    onp.testing.assert_allclose(onp.asarray(t), onp.asarray(t_true), atol=2e-3)
    p = keypoint_initial_params(d, cfg)
    # (compared with the init's own human path: the jitted solve rounds differently from the eager one above,
    # ~0.4 mm at init_smoothness 300)
    onp.testing.assert_allclose(onp.asarray(p.object_translation - st.t_world_obj[None]),
                                onp.asarray(p.transl - st.transl[None]), atol=1e-5)
    # With the mask test of rest (frames 0-1 at rest, then moved): X_s in the rest frames; afterwards the human's
    # displacement since those frames ("since_rest") or since X_s ("absolute", default: the static relative pose).
    rest = jnp.zeros(L).at[:2].set(1.0)
    dt = onp.array(p.transl - st.transl[None])
    for ref, want in (("since_rest", dt - dt[:2].mean(0)), ("absolute", dt.copy())):
        pr = keypoint_initial_params(d.replace(object_static_frames=rest),
                                     cfg if ref == cfg.object_init_reference else dataclasses.replace(cfg, object_init_reference=ref))
        want[:2] = 0.0
        onp.testing.assert_allclose(onp.asarray(pr.object_translation - st.t_world_obj[None]), want, atol=1e-5)
    with pytest.raises(ValueError, match="MotionConfig.object_init_reference must be one of .*got 'last'"):
        dataclasses.replace(cfg, object_init_reference="last")
    # Without contacts the object stays at the static placement.
    d0 = d.replace(contacts=d.contacts.replace(mask=jnp.zeros_like(d.contacts.mask)))
    p0 = keypoint_initial_params(d0, cfg)
    onp.testing.assert_allclose(onp.asarray(p0.object_translation), onp.broadcast_to(onp.asarray(st.t_world_obj), (L, 3)))
    # Turned off: the paper's static start.
    off = keypoint_initial_params(d, dataclasses.replace(cfg, init_translation=False))
    onp.testing.assert_allclose(onp.asarray(off.transl), onp.broadcast_to(onp.asarray(st.transl), (L, 3)))


def test_sigma_schedule_anneals_from_image_size(setup):
    """Graduated non-convexity of Eq. 5: σ = max(image size) at step 0, geometric, cfg.sigma_px from
    sigma_anneal_steps on; 0 steps = the constant paper σ."""
    model, sc, data, cfg = setup
    s = lambda k, c=cfg: float(sigma_schedule(c, data, jnp.asarray(k)))  # noqa: E731
    big = float(jnp.max(data.image_size))
    assert s(0) == pytest.approx(big, rel=1e-5)
    assert s(cfg.sigma_anneal_steps // 2) == pytest.approx((big * cfg.sigma_px) ** 0.5, rel=1e-4)
    assert s(cfg.sigma_anneal_steps) == pytest.approx(cfg.sigma_px, rel=1e-6)
    assert s(10 * cfg.sigma_anneal_steps) == pytest.approx(cfg.sigma_px, rel=1e-6)
    assert s(0, dataclasses.replace(cfg, sigma_anneal_steps=0)) == pytest.approx(cfg.sigma_px)


def test_dense_and_sparse_subset_skinning_agree_and_contact_targets(setup):
    """MotionConfig.lbs: the dense (S×J)·(J×12) and the sparse K-weight skinning give the same loss
    and gradient; `contact_target="static"` targets are where the pair vertices sat in the static
    instance (L_C = 0 there), the surface targets are the sampled object points; bad `lbs` fails."""
    from anchorhoi_jax.stages.motion import frame_forward

    model, sc, data, cfg = setup
    p = initial_params(data, cfg)
    p = p.replace(body_pose=p.body_pose + 0.2 * jax.random.normal(jax.random.key(5), p.body_pose.shape))
    w = MotionWeights.default()
    vg = {lbs: jax.jit(jax.value_and_grad(lambda q, c=dataclasses.replace(cfg, lbs=lbs): motion_loss(q, data, w, c)[0]))(p)
          for lbs in ("dense", "sparse")}
    assert float(vg["dense"][0]) == pytest.approx(float(vg["sparse"][0]), rel=1e-5)
    for a, b in zip(jax.tree.leaves(vg["dense"][1]), jax.tree.leaves(vg["sparse"][1])):
        onp.testing.assert_allclose(onp.asarray(a), onp.asarray(b), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="MotionConfig.lbs must be 'dense' or 'sparse', got 'csr'"):
        dataclasses.replace(cfg, lbs="csr")
    # Static targets: zero contact loss at the static instance; the surface targets are not.
    st = data.static
    out = frame_forward(data, cfg, st.pose[0], st.pose[1:22], st.transl, jnp.zeros(3), st.t_world_obj)
    assert float(data.contacts.num_valid) > 0
    from anchorhoi_jax.losses.contact import contact_loss

    def lc(target):
        return float(contact_loss(out.contact_points, target @ st.R_world_obj.T + st.t_world_obj[None], data.contacts.mask)[0])

    assert lc(data.contact_target) < 1e-10 < lc(data.contacts.object_point)


def test_pen_vertices_are_dense_near_the_object(setup):
    """Half of the L_pen vertices lie within 10 cm of the object in the static instance (hands on the
    box), so a finger cannot sink between sparse whole-body samples."""
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.geometry.sdf import sample_sdf

    model, sc, data, cfg = setup
    st = data.static
    v = pose(model, BodyParams(betas=st.betas, pose=st.pose, transl=st.transl, scale=st.scale)).vertices
    ids = onp.asarray(data.pen_vertex_ids)
    d = onp.asarray(sample_sdf(data.sdf, (v[ids] - st.t_world_obj[None]) @ st.R_world_obj))
    n = len(ids)
    assert (d[: n // 2] < 0.1).all() and (d[n // 2 :] < 0.1).mean() < 0.5


def test_part_allowance_zeroes_the_static_capsule_overlap(setup, body):
    """pen_parts_static_allowance: at the static instance the part term of L_pen is exactly 0, however far
    the capsules protrude; a deeper push still costs."""
    from anchorhoi_jax.losses.penetration import part_occupancy_penetration

    model, sc, data, cfg = setup
    p0, p1, r = jnp.zeros((1, 3)), jnp.array([[0.0, 0.1, 0.0]]), jnp.array([0.05])
    x = jnp.array([[0.03, 0.05, 0.0], [0.2, 0.0, 0.0]])  # 2 cm deep, outside
    assert float(part_occupancy_penetration(x, p0, p1, r)[0]) == pytest.approx(0.02**2, rel=1e-4)
    assert float(part_occupancy_penetration(x, p0, p1, r, jnp.array([0.02, 0.0]))[0]) < 1e-12
    assert float(part_occupancy_penetration(x, p0, p1, r, jnp.array([0.01, 0.0]))[0]) == pytest.approx(1e-4, rel=1e-3)
    ex = body[1]
    st = data.static
    d = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=data.keypoints,
                            confidence=data.confidence, K=data.K, T_cam_world=data.T_cam_world, image_size=data.image_size,
                            contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                            key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=24,
                            pen_parts_static_allowance=True)
    assert d.pen_parts_allowance.shape == (64,) and float(d.pen_parts_allowance.min()) >= 0.0
    terms = motion_loss(initial_params(d, cfg), d, MotionWeights.default(), dataclasses.replace(cfg, init_translation=False))[1]
    assert float(terms["pen_parts"]) < 1e-12
