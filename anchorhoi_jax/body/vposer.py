"""VPoser v2 decoder (Pavlakos et al. 2019, SMPL-X; human_body_prior v2.0) in JAX.

The decoder maps a 32-d latent z to the 21 SMPL-X body-joint rotations (joints 1..21 of the 55,
i.e. `pose[1:22]`):

    Linear(32→512) · LeakyReLU(0.01) · Dropout · Linear(512→512) · LeakyReLU(0.01) · Linear(512→126)
    · continuous 6D → rotation (per joint: the 6 numbers are a 3×2 matrix, row-major; Gram-Schmidt
      on its two columns gives the first two columns of the rotation, their cross product the third)

State-dict names are the official ones (`decoder_net.0/3/5.weight|bias`, PyTorch (out, in) layout;
an optional `vp_model.` prefix, as in the released Lightning checkpoint, is stripped). Weights are
read from an .npz of that state dict; `convert_vposer_checkpoint` writes one from the official
`.ckpt` with torch, imported lazily (torch is otherwise confined to anchorhoi_jax/priors/).
The fit uses it as SMPLify-X does: optimise z with an L2 penalty (`vposer_latent_loss`) and decode.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.geometry.rotations import matrix_to_axis_angle

HIGHEST = jax.lax.Precision.HIGHEST
LATENT_DIM = 32
HIDDEN = 512
NUM_JOINTS = 21  # SMPL-X body joints 1..21
_KEYS = ("decoder_net.0", "decoder_net.3", "decoder_net.5")
_DOWNLOAD_HINT = (
    "download VPoser v2.0 (V02_05) from https://smpl-x.is.tue.mpg.de (Downloads, after registering) and "
    "convert its .ckpt with anchorhoi_jax.body.vposer.convert_vposer_checkpoint(ckpt, npz)"
)


@struct.dataclass
class VPoserDecoder:
    """Decoder weights, (in, out) layout: h = x @ w + b."""

    w0: Float[Array, "D H"]
    b0: Float[Array, "H"]
    w1: Float[Array, "H H"]
    b1: Float[Array, "H"]
    w2: Float[Array, "H 126"]
    b2: Float[Array, "126"]

    @property
    def latent_dim(self) -> int:
        return self.w0.shape[0]


def _leaky_relu(x):
    return jnp.where(x >= 0, x, 0.01 * x)  # torch.nn.LeakyReLU default slope


def _safe_normalize(v: Float[Array, "*b 3"]) -> Float[Array, "*b 3"]:
    # torch.nn.functional.normalize: v / max(|v|, eps), eps = 1e-12
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def rot6d_columns_to_matrix(x: Float[Array, "*b 6"]) -> Float[Array, "*b 3 3"]:
    """VPoser's 6D convention: x viewed as a 3×2 matrix (row-major); its columns are Gram-Schmidt'ed."""
    m = x.reshape(x.shape[:-1] + (3, 2))
    b1 = _safe_normalize(m[..., 0])
    b2 = _safe_normalize(m[..., 1] - jnp.sum(b1 * m[..., 1], axis=-1, keepdims=True) * b1)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def vposer_decode(params: VPoserDecoder, z: Float[Array, "D"]) -> Float[Array, "21 3 3"]:
    """Body-joint rotation matrices (21, 3, 3) for one latent z (eval mode: no dropout)."""
    with jax.named_scope("vposer.decode"):
        h = _leaky_relu(jnp.matmul(z, params.w0, precision=HIGHEST) + params.b0)
        h = _leaky_relu(jnp.matmul(h, params.w1, precision=HIGHEST) + params.b1)
        out = jnp.matmul(h, params.w2, precision=HIGHEST) + params.b2
        return rot6d_columns_to_matrix(out.reshape(NUM_JOINTS, 6))


def vposer_decode_aa(params: VPoserDecoder, z: Float[Array, "D"]) -> Float[Array, "21 3"]:
    """Body pose as axis-angle (21, 3): SMPL-X `pose[1:22]`."""
    return matrix_to_axis_angle(vposer_decode(params, z))


def vposer_latent_loss(z: Float[Array, "D"]) -> tuple[Float[Array, ""], dict]:
    """SMPLify-X's VPoser prior: |z|² (the latent is standard normal under the prior); aux: |z|."""
    with jax.named_scope("loss.vposer_latent"):
        value = jnp.sum(z**2)
        return value, {"latent_norm": jnp.sqrt(value)}


def init_vposer(key: jax.Array, *, latent_dim: int = LATENT_DIM, hidden: int = HIDDEN) -> VPoserDecoder:
    """Random decoder (for tests and training from scratch): PyTorch's default Linear init
    U(±1/√fan_in), except the last layer, scaled by 0.1 and biased to the identity rotation so that
    decoding z ≈ 0 gives a near-rest pose instead of arbitrary rotations."""
    k = jax.random.split(key, 6)

    def uniform(kk, shape, fan_in):
        bound = 1.0 / onp.sqrt(fan_in)
        return jax.random.uniform(kk, shape, jnp.float32, -bound, bound)

    identity6 = jnp.tile(jnp.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], jnp.float32), NUM_JOINTS)
    return VPoserDecoder(
        w0=uniform(k[0], (latent_dim, hidden), latent_dim),
        b0=uniform(k[1], (hidden,), latent_dim),
        w1=uniform(k[2], (hidden, hidden), hidden),
        b1=uniform(k[3], (hidden,), hidden),
        w2=0.1 * uniform(k[4], (hidden, 6 * NUM_JOINTS), hidden),
        b2=identity6 + 0.1 * uniform(k[5], (6 * NUM_JOINTS,), hidden),
    )


def decoder_from_state_dict(state: dict[str, onp.ndarray]) -> VPoserDecoder:
    """Decoder from a VPoser v2 state dict (official key names, optional `vp_model.` prefix)."""
    state = {k.removeprefix("vp_model."): onp.asarray(v) for k, v in state.items()}
    missing = [f"{k}.{p}" for k in _KEYS for p in ("weight", "bias") if f"{k}.{p}" not in state]
    if missing:
        raise ValueError(f"not a VPoser v2 state dict: missing {', '.join(missing)}")
    w = [state[f"{k}.weight"] for k in _KEYS]
    b = [state[f"{k}.bias"] for k in _KEYS]
    D, H = w[0].shape[1], w[0].shape[0]
    expected = [(H, D), (H, H), (6 * NUM_JOINTS, H)]
    for k, arr, shape in zip(_KEYS, w, expected):
        if arr.shape != shape:
            raise ValueError(f"VPoser {k}.weight has shape {arr.shape}, expected {shape}")
    f32 = jnp.float32
    return VPoserDecoder(
        w0=jnp.asarray(w[0].T, f32), b0=jnp.asarray(b[0], f32),
        w1=jnp.asarray(w[1].T, f32), b1=jnp.asarray(b[1], f32),
        w2=jnp.asarray(w[2].T, f32), b2=jnp.asarray(b[2], f32),
    )  # fmt: skip


def load_vposer(path: str | os.PathLike) -> VPoserDecoder:
    """Load the decoder from an .npz of the VPoser v2 state dict (see `convert_vposer_checkpoint`).

    Raises:
      FileNotFoundError: the file does not exist (the message says what to download).
      ValueError: not an .npz, or not a VPoser v2 state dict.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"VPoser weights not found at {p}: {_DOWNLOAD_HINT}")
    if p.suffix != ".npz":
        raise ValueError(f"load_vposer reads an .npz state dict, got {p.name}: {_DOWNLOAD_HINT}")
    with onp.load(p, allow_pickle=False) as f:
        return decoder_from_state_dict({k: f[k] for k in f.files})


def convert_vposer_checkpoint(ckpt_path: str | os.PathLike, npz_path: str | os.PathLike, *, allow_pickle: bool = False) -> str:
    """Convert the official VPoser v2 checkpoint (.ckpt/.pt) to the .npz `load_vposer` reads.

    Uses torch (imported here only). `torch.load(weights_only=True)` first; Lightning checkpoints
    that also pickle their hyper-parameters need `allow_pickle=True`, which runs code from the file:
    pass it only for a file you trust (the official download).
    """
    p = Path(ckpt_path)
    if not p.exists():
        raise FileNotFoundError(f"VPoser checkpoint not found at {p}: {_DOWNLOAD_HINT}")
    import torch  # noqa: PLC0415 (lazy: only the converter needs torch)

    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError subclasses that vary by version
        if not allow_pickle:
            raise ValueError(
                f"{p.name} holds pickled objects besides tensors; pass allow_pickle=True if you trust it ({err})"
            ) from None
        obj = torch.load(p, map_location="cpu", weights_only=False)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    arrays = {k.removeprefix("vp_model."): v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}
    decoder_from_state_dict(arrays)  # validate before writing
    out = Path(npz_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onp.savez(out, **arrays)
    return str(out)
