"""``stream-ner produce`` against a real broker: a line the topic cannot take is reported, the rest go."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from confluent_kafka.admin import AdminClient, NewTopic

from stream_ner.topics import wait_for_leaders
from tests.integration.conftest import consume_all, unique_name

LIMIT = 4096  # the topic's max.message.bytes


def test_a_line_over_the_topics_max_message_size_is_reported_and_the_rest_still_go(
    kafka_bootstrap, admin: AdminClient, request, tmp_path
):
    topic = unique_name(request)
    new = NewTopic(topic, 1, 1, config={"max.message.bytes": str(LIMIT)})
    admin.create_topics([new])[topic].result(timeout=30)
    wait_for_leaders(admin, [topic])
    try:
        posts = [{"id": f"p{i}", "text": f"post {i} about Nike"} for i in range(5)]
        posts[2]["text"] = "x" * (2 * LIMIT)
        path = tmp_path / "posts.jsonl"
        path.write_text(
            "\n".join(json.dumps(p) for p in posts[:3]) + "\n\n" + "\n".join(json.dumps(p) for p in posts[3:])
        )
        done = subprocess.run(
            [sys.executable, "-m", "stream_ner", "produce", str(path), "--topic", topic],
            env=os.environ | {"STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        size = len(json.dumps(posts[2]).encode()) + len(b"p2")  # value and key
        lines = [line for line in done.stderr.splitlines() if line.startswith(("line ", "sent "))]
        assert lines == [
            f"line 3: {size:,} bytes, over the {LIMIT:,} bytes {topic} takes (max.message.bytes); not sent",
            f"sent 4 records to {topic} (1 failed)",
        ]
        records = consume_all(kafka_bootstrap, topic, 4, timeout=30)
        assert sorted(r.key for r in records) == [b"p0", b"p1", b"p3", b"p4"]
    finally:
        admin.delete_topics([topic])
