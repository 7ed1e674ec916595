"""`anchorhoi` CLI: subcommand registry, bad-input paths (one stderr line, exit 2, nothing written), and
`anchorhoi demo` end to end (every output loads back; same seed => identical bytes)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as onp
import pytest
import trimesh

from anchorhoi_jax.cli import SUBCOMMAND_MODULES, build_parser, main
from anchorhoi_jax.io.config import DemoConfig, load_config
from anchorhoi_jax.io.gltf import decode_glb

REPO = Path(__file__).resolve().parents[1]
SMALL = str(REPO / "configs" / "demo_small.yaml")


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_registry_and_help():
    assert "anchorhoi_jax.demo" in SUBCOMMAND_MODULES
    parser = build_parser()
    assert "demo" in parser.format_help()
    demo_help = parser._subparsers._group_actions[0].choices["demo"].format_help()
    assert "config keys: seed, body.model, body.pose_scale" in " ".join(demo_help.split())
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["render.heigth=3"], "anchorhoi demo: error: unknown config key 'render.heigth' (did you mean "
                              "'render.height'?); valid keys: render.height, render.width,"),
        (["render.height=abc"], "anchorhoi demo: error: config key 'render.height' expects int, got 'abc' (str)"),
        (["seed=1.5"], "anchorhoi demo: error: config key 'seed' expects int, got 1.5 (float)"),
        (["body.model=smplx"], "anchorhoi demo: error: config key 'body.model' expects one of 'anny', got 'smplx'"),
        (["--config", "/nonexistent/x.yaml"], "anchorhoi demo: error: config file not found: /nonexistent/x.yaml"),
        (["glb_frames=1000"], "anchorhoi demo: error: invalid config: glb_frames must be in [0, 240], got 1000"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    rc = main(["demo", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1
    assert not out.exists()


def test_existing_output_dir_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    rc = main(["demo", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"anchorhoi demo: error: output directory exists and is not empty: {out} (pass --overwrite to write into it)\n"
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_read_only_output_dir_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = [sys.executable, "-m", "anchorhoi_jax", "demo", "--out", str(ro / "run")]
    if os.geteuid() != 0:
        ro.chmod(0o555)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=120)
        finally:
            ro.chmod(0o755)
    else:  # root ignores permission bits: use a read-only bind mount in a private namespace
        if shutil.which("unshare") is None:
            pytest.skip("running as root without `unshare`: cannot make a read-only directory")
        q = shlex.quote(str(ro))
        script = f"mount --bind -o ro {q} {q} || exit 97; exec {' '.join(shlex.quote(a) for a in argv)}"
        r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=_env(),
                           timeout=120)
        if r.returncode == 97 or "unshare:" in r.stderr:
            pytest.skip(f"cannot create a read-only mount here: {r.stderr.strip()[:200]}")
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"anchorhoi demo: error: parent directory {ro} of the output directory is read-only: "
                        f"cannot write {ro / 'run'}\n")
    assert list(ro.iterdir()) == []


def _manifest(d: Path) -> dict[str, str]:
    return {f["name"]: f["sha256"] for f in json.loads((d / "manifest.json").read_text())["files"]}


def test_demo_end_to_end_and_deterministic(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--config", SMALL, "--seed", "3", "body.pose_scale=0.8"]) == 0
    assert "anchorhoi demo: wrote" in capsys.readouterr().out
    expected = {"body.obj", "body.ply", "body.glb", "body_anim.glb", "body.npz", "keypoints.npz", "overlay.png",
                "config.yaml"}
    man = _manifest(out)
    assert set(man) == expected
    assert {p.name for p in out.iterdir()} == expected | {"manifest.json", "run.log"}
    for name, digest in man.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest

    cfg = load_config(DemoConfig, out / "config.yaml")
    assert (cfg.seed, cfg.body.pose_scale, cfg.render.height, cfg.glb_frames) == (3, 0.8, 192, 4)

    obj = trimesh.load(out / "body.obj", process=False)
    ply = trimesh.load(out / "body.ply", process=False)
    V = obj.vertices.shape[0]
    assert V == ply.vertices.shape[0] == 13718  # Anny's vertex count
    onp.testing.assert_allclose(obj.vertices, ply.vertices, atol=1e-5)
    assert obj.vertices[:, 1].min() == pytest.approx(0.0, abs=1e-5)  # stands on the floor
    assert len(onp.unique(ply.visual.vertex_colors[:, :3], axis=0)) >= 6  # coloured by body part

    scene = trimesh.load(out / "body_anim.glb")
    assert scene.geometry["anny"].vertices.shape == (V, 3)
    doc, _ = decode_glb((out / "body_anim.glb").read_bytes())
    assert len(doc["meshes"][0]["primitives"][0]["targets"]) == 3  # 4 frames = base + 3 morph targets
    assert doc["animations"][0]["channels"][0]["target"]["path"] == "weights"
    assert trimesh.load(out / "body.glb").geometry["anny"].vertices.shape == (V, 3)

    with onp.load(out / "keypoints.npz") as kp:
        assert kp["keypoints"].shape == (18, 2) and kp["keypoints_3d"].shape == (18, 3)
        assert str(kp["layout"]) == "openpose18"
        assert (kp["confidence"] == 1).all()  # the whole body is in view
        assert ((kp["keypoints"] >= 0) & (kp["keypoints"] < [160, 192])).all()
        # The neck is the shoulders' midpoint; the nose sits above the neck (y down in pixels).
        onp.testing.assert_allclose(kp["keypoints_3d"][1], 0.5 * (kp["keypoints_3d"][2] + kp["keypoints_3d"][5]),
                                    atol=1e-6)
        assert kp["keypoints"][0, 1] < kp["keypoints"][1, 1] < kp["keypoints"][10, 1]
    with onp.load(out / "body.npz") as b:
        assert b["pose"].shape == (104, 3) and b["betas"].ndim == 1 and str(b["model"]) == "anny"

    img = iio.imread(out / "overlay.png")
    assert img.shape == (192, 160, 3)
    assert (img[0, 0] == 255).all()  # white background
    assert (img.reshape(-1, 3) != 255).any(axis=-1).mean() > 0.04  # the body covers part of the frame (~8%)

    # Same seed and config => bitwise-identical outputs; another seed => different ones.
    again = tmp_path / "again"
    assert main(["demo", "--out", str(again), "--config", SMALL, "--seed", "3", "body.pose_scale=0.8"]) == 0
    assert _manifest(again) == man
    assert main(["demo", "--out", str(again), "--overwrite", "--config", SMALL, "--seed", "4",
                 "body.pose_scale=0.8"]) == 0
    other = _manifest(again)
    assert other["body.obj"] != man["body.obj"] and other["config.yaml"] != man["config.yaml"]


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "anchorhoi_jax", "--version"], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("anchorhoi_jax ")


def test_demo_pose_sampler_ranges_and_mirror():
    import jax

    from anchorhoi_jax.demo import _RANGES, _range_table, random_pose_axis_angle

    names = []
    for n in _RANGES:
        names += [n, n[:-2] + ".R"] if n.endswith(".L") else [n]
    names += ["lowerarm01.L", "lowerarm01.R"]
    names = tuple(names)
    ix = names.index
    lo, hi = _range_table(names)
    # Right joints mirror the left ones: same x range, y and z ranges negated and swapped.
    L, R = ix("upperarm01.L"), ix("upperarm01.R")
    onp.testing.assert_array_equal(lo[R], [lo[L, 0], -hi[L, 1], -hi[L, 2]])
    onp.testing.assert_array_equal(hi[R], [hi[L, 0], -lo[L, 1], -lo[L, 2]])
    rest = onp.zeros((len(names), 3), onp.float32)
    for side, sx in (("L", 1.0), ("R", -1.0)):  # arm out and down, forearm forward (Anny's A-pose)
        rest[ix(f"upperarm01.{side}")] = [0.17 * sx, 0.43, 0.01]
        rest[ix(f"lowerarm01.{side}")] = [0.33 * sx, 0.24, 0.02]
        rest[ix(f"wrist.{side}")] = [0.45 * sx, 0.12, 0.17]
    aa = onp.asarray(random_pose_axis_angle(jax.random.key(0), names, rest, pose_scale=1.0))
    elbows = [ix("lowerarm01.L"), ix("lowerarm01.R")]
    box = [i for i in range(len(names)) if i not in elbows]
    assert ((aa[box] >= lo[box] - 1e-6) & (aa[box] <= hi[box] + 1e-6)).all()
    ang = onp.linalg.norm(aa[elbows], axis=-1)
    assert ((ang >= 0.1 - 1e-6) & (ang <= 1.4 + 1e-6)).all()  # elbows bend within their range
    # Mirrored arms get mirrored elbow axes (x, -y, -z) up to the angle.
    axes = aa[elbows] / ang[:, None]
    onp.testing.assert_allclose(axes[1], axes[0] * [1, -1, -1], atol=1e-6)
    assert onp.abs(random_pose_axis_angle(jax.random.key(0), names, rest, pose_scale=0.0)).max() == 0.0
    with pytest.raises(ValueError, match="demo pose table names joint 'spine01', which the body model lacks"):
        _range_table(("root", "spine02"))
