import asyncio
from datetime import UTC, datetime

from stream_ner.aggregate.outbox import Outbox
from stream_ner.errors import RedisUnavailable
from stream_ner.messages import BrandAggregate


def record(brand: str, posts: int, final: bool = False) -> dict:
    return BrandAggregate(
        brand=brand,
        unknown=False,
        window="1m",
        window_start=datetime(2024, 5, 1, 12, tzinfo=UTC),
        window_end=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
        mentions=posts,
        posts=posts,
        authors=1,
        co_brands=[],
        co_entities=[],
        sample_post_ids=[],
        sentiment_sum=0.0,
        sentiment_count=0,
        final=final,
    ).model_dump(mode="json")


class FlakySink:
    """Fails while ``down``; keeps what it received, like a store with absolute values."""

    def __init__(self) -> None:
        self.down = True
        self.failures = 0
        self.stored: dict[str, int] = {}

    async def write(self, records):
        if self.down:
            self.failures += 1
            raise RedisUnavailable("down")
        for r in records:
            self.stored[r["brand"]] = r["posts"]


def test_a_failed_batch_is_retried_with_the_newest_state_and_nothing_is_lost():
    state = {"nike": record("nike", 1), "adidas": record("adidas", 1)}
    sink = FlakySink()
    outbox = Outbox("redis", sink.write, interval_s=0.01, max_backoff_s=0.05)

    async def scenario():
        outbox.mark(["nike", "adidas"])
        task = asyncio.create_task(outbox.run(state.get))
        await asyncio.sleep(0.2)  # sink down: retries with backoff
        state["nike"] = record("nike", 5, final=True)  # changes meanwhile
        outbox.mark(["nike"])
        assert outbox.busy("nike")
        sink.down = False
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not outbox.busy("nike") and not outbox.busy("adidas"):
                break
        task.cancel()

    asyncio.run(scenario())
    assert sink.failures >= 3
    assert sink.stored == {"nike": 5, "adidas": 1}
    assert outbox.final_written == {"nike"}


def test_close_mode_writes_final_states_only():
    state = {"nike": record("nike", 2), "adidas": record("adidas", 3, final=True)}
    sink = FlakySink()
    sink.down = False
    outbox = Outbox("topic", sink.write, interval_s=0.01, final_only=True)
    outbox.mark(["nike", "adidas"])
    asyncio.run(outbox.flush(state.get))
    assert sink.stored == {"adidas": 3}
