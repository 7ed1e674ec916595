"""The stage graph: named stages, their inputs, the config section each reads, and its function.

A `Stage` is data, not a class hierarchy: `fn(ctx, inputs, cfg_section) -> output`, where `inputs`
maps each name in `Stage.inputs` to an upstream stage's output (or an external input such as the
prompt or a video file), `cfg_section` is the part of the run config named by `Stage.section`
(dotted path; None = the whole config), and the output is a nested dict of arrays (what orbax
stores and gives back without a template). `ctx` (pipeline.store.StageContext) lets a stage resume
its optimiser state and report progress every `log_every` steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Stage", "order", "downstream", "section_of"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One node of the pipeline.

    Attributes:
      name: unique stage name (letters, digits, '_', '-'); the checkpoint directory starts with it.
      inputs: names of upstream stages or external inputs this stage reads.
      section: dotted path of the config section(s) it reads (hashed into its checkpoint key);
        several sections as a tuple; None = the whole config.
      fn: `(ctx, inputs: dict, cfg_section) -> output` (nested dict of arrays).
      doc: one line for logs and the timing table.
    """

    name: str
    inputs: tuple[str, ...]
    section: str | tuple[str, ...] | None
    fn: Callable[..., Any]
    doc: str = ""


def section_of(cfg: Any, section: str | tuple[str, ...] | None) -> Any:
    """The config part a stage reads: `cfg` itself, one dotted attribute, or a dict of several."""
    if section is None:
        return cfg
    if isinstance(section, tuple):
        return {s: section_of(cfg, s) for s in section}
    out = cfg
    for part in section.split("."):
        out = getattr(out, part)
    return out


def order(stages: Sequence[Stage], external: Sequence[str] = ()) -> list[Stage]:
    """Stages in dependency order (stable for ties). Raises ValueError on duplicate names,
    unknown inputs or cycles."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate stage names: {dup}")
    by_name = {s.name: s for s in stages}
    known = set(names) | set(external)
    for s in stages:
        for i in s.inputs:
            if i not in known:
                raise ValueError(f"stage '{s.name}' reads '{i}', which is neither a stage nor an external input")
    done: list[Stage] = []
    placed: set[str] = set(external)
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(i in placed for i in s.inputs)]
        if not ready:
            raise ValueError(f"stage graph has a cycle among {[s.name for s in pending]}")
        for s in ready:
            done.append(by_name[s.name])
            placed.add(s.name)
        pending = [s for s in pending if s.name not in placed]
    return done


def downstream(stages: Sequence[Stage], start: str) -> list[str]:
    """`start` and every stage that (transitively) reads it, in dependency order."""
    ordered = order(stages, external=_externals(stages))
    if start not in {s.name for s in ordered}:
        raise ValueError(f"unknown stage '{start}'; stages: {', '.join(s.name for s in ordered)}")
    hit = {start}
    for s in ordered:
        if any(i in hit for i in s.inputs):
            hit.add(s.name)
    return [s.name for s in ordered if s.name in hit]


def _externals(stages: Sequence[Stage]) -> list[str]:
    names = {s.name for s in stages}
    return sorted({i for s in stages for i in s.inputs if i not in names})


def as_mapping(outputs: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {n: outputs[n] for n in names}
