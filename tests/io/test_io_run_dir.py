"""Run directories: refusal paths (non-empty, file in the way, read-only), config, manifest, log."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anchorhoi_jax.io.config import DemoConfig, load_config
from anchorhoi_jax.io.export import write_npz
from anchorhoi_jax.io.run_dir import RunDirError, check_output_dir, create_run_dir

REPO = Path(__file__).resolve().parents[2]


def run_with_readonly_dir(ro_dir: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run `argv` while `ro_dir` is read-only for it: chmod for a normal user; for root (which
    ignores permission bits) a read-only bind mount inside a user+mount namespace."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if os.geteuid() != 0:
        ro_dir.chmod(0o555)
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        finally:
            ro_dir.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without `unshare`: cannot make a directory read-only for this user")
    q = shlex.quote(str(ro_dir))
    script = f"mount --bind -o ro {q} {q} || exit 97; exec {' '.join(shlex.quote(a) for a in argv)}"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode == 97 or "unshare:" in r.stderr:
        pytest.skip(f"cannot create a read-only mount here: {r.stderr.strip()[:200]}")
    return r


def test_create_write_manifest_and_log(tmp_path):
    cfg = load_config(DemoConfig, overrides=["seed=5"])
    out = tmp_path / "run"
    with create_run_dir(out) as rd:
        logging.getLogger("anchorhoi_jax.test").info("hello from the test")
        rd.write_config(cfg)
        p = write_npz(rd.file("sub/a.npz"), x=[1.0, 2.0])
        rd.record(p)
        rd.write_json("metrics.json", {"b": 1, "a": 2.5})
    manifest = json.loads((out / "manifest.json").read_text())
    names = [f["name"] for f in manifest["files"]]
    assert names == ["config.yaml", "metrics.json", "sub/a.npz"]
    for f in manifest["files"]:
        data = (out / f["name"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert load_config(DemoConfig, out / "config.yaml") == cfg
    assert "hello from the test" in (out / "run.log").read_text()
    # The handler was detached on close: later records do not reach the file.
    logging.getLogger("anchorhoi_jax.test").info("after close")
    assert "after close" not in (out / "run.log").read_text()


def test_refuse_non_empty_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(RunDirError) as e:
        create_run_dir(out)
    assert str(e.value) == f"output directory exists and is not empty: {out} (pass --overwrite to write into it)"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    with create_run_dir(out, overwrite=True) as rd:
        rd.write_config(DemoConfig())
    assert (out / "keep.txt").read_text() == "precious"  # overwrite writes into, never deletes
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty) == empty


def test_refuse_file_in_the_way_and_escaping_names(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match=r"^output path exists and is not a directory: .*/f$"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(RunDirError, match=r"^cannot create output directory .*/f/sub: .*/f is not a directory$"):
        check_output_dir(tmp_path / "f" / "sub")
    rd = create_run_dir(tmp_path / "run", log=False)
    with pytest.raises(RunDirError, match=r"file name escapes the run directory: \.\./x"):
        rd.file("../x")
    with pytest.raises(RunDirError, match="cannot record .*missing.txt: not a file"):
        rd.record("missing.txt")


def test_refuse_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    code = (
        "import sys\n"
        "from anchorhoi_jax.io.run_dir import RunDirError, create_run_dir\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        create_run_dir(p)\n"
        "    except RunDirError as e:\n"
        "        print(e)\n"
    )
    r = run_with_readonly_dir(ro, [sys.executable, "-c", code, str(ro), str(ro / "new" / "deeper")])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines == [
        f"output directory is read-only: cannot write {ro}",
        f"parent directory {ro} of the output directory is read-only: cannot write {ro / 'new' / 'deeper'}",
    ]
    assert list(ro.iterdir()) == []
