"""Run directories: checked before anything is written, with the resolved config, a manifest of every
file written (name, bytes, sha256) and a run log.

`check_output_dir` only inspects (an existing non-empty directory without `overwrite`, a file in the
way, a read-only location: one-line `RunDirError`), so a command can validate everything before it
creates a single file. `create_run_dir` then makes the directory and returns a `RunDir`.

With `overwrite=True` the run writes into the existing directory; files of an earlier run that this
run does not rewrite are kept (the pipeline resumes from checkpoints stored there), and the new
manifest lists only what this run wrote. Manifests hold no timestamps, so the same seed and config
give byte-identical manifests; times go to the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anchorhoi_jax.io.export import atomic_write_text

__all__ = ["RunDirError", "RunDir", "check_output_dir", "create_run_dir", "MANIFEST", "CONFIG", "LOG"]

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
LOG = "run.log"


class RunDirError(RuntimeError):
    """An output directory that cannot be used (one-line message)."""


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def check_output_dir(path: str | Path, *, overwrite: bool = False) -> Path:
    """Validate an output directory without writing anything. Returns its absolute path.

    Raises:
      RunDirError: the path is a file; it is a non-empty directory and `overwrite` is False; it
        (or, if missing, its nearest existing parent) is not writable (read-only filesystem or
        permissions, as `access(2)` reports for this user).
    """
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output path exists and is not a directory: {path}")
    if path.is_dir():
        try:
            non_empty = any(path.iterdir())
        except PermissionError:
            raise RunDirError(f"output directory is not readable: {path}") from None
        if non_empty and not overwrite:
            raise RunDirError(f"output directory exists and is not empty: {path} (pass --overwrite to write into it)")
        target = path
    else:
        target = _nearest_existing(path.parent)
        if not target.is_dir():
            raise RunDirError(f"cannot create output directory {path}: {target} is not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
        what = "output directory" if target == path else f"parent directory {target} of the output directory"
        raise RunDirError(f"{what} is read-only: cannot write {path}")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class RunDir:
    """An open run directory. Write files under `path` (e.g. with the io.export writers), `record`
    them, and `close()` (or use as a context manager) to write manifest.json and detach the log."""

    def __init__(self, path: Path):
        self.path = path
        self._files: dict[str, dict[str, Any]] = {}
        self._handler: logging.Handler | None = None
        self._loggers: list[logging.Logger] = []

    def file(self, name: str | Path) -> Path:
        """Absolute path of `name` inside the run directory; creates its sub-folders."""
        p = Path(os.path.normpath(self.path / name))  # resolve "..", so escaping names are caught
        if self.path not in p.parents:
            raise RunDirError(f"file name escapes the run directory: {name}")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def record(self, *paths: str | Path) -> None:
        """Add written files to the manifest (name relative to the run dir, size, sha256)."""
        for p in paths:
            p = Path(p)
            p = p if p.is_absolute() else self.path / p
            if not p.is_file():
                raise RunDirError(f"cannot record {p}: not a file")
            rel = p.absolute().relative_to(self.path).as_posix()
            self._files[rel] = {"name": rel, "bytes": p.stat().st_size, "sha256": _sha256(p)}

    def write_config(self, cfg: Any) -> Path:
        """Write the resolved config as config.yaml (loadable with io.config.load_config) and record it."""
        from anchorhoi_jax.io.config import to_yaml

        p = atomic_write_text(self.file(CONFIG), to_yaml(cfg))
        self.record(p)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        """Write a JSON file (sorted keys, deterministic) and record it."""
        p = atomic_write_text(self.file(name), json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
        self.record(p)
        return p

    @property
    def files(self) -> list[dict[str, Any]]:
        return [self._files[k] for k in sorted(self._files)]

    def write_manifest(self) -> Path:
        """Write manifest.json: {"files": [{name, bytes, sha256}, ...]} sorted by name."""
        return atomic_write_text(self.path / MANIFEST, json.dumps({"files": self.files}, indent=2) + "\n")

    def attach_log(self, loggers: Iterable[str] = ("anchorhoi_jax",), level: int = logging.INFO) -> Path:
        """Send the named loggers' records to run.log in the run directory (appending)."""
        if self._handler is None:
            self._handler = logging.FileHandler(self.path / LOG, encoding="utf-8")
            self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self._handler.setLevel(level)
            for name in loggers:
                lg = logging.getLogger(name)
                lg.addHandler(self._handler)
                if lg.getEffectiveLevel() > level:
                    lg.setLevel(level)
                self._loggers.append(lg)
        return self.path / LOG

    def close(self) -> Path:
        """Write the manifest and detach the log handler. Returns the manifest path."""
        if self._handler is not None:
            for lg in self._loggers:
                lg.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
            self._loggers = []
        return self.write_manifest()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def create_run_dir(path: str | Path, *, overwrite: bool = False, log: bool = True) -> RunDir:
    """Check (see `check_output_dir`), create the directory and open a `RunDir` with its log attached."""
    p = check_output_dir(path, overwrite=overwrite)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create output directory {p}: {e.strerror}") from None
    rd = RunDir(p)
    if log:
        rd.attach_log()
    return rd
