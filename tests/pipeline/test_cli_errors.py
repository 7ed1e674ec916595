"""Bad input to generate / animate / export: one stderr line, exit code 2, nothing written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from anchorhoi_jax.cli import main
from helpers import REPO, SMOKE, SMOKE_ANIMATE

ANCHORHOI = str(REPO / "configs" / "anchorhoi.yaml")


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines, "no error printed"
    return lines[-1]


@pytest.mark.parametrize("argv, message", [
    (["generate", "   "], "anchorhoi generate: error: the prompt is empty; describe the interaction, e.g. "
                            "\"a man sitting on a sofa\""),
    (["generate", "a man sitting on a sofa " * 13], "anchorhoi generate: error: the prompt has 311 characters; "
                                                     "at most 300 are allowed"),
    (["generate", "sofa"], "anchorhoi generate: error: cannot split the prompt 'sofa' into human, action and object; "
                           "write it as 'a man | sitting on | a sofa'"),
    (["generate", "a man sitting on a sofa", "--config", str(SMOKE), "motion.stepz=3"],
     "anchorhoi generate: error: unknown config key 'motion.stepz' (did you mean 'motion.steps'?); valid keys: "
     "motion.steps, motion.log_every,"),
    (["generate", "a man sitting on a sofa", "--config", str(SMOKE), "motion.steps=abc"],
     "anchorhoi generate: error: config key 'motion.steps' expects int, got 'abc' (str)"),
    (["generate", "a man sitting on a sofa", "--config", str(SMOKE), "--seeds", "0"],
     "anchorhoi generate: error: invalid config: seeds must be in [1, 64], got 0"),
    (["generate", "a man sitting on a sofa", "--config", str(SMOKE), "motion.steps=45"],
     "anchorhoi generate: error: invalid config group motion: motion.steps (45) must be a multiple of "
     "motion.log_every (10)"),
    (["generate", "a man sitting on a sofa", "--config", str(SMOKE), "observe.tensorboard=true"],
     "anchorhoi generate: error: observe.tensorboard=true needs tensorboardX or tensorboard: pip install "
     "tensorboardX (or set observe.tensorboard=false)"),
])
def test_generate_bad_input(tmp_path, capsys, argv, message):
    if "observe.tensorboard=true" in argv and (importlib.util.find_spec("tensorboardX")
                                               or importlib.util.find_spec("tensorboard")):
        pytest.skip("tensorboard is installed here")
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = _err(capsys)
    assert err.startswith(message), err
    assert not out.exists()


def test_missing_weights_for_the_real_preset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    assert main(["generate", "a man sitting on a sofa", "--config", ANCHORHOI, "--out", str(out)]) == 2
    err = _err(capsys)
    assert err.startswith("anchorhoi generate: error: missing weights for ") and "if-i-xl" in err, err
    assert not out.exists()


def test_missing_segmenter_weights_before_anything_runs(tmp_path, capsys, monkeypatch):
    """segment.kind=grounded_sam (video-frame masks for the motion stage) checks GroundingDINO's weights in the
    preflight, not after the render, video and detect stages."""
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    assert main(["generate", "a man sitting on a sofa", "--config", str(SMOKE), "segment.kind=grounded_sam",
                 "--out", str(out)]) == 2
    err = _err(capsys)
    assert err.startswith("anchorhoi generate: error: missing weights for 'grounding-dino'"), err
    assert not out.exists()


def test_existing_output_dir_needs_overwrite(tmp_path, capsys, static_npz):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["animate", "--static", str(static_npz), "--prompt", "a person leans on a box", "--config",
                 str(SMOKE_ANIMATE), "--out", str(out)]) == 2
    assert _err(capsys) == (f"anchorhoi animate: error: output directory exists and is not empty: {out} "
                            "(pass --overwrite to write into it)")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_animate_bad_static_and_video(tmp_path, capsys, static_npz):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    assert main(["animate", "--static", str(bad), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    assert _err(capsys).startswith(f"anchorhoi animate: error: {bad}: not a readable .npz file")
    assert main(["animate", "--static", str(static_npz), "--video", str(tmp_path / "none.mp4"), "--out",
                 str(tmp_path / "o")]) == 2
    assert _err(capsys).startswith(f"anchorhoi animate: error: --video {tmp_path / 'none.mp4'}: ")
    assert main(["animate", "--static", str(static_npz), "--prompt", "", "--config", str(SMOKE_ANIMATE), "--out",
                 str(tmp_path / "o")]) == 2
    assert _err(capsys).startswith("anchorhoi animate: error: the prompt is empty")
    assert not (tmp_path / "o").exists()


def test_export_bad_input(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert _err(capsys) == f"anchorhoi export: error: --run {tmp_path}: no config.yaml (not a run directory)"


def test_read_only_output_dir(tmp_path, static_npz):
    spec = importlib.util.spec_from_file_location("run_dir_tests", REPO / "tests" / "io" / "test_io_run_dir.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ro = tmp_path / "ro"
    ro.mkdir()
    r = mod.run_with_readonly_dir(ro, [sys.executable, "-m", "anchorhoi_jax", "animate", "--static", str(static_npz),
                                       "--prompt", "a person leans on a box", "--config", str(SMOKE_ANIMATE),
                                       "--out", str(ro / "out")])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"anchorhoi animate: error: parent directory {ro} of the output "
                                                  f"directory is read-only: cannot write {ro / 'out'}")
    assert not (ro / "out").exists()
