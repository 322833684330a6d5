"""The chaos soak in short (``loadtest.chaos``): a minute of posts on the three-broker cluster, four faults.

A worker killed with SIGKILL and restarted, then the aggregator, then a broker (started again on its data),
then Redis stopped and started again on its append-only file; each fault once the previous one recovered.
Every check of the soak must pass: every post has an event, ``brand-aggregates`` and Redis equal a recount
of ``entities``, no input record read after a gap in its offsets, the consumer lag back to zero, no process
exited by itself, every fault recovered.
"""

from __future__ import annotations

import json

import pytest

from loadtest.aggregate_check import PersistentRedis
from loadtest.chaos import SHORT, Planned, run

RATE = 20.0  # posts/s
SECONDS = 60.0  # longer when recoveries are slow: until 10 s after the last


# a hang guard, not a bound on recovery (the run's own checks bound each fault's): a quiet AVX2-only
# 2-core machine takes about 190 s, and a loaded one more
@pytest.mark.timeout(600)
def test_chaos_short_loses_no_post_counts_none_twice_and_recovers_from_every_fault(
    kafka_cluster, tmp_path, report
):
    redis_server = PersistentRedis(tmp_path / "redis")
    redis_server.start()
    try:
        doc = run(kafka_cluster, redis_server, RATE, SECONDS, [Planned(k, at) for k, at in SHORT], tmp_path)
    finally:
        redis_server.stop()
    print(json.dumps(doc, indent=1))  # shown when the test fails
    failed = [c for c in doc["checks"] if not c["passed"]]
    assert not failed, json.dumps(failed, indent=1)
    assert [f["kind"] for f in doc["faults"]] == [k for k, _ in SHORT]
    recoveries = ", ".join(f"{f['kind']} {f['recovery_s']} s" for f in doc["faults"])
    report(
        f"chaos: {doc['posts']} posts, {doc['events']} events ({doc['duplicates']} duplicates), "
        f"recovery {recoveries}, {doc['wall_s']:.0f} s"
    )
