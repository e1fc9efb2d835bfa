"""The documentation in docs/ is checked against the code.

Conventions in the Markdown files:

- A ```python block whose first line is ``# file: NAME`` is a file the reader saves: it is
  written to the example directory, not executed.
- A ```python test block is a notebook cell. All cells of one document run in order in one
  Python process (top-level ``await`` allowed, as in Jupyter), in a fresh directory that
  holds the document's ``# file:`` files. Other ```python blocks are fragments and are not
  run.
- Every ``$ provtask ...`` and ``$ python ...`` line of a ```console block is run in that
  directory, in document order and before the cells. It must exit 0, unless the line ends
  with ``# exits with status N``.

The CLI reference (docs/cli.md) must show every command's real ``--help`` text and name
every option; the API reference (docs/api.md) must name everything in ``provtask.__all__``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import provtask
from provtask.cli import main

DOCS = Path(__file__).parent.parent / "docs"
PAGES = [
    "index",
    "tutorial",
    "querying",
    "concepts",
    "architecture",
    "efficiency",
    "caching",
    "restart",
    "reports",
    "sharing",
    "configuration",
    "partitions",
    "mpi",
    "from-jobqueue-features",
    "cli",
    "schema",
    "api",
    "reliability",
    "performance",
]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
EXIT_NOTE = re.compile(r"#\s*exits with status (\d+)\s*$")

# Runs the cells given as JSON; the guard keeps spawned worker processes from rerunning them.
CELL_RUNNER = """\
import ast, asyncio, inspect, json, sys

def main():
    document, cells = json.loads(open(sys.argv[1]).read())
    namespace = {"__name__": "__main__"}
    for line, source in cells:
        # Padding makes tracebacks point at the line of the Markdown file.
        code = compile("\\n" * line + source, document, "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        outcome = eval(code, namespace)
        if inspect.iscoroutine(outcome):
            asyncio.run(outcome)

if __name__ == "__main__":
    main()
"""


def blocks(page: str) -> list[tuple[str, str, int]]:
    """(info string, body, line of the body's first line) of every fenced block."""
    text = (DOCS / f"{page}.md").read_text()
    return [
        (m.group(1).strip(), m.group(2), text.count("\n", 0, m.start(2)))
        for m in FENCE.finditer(text)
    ]


def written_files(page: str) -> dict[str, str]:
    files = {}
    for info, body, _ in blocks(page):
        first = body.partition("\n")[0]
        if info.split()[:1] == ["python"] and first.startswith("# file:"):
            files[first.removeprefix("# file:").strip()] = body
    return files


def cells(page: str) -> list[tuple[int, str]]:
    return [(line, body) for info, body, line in blocks(page) if info.split() == ["python", "test"]]


def example_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROVTASK_STORE"}  # use ./store
    return {**env, "COLUMNS": "120", "PYTHONWARNINGS": "ignore"}


def run_cells(page: str, directory: Path) -> None:
    program = directory / "_cells.py"
    program.write_text(CELL_RUNNER)
    payload = directory / "_cells.json"
    payload.write_text(json.dumps([str(DOCS / f"{page}.md"), cells(page)]))
    done = subprocess.run(
        [sys.executable, str(program), str(payload)],
        cwd=directory,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"cells of docs/{page}.md failed:\n{done.stdout}\n{done.stderr}"


def console_commands(page: str) -> list[tuple[str, int]]:
    commands = []
    for info, body, _ in blocks(page):
        if info.split()[:1] != ["console"]:
            continue
        for line in body.splitlines():
            if line.startswith(("$ provtask ", "$ python ")):
                note = EXIT_NOTE.search(line)
                commands.append((line[2:], int(note.group(1)) if note else 0))
    return commands


def test_the_architecture_page_names_every_engine_module():
    text = (DOCS / "architecture.md").read_text()
    engine = Path(provtask.__file__).parent / "engine"
    missing = [
        p.name
        for p in engine.glob("*.py")
        if p.name != "__init__.py" and f"engine/{p.name}" not in text
    ]
    assert not missing, f"docs/architecture.md does not say what these do: {missing}"


def test_every_page_exists_and_the_index_links_to_it():
    index = (DOCS / "index.md").read_text()
    for page in PAGES:
        assert (DOCS / f"{page}.md").is_file()
        assert page == "index" or f"({page}.md)" in index


def run_command(command: str, expected: int, directory: Path) -> None:
    argv = shlex.split(command, comments=True)
    program = {"provtask": [sys.executable, "-m", "provtask.cli"], "python": [sys.executable]}
    done = subprocess.run(
        program[argv[0]] + argv[1:],
        cwd=directory,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == expected, f"$ {command}\n{done.stdout}\n{done.stderr}"


def has_examples(page: str) -> bool:
    return bool(console_commands(page) or cells(page))


def test_the_tutorial_has_examples_to_run():
    # Guards against a convention change silently leaving nothing to run.
    assert "sweep.py" in written_files("tutorial")
    assert len(console_commands("tutorial")) >= 6 and len(cells("tutorial")) >= 4


@pytest.mark.parametrize("page", [page for page in PAGES if has_examples(page)])
def test_examples_run(page, tmp_path):
    for name, body in written_files(page).items():
        (tmp_path / name).write_text(body)
    for command, expected in console_commands(page):
        run_command(command, expected, tmp_path)
    if cells(page):
        run_cells(page, tmp_path)


def test_cli_reference_shows_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    runner = CliRunner()
    commands: list[tuple[list[str], click.Command]] = [([], main)]
    commands += [([name], command) for name, command in main.commands.items()]
    for path, command in commands:
        assert not path or f"## `provtask {path[0]}" in text, f"no section for {path}"
        shown = runner.invoke(main, [*path, "--help"], prog_name="provtask", terminal_width=80)
        assert shown.output in text, f"docs/cli.md lacks the current help of {path}"
        for param in command.params:
            if isinstance(param, click.Argument):
                names = [param.human_readable_name]
            else:
                names = [*param.opts, *param.secondary_opts]
            for name in names:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name


def test_api_reference_names_everything_public():
    text = (DOCS / "api.md").read_text()
    for name in provtask.__all__:
        assert re.search(rf"`(provtask\.)?{re.escape(name)}\b[^`\n]*`", text), name
