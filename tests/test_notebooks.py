"""Notebooks import the package only and must run top to bottom (CI executes them)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The notebooks keep their run directories (a user inspects them); under the test they go to tmp_path,
    # which the kernel subprocess inherits through TMPDIR, so repeated CI runs leave nothing in /tmp.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if "anchorhoi_nb_" in path.read_text():
        assert any(p.name.startswith("anchorhoi_nb_") for p in tmp_path.iterdir())
