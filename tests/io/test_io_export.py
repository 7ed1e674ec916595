"""Exporters: round trips through trimesh / imageio, atomicity, determinism and bad-input messages."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as onp
import pytest
import trimesh

from anchorhoi_jax.io.export import (
    SceneMesh,
    atomic_write,
    read_mp4,
    validate_mesh,
    write_animated_glb,
    write_glb,
    write_mp4,
    write_npz,
    write_obj,
    write_ply,
    write_png,
)
from anchorhoi_jax.io.gltf import decode_glb, read_accessor


def _sphere(seed=0):
    m = trimesh.creation.icosphere(subdivisions=2)
    rng = onp.random.default_rng(seed)
    return onp.asarray(m.vertices, onp.float32), onp.asarray(m.faces), rng.random((len(m.vertices), 3))


def _rot_y(a):
    c, s = onp.cos(a), onp.sin(a)
    return onp.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@pytest.mark.parametrize("writer, ext", [(write_obj, "obj"), (write_ply, "ply")])
def test_mesh_colours_round_trip(tmp_path, writer, ext):
    v, f, c = _sphere()
    p = writer(tmp_path / f"m.{ext}", v, f, c)
    m = trimesh.load(p, process=False)
    assert m.vertices.shape == v.shape and m.faces.shape == f.shape
    onp.testing.assert_allclose(m.vertices, v, atol=1e-6)
    onp.testing.assert_array_equal(m.faces, f)
    assert m.visual.kind == "vertex"
    assert onp.abs(m.visual.vertex_colors[:, :3] / 255.0 - c).max() <= 0.5 / 255 + 1e-6
    assert oct(os.stat(p).st_mode & 0o777) != oct(0o600)  # published with the umask, not mkstemp's 0600


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(vertices=onp.zeros((4, 2)), faces=[[0, 1, 2]]), "m: vertices must be (V, 3) with V ≥ 1, got (4, 2)"),
        (dict(vertices=[[0, 0, 0], [1, 0, 0], [0, onp.nan, 0]], faces=[[0, 1, 2]]), "m: vertices must be finite numbers"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0, 1, 3]]), "m: face indices must be in [0, 3), got range [0, 3]"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0, -1, 2]]), "m: face indices must be in [0, 3), got range [-1, 2]"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0.0, 1.0, 2.0]]), "m: faces must be integers, got float64"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0, 1]]), "m: faces must be (F, 3) with F ≥ 1, got (1, 2)"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0, 1, 2]], colors=onp.zeros((2, 3))),
         "m: colors must be (3, 3) or (3, 4), got (2, 3)"),
        (dict(vertices=onp.zeros((3, 3)), faces=[[0, 1, 2]], colors=onp.full((3, 3), 1.5)),
         "m: float colors must lie in [0, 1], got [1.5, 1.5]"),
    ],
)
def test_mesh_validation_messages(kwargs, message):
    with pytest.raises(ValueError) as e:
        validate_mesh(name="m", **kwargs)
    assert message in str(e.value)


def test_bad_mesh_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="face indices"):
        write_obj(tmp_path / "x.obj", onp.zeros((3, 3)), [[0, 1, 5]])
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_content_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as fh:
            fh.write("new, half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]  # temp file removed
    with pytest.raises(FileNotFoundError, match="output directory does not exist"):
        with atomic_write(tmp_path / "missing" / "f.txt"):
            pass


def test_static_glb_scene(tmp_path):
    v, f, c = _sphere()
    box = trimesh.creation.box(extents=(0.5, 0.3, 0.2))
    R = _rot_y(0.7)
    p = write_glb(tmp_path / "s.glb", [
        SceneMesh("human", f, v, c),
        SceneMesh("object", box.faces, box.vertices, rotation=R, translation=[1.0, 0.2, -0.5]),
    ])
    scene = trimesh.load(p)
    assert set(scene.geometry) == {"human", "object"}
    assert scene.geometry["human"].vertices.shape == v.shape
    assert scene.geometry["object"].vertices.shape == (8, 3)
    # With a material present, trimesh keeps COLOR_0 as a vertex attribute of the texture visual.
    colors = onp.asarray(scene.geometry["human"].visual.vertex_attributes["color"])
    onp.testing.assert_allclose(colors[:, :3] / 255.0, c, atol=0.5 / 255 + 1e-6)
    T, _ = scene.graph["object"]
    onp.testing.assert_allclose(T[:3, :3], R, atol=1e-6)
    onp.testing.assert_allclose(T[:3, 3], [1.0, 0.2, -0.5], atol=1e-6)
    doc, _ = decode_glb(p.read_bytes())
    assert "animations" not in doc


@pytest.mark.parametrize("interpolation", ["STEP", "LINEAR"])
def test_animated_glb_round_trip(tmp_path, interpolation):
    v, f, c = _sphere()
    L = 6
    rng = onp.random.default_rng(1)
    frames = onp.stack([v * (1.0 + 0.1 * k) + rng.normal(0, 0.01, v.shape) for k in range(L)]).astype(onp.float32)
    box = trimesh.creation.box()
    R = onp.stack([_rot_y(a) for a in onp.linspace(0.0, 3.5, L)])  # passes 180°: sign continuity matters
    t = rng.normal(size=(L, 3))
    p = write_animated_glb(tmp_path / "a.glb", [SceneMesh("human", f, frames, c),
                                                SceneMesh("object", box.faces, box.vertices, rotation=R, translation=t)],
                           fps=12.0, interpolation=interpolation)
    scene = trimesh.load(p)  # trimesh loads the base pose of an animated GLB
    assert scene.geometry["human"].vertices.shape == v.shape
    assert scene.geometry["object"].vertices.shape == (8, 3)

    doc, blob = decode_glb(p.read_bytes())
    (anim,) = doc["animations"]
    paths = sorted((ch["target"]["node"], ch["target"]["path"]) for ch in anim["channels"])
    assert paths == [(0, "weights"), (1, "rotation"), (1, "translation")]
    assert all(s["interpolation"] == interpolation for s in anim["samplers"])
    times = read_accessor(doc, blob, anim["samplers"][0]["input"])
    onp.testing.assert_allclose(times, onp.arange(L) / 12.0, rtol=1e-6)
    # Rebuild every human frame from base + morph targets · keyframe weights: equals the input.
    prim = doc["meshes"][0]["primitives"][0]
    base = read_accessor(doc, blob, prim["attributes"]["POSITION"])
    targets = onp.stack([read_accessor(doc, blob, tg["POSITION"]) for tg in prim["targets"]])
    wch = next(ch for ch in anim["channels"] if ch["target"]["path"] == "weights")
    w = read_accessor(doc, blob, anim["samplers"][wch["sampler"]]["output"]).reshape(L, L - 1)
    rebuilt = base[None] + onp.einsum("lk,kvc->lvc", w, targets)
    onp.testing.assert_allclose(rebuilt, frames, atol=2e-6)
    # Rigid object: quaternions (x, y, z, w) give back the rotations; consecutive keys share a hemisphere.
    rch = next(ch for ch in anim["channels"] if ch["target"]["path"] == "rotation")
    q = read_accessor(doc, blob, anim["samplers"][rch["sampler"]]["output"]).astype(onp.float64)
    assert (onp.sum(q[1:] * q[:-1], -1) > 0).all()
    x, y, z, ww = q.T
    Rq = onp.stack([
        onp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * ww), 2 * (x * z + y * ww)], -1),
        onp.stack([2 * (x * y + z * ww), 1 - 2 * (x * x + z * z), 2 * (y * z - x * ww)], -1),
        onp.stack([2 * (x * z - y * ww), 2 * (y * z + x * ww), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
    onp.testing.assert_allclose(Rq, R, atol=1e-6)
    tch = next(ch for ch in anim["channels"] if ch["target"]["path"] == "translation")
    onp.testing.assert_allclose(read_accessor(doc, blob, anim["samplers"][tch["sampler"]]["output"]), t, atol=1e-6)


def test_animated_glb_errors(tmp_path):
    v, f, c = _sphere()
    with pytest.raises(ValueError, match="needs at least one mesh with per-frame vertices, rotation or translation"):
        write_animated_glb(tmp_path / "a.glb", [SceneMesh("h", f, v)], fps=24)
    with pytest.raises(ValueError, match="mesh 'h': an animation needs at least 2 frames, got 1"):
        write_animated_glb(tmp_path / "a.glb", [SceneMesh("h", f, v[None])], fps=24)
    with pytest.raises(ValueError, match=r"animated meshes disagree on the number of frames: \[3, 4\]"):
        write_animated_glb(tmp_path / "a.glb", [SceneMesh("h", f, onp.stack([v] * 3)),
                                               SceneMesh("o", f, v, translation=onp.zeros((4, 3)))], fps=24)
    with pytest.raises(ValueError, match="mesh 'o': rotation must be proper orthonormal 3x3"):
        write_glb(tmp_path / "a.glb", [SceneMesh("o", f, v, rotation=2 * onp.eye(3))])
    with pytest.raises(ValueError, match=r"mesh names must be unique, got \['h', 'h'\]"):
        write_glb(tmp_path / "a.glb", [SceneMesh("h", f, v), SceneMesh("h", f, v)])
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write_animated_glb(tmp_path / "a.glb", [SceneMesh("h", f, onp.stack([v] * 2))], fps=0)
    with pytest.raises(ValueError, match=r"a static GLB needs \(V, 3\) vertices"):
        write_glb(tmp_path / "a.glb", [SceneMesh("h", f, onp.stack([v] * 2))])
    assert list(tmp_path.iterdir()) == []


def test_png_round_trip_and_errors(tmp_path):
    img = onp.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=onp.uint8)
    p = write_png(tmp_path / "a.png", img)
    onp.testing.assert_array_equal(iio.imread(p), img)
    f = img / 255.0
    onp.testing.assert_array_equal(iio.imread(write_png(tmp_path / "b.png", f)), img)
    with pytest.raises(ValueError, match=r"c.png: float image must lie in \[0, 1\], got \[0, 2\]"):
        write_png(tmp_path / "c.png", f * 2)
    with pytest.raises(ValueError, match=r"c.png: image must be \(H, W, 3\|4\) or \(H, W\), got \(2, 3, 5\)"):
        write_png(tmp_path / "c.png", onp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="c.png: image has non-finite values"):
        write_png(tmp_path / "c.png", onp.full((2, 3, 3), onp.nan))


def test_npz_round_trip_determinism_and_errors(tmp_path):
    arrays = {"pose": onp.arange(6, dtype=onp.float32).reshape(2, 3), "gender": onp.array("female"), "n": 3}
    p1 = write_npz(tmp_path / "a.npz", arrays)
    with onp.load(p1, allow_pickle=False) as d:
        onp.testing.assert_array_equal(d["pose"], arrays["pose"])
        assert str(d["gender"]) == "female" and int(d["n"]) == 3
    p2 = write_npz(tmp_path / "b.npz", arrays)
    assert p1.read_bytes() == p2.read_bytes()  # no timestamps inside: identical runs, identical bytes
    with pytest.raises(ValueError, match="c.npz: array 'x' has 1 non-finite values"):
        write_npz(tmp_path / "c.npz", x=onp.array([1.0, onp.inf]))
    with pytest.raises(ValueError, match=r"c.npz: array 'o' has dtype object \(would need pickle\)"):
        write_npz(tmp_path / "c.npz", o=onp.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match="c.npz: nothing to write"):
        write_npz(tmp_path / "c.npz", {})


def test_mp4_decodes_with_right_frame_count(tmp_path):
    L, H, W = 9, 31, 45  # odd sizes: padded to even for yuv420p
    yy, xx = onp.mgrid[0:H, 0:W]
    frames = onp.stack([onp.stack([(xx + 3 * k) % W / W, yy / H, onp.full((H, W), k / L)], -1) for k in range(L)])
    p = write_mp4(tmp_path / "v.mp4", frames.astype(onp.float32), fps=12)
    dec = read_mp4(p)
    assert dec.shape == (L, H + 1, W + 1, 3)
    assert onp.abs(dec[:, :H, :W].astype(float) / 255.0 - frames).mean() < 0.03
    assert [x.name for x in tmp_path.iterdir()] == ["v.mp4"]
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(p))
    meta = next(gen)
    gen.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 12.0
    # Same frames, same bytes (x264 is deterministic and ffmpeg stamps no creation time by default).
    assert write_mp4(tmp_path / "v2.mp4", frames.astype(onp.float32), fps=12).read_bytes() == p.read_bytes()
    (tmp_path / "v2.mp4").unlink()
    with pytest.raises(ValueError, match=r"w.mp4: frames must be \(L, H, W, 3\) with L ≥ 1, got \(4, 4, 3\)"):
        write_mp4(tmp_path / "w.mp4", onp.zeros((4, 4, 3)), fps=12)
    with pytest.raises(ValueError, match=r"w.mp4: fps must be in \(0, 1000\], got -1"):
        write_mp4(tmp_path / "w.mp4", onp.zeros((2, 4, 4, 3)), fps=-1)
    with pytest.raises(ValueError, match="w.mp4: image has non-finite values"):
        write_mp4(tmp_path / "w.mp4", onp.full((2, 4, 4, 3), onp.nan), fps=12)
    assert [x.name for x in tmp_path.iterdir()] == ["v.mp4"]
