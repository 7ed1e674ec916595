"""`anchorhoi animate` end to end on the smoke preset: every output loads back (GLB with animation,
MP4 frames), determinism (bitwise, twice), SIGKILL mid-stage + resume == uninterrupted, export."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as onp
import pytest
import trimesh
import yaml

from anchorhoi_jax.cli import main
from anchorhoi_jax.io.export import read_mp4
from anchorhoi_jax.io.formats import read_motion, read_static
from anchorhoi_jax.io.gltf import decode_glb

from conftest import animate_argv
from helpers import SMOKE_ANIMATE

SEED = "seed_000"


def manifest(out):
    return {f["name"]: f["sha256"] for f in json.loads((out / "manifest.json").read_text())["files"]}


def test_outputs_load_back(smoke_run):
    out = smoke_run
    files = manifest(out)
    for name in ("static/human.obj", "static/human.ply", "static/object.obj", "static/hoi.glb", "static/static.npz",
                 "static/render.png", "motion/motion.npz", "motion/hoi.glb", "motion/driving.mp4", "motion/video.mp4",
                 "metrics.json"):
        assert f"{SEED}/{name}" in files, name
    assert "config.yaml" in files and (out / "run.log").is_file()
    st = read_static(out / SEED / "static" / "static.npz")
    assert st["body_model"] == "anny"
    m = read_motion(out / SEED / "motion" / "motion.npz")
    L = m["global_orient"].shape[0]
    assert L == 8 and m["body_pose"].shape == (L, 3 * 103) and m["fps"] == 8.0
    # The animated GLB plays: trimesh loads the scene, the document holds the animation channels.
    scene = trimesh.load(out / SEED / "motion" / "hoi.glb")
    assert {"human", "object"} <= set(scene.geometry)
    doc, _ = decode_glb((out / SEED / "motion" / "hoi.glb").read_bytes())
    (anim,) = doc["animations"]
    paths = {c["target"]["path"] for c in anim["channels"]}
    assert {"weights", "rotation", "translation"} <= paths
    human = next(m for m in doc["meshes"] if m["name"] == "human")
    assert len(human["primitives"][0]["targets"]) == L - 1 or len(human["primitives"][0]["targets"]) == L
    video = read_mp4(out / SEED / "motion" / "video.mp4")
    driving = read_mp4(out / SEED / "motion" / "driving.mp4")
    assert video.shape[0] == L and driving.shape == (L, 64, 64, 3) and video.shape[2] == 128
    metrics = json.loads((out / SEED / "metrics.json").read_text())
    assert {"pen_max_mm", "contact_mm", "self_pen_max_mm", "jitter_mm_per_frame2", "foot_skate_ratio"} <= set(metrics)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["motion"]["steps"] == 60 and cfg["prompt"] == "a person leans on a box"
    timings = json.loads((out / "timings.json").read_text())
    assert [s["name"] for s in timings["stages"]] == ["static", "render", "contacts", "video", "detect", "segment",
                                                       "motion", "export"]


def test_same_seed_same_bits_and_rerun_skips(smoke_run, static_npz, tmp_path):
    out = tmp_path / "again"
    assert main(animate_argv(static_npz, out)) == 0
    a, b = manifest(smoke_run), manifest(out)
    assert a == b  # every file, bit for bit (no timestamps or paths inside)
    # Re-running into the finished directory loads every stage from its checkpoint.
    assert main(animate_argv(static_npz, out, "--overwrite")) == 0
    t = json.loads((out / "timings.json").read_text())
    assert {s["status"] for s in t["stages"] if s["name"] != "export"} == {"cached"}
    assert manifest(out) == a


def test_sigkill_mid_stage_then_resume_equals_uninterrupted(smoke_run, static_npz, tmp_path, sub_env):
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "anchorhoi_jax", *animate_argv(static_npz, out)]
    proc = subprocess.Popen(argv, env=sub_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if any(p.name.isdigit() for p in out.glob("checkpoints/motion-*/state/*")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the motion stage wrote a checkpoint"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / SEED / "motion" / "motion.npz").exists()
    r = subprocess.run([*argv, "--overwrite"], env=sub_env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    t = {s["name"]: s["status"] for s in json.loads((out / "timings.json").read_text())["stages"]}
    assert t["motion"] == "resumed" and t["render"] == "cached"
    a, b = manifest(smoke_run), manifest(out)
    assert a == b


def test_export_rebuilds_the_files(smoke_run, tmp_path):
    out = tmp_path / "exported"
    assert main(["export", "--run", str(smoke_run), "--out", str(out), "export.meshes=true"]) == 0
    a, b = manifest(smoke_run), manifest(out)
    same = [k for k in a if k != "config.yaml"]
    assert {k: a[k] for k in same} == {k: b[k] for k in same}
    assert f"{SEED}/motion/meshes/frame_0007.obj" in b


def test_video_with_no_person(static_npz, smoke_run, tmp_path, capsys):
    from anchorhoi_jax.io.export import write_mp4

    blank = write_mp4(tmp_path / "blank.mp4", onp.full((8, 64, 64, 3), 0.5, onp.float32), 8.0)
    with pytest.raises(SystemExit) as e:
        main(["animate", "--static", str(static_npz), "--video", str(blank), "--config",
              str(SMOKE_ANIMATE),
              "--out", str(tmp_path / "out"), "detect.kind=mediapipe"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("anchorhoi animate: error: no person detected in the video (seed 0: 0 of 8 frames show a person; "
                   "need 50%); use a video with one clearly visible person")
