"""``configure_logging``: one handler in the chosen format, libraries held at WARNING unless DEBUG."""

import json
import logging

import pytest

from stream_ner.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    library = logging.getLogger("somelib")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    library.setLevel(logging.NOTSET)


def test_a_library_logs_warnings_but_not_its_info_lines_at_info(capsys):
    configure_logging("INFO", "json", libraries=("somelib",))
    logging.getLogger("somelib.consumer").info("Starting...")
    logging.getLogger("somelib.consumer").warning("coordinator lost")
    logging.getLogger("stream_ner.thing").info("ours")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["logger"], r["msg"]) for r in records] == [
        ("somelib.consumer", "coordinator lost"),
        ("stream_ner.thing", "ours"),
    ]


def test_at_debug_a_library_logs_everything(capsys):
    configure_logging("DEBUG", "text", name="aggregate", libraries=("somelib",))
    logging.getLogger("somelib.consumer").debug("fetch request")
    line = capsys.readouterr().err.strip()
    assert line.endswith("DEBUG [aggregate] somelib.consumer: fetch request")
