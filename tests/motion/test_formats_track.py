"""io/formats.py validation (one clear error per bad input) and the `anchorhoi track` command:
nothing is written on bad input, an existing DIR is refused, a tiny run writes motion.npz."""

from __future__ import annotations

import json

import numpy as onp
import pytest
from synthetic_scenes import box_mesh

from anchorhoi_jax.io.formats import FormatError, read_keypoints, read_motion, read_static, write_motion

L = 4


def _kp(tmp_path, **over):
    d = dict(keypoints=onp.zeros((L, 18, 2), onp.float32) + 100, confidence=onp.ones((L, 18), onp.float32),
             K=onp.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], onp.float32), T_cam_world=onp.eye(4, dtype=onp.float32),
             image_size=onp.array([640, 480], onp.float32), fps=onp.float32(24))
    d.update(over)
    d = {k: v for k, v in d.items() if v is not None}
    p = tmp_path / "KP.npz"
    onp.savez(p, **d)
    return p


def _static(tmp_path, **over):
    v, f = box_mesh((0.4, 0.4, 0.4))
    d = dict(body_model=onp.array("smplx"), betas=onp.zeros(10, onp.float32), scale=onp.float32(1.0),
             global_orient=onp.zeros(3, onp.float32), body_pose=onp.zeros(63, onp.float32), transl=onp.zeros(3, onp.float32),
             object_vertices=v.astype(onp.float32), object_faces=f.astype(onp.int32), object_rotation=onp.eye(3, dtype=onp.float32),
             object_translation=onp.zeros(3, onp.float32))
    d.update(over)
    d = {k: v for k, v in d.items() if v is not None}
    p = tmp_path / "STATIC.npz"
    onp.savez(p, **d)
    return p


def test_keypoint_file_errors(tmp_path):
    assert read_keypoints(_kp(tmp_path))["keypoints"].shape == (L, 18, 2)
    cases = [
        (dict(keypoints=onp.zeros((L, 17, 2))), r"'keypoints' must have shape \(\*, 18, 2\), got \(4, 17, 2\)"),
        (dict(confidence=onp.ones((L, 17))), r"'confidence' must have shape \(4, 18\), got \(4, 17\)"),
        (dict(confidence=onp.zeros((L, 18))), "all keypoint confidences are zero; nothing to track"),
        (dict(confidence=onp.full((L, 18), 2.0)), r"'confidence' must lie in \[0, 1\]"),
        (dict(fps=None), "missing key 'fps'"),
        (dict(K=onp.eye(4)), r"'K' must have shape \(3, 3\)"),
        (dict(T_cam_world=onp.diag([1.0, 1.0, 2.0, 1.0])), "is not a rotation matrix"),
        (dict(keypoints=onp.full((L, 18, 2), onp.nan)), "'keypoints' contains NaN or inf"),
        (dict(image_size=onp.array([0.0, 480.0])), "'image_size' must be positive"),
    ]
    for over, msg in cases:
        with pytest.raises(FormatError, match=msg) as e:
            read_keypoints(_kp(tmp_path, **over))
        assert "\n" not in str(e.value)
    with pytest.raises(FormatError, match="no such file"):
        read_keypoints(tmp_path / "missing.npz")


def test_static_file_errors(tmp_path):
    assert read_static(_static(tmp_path))["object_faces"].shape == (12, 3)
    v, f = box_mesh((0.4, 0.4, 0.4))
    vd = v.copy()
    vd[1] = vd[0]
    cases = [
        (dict(object_faces=f[:-1].astype(onp.int32)), "object mesh: not watertight, 3 boundary edges"),
        (dict(object_vertices=vd.astype(onp.float32)), "object mesh: degenerate"),
        (dict(body_pose=onp.zeros(60, onp.float32)), r"'body_pose' must have shape \(63,\) for SMPL-X"),
        (dict(body_model=onp.array("smpl")), "'body_model' must be 'smplx' or 'anny'"),
        (dict(scale=onp.float32(0.0)), "'scale' must be positive"),
        (dict(object_rotation=2 * onp.eye(3, dtype=onp.float32)), "'object_rotation' is not a rotation matrix"),
        (dict(object_faces=f.astype(onp.float32)), "'object_faces' must be an integer array"),
        (dict(transl=None), "missing key 'transl'"),
    ]
    for over, msg in cases:
        with pytest.raises(FormatError, match=msg) as e:
            read_static(_static(tmp_path, **over))
        assert "\n" not in str(e.value)


def test_motion_roundtrip_and_shape_check(tmp_path):
    R = onp.broadcast_to(onp.eye(3), (L, 3, 3))
    kw = dict(global_orient=onp.zeros((L, 3)), body_pose=onp.zeros((L, 63)), transl=onp.zeros((L, 3)), object_rotation=R,
              object_translation=onp.zeros((L, 3)), betas=onp.zeros(10), scale=1.0, body_model="smplx",
              contact_pairs=onp.zeros((5, 4)), fps=24.0)
    write_motion(tmp_path / "motion.npz", **kw)
    m = read_motion(tmp_path / "motion.npz")
    assert m["body_pose"].shape == (L, 63) and m["contact_pairs"].shape == (5, 4) and m["fps"] == 24.0
    with pytest.raises(FormatError, match=r"'transl' must have shape \(4, 3\), got \(3, 3\)"):
        write_motion(tmp_path / "bad.npz", **{**kw, "transl": onp.zeros((3, 3))})


def _cli(argv, capsys):
    from anchorhoi_jax.cli import main

    code = main(argv)
    return code, capsys.readouterr().err


def _masks(tmp_path, **over):
    """MASKS.npz matching _kp: (L, 480, 640) person box at the left, object box at the right."""
    hm = onp.zeros((L, 480, 640), bool)
    om = onp.zeros((L, 480, 640), onp.uint8)
    hm[:, 100:400, 100:250] = True
    om[:, 300:420, 300:450] = 1
    d = {k: v for k, v in {"human_masks": hm, "object_masks": om, **over}.items() if v is not None}
    p = tmp_path / "MASKS.npz"
    onp.savez(p, **d)
    return p


MASK_CASES = {
    "mask_missing": (dict(object_masks=None), "--masks MASKS.npz: missing key 'object_masks'"),
    "mask_shape": (dict(human_masks=onp.ones((L, 240, 320), bool)),
                   "'human_masks' must have shape (L, 480, 640) (frames, image_size of KP.npz), got (4, 240, 320)"),
    "mask_length": (dict(object_masks=onp.ones((L + 1, 480, 640), bool)),
                    "'object_masks' has 5 frames but KP.npz has 4; they must match"),
    "mask_empty": (dict(object_masks=onp.zeros((L, 480, 640), onp.uint8)), "'object_masks' is empty in every frame"),
    "mask_values": (dict(human_masks=onp.full((L, 480, 640), 255, onp.uint8)),
                    "'human_masks' must be binary (bool or 0/1), got dtype uint8 with other values"),
    "mask_file": (None, "MASKS.npz: no such file"),
}


@pytest.mark.parametrize("bad", ["kp_shape", "kp_conf", "mesh_open", "mesh_degenerate", "length", *MASK_CASES])
def test_track_bad_input_writes_nothing(tmp_path, capsys, bad):
    out = tmp_path / "run"
    kp = _kp(tmp_path, **({"keypoints": onp.zeros((L, 17, 2))} if bad == "kp_shape" else
                          {"confidence": onp.zeros((L, 18))} if bad == "kp_conf" else {}))
    v, f = box_mesh((0.4, 0.4, 0.4))
    vd = v.copy()
    vd[1] = vd[0]
    st = _static(tmp_path, **({"object_faces": f[:-1].astype(onp.int32)} if bad == "mesh_open" else
                              {"object_vertices": vd.astype(onp.float32)} if bad == "mesh_degenerate" else {}))
    argv = ["track", "--static", str(st), "--keypoints", str(kp), "--out", str(out), "--smplx-model", str(tmp_path)]
    if bad == "length":
        onp.save(tmp_path / "frames.npy", onp.zeros((L + 1, 8, 8, 3), onp.float32))
        argv += ["--video", str(tmp_path / "frames.npy")]
    if bad in MASK_CASES:
        over, msg = MASK_CASES[bad]
        argv += ["--masks", str(tmp_path / "MASKS.npz" if over is None else _masks(tmp_path, **over))]
    code, err = _cli(argv, capsys)
    expect = {"kp_shape": "'keypoints' must have shape", "kp_conf": "all keypoint confidences are zero",
              "mesh_open": "not watertight", "mesh_degenerate": "degenerate", "length": "--video has 5 frames but KP.npz has 4",
              **{k: m for k, (_, m) in MASK_CASES.items()}}[bad]
    assert code == 2 and expect in err and err.count("\n") == 1, err
    assert not out.exists()


def test_track_refuses_existing_dir_and_runs(tmp_path, capsys, monkeypatch, body):
    """Happy path on the procedural body (the SMPL-X loader is swapped for it; tiny sizes)."""
    import sys

    import jax.numpy as jnp

    import anchorhoi_jax.track as track
    from anchorhoi_jax.body.model import BodyParams

    model, ex = body
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("x")
    argv = ["track", "--static", str(_static(tmp_path)), "--keypoints", str(_kp(tmp_path)), "--out", str(out),
            "--smplx-model", str(tmp_path), "steps=4", "steps_per_call=2", "global_steps=2", "num_object_points=32",
            "num_pen_vertices=32", "sdf_resolution=16"]
    code, err = _cli(argv, capsys)
    assert code == 2 and "exists and is not empty" in err

    def fake_body(args, static):
        p = BodyParams.zeros(model).replace(transl=jnp.array([0.0, 0.0, 1.0]))
        return model, p, jnp.asarray(ex["openpose18"]), jnp.asarray(ex["contact_candidates"]), tuple(range(1, 22))

    monkeypatch.setattr(track, "_body_and_maps", fake_body)
    code, err = _cli(argv + ["--overwrite", "--meshes"], capsys)
    assert code == 0, err
    m = read_motion(out / "motion.npz")
    assert m["global_orient"].shape == (L, 3) and m["body_pose"].shape == (L, 63)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"pen_max_mm", "contact_mm", "self_pen_max_mm", "jitter_mm_per_frame2", "foot_skate_ratio"} <= set(metrics)
    assert (out / "meshes" / "frame_0003.obj").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "motion.npz" in {f["name"] for f in manifest["files"]}


class _Stop(Exception):
    pass


def test_track_masks_reach_motion_data(tmp_path, capsys, monkeypatch, body):
    """--masks is validated, converted to bool and given to prepare_motion_data as human_masks= / object_masks=
    (stopped there: tests/motion/test_object_static.py and test_silhouette.py cover what the motion data does with
    them, test_track_refuses_existing_dir_and_runs the run)."""
    import jax.numpy as jnp

    import anchorhoi_jax.stages.motion as motion
    import anchorhoi_jax.track as track
    from anchorhoi_jax.body.model import BodyParams

    model, ex = body
    monkeypatch.setattr(track, "_body_and_maps", lambda args, static: (
        model, BodyParams.zeros(model).replace(transl=jnp.array([0.0, 0.0, 1.0])), jnp.asarray(ex["openpose18"]),
        jnp.asarray(ex["contact_candidates"]), tuple(range(1, 22))))
    seen = {}

    def spy(*a, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(motion, "prepare_motion_data", spy)
    hm = onp.zeros((L, 48, 64), onp.uint8)
    hm[:, 10:40, 10:25] = 1
    om = onp.zeros((L, 48, 64), bool)
    om[:, 30:42, 30:45] = True
    onp.savez(tmp_path / "M.npz", human_masks=hm, object_masks=om)
    argv = ["track", "--static", str(_static(tmp_path)), "--keypoints", str(_kp(tmp_path, image_size=onp.array([64.0, 48.0]))),
            "--out", str(tmp_path / "run"), "--smplx-model", str(tmp_path), "--masks", str(tmp_path / "M.npz"),
            "num_object_points=32", "num_pen_vertices=32", "sdf_resolution=16"]
    with pytest.raises(_Stop):
        _cli(argv, capsys)
    assert seen["human_masks"].dtype == bool and onp.array_equal(seen["human_masks"], hm > 0)
    assert onp.array_equal(seen["object_masks"], om) and not (tmp_path / "run").exists()
