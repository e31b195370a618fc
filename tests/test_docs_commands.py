"""The commands and imports that README and docs/ show exist: a renamed option or module fails here, not for a
reader."""

import importlib
import re
import shlex
from pathlib import Path

from typer.main import get_command

from promptrec.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "eval" / "results").glob("*/README.md")),
        *sorted((ROOT / "lab").glob("*.md")), *sorted((ROOT / "lab" / "notes").glob("*.md")),
        *sorted((ROOT / "lab" / "results").glob("*/README.md"))]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # the pages whose Python blocks are shown


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
    if hasattr(command, "commands") and not (words and words[0].startswith("-")):
        return [f"no command {words[0]!r}" if words else "a group without its command"]
    options = {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"--help"}
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


def shown_imports(text: str) -> set[str]:
    """`from promptrec... import ...` / `import promptrec...` statements of the text's ```python blocks (a
    parenthesised import list is joined into one line)."""
    statements = set()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        block = re.sub(r"\(([^()]*)\)", lambda m: m.group(1).replace("\n", " "), block)
        statements |= {line.split("#")[0].strip() for line in block.splitlines()
                       if re.match(r"\s*(from|import) promptrec", line)}
    return statements


def test_every_import_readme_and_docs_show_resolves():
    checked = 0
    for page in PAGES:
        for statement in shown_imports(page.read_text()):
            checked += 1
            words = statement.split()
            module = importlib.import_module(words[1])
            imported = " ".join(words[3:]).split(",") if words[0] == "from" else []
            names = [n.split()[0] for n in imported if n.strip()]  # `name as alias`: the name
            missing = [n for n in names if not hasattr(module, n)]
            assert not missing, f"{page.relative_to(ROOT)}: `{statement}`: {words[1]} has no {missing}"
    assert checked >= 1


def test_a_parenthesised_import_is_read_whole():
    text = "```python\nfrom promptrec import (generate_demo,\n    fit_retriever)  # x\nx = 1\n```"
    assert shown_imports(text) == {"from promptrec import generate_demo,     fit_retriever"}


def leaf_commands(command=None, path=()) -> list[str]:
    """Every command of the CLI, as typed (`promptrec data info`)."""
    command = command or get_command(app)
    if not hasattr(command, "commands"):
        return [" ".join(("promptrec", *path))]
    return [leaf for name, sub in sorted(command.commands.items()) if not getattr(sub, "hidden", False)
            for leaf in leaf_commands(sub, (*path, name))]


def test_readme_command_table_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    listed = {" ".join(re.findall(r"^\| `(promptrec [^`]+)`", line, re.M)[0].split()[:3]) for line in
              section.splitlines() if line.startswith("| `promptrec")}
    missing = [c for c in leaf_commands() if not any(f"{entry} ".startswith(f"{c} ") for entry in listed)]
    assert not missing, f"README's command table lacks {missing}"
