"""Pipeline errors: each is one line a user can act on (the CLI prints it and exits non-zero)."""

from __future__ import annotations

__all__ = ["PipelineError", "InputError", "NonFiniteLossError"]


class PipelineError(RuntimeError):
    """A run that cannot go on (one-line message; the CLI exits with code 1)."""


class InputError(PipelineError):
    """Input the pipeline cannot use (e.g. a video in which no person is detected); exit code 2."""


class NonFiniteLossError(PipelineError):
    """A stage's loss became NaN/inf; the run stopped and the last good checkpoint was kept."""
