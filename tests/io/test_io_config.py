"""Typed configs: YAML round trip, dotted overrides, inheritance, and every error path's message."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from anchorhoi_jax.io.config import (
    ConfigError,
    DemoConfig,
    config_hash,
    from_dict,
    load_config,
    parse_overrides,
    to_yaml,
    valid_keys,
)

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    steps: int = 100
    betas: tuple[float, float] = (0.9, 0.99)
    schedule: Literal["cosine", "constant"] = "cosine"


@dataclasses.dataclass(frozen=True)
class Schema:
    name: str = "run"
    debug: bool = False
    weights: str | None = None
    sizes: tuple[int, ...] = (64, 128)
    optim: Optim = dataclasses.field(default_factory=Optim)


def test_defaults_and_valid_keys():
    cfg = load_config(Schema)
    assert cfg == Schema()
    assert valid_keys(Schema) == ["name", "debug", "weights", "sizes", "optim.lr", "optim.steps", "optim.betas",
                                  "optim.schedule"]


def test_yaml_round_trip_and_hash(tmp_path):
    cfg = load_config(Schema, overrides=["optim.lr=0.01", "sizes=[1, 2, 3]", "weights=w.pt", "debug=true"])
    p = tmp_path / "c.yaml"
    p.write_text(to_yaml(cfg))
    back = load_config(Schema, p)
    assert back == cfg
    assert config_hash(back) == config_hash(cfg)
    assert len(config_hash(cfg)) == 64
    assert config_hash(cfg) != config_hash(dataclasses.replace(cfg, name="other"))
    # Stable across processes and versions: a fixed config has a fixed digest.
    assert config_hash(Schema()) == config_hash(from_dict(Schema, {}))


def test_overrides_are_typed():
    cfg = load_config(Schema, overrides=[
        "optim.lr=1e-4",  # YAML 1.1 reads this as a string; float fields accept it
        "optim.steps=7", "optim.betas=[0.5, 0.6]", "optim.schedule=constant", "sizes=[8]", "weights=null",
        "name=123abc",
    ])
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.steps == 7
    assert cfg.optim.betas == (0.5, 0.6)
    assert cfg.optim.schedule == "constant"
    assert cfg.sizes == (8,)
    assert cfg.weights is None
    assert cfg.name == "123abc"
    assert load_config(Schema, overrides=["optim.lr=2"]).optim.lr == 2.0  # int -> float is lossless


def test_parse_overrides_nesting():
    assert parse_overrides(["a.b.c=1", "a.b.d=x", "e=[1, 2]"]) == {"a": {"b": {"c": 1, "d": "x"}}, "e": [1, 2]}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=1"], "unknown config key 'optim.lrr' (did you mean 'optim.lr'?); valid keys: optim.lr, "
                          "optim.steps, optim.betas, optim.schedule"),
        (["nmae=x"], "unknown config key 'nmae' (did you mean 'name'?); valid keys: name, debug, weights, sizes, "
                     "optim.lr, optim.steps, optim.betas, optim.schedule"),
        (["zzz=1"], "unknown config key 'zzz'; valid keys: name, debug"),
        (["optim.steps=1.5"], "config key 'optim.steps' expects int, got 1.5 (float)"),
        (["optim.steps=abc"], "config key 'optim.steps' expects int, got 'abc' (str)"),
        (["optim.steps=true"], "config key 'optim.steps' expects int, got True (bool)"),
        (["debug=1"], "config key 'debug' expects bool, got 1 (int)"),
        (["optim.lr=fast"], "config key 'optim.lr' expects float, got 'fast' (str)"),
        (["optim.schedule=linear"], "config key 'optim.schedule' expects one of 'cosine', 'constant', got 'linear'"),
        (["optim.betas=[1.0]"], "config key 'optim.betas' expects list [float, float], got [1.0] (list)"),
        (["sizes=[1, x]"], "config key 'sizes' expects list of int, got [1, 'x'] (list)"),
        (["name=[1]"], "config key 'name' expects str, got [1] (list)"),
        (["optim=3"], "config key 'optim' is a group (keys: optim.lr, optim.steps, optim.betas, optim.schedule)"),
        (["optim"], "override 'optim' must look like key=value"),
        (["optim..lr=1"], "override 'optim..lr=1' has an empty key part"),
    ],
)
def test_bad_overrides_one_line(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_config(Schema, overrides=overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_post_init_checks_become_config_errors():
    with pytest.raises(ConfigError, match=r"invalid config group render: render size must be within 16\.\.4096 px"):
        load_config(DemoConfig, overrides=["render.height=8"])
    with pytest.raises(ConfigError, match=r"invalid config: seed must be >= 0, got -1"):
        load_config(DemoConfig, overrides=["seed=-1"])


def test_inherit_and_defaults(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\noptim:\n  lr: 0.5\n  steps: 3\n")
    (tmp_path / "mid.yaml").write_text("defaults: [base.yaml]\noptim:\n  steps: 4\n")
    (tmp_path / "top.yaml").write_text("inherit: mid.yaml\ndebug: true\n")
    cfg = load_config(Schema, tmp_path / "top.yaml", ["optim.steps=9"])
    assert (cfg.name, cfg.debug, cfg.optim.lr, cfg.optim.steps) == ("base", True, 0.5, 9)
    assert load_config(Schema, tmp_path / "top.yaml").optim.steps == 4


def test_preset_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.yaml$"):
        load_config(Schema, tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("inherit: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherit: a.yaml\n")
    with pytest.raises(ConfigError, match=r"^config inheritance cycle: a\.yaml -> b\.yaml -> a\.yaml$"):
        load_config(Schema, tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        load_config(Schema, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping at the top level, got list"):
        load_config(Schema, tmp_path / "list.yaml")
    (tmp_path / "unk.yaml").write_text("optim:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.stepz' \(did you mean 'optim.steps'\?\)"):
        load_config(Schema, tmp_path / "unk.yaml")
    (tmp_path / "inh.yaml").write_text("inherit: 3\n")
    with pytest.raises(ConfigError, match=r"'inherit' in .* must be a file name or a list of file names"):
        load_config(Schema, tmp_path / "inh.yaml")


def test_frozen():
    cfg = load_config(Schema)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]


def test_repo_presets_match_schema():
    assert load_config(DemoConfig, REPO / "configs" / "demo.yaml") == DemoConfig()
    small = load_config(DemoConfig, REPO / "configs" / "demo_small.yaml")
    assert (small.render.height, small.render.width, small.glb_frames) == (192, 160, 4)
    assert small.body == DemoConfig().body
