"""NeRF field: hash-grid encoding + small MLPs (flax.nnx), split once into (graphdef, params).

`init(key, cfg)` returns the params pytree only (an `nnx.State`), so it vmaps over seeds; the static
graph definition is derived from the hashable `FieldConfig` (`graphdef(cfg)`, cached). Every pure
function takes `(params, cfg, ...)`.

Density (DreamFusion / Magic3D style): σ(x) = act(raw(x) + b(x)), act = trunc_exp (exp with its
gradient clipped, stable for large raw values) or softplus, and b(x) = blob_density ·
exp(−|x − c|² / (2 blob_radius²)) a Gaussian density bias around the field centre that seeds an object
in the middle of the scene for text-to-3D optimisation (set blob_density = 0 for reconstruction).
Albedo is view-independent, sigmoid-activated. Normals are −∇σ/|∇σ|.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from anchorhoi_jax.nerf.encoding import hash_encode, level_resolutions


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """Static field settings (hashable; changing one recompiles).

    center / bound: the field lives in the axis-aligned box center ± bound (metres, world frame).
    blob_axes: per-axis factors of blob_radius (x, y, z): (1, 1, 1) is the sphere; e.g. (0.5, 1.6, 0.5)
      is an upright ellipsoid the size of a standing person (a class-agnostic text-to-3D start).
    """

    n_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048
    hidden: int = 64
    geo_features: int = 15
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bound: float = 1.0
    density_activation: str = "trunc_exp"
    blob_density: float = 10.0
    blob_radius: float = 0.5
    blob_axes: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if len(self.blob_axes) != 3 or not all(a > 0 for a in self.blob_axes):
            raise ValueError(f"FieldConfig: blob_axes must be 3 positive factors, got {tuple(self.blob_axes)}")
        if self.density_activation not in ("trunc_exp", "softplus"):
            raise ValueError(f"FieldConfig: density_activation must be 'trunc_exp' or 'softplus', got "
                             f"{self.density_activation!r}")
        if self.bound <= 0:
            raise ValueError(f"FieldConfig: bound must be > 0, got {self.bound}")
        if self.max_resolution < self.base_resolution:
            raise ValueError("FieldConfig: max_resolution must be >= base_resolution")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return level_resolutions(self.n_levels, self.base_resolution, self.max_resolution)


@jax.custom_jvp
def trunc_exp(x):
    """exp(x) whose derivative is exp(min(x, 15)): no overflowing gradients from large raw densities."""
    return jnp.exp(x)


@trunc_exp.defjvp
def _trunc_exp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.exp(x), t * jnp.exp(jnp.minimum(x, 15.0))


class FieldMLP(nnx.Module):
    """Hash tables + density MLP (enc → hidden → 1 + geo) + albedo MLP (geo → hidden → 3)."""

    def __init__(self, cfg: FieldConfig, *, rngs: nnx.Rngs):
        L, Fd = cfg.n_levels, cfg.features_per_level
        T = 2**cfg.log2_table_size
        # Instant-NGP initialises the tables with U(−1e−4, 1e−4).
        self.table = nnx.Param(jax.random.uniform(rngs.params(), (L, T, Fd), minval=-1e-4, maxval=1e-4))
        self.d1 = nnx.Linear(L * Fd, cfg.hidden, rngs=rngs)
        self.d2 = nnx.Linear(cfg.hidden, 1 + cfg.geo_features, rngs=rngs)
        self.c1 = nnx.Linear(cfg.geo_features, cfg.hidden, rngs=rngs)
        self.c2 = nnx.Linear(cfg.hidden, 3, rngs=rngs)


def init(key, cfg: FieldConfig) -> nnx.State:
    """Fresh field parameters for one seed (vmap over keys for several seeds)."""
    return nnx.split(FieldMLP(cfg, rngs=nnx.Rngs(params=key)))[1]


@functools.lru_cache(maxsize=None)
def graphdef(cfg: FieldConfig):
    """The static nnx graph definition matching `init(key, cfg)`."""
    return nnx.split(nnx.eval_shape(lambda: FieldMLP(cfg, rngs=nnx.Rngs(params=0))))[0]


def normalize(cfg: FieldConfig, x: Float[Array, "N 3"]) -> Float[Array, "N 3"]:
    """World points to the unit cube of the hash grid."""
    c = jnp.asarray(cfg.center, x.dtype)[None]
    return (x - c) / (2.0 * cfg.bound) + 0.5


def density_blob(cfg: FieldConfig, x: Float[Array, "N 3"]) -> Float[Array, "N"]:
    """Gaussian density bias b(x) = blob_density · exp(−|(x − c) / a|²/(2 r²)), a = blob_axes."""
    d2 = jnp.sum(((x - jnp.asarray(cfg.center, x.dtype)[None]) / jnp.asarray(cfg.blob_axes, x.dtype)[None]) ** 2, -1)
    return cfg.blob_density * jnp.exp(-d2 / (2.0 * cfg.blob_radius**2))


def _activate(cfg: FieldConfig, raw):
    return trunc_exp(raw) if cfg.density_activation == "trunc_exp" else jax.nn.softplus(raw)


def _raw(params, cfg: FieldConfig, x):
    model = nnx.merge(graphdef(cfg), params)
    enc = hash_encode(model.table[...], normalize(cfg, x), cfg.resolutions)
    h = model.d2(jax.nn.relu(model.d1(enc)))
    return model, h[:, 0] + density_blob(cfg, x), h


def _trunk(params, cfg: FieldConfig, x):
    model, raw, h = _raw(params, cfg, x)
    inside = jnp.all(jnp.abs(x - jnp.asarray(cfg.center, x.dtype)[None]) <= cfg.bound, -1)
    sigma = jnp.where(inside, _activate(cfg, raw), 0.0)  # nothing outside the field's box
    return model, sigma, h[:, 1:]


def density(params, cfg: FieldConfig, x: Float[Array, "N 3"]) -> Float[Array, "N"]:
    """σ(x) ≥ 0 (1/metre) at world points x."""
    with jax.named_scope("nerf_density"):
        return _trunk(params, cfg, x)[1]


def raw_density(params, cfg: FieldConfig, x: Float[Array, "N 3"]) -> Float[Array, "N"]:
    """raw(x) + b(x), the density before its activation (shape initialisation fits this; see nerf.shape_init)."""
    with jax.named_scope("nerf_raw_density"):
        return _raw(params, cfg, x)[1]


def query(params, cfg: FieldConfig, x: Float[Array, "N 3"]) -> tuple[Float[Array, "N"], Float[Array, "N 3"]]:
    """(σ, albedo ∈ [0, 1]) at world points x."""
    with jax.named_scope("nerf_query"):
        model, sigma, geo = _trunk(params, cfg, x)
        albedo = jax.nn.sigmoid(model.c2(jax.nn.relu(model.c1(geo))))
        return sigma, albedo


def query_with_normals(params, cfg: FieldConfig, x: Float[Array, "N 3"]):
    """(σ, albedo, normals) with normals = −∇σ/|∇σ| (world frame), by reverse-mode autodiff."""
    with jax.named_scope("nerf_query_normals"):
        def f(xx):
            s, a = query(params, cfg, xx)
            return jnp.sum(s), (s, a)

        grad, (sigma, albedo) = jax.grad(f, has_aux=True)(x)
        n = -grad * jax.lax.rsqrt(jnp.sum(grad * grad, -1, keepdims=True) + 1e-20)
        return sigma, albedo, n


__all__ = ["FieldConfig", "FieldMLP", "init", "graphdef", "density", "query", "query_with_normals", "trunc_exp",
           "density_blob", "normalize", "raw_density"]
