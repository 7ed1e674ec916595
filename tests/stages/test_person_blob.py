"""nerf.field.FieldConfig.blob_axes: the anisotropic start blob (an upright, person-sized ellipsoid)."""

import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.nerf.field import FieldConfig, density_blob


def test_default_axes_are_the_sphere():
    x = jnp.asarray(onp.random.default_rng(0).uniform(-1, 1, (64, 3)), jnp.float32)
    a, b = FieldConfig(), FieldConfig(blob_axes=(1.0, 1.0, 1.0))
    onp.testing.assert_array_equal(onp.asarray(density_blob(a, x)), onp.asarray(density_blob(b, x)))
    d2 = onp.sum(onp.asarray(x, onp.float64) ** 2, -1)
    onp.testing.assert_allclose(onp.asarray(density_blob(a, x)), 10.0 * onp.exp(-d2 / (2 * 0.25)), rtol=1e-5)


def test_upright_ellipsoid_matches_numpy():
    cfg = FieldConfig(blob_density=10.0, blob_radius=0.5, blob_axes=(0.5, 1.6, 0.5), center=(0.0, 0.1, 0.0))
    x = onp.random.default_rng(1).uniform(-1, 1, (128, 3))
    r = 0.5 * onp.array([0.5, 1.6, 0.5])
    ref = 10.0 * onp.exp(-0.5 * onp.sum(((x - [0.0, 0.1, 0.0]) / r) ** 2, -1))
    onp.testing.assert_allclose(onp.asarray(density_blob(cfg, jnp.asarray(x, jnp.float32))), ref, rtol=1e-5, atol=1e-6)
    # taller than wide: 0.6 m up has the bias that 0.1875 m sideways has
    up = density_blob(cfg, jnp.array([[0.0, 0.7, 0.0]]))
    side = density_blob(cfg, jnp.array([[0.1875, 0.1, 0.0]]))
    onp.testing.assert_allclose(onp.asarray(up), onp.asarray(side), rtol=1e-5)


def test_bad_axes():
    with pytest.raises(ValueError, match=r"FieldConfig: blob_axes must be 3 positive factors, got \(1.0, 0.0, 1.0\)"):
        FieldConfig(blob_axes=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"FieldConfig: blob_axes must be 3 positive factors, got \(1.0, 1.0\)"):
        FieldConfig(blob_axes=(1.0, 1.0))
