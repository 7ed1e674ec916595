"""Seed sharding on 8 simulated CPU devices equals the unsharded vmapped result (issue 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from anchorhoi_jax import parallel
    assert len(jax.devices()) == 8, jax.devices()
    mesh = parallel.seed_mesh()

    # A seed-vmapped optimisation loop of the shape every stage has (params, opt_state, key).
    opt = optax.adam(1e-2)
    target = jnp.linspace(-1.0, 1.0, 32)

    def one_seed(key):
        x = jax.random.normal(key, (32,))
        state = opt.init(x)
        def body(carry, _):
            x, s = carry
            g = jax.grad(lambda x: jnp.sum((jnp.tanh(x) - target) ** 2))(x)
            u, s = opt.update(g, s, x)
            return (optax.apply_updates(x, u), s), None
        (x, _), _ = jax.lax.scan(body, (x, state), None, length=50)
        return x

    step = jax.jit(jax.vmap(one_seed))
    keys = parallel.seed_keys(0, 16)
    ref = np.asarray(step(keys))
    sharded_keys = parallel.shard_seeds(keys, mesh)
    out = step(sharded_keys)
    assert len(out.sharding.device_set) == 8, out.sharding
    np.testing.assert_allclose(np.asarray(parallel.gather(out)), ref, rtol=1e-6, atol=1e-6)
    # shard_map path: each device runs the single-device program on its own seeds.
    smap = jax.jit(parallel.map_over_seeds(jax.vmap(one_seed), mesh, 1))
    out2 = smap(sharded_keys)
    np.testing.assert_allclose(np.asarray(parallel.gather(out2)), ref, rtol=1e-6, atol=1e-6)
    try:
        parallel.shard_seeds(parallel.seed_keys(0, 6), mesh)
    except ValueError as e:
        assert "does not split over 8 devices" in str(e), e
    else:
        raise AssertionError("uneven seed count accepted")
    print("SHARDED_OK")
    """
)


def test_seed_sharding_matches_unsharded_on_8_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "SHARDED_OK" in r.stdout, r.stderr[-3000:]


def test_seed_keys_independent_of_device_count():
    from anchorhoi_jax import parallel
    import jax

    k = parallel.seed_keys(3, 4)
    assert jax.random.key_data(k).shape[0] == 4
    ref = jax.random.key_data(jax.random.fold_in(jax.random.key(3), 2))
    assert (jax.random.key_data(k[2]) == ref).all()
