"""`anchorhoi generate` end to end on a SMPL-X body (the synthetic SMPL-X-layout file; the real one is
licence-restricted) at the smoke sizes: every output exists and loads, the STATIC.npz follows the SMPL-X
layout (10 betas + 10 expression, body joints 1..21, jaw/eyes/hands), the AMASS export has 165 pose values."""

from __future__ import annotations

import json

import numpy as onp
import pytest
import trimesh

from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx
from anchorhoi_jax.cli import main
from anchorhoi_jax.io.formats import read_motion, read_static
from anchorhoi_jax.io.gltf import decode_glb

from helpers import SMOKE

SEED = "seed_000"
# Smaller than the smoke preset where it does not change what is exercised (compile time dominates).
SMALL = ["motion.steps=10", "motion.log_every=5", "motion.global_steps=4", "compose.object.mesh_resolution=16",
         "export.metrics_sdf_resolution=16", "motion.sdf_resolution=16", "compose.output.turntable_frames=2"]


@pytest.mark.slow
def test_generate_smplx_end_to_end(tmp_path, xla_cache):
    model = write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz", seed=0)
    out = tmp_path / "run"
    argv = ["generate", "a man | sitting on | a sofa", "--config", str(SMOKE), "--out", str(out),
            "body.model=smplx", f"body.smplx_model={model}", *SMALL]
    assert main(argv) == 0
    files = {f["name"] for f in json.loads((out / "manifest.json").read_text())["files"]}
    for name in ("static/human.obj", "static/human.ply", "static/object.obj", "static/hoi.glb", "static/static.npz",
                 "static/render.png", "motion/motion.npz", "motion/amass.npz", "motion/hoi.glb", "metrics.json"):
        assert f"{SEED}/{name}" in files, name
    st = read_static(out / SEED / "static" / "static.npz")
    assert st["body_model"] == "smplx" and st["betas"].shape == (10,) and st["expression"].shape == (10,)
    assert st["body_pose"].shape == (63,) and st["left_hand_pose"].shape == (45,) and st["jaw_pose"].shape == (3,)
    for name in ("static/hoi.glb", "motion/hoi.glb"):
        scene = trimesh.load(out / SEED / name)
        assert {"human", "object"} <= set(scene.geometry), name
    human = trimesh.load(out / SEED / "static" / "human.ply", process=False)
    assert human.vertices.shape == (10475, 3) and human.faces.shape == (20908, 3)
    doc, _ = decode_glb((out / SEED / "motion" / "hoi.glb").read_bytes())
    assert len(doc["animations"]) == 1
    m = read_motion(out / SEED / "motion" / "motion.npz")
    L = m["global_orient"].shape[0]
    assert L >= 2 and m["body_pose"].shape == (L, 63) and onp.all(onp.isfinite(m["transl"]))
    with onp.load(out / SEED / "motion" / "amass.npz") as z:
        assert z["poses"].shape == (L, 165) and z["trans"].shape == (L, 3) and str(z["gender"]) == "neutral"
    info = json.loads((out / SEED / "static" / "info.json").read_text())
    assert info["mesh_threshold_source"] == "config" and info["mesh_resolution"] == 16
    metrics = json.loads((out / SEED / "metrics.json").read_text())
    assert all(onp.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))
