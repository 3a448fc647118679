"""The location-routing benchmark (benchmarks/lrp.py): the Prodhon reader and its cost
convention, on a tiny instance written here; the shared instances when present."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from benchmarks.instances import DEFAULT_DATA_DIR
from benchmarks.lrp import list_instances, read_prodhon, run_instance
from planning import Layout, LayoutOptions, evaluate_layout
from tests.checker import check_solution

TINY = """6
3

0\t0
20\t0
10\t15

1\t1
2\t3
19\t1
18\t2
9\t14
11\t16

10

12
12
30

3
4
5
3
2
4

100
150
400

50

0
"""


def test_reader_follows_the_instance_convention(tmp_path: Path) -> None:
    path = tmp_path / "tiny.dat"
    path.write_text(TINY.replace("\n", "\r\n"))  # the shared files have CRLF line ends
    instance = read_prodhon(path, bks=None)
    study = instance.study
    assert [d.capacity["demand"] for d in study.depots] == [12, 12, 30]
    assert [d.opening_cost for d in study.depots] == [100, 150, 400]
    assert [o.demands["demand"] for o in study.days[0].orders] == [3, 4, 5, 3, 2, 4]
    assert study.fleet[0].capacities["demand"] == 10
    assert study.fleet[0].fixed_cost == 50
    matrix = study.matrix
    assert matrix is not None
    tags = {t: k for k, t in enumerate(matrix.tags)}
    # depot 0 (0, 0) to customer 1 (2, 3): sqrt(13) * 100 = 360.55... truncated
    assert matrix.distances_m[tags["d0"], tags["c1"]] == 360
    assert matrix.distances_m[tags["c2"], tags["d1"]] == math.floor(math.hypot(1, 1) * 100)


def test_tiny_instance_reaches_the_brute_force_optimum(tmp_path: Path) -> None:
    path = tmp_path / "tiny.dat"
    path.write_text(TINY)
    instance = read_prodhon(path, bks=None)
    study = instance.study
    assert study.matrix is not None
    best = math.inf
    for k in (1, 2, 3):
        for combo in itertools.combinations(("d0", "d1", "d2"), k):
            ev = evaluate_layout(study, Layout("x", combo), LayoutOptions(time_limit_s=0.5))
            for part in ev.parts:
                check_solution(part.model, part.solution)
            if ev.feasible:
                best = min(best, ev.kpis.total_cost)
    row = run_instance(instance, time_limit_s=6.0)
    assert row["feasible"]
    assert row["cost"] == pytest.approx(best)


@pytest.mark.skipif(
    not (DEFAULT_DATA_DIR / "lrp_prodhon").is_dir(),
    reason=f"the LRP instances are not at {DEFAULT_DATA_DIR / 'lrp_prodhon'} (../shared/data)",
)
def test_shared_instances_parse() -> None:
    instances = list_instances(DEFAULT_DATA_DIR / "lrp_prodhon")
    assert len(instances) == 15
    for inst in instances:
        assert inst.bks is not None
        n, m = (int(x) for x in inst.name.removeprefix("coord").split("-")[:2])
        assert len(inst.study.days[0].orders) == n
        assert len(inst.study.depots) == m
