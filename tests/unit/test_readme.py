import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_is_the_generated_one():
    text = README.read_text()
    table = re.search(r"<!-- settings:start[^>]*-->\n(.*?)<!-- settings:end -->", text, re.S)
    assert table, "README lost its settings table markers"
    generated = subprocess.run(
        [sys.executable, "-m", "stream_ner", "config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table.group(1) == generated, "regenerate the README table with `stream-ner config --markdown`"


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in README.read_text() and "make test" in ci
