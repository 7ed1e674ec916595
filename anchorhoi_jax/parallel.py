"""Seeds sharded over devices with JAX's own sharding (jax.sharding), single- and multi-host.

Stages are written for one seed and vmapped over a leading seed axis (STYLE.md). Placing that
axis on a `Mesh` with `NamedSharding(mesh, P("seeds"))` is all it takes for GSPMD to run every
jitted, vmapped stage step data-parallel over seeds: no code changes inside the stages and no
home-made process pool. Arrays without a seed axis (body-model constants, object meshes) are
replicated.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as onp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

SEED_AXIS = "seeds"


def initialize_distributed() -> bool:
    """Start multi-host JAX when the launcher's environment asks for it; no-op otherwise.

    Reads the usual variables (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`,
    optionally `JAX_LOCAL_DEVICE_IDS`); on SLURM/Open MPI clusters `jax.distributed.initialize()`
    discovers them itself when `ANCHORHOI_DISTRIBUTED=1` is set. Returns True when initialised.
    """
    addr = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if addr:
        nproc = int(os.environ["JAX_NUM_PROCESSES"])
        pid = int(os.environ["JAX_PROCESS_ID"])
        local = os.environ.get("JAX_LOCAL_DEVICE_IDS")
        ids = [int(x) for x in local.split(",")] if local else None
        jax.distributed.initialize(addr, num_processes=nproc, process_id=pid, local_device_ids=ids)
        return True
    if os.environ.get("ANCHORHOI_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False


def seed_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over all (global) devices, its one axis named "seeds"."""
    devs = onp.asarray(jax.devices() if devices is None else list(devices))
    return Mesh(devs, (SEED_AXIS,))


def padded_seed_count(num_seeds: int, mesh: Mesh) -> int:
    """Smallest multiple of the mesh size that holds `num_seeds` (extra seeds are discarded later)."""
    n = mesh.devices.size
    return -(-num_seeds // n) * n


def shard_seeds(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf's leading (seed) axis across the mesh; its length must divide evenly."""
    n = mesh.devices.size

    def put(x):
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[0] % n:
            raise ValueError(
                f"seed axis of length {x.shape[0] if x.ndim else 0} does not split over {n} devices; "
                f"run {padded_seed_count(max(x.shape[0] if x.ndim else 1, 1), mesh)} seeds"
            )
        return jax.device_put(x, NamedSharding(mesh, P(SEED_AXIS)))

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy leaves (model constants, meshes) to every device of the mesh."""
    return jax.tree.map(lambda x: jax.device_put(jnp.asarray(x), NamedSharding(mesh, P())), tree)


def seed_keys(root_seed: int, num_seeds: int) -> jax.Array:
    """Per-seed keys by fold_in(key(root), i) (CONVENTIONS.md): independent of the device count."""
    root = jax.random.key(root_seed)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num_seeds))


def gather(tree: Any) -> Any:
    """Bring a (possibly multi-host) seed-sharded result to host NumPy on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(onp.asarray, tree)


def run_sharded(step: Callable, mesh: Mesh, seeded: Any, constants: Any = None) -> Any:
    """Call a jitted, seed-vmapped `step(seeded, constants)` with seeds sharded over `mesh`."""
    seeded = shard_seeds(seeded, mesh)
    if constants is not None:
        constants = replicate(constants, mesh)
    return step(seeded, constants)


def map_over_seeds(fn: Callable, mesh: Mesh, num_seeded: int) -> Callable:
    """Run a seed-vmapped `fn(*seeded, *constants)` per device with `shard_map`: no communication.

    GSPMD (plain jit on sharded inputs) already partitions the seed axis, but it may insert
    collectives where it cannot prove independence (scans, scatter-adds in a backward pass).
    Seeds never interact, so each device can run the single-device program on its own shard;
    `shard_map` states exactly that. The first `num_seeded` arguments carry the seed axis, the
    rest are replicated constants; every output carries the seed axis.
    """

    def wrapped(*args):
        specs = tuple(P(SEED_AXIS) for _ in range(num_seeded)) + tuple(P() for _ in args[num_seeded:])
        f = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(SEED_AXIS), check_vma=False)
        return f(*args)

    return wrapped
