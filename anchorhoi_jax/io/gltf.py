"""glTF 2.0 binary (GLB) encoder for static and animated human-object scenes, plus a validator.

Written directly from the glTF 2.0 specification (JSON + one binary buffer, packed with NumPy), so
no external tool is needed. Layout of an animated scene:

* a mesh whose vertices change every frame (the human) is one glTF mesh with frame 0 as its base
  POSITION and one morph target per later frame holding that frame's displacement from frame 0;
  an animation channel drives the node's morph `weights` with a one-hot vector per frame, so STEP
  interpolation replays frames exactly and LINEAR blends neighbouring frames (what Blender imports
  as shape keys and three.js as morph targets);
* a rigid mesh (the object) is stored once in its own frame; its node's `translation` and
  `rotation` (unit quaternion, x y z w) are animated per frame.

Keyframe times are `frame / fps` seconds. Colours (`COLOR_0`) are written as given, quantised to
8 bits; glTF viewers interpret them as linear RGB. Normals are left out on purpose: the
specification tells clients to compute flat normals, which stay right under morphing.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Sequence
from typing import Any, Literal

import numpy as onp

__all__ = ["SceneMesh", "build_glb", "decode_glb", "validate_gltf", "read_accessor", "matrix_to_quaternion"]

GLB_MAGIC = 0x46546C67  # b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT, UINT, UBYTE, USHORT = 5126, 5125, 5121, 5123
_COMPONENT = {FLOAT: (onp.float32, 4), UINT: (onp.uint32, 4), UBYTE: (onp.uint8, 1), USHORT: (onp.uint16, 2)}
_COMPONENTS_PER_TYPE = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}

Interpolation = Literal["STEP", "LINEAR"]


@dataclasses.dataclass(frozen=True)
class SceneMesh:
    """One mesh of a scene.

    Attributes:
      name: node/mesh name shown in viewers.
      faces: (F, 3) int triangle indices.
      vertices: (V, 3) static vertices, or (L, V, 3) one set per frame (animated by morph targets).
      colors: optional (V, 3|4) per-vertex colours, float in [0, 1] or uint8.
      rotation: optional node rotation, (3, 3) or per frame (L, 3, 3), applied before `translation`.
      translation: optional node translation (metres), (3,) or per frame (L, 3).
    """

    name: str
    faces: Any
    vertices: Any
    colors: Any = None
    rotation: Any = None
    translation: Any = None


def matrix_to_quaternion(R: onp.ndarray) -> onp.ndarray:
    """(…, 3, 3) rotation matrices -> (…, 4) unit quaternions (x, y, z, w), glTF order.

    Shepperd's method: pick the largest of (w, x, y, z) to divide by, so it stays accurate near
    180-degree rotations.
    """
    R = onp.asarray(R, onp.float64)
    m = R.reshape(-1, 3, 3)
    q = onp.empty((m.shape[0], 4))
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = onp.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    best = onp.argmax(cands, -1)
    for i in range(m.shape[0]):
        a = m[i]
        if best[i] == 0:
            s = 2.0 * onp.sqrt(max(1.0 + tr[i], 1e-300))
            q[i] = [(a[2, 1] - a[1, 2]) / s, (a[0, 2] - a[2, 0]) / s, (a[1, 0] - a[0, 1]) / s, 0.25 * s]
        elif best[i] == 1:
            s = 2.0 * onp.sqrt(max(1.0 + a[0, 0] - a[1, 1] - a[2, 2], 1e-300))
            q[i] = [0.25 * s, (a[0, 1] + a[1, 0]) / s, (a[0, 2] + a[2, 0]) / s, (a[2, 1] - a[1, 2]) / s]
        elif best[i] == 2:
            s = 2.0 * onp.sqrt(max(1.0 + a[1, 1] - a[0, 0] - a[2, 2], 1e-300))
            q[i] = [(a[0, 1] + a[1, 0]) / s, 0.25 * s, (a[1, 2] + a[2, 1]) / s, (a[0, 2] - a[2, 0]) / s]
        else:
            s = 2.0 * onp.sqrt(max(1.0 + a[2, 2] - a[0, 0] - a[1, 1], 1e-300))
            q[i] = [(a[0, 2] + a[2, 0]) / s, (a[1, 2] + a[2, 1]) / s, 0.25 * s, (a[1, 0] - a[0, 1]) / s]
    q /= onp.linalg.norm(q, axis=-1, keepdims=True)
    q[q[:, 3] < 0] *= -1.0  # canonical sign (w ≥ 0) for a single rotation
    return q.reshape(R.shape[:-2] + (4,))


def _continuous(q: onp.ndarray) -> onp.ndarray:
    """Flip signs so consecutive quaternions lie in one hemisphere: interpolation takes the short way."""
    q = q.copy()
    for i in range(1, q.shape[0]):
        if onp.dot(q[i - 1], q[i]) < 0:
            q[i] = -q[i]
    return q


def _check_rotation(R: onp.ndarray, name: str) -> None:
    err = onp.abs(onp.einsum("...ji,...jk->...ik", R, R) - onp.eye(3)).max() if R.size else 0.0
    if err > 1e-4 or (R.size and (onp.linalg.det(R) < 0).any()):
        raise ValueError(f"mesh '{name}': rotation must be proper orthonormal 3x3 (max |RᵀR−I| = {err:.2g})")


def _prepare(mesh: SceneMesh) -> dict[str, Any]:
    """Check one mesh's arrays and bring them to canonical dtypes/shapes; one-line ValueError."""
    name = mesh.name
    v = onp.asarray(mesh.vertices)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[-1] != 3 or v.shape[1] == 0 or v.shape[0] == 0:
        raise ValueError(f"mesh '{name}': vertices must be (V, 3) or (L, V, 3) with V ≥ 1, got {onp.shape(mesh.vertices)}")
    if not onp.issubdtype(v.dtype, onp.number) or not onp.isfinite(v).all():
        raise ValueError(f"mesh '{name}': vertices must be finite numbers")
    v = v.astype(onp.float32)
    nv = v.shape[1]
    f = onp.asarray(mesh.faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"mesh '{name}': faces must be (F, 3) with F ≥ 1, got {f.shape}")
    if not onp.issubdtype(f.dtype, onp.integer):
        raise ValueError(f"mesh '{name}': faces must be integers, got {f.dtype}")
    if f.min() < 0 or f.max() >= nv:
        raise ValueError(f"mesh '{name}': face indices must be in [0, {nv}), got range [{f.min()}, {f.max()}]")
    f = f.astype(onp.uint32)
    c = None
    if mesh.colors is not None:
        c = onp.asarray(mesh.colors)
        if c.shape not in ((nv, 3), (nv, 4)):
            raise ValueError(f"mesh '{name}': colors must be ({nv}, 3) or ({nv}, 4), got {c.shape}")
        if c.dtype == onp.uint8:
            c8 = c
        else:
            if not onp.issubdtype(c.dtype, onp.floating) or not onp.isfinite(c).all():
                raise ValueError(f"mesh '{name}': float colors must be finite")
            if c.min() < 0.0 or c.max() > 1.0:
                raise ValueError(f"mesh '{name}': float colors must lie in [0, 1], got [{c.min():.3g}, {c.max():.3g}]")
            c8 = onp.round(c * 255.0).astype(onp.uint8)
        if c8.shape[1] == 3:
            c8 = onp.concatenate([c8, onp.full((nv, 1), 255, onp.uint8)], 1)
        c = onp.ascontiguousarray(c8)
    R = None if mesh.rotation is None else onp.asarray(mesh.rotation, onp.float64)
    t = None if mesh.translation is None else onp.asarray(mesh.translation, onp.float64)
    if R is not None:
        if R.shape[-2:] != (3, 3) or R.ndim not in (2, 3):
            raise ValueError(f"mesh '{name}': rotation must be (3, 3) or (L, 3, 3), got {R.shape}")
        if not onp.isfinite(R).all():
            raise ValueError(f"mesh '{name}': rotation must be finite")
        _check_rotation(R, name)
    if t is not None:
        if t.shape[-1:] != (3,) or t.ndim not in (1, 2):
            raise ValueError(f"mesh '{name}': translation must be (3,) or (L, 3), got {t.shape}")
        if not onp.isfinite(t).all():
            raise ValueError(f"mesh '{name}': translation must be finite")
    frames = {v.shape[0]}
    if R is not None and R.ndim == 3:
        frames.add(R.shape[0])
    if t is not None and t.ndim == 2:
        frames.add(t.shape[0])
    frames.discard(1)
    if len(frames) > 1:
        raise ValueError(f"mesh '{name}': per-frame vertices/rotation/translation disagree on frame count {sorted(frames)}")
    return dict(name=name, v=v, f=f, c=c, R=R, t=t, frames=frames.pop() if frames else 1)


class _Builder:
    """Accumulates buffer views and accessors into one 4-byte-aligned binary buffer."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, data: onp.ndarray, gltf_type: str, target: int | None = None, minmax: bool = False,
            normalized: bool = False) -> int:
        comp = {onp.dtype(onp.float32): FLOAT, onp.dtype(onp.uint32): UINT, onp.dtype(onp.uint8): UBYTE}[data.dtype]
        data = onp.ascontiguousarray(data)
        raw = data.tobytes()
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b"\0" * pad)
        self.length += len(raw) + pad
        k = _COMPONENTS_PER_TYPE[gltf_type]
        acc = {"bufferView": len(self.views) - 1, "componentType": comp, "count": int(data.size // k), "type": gltf_type}
        if normalized:
            acc["normalized"] = True
        if minmax:
            flat = data.reshape(-1, k)
            acc["min"] = [_num(x) for x in flat.min(0)]
            acc["max"] = [_num(x) for x in flat.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def _num(x) -> float | int:
    # JSON numbers: floats as the exact float32 value in decimal (json writes repr of a float64,
    # which round-trips the float32 exactly), integers as ints.
    return int(x) if onp.issubdtype(type(x), onp.integer) else float(x)


def build_glb(meshes: Sequence[SceneMesh], *, fps: float = 24.0, interpolation: Interpolation = "LINEAR",
              generator: str = "anchorhoi_jax") -> bytes:
    """Encode a scene as GLB bytes (validated before returning).

    Args:
      meshes: the scene's meshes; any with per-frame vertices/rotation/translation is animated.
        All animated meshes must share one frame count L.
      fps: frames per second of the animation (keyframe k at k / fps seconds).
      interpolation: "STEP" (frames replay exactly) or "LINEAR".
    Returns:
      The .glb file content.
    Raises:
      ValueError: one line naming the bad mesh and array.
    """
    if not meshes:
        raise ValueError("a glTF scene needs at least one mesh")
    if interpolation not in ("STEP", "LINEAR"):
        raise ValueError(f"interpolation must be 'STEP' or 'LINEAR', got {interpolation!r}")
    if not (onp.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    names = [m.name for m in meshes]
    if len(set(names)) != len(names):
        raise ValueError(f"mesh names must be unique, got {names}")
    prepared = [_prepare(m) for m in meshes]
    L = {p["frames"] for p in prepared} - {1}
    if len(L) > 1:
        raise ValueError(f"animated meshes disagree on the number of frames: {sorted(L)}")
    L = L.pop() if L else 1

    b = _Builder()
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"name": "scene", "nodes": list(range(len(prepared)))}],
        "nodes": [],
        "meshes": [],
        "materials": [
            {
                "name": "vertex_color",
                "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0,
                                         "roughnessFactor": 0.9},
                "doubleSided": True,
            }
        ],
    }
    channels, samplers = [], []
    time_acc = None
    if L > 1:
        times = (onp.arange(L, dtype=onp.float64) / fps).astype(onp.float32)
        time_acc = b.add(times, "SCALAR", minmax=True)

    for node_index, p in enumerate(prepared):
        v = p["v"]
        base = v[0]
        attrs = {"POSITION": b.add(base, "VEC3", ARRAY_BUFFER, minmax=True)}
        if p["c"] is not None:
            attrs["COLOR_0"] = b.add(p["c"], "VEC4", ARRAY_BUFFER, normalized=True)
        prim: dict[str, Any] = {"attributes": attrs, "indices": b.add(p["f"].reshape(-1), "SCALAR",
                                                                       ELEMENT_ARRAY_BUFFER, minmax=True),
                                "material": 0, "mode": 4}
        mesh: dict[str, Any] = {"name": p["name"], "primitives": [prim]}
        node: dict[str, Any] = {"name": p["name"], "mesh": node_index}
        if v.shape[0] > 1:
            # Morph targets: frame k (k ≥ 1) is target k−1, displacement from frame 0.
            K = v.shape[0] - 1
            prim["targets"] = [{"POSITION": b.add(v[k] - base, "VEC3", ARRAY_BUFFER, minmax=True)}
                               for k in range(1, v.shape[0])]
            mesh["weights"] = [0.0] * K
            mesh["extras"] = {"targetNames": [f"frame_{k:04d}" for k in range(1, v.shape[0])]}
            w = onp.zeros((L, K), onp.float32)
            w[onp.arange(1, L), onp.arange(K)] = 1.0  # one-hot per keyframe; frame 0 = base
            samplers.append({"input": time_acc, "output": b.add(w.reshape(-1), "SCALAR"),
                             "interpolation": interpolation})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node_index, "path": "weights"}})
        R, t = p["R"], p["t"]
        if R is not None:
            q = matrix_to_quaternion(R)
            if q.ndim == 2 and q.shape[0] > 1:
                q = _continuous(q).astype(onp.float32)
                node["rotation"] = [float(x) for x in q[0]]
                samplers.append({"input": time_acc, "output": b.add(q, "VEC4"), "interpolation": interpolation})
                channels.append({"sampler": len(samplers) - 1, "target": {"node": node_index, "path": "rotation"}})
            else:
                node["rotation"] = [float(x) for x in q.reshape(-1, 4)[0]]
        if t is not None:
            if t.ndim == 2 and t.shape[0] > 1:
                tt = t.astype(onp.float32)
                node["translation"] = [float(x) for x in tt[0]]
                samplers.append({"input": time_acc, "output": b.add(tt, "VEC3"), "interpolation": interpolation})
                channels.append({"sampler": len(samplers) - 1,
                                 "target": {"node": node_index, "path": "translation"}})
            else:
                node["translation"] = [float(x) for x in t.reshape(-1, 3)[0]]
        doc["meshes"].append(mesh)
        doc["nodes"].append(node)

    if channels:
        doc["animations"] = [{"name": "motion", "channels": channels, "samplers": samplers,
                              "extras": {"fps": float(fps), "frames": int(L)}}]
    blob = b.blob()
    doc["buffers"] = [{"byteLength": len(blob)}]
    doc["bufferViews"] = b.views
    doc["accessors"] = b.accessors
    validate_gltf(doc, blob)
    return encode_glb(doc, blob)


def encode_glb(doc: dict, blob: bytes) -> bytes:
    """Pack glTF JSON and its binary buffer into the GLB container (12-byte header, 2 chunks)."""
    js = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    js += b" " * ((-len(js)) % 4)  # JSON chunk padded with spaces (spec 4.4.3.1)
    bin_ = blob + b"\0" * ((-len(blob)) % 4)
    total = 12 + 8 + len(js) + 8 + len(bin_)
    return b"".join([
        struct.pack("<III", GLB_MAGIC, 2, total),
        struct.pack("<II", len(js), CHUNK_JSON), js,
        struct.pack("<II", len(bin_), CHUNK_BIN), bin_,
    ])


def decode_glb(data: bytes) -> tuple[dict, bytes]:
    """Split GLB bytes into (glTF JSON dict, binary buffer). ValueError if it is not a GLB 2.0."""
    if len(data) < 20:
        raise ValueError(f"not a GLB file: {len(data)} bytes is shorter than its header")
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise ValueError("not a GLB file: bad magic (expected 'glTF')")
    if version != 2:
        raise ValueError(f"unsupported GLB version {version} (expected 2)")
    if total != len(data):
        raise ValueError(f"truncated GLB: header says {total} bytes, file has {len(data)}")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    if jtype != CHUNK_JSON:
        raise ValueError("GLB's first chunk is not JSON")
    doc = json.loads(data[20:20 + jlen].decode("utf-8"))
    off = 20 + jlen
    blob = b""
    if off < len(data):
        blen, btype = struct.unpack_from("<II", data, off)
        if btype != CHUNK_BIN:
            raise ValueError("GLB's second chunk is not BIN")
        blob = data[off + 8: off + 8 + blen]
    return doc, blob


def read_accessor(doc: dict, blob: bytes, index: int) -> onp.ndarray:
    """Decode accessor `index` into a NumPy array of shape (count,) or (count, k) (tightly packed views)."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype, size = _COMPONENT[acc["componentType"]]
    k = _COMPONENTS_PER_TYPE[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    arr = onp.frombuffer(blob, dtype=dtype, count=acc["count"] * k, offset=start)
    return arr if k == 1 else arr.reshape(acc["count"], k)


def validate_gltf(doc: dict, blob: bytes) -> None:
    """Check the structural rules of glTF 2.0 that our files rely on; one-line ValueError on failure.

    Checks: asset version; buffer/bufferView bounds and 4-byte alignment; accessor types, sizes and
    (where the spec requires them: POSITION, morph POSITION, animation input) min/max equal to the
    data; finite float data; index range; morph-target counts against mesh weights; node/mesh/scene
    references; animation samplers (increasing times, output count = input count × components).
    """

    def fail(msg):
        raise ValueError(f"invalid glTF: {msg}")

    if doc.get("asset", {}).get("version") != "2.0":
        fail("asset.version must be '2.0'")
    buffers = doc.get("buffers", [])
    if len(buffers) != 1 or "uri" in buffers[0]:
        fail("expected exactly one embedded binary buffer")
    blen = buffers[0]["byteLength"]
    if blen > len(blob) or len(blob) - blen >= 4:
        fail(f"buffer byteLength {blen} does not match the BIN chunk ({len(blob)} bytes)")
    views = doc.get("bufferViews", [])
    for i, v in enumerate(views):
        off = v.get("byteOffset", 0)
        if off % 4 or off + v["byteLength"] > blen:
            fail(f"bufferView {i} is misaligned or runs past the buffer")
    accs = doc.get("accessors", [])
    decoded = []
    for i, a in enumerate(accs):
        if a["componentType"] not in _COMPONENT or a["type"] not in _COMPONENTS_PER_TYPE:
            fail(f"accessor {i} has an unknown componentType/type")
        if not 0 <= a["bufferView"] < len(views):
            fail(f"accessor {i} points to a missing bufferView")
        view = views[a["bufferView"]]
        size = _COMPONENT[a["componentType"]][1] * _COMPONENTS_PER_TYPE[a["type"]] * a["count"]
        if a.get("byteOffset", 0) + size > view["byteLength"]:
            fail(f"accessor {i} needs {size} bytes but its bufferView has {view['byteLength']}")
        if a["count"] < 1:
            fail(f"accessor {i} is empty")
        data = read_accessor(doc, blob, i)
        if a["componentType"] == FLOAT and not onp.isfinite(data).all():
            fail(f"accessor {i} holds non-finite values")
        if ("min" in a) != ("max" in a):
            fail(f"accessor {i} has only one of min/max")
        if "min" in a:
            flat = data.reshape(a["count"], -1)
            if a.get("min") != [_num(x) for x in flat.min(0)] or a.get("max") != [_num(x) for x in flat.max(0)]:
                fail(f"accessor {i} min/max do not match its data")
        decoded.append(data)

    def need_minmax(i, what):
        if "min" not in accs[i] or "max" not in accs[i]:
            fail(f"{what} accessor {i} lacks min/max (required by the spec)")

    meshes = doc.get("meshes", [])
    for mi, m in enumerate(meshes):
        for prim in m["primitives"]:
            at = prim["attributes"]
            if "POSITION" not in at:
                fail(f"mesh {mi} has no POSITION")
            nv = accs[at["POSITION"]]["count"]
            need_minmax(at["POSITION"], "POSITION")
            for name, ai in at.items():
                if accs[ai]["count"] != nv:
                    fail(f"mesh {mi} attribute {name} has {accs[ai]['count']} entries for {nv} vertices")
            if "indices" in prim:
                idx = decoded[prim["indices"]]
                if idx.size % 3 or idx.max() >= nv:
                    fail(f"mesh {mi} indices are not triangles within [0, {nv})")
            targets = prim.get("targets", [])
            for t in targets:
                if accs[t["POSITION"]]["count"] != nv:
                    fail(f"mesh {mi} morph target size differs from its vertex count")
                need_minmax(t["POSITION"], "morph target POSITION")
            if "weights" in m and len(m["weights"]) != len(targets):
                fail(f"mesh {mi} has {len(m['weights'])} weights for {len(targets)} morph targets")
    nodes = doc.get("nodes", [])
    for ni, n in enumerate(nodes):
        if "mesh" in n and not 0 <= n["mesh"] < len(meshes):
            fail(f"node {ni} points to a missing mesh")
        if "rotation" in n and abs(onp.linalg.norm(n["rotation"]) - 1.0) > 1e-5:
            fail(f"node {ni} rotation is not a unit quaternion")
    scenes = doc.get("scenes", [])
    if "scene" in doc and not 0 <= doc["scene"] < len(scenes):
        fail("default scene index out of range")
    for s in scenes:
        if any(not 0 <= n < len(nodes) for n in s.get("nodes", [])):
            fail("a scene refers to a missing node")
    for ai, anim in enumerate(doc.get("animations", [])):
        samplers = anim["samplers"]
        for s in samplers:
            if s.get("interpolation", "LINEAR") not in ("STEP", "LINEAR", "CUBICSPLINE"):
                fail(f"animation {ai} has an unknown interpolation")
            need_minmax(s["input"], "animation input")
            t = decoded[s["input"]]
            if t.min() < 0 or (t.size > 1 and not (onp.diff(t) > 0).all()):
                fail(f"animation {ai} keyframe times must be ≥ 0 and strictly increasing")
        for c in anim["channels"]:
            s = samplers[c["sampler"]]
            node = c["target"]["node"]
            path = c["target"]["path"]
            if not 0 <= node < len(nodes):
                fail(f"animation {ai} targets a missing node")
            n_in = accs[s["input"]]["count"]
            out = accs[s["output"]]
            if path == "weights":
                mesh = meshes[nodes[node]["mesh"]]
                K = len(mesh["primitives"][0].get("targets", []))
                if K == 0 or out["count"] != n_in * K or out["type"] != "SCALAR":
                    fail(f"animation {ai} weights output has {out['count']} values for {n_in} keys × {K} targets")
            elif path in ("translation", "scale", "rotation"):
                want = "VEC4" if path == "rotation" else "VEC3"
                if out["type"] != want or out["count"] != n_in:
                    fail(f"animation {ai} {path} output must be {n_in} {want}")
                if path == "rotation":
                    qn = onp.linalg.norm(decoded[s["output"]], axis=-1)
                    if onp.abs(qn - 1).max() > 1e-5:
                        fail(f"animation {ai} rotation keys are not unit quaternions")
            else:
                fail(f"animation {ai} has an unknown target path {path!r}")
