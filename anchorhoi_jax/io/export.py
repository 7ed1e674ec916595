"""Exporters for every file a run writes: OBJ/PLY meshes with vertex colours, static and animated GLB
scenes, MP4 (H.264) video, PNG images and npz arrays.

Every writer validates its inputs first (one-line `ValueError`: shapes, finite values, faces in
range) and writes atomically: the bytes go to a temporary file in the destination directory, are
fsynced, then `os.replace`d over the destination, so a crash never leaves a half-written file under
the final name. Each writer returns the `Path` it wrote.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as onp

from anchorhoi_jax.io.gltf import Interpolation, SceneMesh, build_glb

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "validate_mesh",
    "write_obj",
    "write_ply",
    "write_glb",
    "write_animated_glb",
    "write_png",
    "write_npz",
    "write_mp4",
    "read_mp4",
    "SceneMesh",
]


# ----------------------------------------------------------------------------------------------
# Atomic writes


def _default_mode() -> int:
    # mkstemp creates 0600 files; published outputs get the usual 0666 & ~umask. (Reading the
    # umask means setting it; done once at import, before any writer threads exist.)
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable (POSIX); not all platforms can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", suffix: str | None = None) -> Iterator[Any]:
    """Context manager yielding a file object; on success its content replaces `path` atomically.

    The temporary file lives in the same directory (same filesystem, so `os.replace` is atomic) and
    keeps the destination's suffix (tools that pick a format by extension still work). On error it
    is removed and `path` is untouched.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------
# Meshes


def _as_numpy(x) -> onp.ndarray:
    return onp.asarray(x)  # accepts jax arrays (device -> host copy)


def validate_mesh(vertices, faces, colors=None, *, name: str = "mesh") -> tuple[onp.ndarray, onp.ndarray, onp.ndarray | None]:
    """Check and convert one triangle mesh. Returns (vertices f32 (V,3), faces i64 (F,3), colors u8 (V,4)|None).

    Colours may be float in [0, 1] or uint8, RGB or RGBA, one per vertex.
    """
    v = _as_numpy(vertices)
    f = _as_numpy(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"{name}: vertices must be (V, 3) with V ≥ 1, got {v.shape}")
    if not onp.issubdtype(v.dtype, onp.number) or not onp.isfinite(v).all():
        raise ValueError(f"{name}: vertices must be finite numbers ({int((~onp.isfinite(v)).sum()) if onp.issubdtype(v.dtype, onp.number) else 'non-numeric'} bad)")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"{name}: faces must be (F, 3) with F ≥ 1, got {f.shape}")
    if not onp.issubdtype(f.dtype, onp.integer):
        raise ValueError(f"{name}: faces must be integers, got {f.dtype}")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"{name}: face indices must be in [0, {v.shape[0]}), got range [{f.min()}, {f.max()}]")
    c = None
    if colors is not None:
        c = _as_numpy(colors)
        if c.shape not in ((v.shape[0], 3), (v.shape[0], 4)):
            raise ValueError(f"{name}: colors must be ({v.shape[0]}, 3) or ({v.shape[0]}, 4), got {c.shape}")
        if c.dtype != onp.uint8:
            if not onp.issubdtype(c.dtype, onp.floating) or not onp.isfinite(c).all():
                raise ValueError(f"{name}: colors must be uint8 or finite floats in [0, 1]")
            if c.min() < 0.0 or c.max() > 1.0:
                raise ValueError(f"{name}: float colors must lie in [0, 1], got [{c.min():.3g}, {c.max():.3g}]")
            c = onp.round(c * 255.0).astype(onp.uint8)
        if c.shape[1] == 3:
            c = onp.concatenate([c, onp.full((c.shape[0], 1), 255, onp.uint8)], 1)
    return v.astype(onp.float32), f.astype(onp.int64), c


def _trimesh(vertices, faces, colors, name):
    import trimesh

    v, f, c = validate_mesh(vertices, faces, colors, name=name)
    # process=False keeps vertex order and count: downstream code indexes vertices (contacts, keypoints).
    return trimesh.Trimesh(vertices=v, faces=f, vertex_colors=c, process=False, validate=False)


def write_obj(path: str | Path, vertices, faces, colors=None) -> Path:
    """Wavefront OBJ; per-vertex colours as the common `v x y z r g b` extension (floats in [0, 1])."""
    mesh = _trimesh(vertices, faces, colors, Path(path).name)
    text = mesh.export(file_type="obj", include_normals=False, include_color=colors is not None,
                       include_texture=False, write_texture=False)
    return atomic_write_text(path, text)


def write_ply(path: str | Path, vertices, faces, colors=None) -> Path:
    """Binary little-endian PLY with uchar RGBA vertex colours."""
    mesh = _trimesh(vertices, faces, colors, Path(path).name)
    return atomic_write_bytes(path, mesh.export(file_type="ply", encoding="binary", include_attributes=False))


def write_glb(path: str | Path, meshes: Sequence[SceneMesh]) -> Path:
    """Static GLB scene (e.g. human + object) with vertex colours; each mesh may carry a node
    rotation (3,3)/translation (3,). Validated against the glTF 2.0 rules before writing."""
    for m in meshes:
        v = _as_numpy(m.vertices)
        if v.ndim != 2:
            raise ValueError(f"mesh '{m.name}': a static GLB needs (V, 3) vertices, got {v.shape}; use write_animated_glb")
        for a, nm in ((m.rotation, "rotation"), (m.translation, "translation")):
            if a is not None and _as_numpy(a).ndim != (2 if nm == "rotation" else 1):
                raise ValueError(f"mesh '{m.name}': a static GLB needs one {nm}, got shape {_as_numpy(a).shape}")
    return atomic_write_bytes(path, build_glb(_host_meshes(meshes)))


def write_animated_glb(path: str | Path, meshes: Sequence[SceneMesh], *, fps: float,
                       interpolation: Interpolation = "LINEAR") -> Path:
    """Animated GLB: meshes with (L, V, 3) vertices become morph-target animations (the human),
    meshes with (L, 3, 3) rotation / (L, 3) translation become node TRS animations (a rigid object).

    Args:
      meshes: `SceneMesh` list; at least one must be animated, all animated ones with the same L ≥ 2.
      fps: frames per second (keyframe k at k / fps s).
      interpolation: "LINEAR" (smooth playback) or "STEP" (exact frames).
    """
    hm = _host_meshes(meshes)
    animated = [m for m in hm if _as_numpy(m.vertices).ndim == 3 or (m.rotation is not None and m.rotation.ndim == 3)
                or (m.translation is not None and m.translation.ndim == 2)]
    if not animated:
        raise ValueError("write_animated_glb needs at least one mesh with per-frame vertices, rotation or translation")
    for m in animated:
        n = max(_as_numpy(x).shape[0] if x is not None and _as_numpy(x).ndim == nd else 0
                for x, nd in ((m.vertices, 3), (m.rotation, 3), (m.translation, 2)))
        if n < 2:
            raise ValueError(f"mesh '{m.name}': an animation needs at least 2 frames, got {n}")
    return atomic_write_bytes(path, build_glb(hm, fps=fps, interpolation=interpolation))


def _host_meshes(meshes: Sequence[SceneMesh]) -> list[SceneMesh]:
    out = []
    for m in meshes:
        if not isinstance(m, SceneMesh):
            raise ValueError(f"expected SceneMesh items, got {type(m).__name__}")
        out.append(SceneMesh(
            name=m.name, faces=_as_numpy(m.faces), vertices=_as_numpy(m.vertices),
            colors=None if m.colors is None else _as_numpy(m.colors),
            rotation=None if m.rotation is None else _as_numpy(m.rotation),
            translation=None if m.translation is None else _as_numpy(m.translation),
        ))
    return out


# ----------------------------------------------------------------------------------------------
# Images, arrays, video


def _to_uint8_image(image, name: str, *, allow_gray: bool = True) -> onp.ndarray:
    a = _as_numpy(image)
    ok_shape = a.ndim == 3 and a.shape[-1] in (3, 4) or (allow_gray and a.ndim == 2)
    if not ok_shape or a.size == 0:
        raise ValueError(f"{name}: image must be (H, W, 3|4){' or (H, W)' if allow_gray else ''}, got {a.shape}")
    if a.dtype == onp.uint8:
        return a
    if not onp.issubdtype(a.dtype, onp.floating):
        raise ValueError(f"{name}: image must be uint8 or float in [0, 1], got {a.dtype}")
    if not onp.isfinite(a).all():
        raise ValueError(f"{name}: image has non-finite values")
    if a.min() < -1e-6 or a.max() > 1.0 + 1e-6:
        raise ValueError(f"{name}: float image must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
    return onp.round(onp.clip(a, 0.0, 1.0) * 255.0).astype(onp.uint8)


def write_png(path: str | Path, image) -> Path:
    """PNG of an (H, W, 3|4) or (H, W) image, uint8 or float in [0, 1] (written as given, no gamma)."""
    import imageio.v3 as iio

    img = _to_uint8_image(image, Path(path).name)
    return atomic_write_bytes(path, iio.imwrite("<bytes>", img, extension=".png"))


def write_npz(path: str | Path, arrays: Mapping[str, Any] | None = None, *, compress: bool = True, **kwargs) -> Path:
    """npz of named arrays. Rejects object arrays (they need pickle to load) and non-finite floats."""
    items = dict(arrays or {}, **kwargs)
    if not items:
        raise ValueError(f"{Path(path).name}: nothing to write")
    clean = {}
    for k, v in items.items():
        a = _as_numpy(v)
        if a.dtype == object:
            raise ValueError(f"{Path(path).name}: array '{k}' has dtype object (would need pickle); use numbers or str")
        if onp.issubdtype(a.dtype, onp.inexact) and not onp.isfinite(a).all():
            raise ValueError(f"{Path(path).name}: array '{k}' has {int((~onp.isfinite(a)).sum())} non-finite values")
        clean[k] = a
    # Our own zip writer instead of onp.savez: numpy stamps each member with the current time, which
    # would make identical runs produce different bytes. Fixed timestamps keep outputs bitwise stable.
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method, allowZip64=True) as zf:
        for k, a in clean.items():
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                onp.lib.format.write_array(fh, onp.ascontiguousarray(a) if a.ndim else a, allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def write_mp4(path: str | Path, frames, fps: float, *, quality: int = 8, verify: bool = True) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere) via imageio-ffmpeg's bundled ffmpeg binary.

    Args:
      frames: (L, H, W, 3) uint8 or float in [0, 1]. Odd H/W are padded by one edge-replicated
        row/column (yuv420p needs even sizes).
      fps: frames per second.
      quality: imageio-ffmpeg quality 0..10 (10 best).
      verify: decode the written file and check its frame count before it replaces `path`.
    """
    import imageio.v2 as iio2

    path = Path(path)
    f = _as_numpy(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] == 0:
        raise ValueError(f"{path.name}: frames must be (L, H, W, 3) with L ≥ 1, got {f.shape}")
    if not (onp.isfinite(fps) and 0 < fps <= 1000):
        raise ValueError(f"{path.name}: fps must be in (0, 1000], got {fps}")
    if f.shape[1] < 2 or f.shape[2] < 2:
        raise ValueError(f"{path.name}: frames must be at least 2x2 pixels, got {f.shape[1]}x{f.shape[2]}")
    f8 = onp.stack([_to_uint8_image(x, path.name, allow_gray=False) for x in f]) if f.dtype != onp.uint8 else f
    ph, pw = f8.shape[1] % 2, f8.shape[2] % 2
    if ph or pw:
        f8 = onp.pad(f8, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    # ffmpeg needs a real file name; write to a temp name in the same directory, check, then rename.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".mp4")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        writer = iio2.get_writer(tmp, format="FFMPEG", mode="I", fps=float(fps), codec="libx264",
                                 pixelformat="yuv420p", quality=quality, macro_block_size=1,
                                 ffmpeg_log_level="error")
        try:
            for fr in f8:
                writer.append_data(onp.ascontiguousarray(fr))
        finally:
            writer.close()
        if verify:
            n, shape = _probe_mp4(tmp)
            if n != f8.shape[0] or shape != f8.shape[1:3]:
                raise OSError(f"{path.name}: encoded video decodes to {n} frames of {shape}, expected "
                              f"{f8.shape[0]} of {f8.shape[1:3]}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return path


def _probe_mp4(path: str | Path) -> tuple[int, tuple[int, int]]:
    frames = read_mp4(path)
    return frames.shape[0], tuple(frames.shape[1:3])


def read_mp4(path: str | Path) -> onp.ndarray:
    """Decode a video into (L, H, W, 3) uint8 frames."""
    import imageio.v2 as iio2

    reader = iio2.get_reader(str(path), format="FFMPEG")
    try:
        frames = [onp.asarray(fr) for fr in reader]
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"{Path(path).name}: video has no frames")
    return onp.stack(frames)
