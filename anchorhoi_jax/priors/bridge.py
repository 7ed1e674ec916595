"""The thin JAX <-> PyTorch bridge: zero-copy DLPack hand-over and the split SDS step.

Everything that crosses between JAX and torch goes through this module, so the layout change
(JAX NHWC in [0, 1], CONVENTIONS.md) <-> (torch NCHW in the model's range, e.g. IF/SD [-1, 1])
and the dtype casts live in one place.

Stream synchronisation at each hand-over (both frameworks share the GPU, each on its own stream):

* JAX -> torch: `block_until_ready` on the JAX array before torch reads it. XLA's compute stream
  may still be writing the buffer; after the block the data is complete on the device, and torch
  work issued afterwards on any stream sees it.
* torch -> JAX: `torch.cuda.current_stream().synchronize()` before JAX reads the buffer. Torch
  kernels run asynchronously on torch's current stream; JAX's stream knows nothing about them.
  (The DLPack protocol also passes JAX's stream to `__dlpack__`, which makes it wait on torch's
  stream; the explicit synchronize makes the ordering independent of that.)

Memory: JAX and torch share one GPU. The library never sets XLA memory flags; the CLI sets
`XLA_PYTHON_CLIENT_PREALLOCATE=false` (or a memory fraction) before JAX starts, so torch's caching
allocator can take what XLA does not use.

The split SDS step (STYLE.md "The torch bridge"): a jitted `forward` renders and returns
`(images, pullback)` from `jax.vjp`; torch computes dL/dimage on the same device buffers; a jitted
`update` applies the pullback and the optax optimiser. No host round trip, no second forward pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import operator
import time
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import torch
from flax import struct
from jaxtyping import Array, Float

__all__ = [
    "jax_to_torch",
    "torch_to_jax",
    "images_to_model",
    "model_grad_to_images",
    "ViewInfo",
    "Guidance",
    "SDSState",
    "make_sds_step",
    "torch_seed_from_key",
    "record_phases",
    "host_to_device",
    "LazyScalar",
]


# --------------------------------------------------------------------------------------------
# Zero-copy hand-over
# --------------------------------------------------------------------------------------------


def _torch_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def jax_to_torch(x: jax.Array) -> torch.Tensor:
    """View a JAX array as a torch tensor without copying (same device, same memory).

    Blocks until XLA has finished writing `x`, so torch can read it on its own stream.
    The returned tensor keeps the JAX buffer alive; do not donate `x` while it is in use.
    """
    if not isinstance(x, jax.Array):
        raise TypeError(f"jax_to_torch expects a jax.Array, got {type(x).__name__}")
    x.block_until_ready()
    return torch.from_dlpack(x)


def torch_to_jax(t: torch.Tensor) -> jax.Array:
    """View a torch tensor as a JAX array without copying (the tensor must be contiguous).

    Synchronises torch's current stream first so JAX never reads a half-written buffer.
    The JAX array keeps the torch storage alive through the DLPack capsule.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"torch_to_jax expects a torch.Tensor, got {type(t).__name__}")
    if t.requires_grad:
        t = t.detach()
    if not t.is_contiguous():
        # JAX imports row-major buffers only; the caller decides whether a copy is acceptable.
        raise ValueError("torch_to_jax needs a contiguous tensor (call .contiguous() first; that copies)")
    _torch_sync(t.device)
    return jax.dlpack.from_dlpack(t)


_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def images_to_model(
    images: Float[Array, "*batch H W C"],
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    dtype: torch.dtype | str = torch.float32,
) -> torch.Tensor:
    """JAX NHWC images in [0, 1] -> one torch NCHW batch in the model's range and dtype.

    All leading axes (seeds, views, ...) are flattened into torch's batch axis, in C order, so a
    vmapped seeds x views render is one UNet batch. The JAX buffer is read in place (DLPack); the
    affine range map and permute produce the single model-side tensor.
    """
    if images.ndim < 3:
        raise ValueError(f"images must be (..., H, W, C), got shape {images.shape}")
    if isinstance(dtype, str):
        dtype = _TORCH_DTYPES[dtype]
    t = jax_to_torch(images)
    H, W, C = t.shape[-3:]
    t = t.reshape(-1, H, W, C).permute(0, 3, 1, 2)
    lo, hi = value_range
    return (t * (hi - lo) + lo).to(dtype).contiguous()


def model_grad_to_images(
    grad: torch.Tensor,
    batch_shape: tuple[int, ...],
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Float[Array, "*batch H W C"]:
    """dL/d(model input) in torch NCHW -> dL/d(image in [0, 1]) as a JAX NHWC float32 array.

    Chain rule through x_model = lo + (hi - lo) x01: multiply by (hi - lo). The NHWC float32
    tensor is made contiguous in torch (the layout change is one small kernel), then handed to
    JAX zero-copy.
    """
    if grad.ndim != 4:
        raise ValueError(f"grad must be NCHW, got shape {tuple(grad.shape)}")
    lo, hi = value_range
    g = (grad.detach().float() * (hi - lo)).permute(0, 2, 3, 1).contiguous()
    g = g.reshape(*batch_shape, *g.shape[1:])
    return torch_to_jax(g)


def host_to_device(a, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A small host array (rows, view-tag indices, cameras) on `device` without a stream synchronisation.

    Why: torch's copy from pageable host memory to the GPU waits for every kernel already queued on the
    stream, so a per-step index copy in the middle of the guidance would stall the host until the previous
    UNet has finished and leave the GPU idle while the next one is prepared. A pinned staging copy with
    `non_blocking=True` is ordered on the current stream like any kernel (torch's caching host allocator keeps
    the pinned block until that copy has run). Same values and dtype as `torch.as_tensor(a, device=device)`.
    """
    device = torch.device(device)
    t = torch.as_tensor(a, dtype=dtype)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class LazyScalar:
    """A scalar diagnostic left on the device until it is read (float(), NumPy, comparisons, repr).

    Why: reading a CUDA value waits for all queued GPU work; a guidance that read its diagnostics as it went
    would stall the host several times per SDS step. The stages read them only at log steps
    (`float(v)` in their history), so the host can queue the whole guidance ahead of the GPU.
    """

    __slots__ = ("_t",)

    def __init__(self, t: torch.Tensor):
        self._t = t.detach()

    def __float__(self) -> float:
        return float(self._t)

    def __array__(self, dtype=None, copy=None):
        return onp.asarray(float(self), dtype=dtype)

    def __repr__(self) -> str:
        return repr(float(self))

    def _compare(self, other, op):
        if not isinstance(other, (LazyScalar, numbers.Real)):  # e.g. pytest.approx: let the other operand compare
            return NotImplemented
        return op(float(self), float(other))

    def __eq__(self, other):
        return self._compare(other, operator.eq)

    def __lt__(self, other):
        return self._compare(other, operator.lt)

    def __le__(self, other):
        return self._compare(other, operator.le)

    def __gt__(self, other):
        return self._compare(other, operator.gt)

    def __ge__(self, other):
        return self._compare(other, operator.ge)

    __hash__ = None


def torch_seed_from_key(key: jax.Array) -> int:
    """An integer seed for a torch.Generator drawn from a JAX key (CONVENTIONS.md randomness)."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


# --------------------------------------------------------------------------------------------
# The split SDS step
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViewInfo:
    """Host-side description of the rendered views, flattened like the torch batch.

    azimuth_deg / elevation_deg: (N,) degrees; azimuth 0 looks at the body's front (+z),
    camera_to_world: optional (N, 4, 4) OpenCV cameras (MVDream's camera conditioning);
    views_per_sample: how many consecutive batch entries form one multi-view sample (MVDream: 4;
    also the group that shares one timestep).
    """

    azimuth_deg: onp.ndarray
    elevation_deg: onp.ndarray
    camera_to_world: onp.ndarray | None = None
    views_per_sample: int = 1


class Guidance(Protocol):
    """Torch-side image-gradient provider (e.g. `priors.sds.SDSGuidance`)."""

    value_range: tuple[float, float]
    dtype: torch.dtype

    def __call__(
        self, x_model: torch.Tensor, *, views: ViewInfo, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (dL/dx_model with x_model's shape, scalar diagnostics: floats or `LazyScalar`s, read
        with float())."""
        ...


@struct.dataclass
class SDSState:
    """Everything a stage optimised by SDS carries: nothing hidden (STYLE.md State)."""

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


# Diagnostics only (benchmarks): where `record_phases` collects per-step phase times; None = off.
_PHASE_SINK: list | None = None


@contextlib.contextmanager
def record_phases(sink: list):
    """Within the block, every split SDS step appends its phase times (host seconds) to `sink`:

        {"t": wall clock at the step's start, "batch": torch batch size,
         "render_vjp": JAX forward + vjp (blocked on), "to_torch": DLPack + range map + cast,
         "guidance": the torch guidance (synchronised), "to_jax": gradient layout + DLPack,
         "update": pullback + optimiser (blocked on), "total"}

    Why: the step's phases otherwise overlap asynchronously and only their sum is visible. Recording adds
    one torch synchronize after the guidance and a JAX block after the update (a step otherwise lets the
    update run on while the host prepares the next step), so steps are a little slower while recording.
    """
    global _PHASE_SINK
    prev, _PHASE_SINK = _PHASE_SINK, sink
    try:
        yield sink
    finally:
        _PHASE_SINK = prev


def make_sds_step(
    render_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    guidance: Guidance,
    *,
    has_aux: bool = False,
    extra_loss_fn: Callable[..., tuple[jax.Array, Any]] | None = None,
):
    """Build `(init, step)` for SDS on any parameter pytree (Eq. 1 through the split step).

    Args:
      render_fn: `render_fn(params, batch) -> images` (..., H, W, 3) in [0, 1] (or
        `(images, aux)` with `has_aux`); leading axes (seeds, views) are flattened into one
        torch batch. Must be jax-traceable.
      optimizer: optax transformation applied to the parameter gradient.
      guidance: torch callable returning dL/dx_model (see `Guidance`).
      extra_loss_fn: optional `extra_loss_fn(params, batch) -> (value, aux)`; its JAX gradient is
        added to the SDS gradient inside the jitted update (regularisers, other paper terms).

    Returns:
      init(params, key) -> SDSState
      step(state, batch, views) -> (state, info): one SDS iteration. `info` holds host floats
        from the guidance plus `extra_loss` when set and the render aux.
    """

    def _forward(params, batch):
        with jax.named_scope("sds_forward"):
            return _forward_inner(params, batch)

    def _forward_inner(params, batch):
        if has_aux:
            images, pullback, aux = jax.vjp(lambda p: render_fn(p, batch), params, has_aux=True)
        else:
            images, pullback = jax.vjp(lambda p: render_fn(p, batch), params)
            aux = None
        return images, pullback, aux

    forward = jax.jit(_forward)

    def _update(state: SDSState, batch, pullback, image_grad):
        with jax.named_scope("sds_update"):
            return _update_inner(state, batch, pullback, image_grad)

    def _update_inner(state: SDSState, batch, pullback, image_grad):
        (g,) = pullback(image_grad.astype(jnp.float32))
        extra = jnp.zeros(())
        if extra_loss_fn is not None:
            (extra, _), g_extra = jax.value_and_grad(extra_loss_fn, has_aux=True)(state.params, batch)
            g = jax.tree.map(jnp.add, g, g_extra)
        updates, opt_state = optimizer.update(g, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        key, _ = jax.random.split(state.key)
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1, key=key), extra

    # No donation: the pullback's residuals may alias parameter buffers (e.g. a linear render).
    update = jax.jit(_update)

    def init(params, key) -> SDSState:
        return SDSState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32), key=key)

    # The torch gradient buffer is aliased by the JAX array fed to `update`. Torch's caching
    # allocator only orders reuse against torch's stream, so (conservatively) the tensor is kept
    # alive until the next step's forward has been waited on: in the usual loop, where each call gets
    # the state the previous call returned, that forward depends on `update`, which has then finished
    # reading the buffer.
    keepalive: list[Any] = [None]

    def step(state: SDSState, batch, views: ViewInfo):
        if _PHASE_SINK is not None:
            return _timed_step(state, batch, views, _PHASE_SINK)
        images, pullback, aux = forward(state.params, batch)
        x_model = images_to_model(images, value_range=guidance.value_range, dtype=guidance.dtype)
        keepalive[0] = None  # the previous update has completed: `images` depended on it
        gen = torch.Generator(device=x_model.device).manual_seed(
            torch_seed_from_key(jax.random.fold_in(state.key, 1))
        )
        grad_model, info = guidance(x_model, views=views, step=int(state.step), generator=gen)
        grad_img = model_grad_to_images(grad_model, images.shape[:-3], value_range=guidance.value_range)
        keepalive[0] = grad_img
        new_state, extra = update(state, batch, pullback, grad_img)
        info = dict(info)
        if extra_loss_fn is not None:
            info["extra_loss"] = extra
        if has_aux:
            info["aux"] = aux
        return new_state, info

    def _timed_step(state: SDSState, batch, views: ViewInfo, sink: list):
        # `step` with a clock at every hand-over (record_phases); same arithmetic, same order.
        wall, t0 = time.time(), time.perf_counter()
        images, pullback, aux = forward(state.params, batch)
        jax.block_until_ready(images)
        t1 = time.perf_counter()
        x_model = images_to_model(images, value_range=guidance.value_range, dtype=guidance.dtype)
        _torch_sync(x_model.device)
        t2 = time.perf_counter()
        keepalive[0] = None
        gen = torch.Generator(device=x_model.device).manual_seed(
            torch_seed_from_key(jax.random.fold_in(state.key, 1))
        )
        grad_model, info = guidance(x_model, views=views, step=int(state.step), generator=gen)
        _torch_sync(grad_model.device)
        t3 = time.perf_counter()
        grad_img = model_grad_to_images(grad_model, images.shape[:-3], value_range=guidance.value_range)
        keepalive[0] = grad_img
        t4 = time.perf_counter()
        new_state, extra = update(state, batch, pullback, grad_img)
        jax.block_until_ready(new_state)
        t5 = time.perf_counter()
        sink.append({"t": wall, "batch": int(x_model.shape[0]), "render_vjp": t1 - t0, "to_torch": t2 - t1,
                     "guidance": t3 - t2, "to_jax": t4 - t3, "update": t5 - t4, "total": t5 - t0})
        info = dict(info)
        if extra_loss_fn is not None:
            info["extra_loss"] = extra
        if has_aux:
            info["aux"] = aux
        return new_state, info

    step.forward = forward  # exposed for benchmarks (bridge overhead accounting)
    step.update = update
    return init, step
