from stream_ner.worker.batcher import Batcher


def test_closes_at_max_posts():
    b: Batcher[int] = Batcher(max_posts=3, max_tokens=1000, max_wait=1.0)
    assert b.add(1, 10, 0.0) is None
    assert b.add(2, 10, 0.0) is None
    assert b.add(3, 10, 0.0) == [1, 2, 3]
    assert len(b) == 0


def test_closes_before_token_budget_is_exceeded():
    b: Batcher[str] = Batcher(max_posts=10, max_tokens=100, max_wait=1.0)
    assert b.add("a", 60, 0.0) is None
    assert b.add("b", 60, 0.0) == ["a"]  # "b" would overflow: "a" leaves alone, "b" opens the next batch
    assert b.flush() == ["b"]


def test_oversize_item_forms_a_batch_of_its_own():
    b: Batcher[str] = Batcher(max_posts=10, max_tokens=100, max_wait=1.0)
    assert b.add("huge", 500, 0.0) is None
    assert b.due(0.0) is None
    assert b.add("next", 1, 0.1) == ["huge"]


def test_due_after_max_wait_from_the_oldest_item():
    b: Batcher[int] = Batcher(max_posts=10, max_tokens=1000, max_wait=0.05)
    b.add(1, 1, 10.0)
    b.add(2, 1, 10.04)
    assert b.due(10.049) is None
    assert b.deadline() == 10.05
    assert b.due(10.05) == [1, 2]
    assert b.due(11.0) is None
