"""Typed configs: YAML presets -> nested frozen dataclasses, with dotted command-line overrides.

A stage declares its settings as a frozen dataclass whose fields have defaults; nested groups are
fields whose type is another such dataclass. `load_config(Schema, path, overrides)` merges, in order,
the dataclass defaults, the preset file (after the presets it inherits), and `a.b.c=value` overrides,
then checks every key and every value type. Anything wrong is a `ConfigError` with one line that names
the key, what was expected, and the valid keys (with the closest match when there is one).

Presets may start with `inherit: base.yaml` (or `defaults: [a.yaml, b.yaml]`, merged left to right);
paths are relative to the preset that names them. The file's own keys win over inherited ones.

Supported field types: int, float, bool, str, None-able (`T | None`), `Literal[...]`, `tuple[T, ...]`,
`tuple[A, B]`, and nested dataclasses. Values are parsed with YAML scalar rules, so `steps=100`,
`lr=3.0e-4`, `flag=true`, `name=foo` and `size=[64, 64]` all work on the command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

__all__ = [
    "ConfigError",
    "load_config",
    "from_dict",
    "to_dict",
    "to_yaml",
    "config_hash",
    "parse_overrides",
    "valid_keys",
    "read_preset",
    "DemoConfig",
    "DemoBodyConfig",
    "DemoRenderConfig",
]

C = TypeVar("C")

_INHERIT_KEYS = ("inherit", "defaults")


class ConfigError(ValueError):
    """A config problem, described in one line (unknown key, wrong type, bad preset file)."""


# ----------------------------------------------------------------------------------------------
# Schema introspection


def _is_schema(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls: type) -> dict[str, Any]:
    # `from __future__ import annotations` stores field types as strings; resolve them once.
    return typing.get_type_hints(cls)


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def valid_keys(schema_cls: type, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a schema, in declaration order (e.g. `render.height`)."""
    out = []
    hints = _hints(schema_cls)
    for f in _fields(schema_cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if _is_schema(tp):
            out.extend(valid_keys(tp, key + "."))
        else:
            out.append(key)
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "list [" + ", ".join(_type_name(a) for a in args) + "]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


# ----------------------------------------------------------------------------------------------
# Value checking


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """Return `value` as type `tp` (only lossless, unsurprising conversions) or raise _Mismatch."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(tp):
            # bool is an int subclass: `Literal[1]` must not accept `True`.
            if type(value) is type(choice) and value == choice:
                return value
        raise _Mismatch
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_coerce(v, a) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 (PyYAML) reads `1e-3` (no dot) as a string; accept it for float fields only.
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise ConfigError(f"unsupported config field type {tp!r}")


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def from_dict(schema_cls: type[C], data: Mapping[str, Any], *, _prefix: str = "") -> C:
    """Build a schema instance from a nested mapping; missing keys keep their defaults.

    Raises:
      ConfigError: unknown key, wrong value type, or a group given a scalar.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config group '{_prefix.rstrip('.') or '<root>'}' must be a mapping, got {type(data).__name__}"
        )
    hints = _hints(schema_cls)
    names = [f.name for f in _fields(schema_cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            full = f"{_prefix}{key}"
            all_keys = valid_keys(schema_cls, _prefix)
            raise ConfigError(
                f"unknown config key '{full}'{_suggest(full, all_keys + [_prefix + n for n in names])}; "
                f"valid keys: {', '.join(all_keys)}"
            )
        tp = hints[key]
        full = f"{_prefix}{key}"
        if _is_schema(tp):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key '{full}' is a group (keys: {', '.join(valid_keys(tp, full + '.'))}); "
                    f"set its keys as {full}.<key>=value, not a {type(value).__name__}"
                )
            kwargs[key] = from_dict(tp, value, _prefix=full + ".")
        else:
            try:
                kwargs[key] = _coerce(value, tp)
            except _Mismatch:
                raise ConfigError(
                    f"config key '{full}' expects {_type_name(tp)}, got {value!r} ({type(value).__name__})"
                ) from None
    try:
        return schema_cls(**kwargs)
    except (TypeError, ValueError) as e:  # a schema's own __post_init__ checks
        raise ConfigError(f"invalid config{(' group ' + _prefix.rstrip('.')) if _prefix else ''}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) of a schema instance, in field order."""

    def conv(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in _fields(type(v))}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def to_yaml(cfg: Any, *, sort_keys: bool = False) -> str:
    """YAML text of a config; `load_config(type(cfg), <that file>)` gives back an equal config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=sort_keys, default_flow_style=False, allow_unicode=True)


def config_hash(cfg: Any) -> str:
    """sha256 hex digest of the canonical (sorted-key) YAML of a config: stable across runs and
    field declaration order, so it can key checkpoints and cached stage outputs."""
    canon = yaml.safe_dump(to_dict(cfg), sort_keys=True, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------
# Presets and overrides


def _deep_merge(base: dict, top: Mapping) -> dict:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_preset(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Nested dict of a preset file with its `inherit:`/`defaults:` chain resolved (no type checks)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p.name) for p in (*_seen, resolved))
        raise ConfigError(f"config inheritance cycle: {chain}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    parents: list[str] = []
    for k in _INHERIT_KEYS:
        if k in data:
            v = data.pop(k)
            if isinstance(v, str):
                parents.append(v)
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                parents.extend(v)
            else:
                raise ConfigError(f"'{k}' in {path} must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for p in parents:
        pp = Path(p)
        if not pp.is_absolute():
            pp = path.parent / pp
        merged = _deep_merge(merged, read_preset(pp, _seen=(*_seen, resolved)))
    return _deep_merge(merged, data)


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """`["a.b=1", "c=[1, 2]"]` -> `{"a": {"b": 1}, "c": [1, 2]}` with YAML scalar typing."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. render.height=256)")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"override '{item}' has an empty key part; use dotted names like render.height=256")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text  # unparseable as YAML: keep the raw string, the type check decides
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


def load_config(
    schema_cls: type[C], path: str | Path | None = None, overrides: Iterable[str] = ()
) -> C:
    """Defaults of `schema_cls`, then the preset at `path` (with its inherits), then `overrides`.

    Args:
      schema_cls: a (frozen) dataclass whose fields all have defaults.
      path: optional YAML preset.
      overrides: `key.sub=value` strings, values typed by YAML rules.
    Returns:
      A validated `schema_cls` instance.
    Raises:
      ConfigError: one line naming the bad key/value/file.
    """
    if not _is_schema(schema_cls):
        raise ConfigError(f"{schema_cls!r} is not a dataclass config schema")
    data: dict[str, Any] = {}
    if path is not None:
        data = read_preset(path)
    data = _deep_merge(data, parse_overrides(overrides))
    return from_dict(schema_cls, data)


# ----------------------------------------------------------------------------------------------
# The demo's schema (`anchorhoi demo`)


@dataclasses.dataclass(frozen=True)
class DemoBodyConfig:
    """Which body and how far the random pose strays from the rest pose."""

    model: Literal["anny"] = "anny"
    pose_scale: float = 1.0  # multiplies the per-joint random pose amplitudes (1 = plausible)
    phenotype_jitter: float = 0.2  # std of random phenotype offsets around the average (0..1 units)

    def __post_init__(self):
        if not 0.0 <= self.pose_scale <= 2.0:
            raise ValueError(f"body.pose_scale must be in [0, 2], got {self.pose_scale}")
        if not 0.0 <= self.phenotype_jitter <= 0.5:
            raise ValueError(f"body.phenotype_jitter must be in [0, 0.5], got {self.phenotype_jitter}")


@dataclasses.dataclass(frozen=True)
class DemoRenderConfig:
    """Overlay image size and camera."""

    height: int = 512
    width: int = 384
    fov_deg: float = 40.0
    distance: float = 3.2  # metres from the body centre to the camera
    elevation_deg: float = 10.0
    azimuth_deg: float = 20.0  # 0 = camera in front of the body (on its +z side)
    keypoint_radius: int = 4
    line_width: int = 3

    def __post_init__(self):
        if not (16 <= self.height <= 4096 and 16 <= self.width <= 4096):
            raise ValueError(f"render size must be within 16..4096 px, got {self.height}x{self.width}")
        if not 5.0 <= self.fov_deg <= 120.0:
            raise ValueError(f"render.fov_deg must be in [5, 120], got {self.fov_deg}")
        if self.distance <= 0.5:
            raise ValueError(f"render.distance must exceed 0.5 m, got {self.distance}")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """`anchorhoi demo`: pose the embedded body and write meshes, keypoints and an overlay."""

    seed: int = 0
    body: DemoBodyConfig = dataclasses.field(default_factory=DemoBodyConfig)
    render: DemoRenderConfig = dataclasses.field(default_factory=DemoRenderConfig)
    glb_frames: int = 24  # frames of the animated GLB (rest pose -> random pose); 0 = static GLB only
    fps: float = 24.0

    def __post_init__(self):
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0 <= self.glb_frames <= 240:
            raise ValueError(f"glb_frames must be in [0, 240], got {self.glb_frames}")
        if not 0 < self.fps <= 240:
            raise ValueError(f"fps must be in (0, 240], got {self.fps}")
