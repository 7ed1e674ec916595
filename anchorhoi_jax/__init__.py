"""anchorhoi_jax: AnchorHOI (text -> 3D HOI -> 4D HOI) as pure JAX functions over pytrees."""

__version__ = "0.1.0"
