"""Stage checkpoints: round trip of a full stage state, keep-last-N, corruption and partial saves."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import pytest

from anchorhoi_jax.io.checkpoint import CheckpointError, Checkpointer, hash_pytree, latest_step, stage_dir, stage_key


def _state(seed=0):
    key = jax.random.key(seed)
    params = {"w": jax.random.normal(key, (3, 4)), "b": jnp.arange(4.0)}
    opt = optax.adam(1e-2)
    opt_state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = opt.update(grads, opt_state, params)
    return {"params": params, "opt_state": opt_state, "step": jnp.int32(7), "key": jax.random.split(key)[0]}


def _same(a, b):
    return hash_pytree(a) == hash_pytree(b) and jax.tree.structure(a) == jax.tree.structure(b)


def test_round_trip_and_keep_last(tmp_path):
    state = _state()
    with Checkpointer(tmp_path / "ck", max_to_keep=2) as ck:
        assert ck.latest_step() is None
        for s in (1, 2, 3):
            ck.save(s, jax.tree.map(lambda x: x + s if jnp.issubdtype(x.dtype, jnp.floating) else x, state))
        assert ck.all_steps() == [2, 3]
        assert latest_step(tmp_path / "ck") == 3
        assert sorted(p.name for p in (tmp_path / "ck" / "_integrity").iterdir()) == ["2.json", "3.json"]
        out = ck.restore(like=state)
        want = jax.tree.map(lambda x: x + 3 if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
        assert _same(out, want)
        assert type(out["opt_state"][0]).__name__ == "ScaleByAdamState"
        assert jnp.issubdtype(out["key"].dtype, jax.dtypes.prng_key)
        # The restored key draws the same numbers as the saved one.
        onp.testing.assert_array_equal(jax.random.normal(out["key"], (3,)), jax.random.normal(state["key"], (3,)))
        assert ck.verify(3) is True
    # A fresh process (new manager) finds the same steps and restores the same bits.
    with Checkpointer(tmp_path / "ck", max_to_keep=2) as ck2:
        assert _same(ck2.restore(2, like=state),
                     jax.tree.map(lambda x: x + 2 if jnp.issubdtype(x.dtype, jnp.floating) else x, state))


def test_corrupt_file_is_reported_and_left_untouched(tmp_path):
    state = _state()
    ck = Checkpointer(tmp_path / "ck")
    ck.save(1, state)
    ck.save(2, state)
    data_files = sorted(p for p in (tmp_path / "ck" / "2").rglob("*") if p.is_file() and p.parent.name == "d")
    victim = data_files[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as e:
        ck.restore(like=state)
    msg = str(e.value)
    assert "checkpoint step 2 in" in msg and "is corrupt: file" in msg and "changed (sha256 mismatch)" in msg
    assert "left untouched" in msg and "[1]" in msg and "\n" not in msg
    assert victim.read_bytes() == bytes(raw)  # not repaired, not deleted
    with pytest.raises(CheckpointError, match="checkpoint step 2 already exists in .*; refusing to overwrite it"):
        ck.save(2, state)
    assert _same(ck.restore(1, like=state), state)  # the good step still restores
    # A missing file is named too.
    victim.unlink()
    with pytest.raises(CheckpointError, match=r"is corrupt: file default/.* is missing"):
        ck.restore(2, like=state)
    ck.close()


def test_corruption_without_digest_is_still_one_clear_error(tmp_path):
    state = _state()
    ck = Checkpointer(tmp_path / "ck")
    ck.save(5, state)
    (tmp_path / "ck" / "_integrity" / "5.json").unlink()  # e.g. crash between orbax commit and digest
    assert ck.verify(5) is False
    for p in (tmp_path / "ck" / "5").rglob("*"):
        if p.is_file() and p.parent.name == "d":
            p.write_bytes(b"\0" * p.stat().st_size)
    with pytest.raises(CheckpointError) as e:
        ck.restore(5, like=state)
    assert str(e.value).startswith(f"checkpoint step 5 in {tmp_path / 'ck'} could not be read (")
    assert str(e.value).endswith("it was left untouched")
    ck.close()


def test_partial_save_is_reported_not_used(tmp_path, caplog):
    d = tmp_path / "ck"
    d.mkdir()
    (d / "4.orbax-checkpoint-tmp-1234").mkdir()  # what an interrupted orbax save leaves behind
    with caplog.at_level("WARNING"):
        ck = Checkpointer(d)
    assert "ignoring partial checkpoint (interrupted save) of step 4" in caplog.text
    assert ck.latest_step() is None
    with pytest.raises(CheckpointError, match=r"no finished checkpoint in .* \(only partial, interrupted saves: steps \[4\]\)"):
        ck.restore()
    ck.close()


def test_bad_inputs(tmp_path):
    ck = Checkpointer(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="refusing to checkpoint step 0: state holds non-finite values"):
        ck.save(0, {"w": jnp.array([1.0, jnp.nan])})
    with pytest.raises(CheckpointError, match="step must be a non-negative int, got -1"):
        ck.save(-1, {"w": jnp.ones(2)})
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 9 in .* \(steps: \[\]\)"):
        ck.restore(9)
    ck.close()
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        Checkpointer(tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="checkpoint path exists and is not a directory"):
        Checkpointer(tmp_path / "file")


def test_stage_keys():
    a = stage_key("pose_fit", "c" * 64, {"views": "1" * 64})
    assert a.startswith("pose_fit-") and len(a) == len("pose_fit-") + 16
    assert a == stage_key("pose_fit", "c" * 64, {"views": "1" * 64})
    assert a != stage_key("pose_fit", "d" * 64, {"views": "1" * 64})
    assert a != stage_key("pose_fit", "c" * 64, {"views": "2" * 64})
    assert a != stage_key("motion", "c" * 64, {"views": "1" * 64})
    assert stage_dir("/r", "pose_fit", "c" * 64, {"views": "1" * 64}).name == a
    with pytest.raises(CheckpointError, match="stage name must be letters, digits"):
        stage_key("a/b", "c")
    # Input hashes see values, dtypes and structure.
    assert hash_pytree({"a": jnp.zeros(2)}) != hash_pytree({"a": jnp.zeros(2, jnp.int32)})
    assert hash_pytree({"a": jnp.zeros(2)}) != hash_pytree({"b": jnp.zeros(2)})
    assert hash_pytree(json.loads("[1, 2]")) == hash_pytree([1, 2])


def test_sharded_state_restores_with_its_sharding(tmp_path):
    """A seed-sharded state (2 simulated CPU devices) comes back on the same sharding."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent(f"""
        import jax, jax.numpy as jnp, numpy as onp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from anchorhoi_jax.io.checkpoint import Checkpointer
        mesh = Mesh(onp.array(jax.devices()[:2]), ("seeds",))
        sh = NamedSharding(mesh, P("seeds"))
        state = {{"w": jax.device_put(jnp.arange(8.0).reshape(4, 2), sh), "step": jnp.int32(3)}}
        with Checkpointer({str(tmp_path / "ck")!r}) as ck:
            ck.save(3, state)
            out = ck.restore(like=state)
        assert out["w"].sharding == sh, out["w"].sharding
        assert (onp.asarray(out["w"]) == onp.arange(8.0).reshape(4, 2)).all()
        print("ok", len(jax.devices()))
    """)
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok 2")
