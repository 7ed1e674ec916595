"""`anchorhoi` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module, listed in `SUBCOMMAND_MODULES` by import path. A module
exposes

    add_parser(subparsers) -> argparse.ArgumentParser   # registers its subcommand (name, options)
    run(args: argparse.Namespace) -> int                  # does the work, returns the exit code

so adding `track`, `metrics` or `generate` is one line here plus a module; no god function grows.
`add_parser` must stay cheap (no JAX/torch imports): `anchorhoi --help` imports every module.

Bad input (unknown or mistyped config key, unusable output directory, a missing file the user
named) is reported as one line on stderr, `anchorhoi <cmd>: error: <what>`, with exit code 2, and
the commands check all of it before they write anything.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMAND_MODULES", "UsageError", "user_errors", "build_parser", "main", "add_common_run_args"]

# Subcommand modules, in the order `anchorhoi --help` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("anchorhoi_jax.demo", "anchorhoi_jax.generate", "anchorhoi_jax.animate",
                                        "anchorhoi_jax.track", "anchorhoi_jax.export_cli",
                                        "anchorhoi_jax.metrics_cli")


class UsageError(ValueError):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types main() reports as a one-line usage error (exit 2) instead of a traceback."""
    from anchorhoi_jax.io.checkpoint import CheckpointError
    from anchorhoi_jax.io.config import ConfigError
    from anchorhoi_jax.io.run_dir import RunDirError

    return (UsageError, ConfigError, RunDirError, CheckpointError)


def add_common_run_args(parser: argparse.ArgumentParser, *, default_out: str, schema: type | None = None) -> None:
    """Options every run-producing subcommand shares: --out, --overwrite, --config, --seed, key=value.

    With `schema` (the subcommand's config dataclass) the help lists every valid dotted key.
    """
    if schema is not None:
        from anchorhoi_jax.io.config import valid_keys

        parser.epilog = "config keys: " + ", ".join(valid_keys(schema))
    parser.add_argument("--out", default=default_out, metavar="DIR", help=f"output directory (default: {default_out})")
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty output directory")
    parser.add_argument("--config", default=None, metavar="YAML", help="preset file (default: built-in defaults)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="root random seed (same as seed=N)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides with dotted keys, e.g. render.height=256")


def build_parser() -> argparse.ArgumentParser:
    """The full parser: one subparser per module in SUBCOMMAND_MODULES."""
    from anchorhoi_jax import __version__

    parser = argparse.ArgumentParser(
        prog="anchorhoi", description="AnchorHOI in JAX: text -> 3D human-object interaction -> 4D motion."
    )
    parser.add_argument("--version", action="version", version=f"anchorhoi_jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for path in SUBCOMMAND_MODULES:
        module = importlib.import_module(path)
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default sys.argv[1:]), run the subcommand, return its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if extra:
        # argparse fills positionals from the first run of them only, so `generate PROMPT --config X k=v`
        # leaves `k=v` over: key=value overrides may follow options.
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*(args.overrides or []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except user_errors() as e:
        msg = " ".join(str(e).split())  # exactly one line
        print(f"anchorhoi {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
