"""Stage graph semantics on toy stages: order, skip, --from-stage, resume mid-stage, non-finite loss,
corrupt checkpoints, keys that follow config and inputs."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.io.checkpoint import CheckpointError
from anchorhoi_jax.pipeline.errors import NonFiniteLossError
from anchorhoi_jax.pipeline.graph import Stage, downstream, order
from anchorhoi_jax.pipeline.observe import Observer, timing_table
from anchorhoi_jax.pipeline.runner import External, run_graph, stage_keys


@dataclasses.dataclass(frozen=True)
class Sec:
    steps: int = 6
    log_every: int = 2
    lr: float = 0.5


@dataclasses.dataclass(frozen=True)
class Cfg:
    a: Sec = Sec()
    b: Sec = Sec()


class Crash(Exception):
    pass


def make_stages(calls: dict, *, crash_at: int | None = None, nan_at: int | None = None):
    """'a' sums an input; 'b' runs a resumable 'optimisation' (x <- x + lr per step) over 'a'."""

    def a(ctx, inputs, cfg):
        calls["a"] = calls.get("a", 0) + 1
        return {"y": onp.asarray(inputs["x"], onp.float32) * 2.0}

    def b(ctx, inputs, cfg):
        calls["b"] = calls.get("b", 0) + 1
        fresh = {"x": jnp.asarray(inputs["a"]["y"]), "step": jnp.zeros((), jnp.int32), "key": jax.random.key(0)}
        state = ctx.resume(like=fresh) or fresh
        ctx.start(cfg.steps, initial=int(state["step"]))
        for step in range(int(state["step"]) + 1, cfg.steps + 1):
            state = {"x": state["x"] + cfg.lr, "step": jnp.asarray(step, jnp.int32), "key": state["key"]}
            loss = float(jnp.sum(state["x"]))
            if nan_at is not None and step >= nan_at:
                loss = float("nan")
            if step % cfg.log_every == 0:
                ctx.callback(step, state, {"loss": loss})
            if crash_at is not None and step == crash_at:
                raise Crash
        calls["b_start"] = calls.get("b_start", []) + [ctx.resumed_from]
        return {"x": state["x"]}

    return [Stage("b", ("a",), "b", b), Stage("a", ("x",), "a", a)]


def ext(x=1.0):
    return {"x": External(onp.asarray([x], onp.float32), f"x={x}")}


def run(tmp_path, stages, cfg=Cfg(), **kw):
    return run_graph(stages, cfg, ext(kw.pop("x", 1.0)), tmp_path / "ck", Observer(progress=False),
                     key=jax.random.key(0), num_seeds=1, **kw)


def test_order_and_errors():
    s = make_stages({})
    assert [x.name for x in order(s, ["x"])] == ["a", "b"]
    assert downstream(s, "a") == ["a", "b"]
    with pytest.raises(ValueError, match="reads 'q', which is neither a stage nor an external input"):
        order([Stage("a", ("q",), None, None)])
    with pytest.raises(ValueError, match="cycle"):
        order([Stage("a", ("b",), None, None), Stage("b", ("a",), None, None)])
    with pytest.raises(ValueError, match="duplicate stage names"):
        order([Stage("a", (), None, None), Stage("a", (), None, None)])


def test_skip_finished_and_from_stage(tmp_path):
    calls = {}
    out, t = run(tmp_path, make_stages(calls))
    onp.testing.assert_allclose(out["b"]["x"], [2.0 + 6 * 0.5])
    assert [r.status for r in t] == ["ran", "ran"]
    out2, t2 = run(tmp_path, make_stages(calls))
    assert [r.status for r in t2] == ["cached", "cached"] and calls == {"a": 1, "b": 1, "b_start": [None]}
    onp.testing.assert_array_equal(out2["b"]["x"], out["b"]["x"])
    _, t3 = run(tmp_path, make_stages(calls), from_stage="b")
    assert [r.status for r in t3] == ["cached", "ran"] and calls["b"] == 2
    assert "total" in timing_table(t3)


def test_keys_follow_config_and_inputs():
    s = make_stages({})
    k0 = stage_keys(s, Cfg(), ext(1.0))
    k_b = stage_keys(s, Cfg(b=Sec(lr=0.1)), ext(1.0))
    k_x = stage_keys(s, Cfg(), ext(2.0))
    assert k0["a"] == k_b["a"] and k0["b"] != k_b["b"]  # b's section changed: only b
    assert k0["a"] != k_x["a"] and k0["b"] != k_x["b"]  # input changed: everything downstream


def test_resume_mid_stage_equals_uninterrupted(tmp_path):
    calls = {}
    with pytest.raises(Crash):
        run(tmp_path / "r", make_stages(calls, crash_at=5))
    out, t = run(tmp_path / "r", make_stages(calls))
    assert calls["b_start"] == [4] and t[1].status == "resumed"
    ref, _ = run(tmp_path / "u", make_stages({}))
    onp.testing.assert_array_equal(out["b"]["x"], ref["b"]["x"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as e:
        run(tmp_path, make_stages({}, nan_at=5))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("stage 'b': non-finite loss (loss = nan) at step 6; run stopped, the last good checkpoint "
                          "(step 4) is kept in ")
    (state_dir,) = (tmp_path / "ck").glob("b-*/state")
    assert sorted(p.name for p in state_dir.iterdir() if p.name.isdigit()) == ["2", "4"]
    assert not list((tmp_path / "ck").glob("b-*/output/0"))


def test_corrupt_checkpoint_is_reported_not_overwritten(tmp_path):
    run(tmp_path, make_stages({}))
    (out_dir,) = (tmp_path / "ck").glob("b-*/output/0")
    victim = max((p for p in out_dir.rglob("*") if p.is_file() and p.stat().st_size > 0), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match=r"is corrupt: file .* changed \(sha256 mismatch\); it was left untouched"):
        run(tmp_path, make_stages({}))
    assert {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} == before


def test_corrupt_mid_stage_state_is_reported(tmp_path):
    with pytest.raises(Crash):
        run(tmp_path, make_stages({}, crash_at=5))
    (step4,) = (tmp_path / "ck").glob("b-*/state/4")
    digest = step4.parent / "_integrity" / "4.json"
    d = json.loads(digest.read_text())
    name = sorted(d)[0]
    d[name] = "0" * 64
    digest.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="checkpoint step 4 .* is corrupt"):
        run(tmp_path, make_stages({}))
    assert step4.is_dir()


def test_tensorboard_scalars_and_profiler_window(tmp_path, monkeypatch):
    import sys
    import types

    written = []

    class Writer:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=Writer))
    obs = Observer(progress=False, tensorboard_dir=tmp_path / "tb", profile_dir=tmp_path / "prof", profile_stage="b",
                   profile_start=2, profile_steps=2)
    run_graph(make_stages({}), Cfg(), ext(), tmp_path / "ck", obs, key=jax.random.key(0), num_seeds=1)
    obs.close()
    assert [(t, s) for t, _, s in written] == [("b/loss", 2), ("b/loss", 4), ("b/loss", 6)]
    assert obs.profiled and any(p.is_file() for p in (tmp_path / "prof").rglob("*"))


def test_tensorboard_missing_is_one_line(monkeypatch, tmp_path):
    import sys

    from anchorhoi_jax.pipeline.observe import tensorboard_writer

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"^observe.tensorboard=true needs tensorboardX or tensorboard: pip install "
                                          r"tensorboardX \(or set observe.tensorboard=false\)$"):
        tensorboard_writer(tmp_path)
