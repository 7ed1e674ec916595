"""Stage checkpoints: orbax save/restore of arbitrary pytrees (params, opt_state, step, key).

A stage's checkpoints live in `root/<stage>-<key>/` where `key` hashes the stage name, its config
hash and the hashes of its inputs (`stage_dir`), so a changed config or input never resumes from a
stale state, and a finished stage with the same key is found again (pipeline skip/resume).

Atomicity is orbax's: a step is written under a temporary name and renamed once complete, so an
interrupted save never appears as a step (it is reported by `partial_saves`). On top of that each
finished step gets a sha256 digest of every file (`_integrity/<step>.json`); `restore` checks it
first, so a truncated or bit-flipped file is a clear `CheckpointError` naming the file, and the
step is left in place for inspection (never overwritten: saving onto an existing step is refused).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "stage_dir",
    "stage_key",
    "hash_pytree",
    "hash_file",
    "latest_step",
]

log = logging.getLogger(__name__)

_INTEGRITY = "_integrity"
_TMP_RE = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, partial, corrupt or would be overwritten (one-line message)."""


# ----------------------------------------------------------------------------------------------
# Keys


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_pytree(tree: Any) -> str:
    """sha256 of a pytree's structure and every leaf's dtype, shape and bytes (stable across runs)."""
    h = hashlib.sha256()
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    h.update(str(treedef).encode())
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = onp.asarray(leaf)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(onp.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def stage_key(stage: str, config_hash: str, input_hashes: Mapping[str, str] | Sequence[str] = ()) -> str:
    """Directory name `<stage>-<16 hex>` for a stage run; the hex hashes (stage, config, inputs)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stage):
        raise CheckpointError(f"stage name must be letters, digits, '_', '.', '-': got {stage!r}")
    inputs = sorted(input_hashes.items()) if isinstance(input_hashes, Mapping) else list(input_hashes)
    payload = json.dumps({"stage": stage, "config": config_hash, "inputs": inputs}, sort_keys=True)
    return f"{stage}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def stage_dir(root: str | Path, stage: str, config_hash: str,
              input_hashes: Mapping[str, str] | Sequence[str] = ()) -> Path:
    """`root / stage_key(...)`: where a stage with this config and these inputs keeps checkpoints."""
    return Path(root) / stage_key(stage, config_hash, input_hashes)


def _step_dirs(directory: Path) -> dict[int, Path]:
    out = {}
    if directory.is_dir():
        for p in directory.iterdir():
            if p.is_dir() and p.name.isdigit():
                out[int(p.name)] = p
    return out


def latest_step(directory: str | Path) -> int | None:
    """Newest finished step in a checkpoint directory (None if there is none). Partial saves never count."""
    steps = _step_dirs(Path(directory))
    return max(steps) if steps else None


def _digest_dir(step_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(step_dir)): hash_file(p) for p in sorted(step_dir.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# PRNG keys: orbax stores plain arrays, so typed keys travel as their raw uint32 data.


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unkey(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _rekey(tree, like):
    return jax.tree.map(lambda x, l: jax.random.wrap_key_data(x, impl=jax.random.key_impl(l)) if _is_key(l) else x,
                        tree, like)


def _abstract(tree):
    def leaf(x):
        if isinstance(x, jax.Array):
            # Restore onto the same devices/sharding as the template (seed-sharded multi-GPU states).
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if isinstance(x, onp.ndarray):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        return x
    return jax.tree.map(leaf, _unkey(tree))


class Checkpointer:
    """Save/restore a stage's state pytree by step, keeping the last `max_to_keep` steps.

    Usage:
      ckpt = Checkpointer(stage_dir(run / "checkpoints", "pose_fit", config_hash(cfg), inputs))
      start = ckpt.latest_step()
      state = init(...) if start is None else ckpt.restore(start, like=init(...))
      ...; ckpt.save(step, state)
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int | None = 3, create: bool = True):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        if max_to_keep is not None and max_to_keep < 1:
            raise CheckpointError(f"max_to_keep must be ≥ 1 or None, got {max_to_keep}")
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint path exists and is not a directory: {self.directory}")
        if not self.directory.exists():
            if not create:
                raise CheckpointError(f"checkpoint directory not found: {self.directory}")
            self.directory.mkdir(parents=True)
        for step, p in self.partial_saves().items():
            log.warning("ignoring partial checkpoint (interrupted save) of step %d: %s", step, p)
        self._mgr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=False,
                                                 enable_async_checkpointing=True),
        )
        self._ocp = ocp

    # -- queries -------------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        return sorted(_step_dirs(self.directory))

    def latest_step(self) -> int | None:
        return latest_step(self.directory)

    def partial_saves(self) -> dict[int, Path]:
        """Temporary directories of saves that never finished (crash mid-save), by step."""
        out = {}
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                m = _TMP_RE.match(p.name)
                if m:
                    out[int(m.group(1))] = p
        return out

    def verify(self, step: int) -> bool:
        """Check a step's files against the digest written after it was saved.

        Returns True when verified, False when the step has no digest (saved by another tool, or
        the process died between orbax's commit and the digest). Raises CheckpointError on mismatch.
        """
        sdir = self.directory / str(step)
        if not sdir.is_dir():
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory} (steps: {self.all_steps()})")
        dfile = self.directory / _INTEGRITY / f"{step}.json"
        if not dfile.is_file():
            return False
        try:
            want = json.loads(dfile.read_text())
        except (OSError, ValueError):
            raise CheckpointError(f"checkpoint step {step} in {self.directory}: its digest file {dfile.name} is "
                                  f"unreadable; the checkpoint was left untouched") from None
        have = _digest_dir(sdir)
        for name, digest in want.items():
            if name not in have:
                raise CheckpointError(f"checkpoint step {step} in {self.directory} is corrupt: file {name} is missing; "
                                      f"it was left untouched (delete it or restore another step: {self._others(step)})")
            if have[name] != digest:
                raise CheckpointError(f"checkpoint step {step} in {self.directory} is corrupt: file {name} changed "
                                      f"(sha256 mismatch); it was left untouched (delete it or restore another step: "
                                      f"{self._others(step)})")
        extra = sorted(set(have) - set(want))
        if extra:
            raise CheckpointError(f"checkpoint step {step} in {self.directory} is corrupt: unexpected file {extra[0]}; "
                                  f"it was left untouched")
        return True

    def _others(self, step: int) -> list[int]:
        return [s for s in self.all_steps() if s != step]

    # -- save / restore --------------------------------------------------------------------------

    def save(self, step: int, state: Any) -> Path:
        """Save `state` (any pytree of arrays/scalars; typed PRNG keys allowed) as `step`; blocks
        until the step is committed and its digest written. Refuses to overwrite an existing step."""
        if not isinstance(step, (int, onp.integer)) or isinstance(step, bool) or step < 0:
            raise CheckpointError(f"step must be a non-negative int, got {step!r}")
        step = int(step)
        if (self.directory / str(step)).exists():
            raise CheckpointError(f"checkpoint step {step} already exists in {self.directory}; refusing to overwrite it")
        leaves = jax.tree_util.tree_leaves(state)
        for x in leaves:
            if isinstance(x, (jax.Array, onp.ndarray)) and jnp.issubdtype(x.dtype, jnp.inexact):
                if not bool(jnp.isfinite(x).all()):
                    raise CheckpointError(f"refusing to checkpoint step {step}: state holds non-finite values")
        self._mgr.save(step, args=self._ocp.args.StandardSave(_unkey(state)))
        self._mgr.wait_until_finished()
        sdir = self.directory / str(step)
        if not sdir.is_dir():
            raise CheckpointError(f"orbax did not commit checkpoint step {step} in {self.directory}")
        from anchorhoi_jax.io.export import atomic_write_text

        (self.directory / _INTEGRITY).mkdir(exist_ok=True)
        atomic_write_text(self.directory / _INTEGRITY / f"{step}.json", json.dumps(_digest_dir(sdir), indent=0))
        self._prune_digests()
        return sdir

    def _prune_digests(self) -> None:
        keep = {str(s) for s in self.all_steps()}
        idir = self.directory / _INTEGRITY
        for p in idir.glob("*.json"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)

    def restore(self, step: int | None = None, like: Any = None) -> Any:
        """Restore `step` (default: the latest). With `like` (a pytree of the same structure, e.g. a
        freshly initialised state) containers (optax states, dataclasses) and PRNG key types are
        rebuilt exactly; without it orbax's plain dict/list tree comes back.

        Raises:
          CheckpointError: no checkpoint, digest mismatch, or orbax cannot read the step.
        """
        if step is None:
            step = self.latest_step()
            if step is None:
                partial = self.partial_saves()
                extra = f" (only partial, interrupted saves: steps {sorted(partial)})" if partial else ""
                raise CheckpointError(f"no finished checkpoint in {self.directory}{extra}")
        self.verify(step)
        try:
            if like is not None:
                out = self._mgr.restore(step, args=self._ocp.args.StandardRestore(_abstract(like)))
                out = jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(out))
                return _rekey(out, like)
            return self._mgr.restore(step)
        except CheckpointError:
            raise
        except Exception as e:  # orbax/tensorstore raise many types; report one clear line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise CheckpointError(f"checkpoint step {step} in {self.directory} could not be read "
                                  f"({type(e).__name__}: {first}); it was left untouched") from None

    def close(self) -> None:
        self._mgr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
