"""Any pytree as a stage output: its leaves under numbered keys (what orbax restores without a
template), and back into the structure of a template built by the consuming stage."""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as onp

__all__ = ["pack", "unpack", "pack_json", "unpack_json"]


def pack(tree: Any) -> dict[str, Any]:
    """{'00000': leaf0, ...} (typed PRNG keys as their raw data)."""
    leaves = jax.tree_util.tree_leaves(tree)
    out = {}
    for i, x in enumerate(leaves):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out[f"{i:05d}"] = onp.asarray(x)
    return out


def unpack(packed: dict[str, Any], like: Any) -> Any:
    """`packed` rebuilt with `like`'s structure (and its PRNG key types)."""
    ref = jax.tree_util.tree_leaves(like)
    if len(ref) != len(packed):
        raise ValueError(f"stage output has {len(packed)} leaves, its template {len(ref)}; the checkpoint belongs "
                         "to another version of the stage")
    leaves = []
    for i, r in enumerate(ref):
        x = packed[f"{i:05d}"]
        if isinstance(r, jax.Array) and jax.dtypes.issubdtype(r.dtype, jax.dtypes.prng_key):
            x = jax.random.wrap_key_data(jax.numpy.asarray(x), impl=jax.random.key_impl(r))
        leaves.append(x)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves)


def pack_json(obj: Any) -> onp.ndarray:
    """JSON-able metadata (per-seed infos) as a uint8 array, so it travels in a checkpoint."""
    return onp.frombuffer(json.dumps(obj, sort_keys=True, default=str).encode(), dtype=onp.uint8).copy()


def unpack_json(a) -> Any:
    return json.loads(bytes(onp.asarray(a, onp.uint8)).decode())
