"""The commands and imports that README and docs/ show exist: a renamed option or module fails here, not for a
reader."""

import importlib
import re
import shlex
from pathlib import Path

from typer.main import get_command

from promptrec.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "eval" / "results").glob("*/README.md"))]


def shown_commands(text: str) -> list[str]:
    """`promptrec ...` lines of the text's shell blocks (continuations joined, comments cut) and inline code."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(promptrec [^`]+)`", text)
    cut = (" ".join(line.split("  #")[0].split(" # ")[0].split()) for line in lines)
    return [line for line in cut if line.startswith("promptrec ")]


def unknown_parts(line: str) -> list[str]:
    """What the command line names that the CLI does not have: a subcommand, or options of the command."""
    command, words = get_command(app), shlex.split(line)[1:]
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    if hasattr(command, "commands"):
        return [f"no command {words[0]!r}" if words else "a group without its command"]
    options = {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))}
    return [w for w in words if w.startswith("--") and w.split("=")[0] not in options]


def test_every_shown_command_and_option_exists():
    checked, problems = 0, []
    for doc in DOCS:
        for line in shown_commands(doc.read_text()):
            checked += 1
            problems += [f"{doc.relative_to(ROOT)}: `{line[:100]}`: {p}" for p in unknown_parts(line)]
    assert checked >= 40, checked  # README alone shows about 50
    assert not problems, "\n".join(problems)


def test_a_renamed_option_or_command_is_reported():
    text = ("```bash\npromptrec eval eval/configs/demo.yaml --out x \\\n    --no-such-flag  # comment\n"
            "promptrec data infos x\n```")
    assert shown_commands(text) == ["promptrec eval eval/configs/demo.yaml --out x --no-such-flag",
                                    "promptrec data infos x"]
    assert unknown_parts(shown_commands(text)[0]) == ["--no-such-flag"]
    assert unknown_parts(shown_commands(text)[1]) == ["no command 'infos'"]


def test_every_import_readme_shows_resolves():
    readme = (ROOT / "README.md").read_text()
    imports = {line.split("#")[0].strip() for block in re.findall(r"```python\n(.*?)```", readme, re.S)
               for line in block.splitlines() if re.match(r"\s*(from|import) promptrec", line)}
    assert imports
    for statement in imports:
        words = statement.split()
        module = importlib.import_module(words[1])
        names = [n.strip(",") for n in words[3:]] if words[0] == "from" else []
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"README: `{statement}`: {words[1]} has no {missing}"
