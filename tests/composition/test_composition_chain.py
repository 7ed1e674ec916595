"""The interaction-composition chain (paper Sec. 4) end to end in the smoke setting (tiny random priors,
32-px renders, two seeds), the files of write_static, the no-silent-fallback policies, configs and
bad inputs."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
import torch

from anchorhoi_jax.geometry.mesh import MeshError, check_mesh
from anchorhoi_jax.io.config import ConfigError, from_dict, to_dict
from anchorhoi_jax.io.export import read_mp4
from anchorhoi_jax.io.formats import read_static
from anchorhoi_jax.io.gltf import decode_glb, read_accessor
from anchorhoi_jax.stages import composition as C

from .test_avatar import mesh_body

PROMPT = "a man | sitting on | a wooden chair"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny torch priors run much faster single-threaded on a loaded CPU
    # avatar.shading=albedo: the avatar tests' compiled step (same config, two seeds) is reused.
    cfg = C.smoke_config(avatar={"shading": "albedo"})
    body = mesh_body()
    priors = C.build_priors(PROMPT, cfg)
    seen = []
    hoi = C.compose(PROMPT, jax.random.split(jax.random.key(0), 2), cfg, priors, body,
                    callback=lambda step, state, info: seen.append((info["stage"], step)))
    out = tmp_path_factory.mktemp("compose")
    static = C.write_static(out, hoi, 1, body, cfg=cfg.output)
    yield dict(cfg=cfg, body=body, priors=priors, hoi=hoi, out=out, static=static, seen=seen)
    torch.set_num_threads(n)


def test_chain_runs_every_substage_and_records_policies(smoke):
    cfg, hoi = smoke["cfg"], smoke["hoi"]
    stages = [s for s, _ in smoke["seen"]]
    for name in ("coarse", "anchor", "avatar", "object"):
        assert name in stages
    assert stages.index("coarse") < stages.index("anchor") < stages.index("avatar") < stages.index("object")
    S, V = 2, smoke["body"].v_template.shape[0]
    assert hoi.num_seeds == S and hoi.human_vertices.shape == (S, V, 3) and hoi.pose.shape == (S, 24, 3)
    assert len(hoi.object_vertices) == S and hoi.keypoints2d.shape == (S, 4, 18, 2)
    assert onp.isfinite(onp.asarray(hoi.human_vertices)).all()
    for s, info in enumerate(hoi.info):
        # Whatever the segmenter and detector made of the tiny priors' renders is stated, never silent.
        assert info["human_mask_source"] == "segmenter" or info["human_mask_source"].startswith(
            "foreground (segmentation.on_empty=foreground")
        assert info["pose_source"] == "eq2_fit" or info["pose_source"].startswith("rest_pose (detection.on_missing")
        if info["pose_source"] != "eq2_fit":  # the rest pose, scale 1, centred on the anchor NeRF
            assert float(hoi.scale[s]) == 1.0 and not onp.asarray(hoi.pose[s]).any()
    # The posed human is the avatar (its D) placed by the fit: vertices are what avatar_vertices gives.
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.stages import avatar as av

    p = av.AvatarParams(shape=hoi.betas[0], displacements=hoi.displacements[0],
                        color_logits=jnp.zeros_like(hoi.displacements[0]))
    bp = BodyParams(betas=hoi.betas[0], pose=hoi.pose[0], transl=hoi.transl[0], scale=hoi.scale[0])
    onp.testing.assert_allclose(onp.asarray(av.avatar_vertices(p, smoke["body"], bp)), onp.asarray(hoi.human_vertices[0]),
                                atol=1e-5)


def test_write_static_files(smoke):
    hoi, static, cfg = smoke["hoi"], smoke["static"], smoke["cfg"]
    names = sorted(p.name for p in static.iterdir())
    assert set(C.STATIC_FILES) <= set(names), names
    d = read_static(static / "static.npz")  # the STATIC layout of io/formats.py, mesh checked watertight
    assert d["body_model"] == "smplx" and d["body_pose"].shape == (63,)
    onp.testing.assert_allclose(d["transl"], onp.asarray(hoi.transl[1]), atol=1e-6)
    with onp.load(static / "static.npz") as z:
        assert z["human_colors"].shape == hoi.human_colors.shape[1:] and z["displacements"].shape == (205, 3)
        assert z["object_colors"].shape == hoi.object_vertices[1].shape
    import trimesh

    ply = trimesh.load(static / "human.ply", process=False)
    onp.testing.assert_allclose(ply.vertices, onp.asarray(hoi.human_vertices[1]), atol=1e-5)
    onp.testing.assert_allclose(ply.visual.vertex_colors[:, :3] / 255.0, onp.asarray(hoi.human_colors[1]), atol=0.003)
    obj = trimesh.load(static / "object.obj", process=False)
    world = hoi.object_vertices[1] @ onp.asarray(hoi.object_rotation[1]).T + onp.asarray(hoi.object_translation[1])
    onp.testing.assert_allclose(obj.vertices, world, atol=1e-5)
    doc, blob = decode_glb((static / "hoi.glb").read_bytes())
    assert [n["name"] for n in doc["nodes"]] == ["human", "object"]
    pos = read_accessor(doc, blob, doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"])
    onp.testing.assert_allclose(pos, onp.asarray(hoi.human_vertices[1]), atol=1e-5)
    frames = read_mp4(static / "turntable.mp4")
    assert frames.shape[0] == cfg.output.turntable_frames and frames.shape[1:3] == (32, 32)
    import imageio.v3 as iio

    img = iio.imread(static / "render.png")
    assert img.shape == (32, 32, 3) and (img < 250).any()  # something was drawn over the white background
    assert json.loads((static / "info.json").read_text())["pose_source"] == hoi.info[1]["pose_source"]
    # Rewriting swaps the whole folder: no temporary folders are left behind.
    C.write_static(smoke["out"], hoi, 0, smoke["body"], cfg=cfg.output)
    assert sorted(p.name for p in smoke["out"].iterdir()) == ["static"]
    with pytest.raises(ValueError, match=r"write_static: seed_index must be in \[0, 2\), got 2"):
        C.write_static(smoke["out"], hoi, 2, smoke["body"], cfg=cfg.output)


def test_empty_masks_and_missing_skeletons_raise_by_default(smoke):
    cfg, priors = smoke["cfg"], smoke["priors"]
    from anchorhoi_jax.stages import coarse

    params = coarse.init_seeds(jax.random.split(jax.random.key(5), 2), cfg.coarse).params  # a blob: no person
    strict = from_dict(C.ComposeConfig, {**to_dict(cfg), "segmentation": {"on_empty": "error"},
                                         "detection": {"on_missing": "error"}})
    with pytest.raises(ValueError, match="segmentation found no person in the canonical renders of seed 0"):
        C.run_masks(params, strict, priors)
    with pytest.raises(ValueError, match="skeleton detection found 0 confident keypoints .* of seed 0"):
        C.run_pose(params, smoke["body"], jnp.zeros((2, 2)), strict, priors)


def test_clean_mesh_makes_marching_cubes_valid():
    from skimage import measure

    t = onp.linspace(-1, 1, 41).astype(onp.float32)
    X, Y, Z = onp.meshgrid(t, t, t, indexing="ij")
    # The iso-level hits grid values exactly: marching cubes emits zero-area triangles there.
    v, f, _, _ = measure.marching_cubes(X**2 + Y**2 + Z**2, level=0.25)
    with pytest.raises(MeshError, match="zero-area faces"):
        check_mesh(v, f)
    v2, f2, c2 = C.clean_mesh(v, f, onp.zeros_like(v))
    check_mesh(v2, f2)
    assert c2.shape == v2.shape and f2.shape[0] < f.shape[0]
    onp.testing.assert_allclose(onp.linalg.norm(v2 - 20.0, axis=1), 10.0, atol=0.3)  # still the sphere (grid units)


def test_config_round_trip_and_bad_configs():
    cfg = C.smoke_config()
    assert from_dict(C.ComposeConfig, to_dict(cfg)) == cfg
    assert from_dict(C.ComposeConfig, {}) == C.ComposeConfig()
    with pytest.raises(ConfigError, match=r"^unknown config key 'coarse\.stepz' \(did you mean 'coarse\.steps'\?\)"):
        from_dict(C.ComposeConfig, {"coarse": {"stepz": 3}})
    with pytest.raises(ConfigError, match="object.field / object.render must equal coarse.field / coarse.render"):
        from_dict(C.ComposeConfig, {"object": {"field": {"hidden": 8}}})
    with pytest.raises(ConfigError, match=r"config key 'detection.on_missing' expects one of 'error', 'rest_pose', got 'guess'"):
        from_dict(C.ComposeConfig, {"detection": {"on_missing": "guess"}})
    with pytest.raises(ConfigError, match=r"steps \(5\) must be a non-negative multiple of steps_per_call \(2\)"):
        from_dict(C.ComposeConfig, {"anchor": {"steps": 5, "steps_per_call": 2}})


def test_bad_prompts_and_keys(smoke):
    with pytest.raises(ValueError, match=r"expected 'human \| action \| object'"):
        C.parse_prompt("")
    with pytest.raises(ValueError, match="the human and object parts must be non-empty"):
        C.parse_prompt(" | holding | a cup")
    with pytest.raises(ValueError, match=r"prompt: unknown keys \['verb'\]"):
        C.parse_prompt({"human": "a man", "verb": "holds", "object": "a cup"})
    assert C.parse_prompt({"human": "a man", "action": "holds", "object": "a cup"}).inter == "a man holds a cup"
    with pytest.raises(ValueError, match="the human and object parts must be non-empty"):
        C.compose(" |  | ", jax.random.split(jax.random.key(0), 2), smoke["cfg"], smoke["priors"], smoke["body"])
    with pytest.raises(ValueError, match="keys must be a 1-D array of S >= 1 typed PRNG keys"):
        C.compose(PROMPT, jnp.zeros((2,)), smoke["cfg"], smoke["priors"], smoke["body"])
