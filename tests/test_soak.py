"""The soak (``python -m benchmarks.soak``) in quick mode: 100 streams on 25 symbols over a compressed day
and a bit (rotations included), random faults from the simulator's whole list, checked against the ids
the simulator produced. Nothing may be lost without a gap event, nothing delivered twice, and the server
may never see more connection attempts in a window than the limit."""

from __future__ import annotations

import pytest

from benchmarks.soak import RangeSet, SoakOptions, max_in_window, soak


def test_range_set_counts_overlaps_and_subtracts() -> None:
    rs = RangeSet()
    assert rs.add(1, 3) == 0 and rs.add(4, 4) == 0 and rs.add(7, 9) == 0
    assert rs.r == [[1, 4], [7, 9]]
    assert rs.add(3, 8) == 4  # 3, 4, 7, 8 were there already
    assert rs.r == [[1, 9]]
    assert rs.add(20, 20) == 0 and rs.add(12, 12) == 0 and rs.r == [[1, 9], [12, 12], [20, 20]]
    assert RangeSet([[1, 20]]).minus(rs).r == [[10, 11], [13, 19]]
    assert rs.clip(5, 15).r == [[5, 9], [12, 12]]
    assert max_in_window([0.0, 0.5, 1.0, 1.2, 5.0], 1.0) == 3


@pytest.mark.slow
async def test_quick_soak_loses_nothing_silently() -> None:
    report = await soak(SoakOptions.quick(minutes=15 / 60, fault_every_s=1.0, settle_s=5.0))
    assert report["streams"] == 100
    assert report["faults_injected_total"] >= 5
    assert report["messages_delivered"] > 0 and report["id_streams_checked"] > 0
    assert report["lost_silently"] == 0, report["lost_silently_examples"]
    assert report["duplicated"] == 0
    assert report["max_attempts_per_window"] <= report["attempt_limit"]
    assert report["gave_up"] == 0
