"""The contraction-hierarchy benchmark runs end to end on a synthetic grid (no shared data) and
finds the hierarchy's matrix equal to scipy's."""

from __future__ import annotations

import pytest

from benchmarks.matrix_ch import load_graph, main


def test_matrix_ch_on_a_grid_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--graphs", "grid30", "--sizes", "20", "--no-pandana", "--dijkstra-rows", "20"]) == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| grid30 ")]
    assert len(rows) == 2, rows  # the build and N = 20
    assert "exact on 20 rows: True" in rows[1]


def test_a_bad_grid_name_is_reported_not_raised() -> None:
    assert isinstance(load_graph("gridx"), str)
    assert isinstance(load_graph("grid1"), str)
