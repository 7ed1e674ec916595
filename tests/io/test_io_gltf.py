"""glTF encoder internals: quaternions vs a float64 oracle, GLB container, validator catches breakage."""

from __future__ import annotations

import copy

import numpy as onp
import pytest
from scipy.spatial.transform import Rotation

from anchorhoi_jax.io.gltf import SceneMesh, build_glb, decode_glb, encode_glb, matrix_to_quaternion, validate_gltf


def test_matrix_to_quaternion_matches_scipy():
    rng = onp.random.default_rng(0)
    R = Rotation.random(200, random_state=1).as_matrix()
    # include the hard cases: identity and rotations by ~180° about each axis
    R = onp.concatenate([R, onp.eye(3)[None], Rotation.from_rotvec(onp.eye(3) * (onp.pi - 1e-7)).as_matrix()])
    q = matrix_to_quaternion(R)
    ref = Rotation.from_matrix(R).as_quat()  # (x, y, z, w)
    ref[ref[:, 3] < 0] *= -1
    dots = onp.abs(onp.sum(q * ref, -1))
    onp.testing.assert_allclose(dots, 1.0, atol=1e-12)
    onp.testing.assert_allclose(onp.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    assert rng is not None


def _tiny():
    v = onp.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], onp.float32)
    f = onp.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    return v, f


def test_glb_container_round_trip():
    v, f = _tiny()
    data = build_glb([SceneMesh("t", f, onp.stack([v, 2 * v, 3 * v]))], fps=10.0, interpolation="STEP")
    assert data[:4] == b"glTF" and len(data) % 4 == 0
    doc, blob = decode_glb(data)
    validate_gltf(doc, blob)
    assert encode_glb(doc, blob) == data
    assert doc["animations"][0]["extras"] == {"fps": 10.0, "frames": 3}
    with pytest.raises(ValueError, match="not a GLB file: bad magic"):
        decode_glb(b"xxxx" + data[4:])
    with pytest.raises(ValueError, match=r"truncated GLB: header says \d+ bytes, file has \d+"):
        decode_glb(data[:-4])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["accessors"][1].__setitem__("max", [9.0, 9.0, 9.0]), "accessor 1 min/max do not match its data"),
        (lambda d: [d["accessors"][1].pop(k) for k in ("min", "max")], "POSITION accessor 1 lacks min/max"),
        (lambda d: d["accessors"][1].pop("min"), "accessor 1 has only one of min/max"),
        (lambda d: d["accessors"][1].__setitem__("count", 10**6), "accessor 1 needs"),
        (lambda d: d["meshes"][0].__setitem__("weights", [0.0]), "mesh 0 has 1 weights for 2 morph targets"),
        (lambda d: d["nodes"][0].__setitem__("mesh", 5), "node 0 points to a missing mesh"),
        (lambda d: d["animations"][0]["channels"][0]["target"].__setitem__("path", "colour"),
         "unknown target path 'colour'"),
        (lambda d: d["bufferViews"][0].__setitem__("byteOffset", 2), "bufferView 0 is misaligned"),
        (lambda d: d["asset"].__setitem__("version", "1.0"), "asset.version must be '2.0'"),
    ],
)
def test_validator_catches_broken_documents(mutate, message):
    v, f = _tiny()
    doc, blob = decode_glb(build_glb([SceneMesh("t", f, onp.stack([v, 2 * v, 3 * v]))], fps=10.0))
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(ValueError) as e:
        validate_gltf(bad, blob)
    assert message in str(e.value) and str(e.value).startswith("invalid glTF: ")


def test_non_increasing_times_rejected():
    v, f = _tiny()
    doc, blob = decode_glb(build_glb([SceneMesh("t", f, onp.stack([v, 2 * v]))], fps=10.0))
    # Overwrite the time accessor's data (accessor 0) with a decreasing pair, keeping min/max consistent.
    view = doc["bufferViews"][doc["accessors"][0]["bufferView"]]
    times = onp.array([0.5, 0.1], onp.float32)
    blob = blob[: view["byteOffset"]] + times.tobytes() + blob[view["byteOffset"] + 8:]
    doc["accessors"][0]["min"], doc["accessors"][0]["max"] = [float(times.min())], [float(times.max())]
    with pytest.raises(ValueError, match="keyframe times must be ≥ 0 and strictly increasing"):
        validate_gltf(doc, blob)
