"""Object mesh extraction levels (paper Sec. 4, object part: "extract the mesh by marching cubes"):
the fixed density level, the automatic level for saturated / faint SDS fields, and their errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.io.config import ConfigError, load_config
from anchorhoi_jax.nerf import field as nf
from anchorhoi_jax.pipeline.generate_config import GenerateConfig
from anchorhoi_jax.render.extract import density_grid
from anchorhoi_jax.stages import object_stage as ob

FIELD = nf.FieldConfig(n_levels=2, log2_table_size=8, max_resolution=32, hidden=8, blob_density=10.0,
                       blob_radius=0.5)
RES = 40
CELL = 2.0 / (RES - 1)


def _sdf_grid(radius: float, res: int = RES):
    t = onp.linspace(-1.0, 1.0, res)
    x = onp.stack(onp.meshgrid(t, t, t, indexing="ij"), -1)
    return onp.linalg.norm(x, axis=-1) - radius


def _inside(sdf, eps):
    """sigmoid(−sdf/ε) without overflow."""
    return 0.5 * (1.0 - onp.tanh(sdf / (2.0 * eps)))


def _sphere_radius(grid, level):
    from skimage import measure

    v, _, _, _ = measure.marching_cubes(grid, level=level, spacing=(CELL,) * 3)
    r = onp.linalg.norm(v - 1.0, axis=-1)
    return float(r.mean()), float(r.std())


@pytest.mark.parametrize("scale", [30.0, 300.0, 3e4])
def test_auto_level_finds_the_surface_of_an_sdf_density(scale):
    # VolSDF/NeuS-like density: σ = s · sigmoid(−sdf/ε), ε a quarter cell; the surface is sdf = 0.
    sdf = _sdf_grid(0.5)
    grid = scale * _inside(sdf, 0.25 * CELL)
    level, info = ob.auto_mesh_level(grid, CELL)
    mean_r, std_r = _sphere_radius(grid, level)
    # Between sdf = 0 and where one cell's optical depth s·cell·e^{−sdf/ε} falls to 1 (a very dense field is
    # opaque a little past its sdf = 0 shell, and renders so); within half a cell of sdf = 0 up to s·cell ≈ 15.
    optical = 0.25 * CELL * math.log(max(scale * CELL, 1.0))
    assert 0.5 - 0.5 * CELL < mean_r < 0.5 + max(optical, 0.5 * CELL), (scale, level, mean_r)
    if scale <= 300.0:
        assert abs(mean_r - 0.5) < 0.5 * CELL, (scale, level, mean_r)
    assert std_r < 0.25 * CELL, (scale, std_r)
    assert info["mesh_threshold"] == level and info["mesh_threshold_source"].startswith("auto")
    assert 0.0 < info["occupied_fraction"] < 1.0


def test_auto_level_on_a_saturated_field():
    # Dense everywhere (σ >= 38, the failure seen on the H100: range [38.1, 1.07e9]) with a denser sphere:
    # a fixed level of 10 never crosses it; the automatic one separates the sphere.
    sdf = _sdf_grid(0.4)
    grid = 38.0 + 1e9 * _inside(sdf, 0.02 * CELL)  # a sharp wall: ln(1e9)·ε < half a cell
    assert grid.min() > 10.0
    level, _ = ob.auto_mesh_level(grid, CELL)
    mean_r, std_r = _sphere_radius(grid, level)
    assert abs(mean_r - 0.4) < CELL and std_r < 0.5 * CELL, (level, mean_r, std_r)


def test_auto_level_is_scale_covariant_in_the_opaque_regime():
    # For opaque fields the level follows the density scale (u = log(1 + σ·cell) ≈ log σ + const).
    sdf = _sdf_grid(0.5)
    base = _inside(sdf, 0.25 * CELL)
    l1, _ = ob.auto_mesh_level(1e4 * base + 1e2, CELL)
    l2, _ = ob.auto_mesh_level(1e6 * base + 1e4, CELL)
    assert 30.0 < l2 / l1 < 300.0, (l1, l2)


def test_auto_level_errors():
    cases = [
        (onp.full((4, 4, 4), 1e-4), "auto_mesh_level: the field is empty (max density 0.0001"),
        (onp.full((4, 4, 4), 1e3), "auto_mesh_level: the density is constant"),
        (onp.array([[[1.0, onp.nan]]]), "non-finite values"),
        (onp.zeros((0,)), "the density grid is empty"),
    ]
    for grid, msg in cases:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(")) as e:
            ob.auto_mesh_level(grid, CELL)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="cell must be > 0"):
        ob.auto_mesh_level(onp.ones((2, 2, 2)), 0.0)


def _blob_params(bias: float, cfg=FIELD):
    """Field params with every weight zero and density pre-activation `bias`: σ(x) = exp(bias + b(x)), b the
    Gaussian blob of FieldConfig — a known density whose level sets are spheres around the centre."""
    p = jax.tree.map(jnp.zeros_like, nf.init(jax.random.key(0), cfg))

    def set_bias(path, a):
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        return a.at[0].set(bias) if "d2" in names and "bias" in names else a

    return jax.tree_util.tree_map_with_path(set_bias, p)


def _cfg(**kw):
    return ob.ObjectConfig(field=kw.pop("field", FIELD), mesh_resolution=RES, **kw)


def test_object_mesh_fixed_level_is_the_known_sphere():
    # σ = exp(10 e^{−d²/(2·0.5²)}) = 10  ⇔  d = 0.5 · sqrt(2 ln(10 / ln 10)).
    v, f, c = ob.object_mesh(_blob_params(0.0), _cfg())
    want = 0.5 * math.sqrt(2.0 * math.log(10.0 / math.log(10.0)))
    r = onp.linalg.norm(v, axis=-1)
    assert abs(r.mean() - want) < 0.5 * CELL and r.std() < 0.5 * CELL, (r.mean(), want)
    assert f.dtype == onp.int32 and c.shape == v.shape and len(f) > 100


def test_fixed_level_errors_on_saturated_and_empty_fields():
    for bias, rng in ((20.0, "density range [4.85e+08"), (-20.0, "density range [2.06e-09")):
        params = _blob_params(bias, nf.FieldConfig(**{**FIELD.__dict__, "blob_density": 0.0}))
        cfg = _cfg(field=nf.FieldConfig(**{**FIELD.__dict__, "blob_density": 0.0}))
        with pytest.raises(ValueError, match="does not cross threshold 10.0") as e:
            ob.object_mesh(params, cfg)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("extract_mesh: " + rng[:16]) and "mesh_threshold=auto" in msg


def test_object_mesh_auto_on_a_saturated_field():
    # Pre-activation +5 everywhere: σ ∈ [e^5, e^15] over the box, the fixed level 10 is never crossed.
    params = _blob_params(5.0)
    cfg = _cfg(mesh_threshold="auto")
    grid = density_grid(params, FIELD, RES)
    assert grid.min() > 10.0
    with pytest.raises(ValueError, match="does not cross threshold 10.0"):
        ob.object_mesh(params, _cfg())
    level, info = ob.object_mesh_level(params, cfg)
    assert grid.min() < level < grid.max() and info["density_min"] == pytest.approx(float(grid.min()))
    v, f, _ = ob.object_mesh(params, cfg)
    assert len(f) > 100
    # The surface is the level set: a sphere about the centre with σ(vertex) = level.
    r = onp.linalg.norm(v, axis=-1)
    want = 0.5 * math.sqrt(2.0 * math.log(10.0 / (math.log(level) - 5.0)))
    assert abs(r.mean() - want) < 0.5 * CELL and r.std() < 0.5 * CELL, (r.mean(), want, level)
    sig = onp.asarray(nf.density(params, FIELD, jnp.asarray(v)))
    onp.testing.assert_allclose(onp.log(sig), math.log(level), atol=0.25)
    # The explicit threshold argument still overrides the config.
    v2, _, _ = ob.object_mesh(params, cfg, threshold=float(onp.exp(10.0)))
    assert onp.linalg.norm(v2, axis=-1).mean() < r.mean()


def test_object_mesh_auto_on_an_empty_field():
    cfg0 = nf.FieldConfig(**{**FIELD.__dict__, "blob_density": 0.0})
    with pytest.raises(ValueError, match="auto_mesh_level: the field is empty") as e:
        ob.object_mesh(_blob_params(-20.0, cfg0), _cfg(field=cfg0, mesh_threshold="auto"))
    assert "\n" not in str(e.value)


def test_mesh_threshold_config():
    assert ob.ObjectConfig(mesh_threshold="auto").mesh_threshold == "auto"
    for bad in (0.0, -1.0, float("inf"), float("nan"), "otsu", True):
        with pytest.raises(ValueError, match="mesh_threshold must be a finite density > 0 or 'auto'") as e:
            ob.ObjectConfig(mesh_threshold=bad)
        assert "\n" not in str(e.value)
    cfg = load_config(GenerateConfig, None, ["compose.object.mesh_threshold=auto"])
    assert cfg.compose.object.mesh_threshold == "auto"
    assert load_config(GenerateConfig, None, ["compose.object.mesh_threshold=25"]).compose.object.mesh_threshold == 25.0
    with pytest.raises(ConfigError, match="mesh_threshold"):
        load_config(GenerateConfig, None, ["compose.object.mesh_threshold=otsu"])
    # The GPU benchmark preset opts in explicitly (random-init priors can saturate a seed's field).
    from pathlib import Path

    bench = load_config(GenerateConfig, Path(__file__).parents[2] / "configs" / "bench_pipeline.yaml")
    assert bench.compose.object.mesh_threshold == "auto"
    assert GenerateConfig().compose.object.mesh_threshold == 10.0


def test_mesh_max_faces_coarsens_the_grid():
    params = _blob_params(0.0)
    (v, f, _), info = ob.extract_object_mesh(params, _cfg())
    assert info["mesh_resolution"] == RES and info["mesh_faces"] == len(f) and info["mesh_threshold_source"] == "config"
    cap = len(f) // 3
    (v2, f2, _), info2 = ob.extract_object_mesh(params, _cfg(mesh_max_faces=cap))
    assert len(f2) <= cap and 8 <= info2["mesh_resolution"] < RES and info2["mesh_faces"] == len(f2)
    # The same sphere, coarser: mean radius within one coarse cell.
    coarse_cell = 2.0 / (info2["mesh_resolution"] - 1)
    assert abs(onp.linalg.norm(v2, axis=-1).mean() - onp.linalg.norm(v, axis=-1).mean()) < coarse_cell
    with pytest.raises(ValueError, match="mesh_max_faces must be >= 1000 or None, got 10") as e:
        ob.ObjectConfig(mesh_max_faces=10)
    assert "\n" not in str(e.value)


def test_sample_surface_is_area_weighted_with_bounded_memory():
    from anchorhoi_jax.geometry.mesh import sample_surface

    # Three triangles with areas 1 : 3 : 0 (the last degenerate): frequencies follow the areas.
    v = jnp.asarray([[0, 0, 0], [1, 0, 0], [0, 2, 0], [3, 0, 0], [3, 3, 0], [5, 0, 0], [6, 0, 0]], jnp.float32)
    f = jnp.asarray([[0, 1, 2], [3, 5, 4], [5, 6, 6]], jnp.int32)
    n = 40000
    pts, nrm, fidx = sample_surface(v, f, n, key=jax.random.key(0))
    counts = onp.bincount(onp.asarray(fidx), minlength=3)
    assert counts[2] == 0
    onp.testing.assert_allclose(counts[:2] / n, [0.25, 0.75], atol=0.01)
    assert onp.all(onp.abs(onp.asarray(pts)[:, 2]) < 1e-6) and onp.allclose(onp.abs(onp.asarray(nrm)[:, 2]), 1.0)
    # Memory is O(F + num): a 2M-face mesh with 20k samples compiles to a small program
    # (categorical sampling would materialise 20k x 2M = 160 GB of noise).
    big_f = jax.ShapeDtypeStruct((2_000_000, 3), jnp.int32)
    big_v = jax.ShapeDtypeStruct((1_000_000, 3), jnp.float32)
    compiled = jax.jit(lambda a, b: sample_surface(a, b, 20000, key=jax.random.key(1))).lower(big_v, big_f).compile()
    mem = compiled.memory_analysis()
    if mem is not None:
        assert mem.temp_size_in_bytes < 2e9, mem.temp_size_in_bytes
