"""Hand-written GPU kernels (JAX Pallas, Triton backend) for the motion stage's hottest loss terms.

Each kernel has a plain-JAX (XLA) twin in the module that uses it; `resolve_impl` picks one per
backend at trace time, so CPU runs (and tests) keep the XLA path and interpret mode checks the
kernels' logic on the CPU."""

from anchorhoi_jax.kernels.capsules import (
    IMPLS,
    capsule_depth_max_bwd_pallas,
    capsule_depth_max_pallas,
    capsule_table,
    resolve_impl,
    self_pen_depths_bwd_pallas,
    self_pen_depths_pallas,
)

__all__ = ["IMPLS", "capsule_depth_max_bwd_pallas", "capsule_depth_max_pallas", "capsule_table", "resolve_impl",
           "self_pen_depths_bwd_pallas", "self_pen_depths_pallas"]
