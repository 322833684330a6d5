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


def python_examples(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def expected_output(code: str) -> str:
    """The comment lines that end a block, each '# ' + a line the block prints."""
    lines = code.rstrip("\n").splitlines()
    tail: list[str] = []
    while lines and lines[-1].startswith("# "):
        tail.insert(0, lines.pop()[2:])
    return "".join(line + "\n" for line in tail)


def test_readme_python_examples_run_and_print_what_they_show():
    examples = python_examples(README.read_text())
    assert examples, "the README lost its Python examples"
    for code in examples:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected_output(code), code
