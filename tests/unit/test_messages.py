import base64
import json

import pytest

from stream_ner.errors import InvalidPost
from stream_ner.messages import DLQ_VALUE_LIMIT, Origin, Post, parse_post, reject

LIMIT = 20_000


def _post(**fields) -> bytes:
    return json.dumps({"id": "p1", "text": "Loving my new @Nike shoes", **fields}).encode()


def test_valid_post_keeps_metadata_untouched():
    post = parse_post(_post(metadata={"campaign": {"id": 7, "tags": ["a", None]}}, author="amy"), LIMIT)
    assert post == Post(
        id="p1",
        text="Loving my new @Nike shoes",
        author="amy",
        metadata={"campaign": {"id": 7, "tags": ["a", None]}},
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "null_value"),
        (b"\xff\xfe\x00garbage", "not_utf8"),
        (b'{"id": "p1", "text": ', "invalid_json"),
        (b'["a list"]', "not_an_object"),
        (b'{"id": "p1"}', "missing_text"),
        (b'{"text": "no id"}', "missing_id"),
        (b'{"id": "p1", "text": 42}', "invalid_field"),
        (b'{"id": "p1", "text": null}', "invalid_field"),
        (b'{"id": "p1", "text": "  \\n\\t "}', "empty_text"),
        (b'{"id": "p1", "text": "hi", "colour": "red"}', "unknown_field"),
        (b'{"id": "p1", "text": "hi", "created_at": "yesterday"}', "invalid_field"),
        (json.dumps({"id": "p1", "text": "a" * (LIMIT + 1)}).encode(), "text_too_long"),
        (json.dumps({"id": "p1", "text": "a" * 1_000_000}).encode(), "too_large"),
    ],
)
def test_each_bad_input_has_its_own_code(value, code):
    with pytest.raises(InvalidPost) as caught:
        parse_post(value, LIMIT)
    assert caught.value.code == code
    assert caught.value.reason


def test_rejected_keeps_the_original_bytes_recoverable():
    origin = Origin(topic="raw-posts", partition=2, offset=41, timestamp_ms=1_700_000_000_000)
    raw = b"\xff\xfe not utf-8"
    record = reject(InvalidPost("not_utf8", "bad bytes"), raw, b"k1", origin)
    assert record.value_encoding == "base64" and base64.b64decode(record.value) == raw
    assert record.key == "k1" and record.key_encoding == "utf-8"
    back = json.loads(record.model_dump_json())
    assert back["origin"] == {
        "topic": "raw-posts",
        "partition": 2,
        "offset": 41,
        "timestamp_ms": 1_700_000_000_000,
    }
    assert reject(InvalidPost("null_value", "null"), None, None, origin).value_encoding == "null"


def test_an_oversize_value_is_cut_in_its_rejection_but_its_size_is_kept():
    origin = Origin(topic="raw-posts", partition=0, offset=1, timestamp_ms=None)
    raw = json.dumps({"id": "p1", "text": "a" * 1_000_000}).encode()
    record = reject(InvalidPost("too_large", "too large"), raw, None, origin)
    assert record.value_truncated and record.value_bytes == len(raw)
    assert record.value == raw[:DLQ_VALUE_LIMIT].decode()
    assert len(record.model_dump_json()) < 2 * DLQ_VALUE_LIMIT
    small = reject(InvalidPost("invalid_json", "x"), b"{", None, origin)
    assert not small.value_truncated and small.value_bytes == 1
