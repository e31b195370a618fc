"""Every ```python block of README.md and docs/ runs: one case per page, its blocks in order in one namespace, in a
fresh working directory that holds a small demo dataset (`demo-data/`, 100 users) and its item indexes. A block
whose first line is a comment starting `# not run:` (then the reason) is shown to readers but not run."""

import re
import shutil
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^([ \t]*)```python[^\n]*\n(.*?)^\1```", re.M | re.S)
SKIP = "# not run:"
# Pages whose snippets start a vLLM engine or take long: marked so `make test-fast` / `make test` leave them out
PAGE_MARKS: dict[str, list] = {}


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block, dedented (blocks inside admonitions are indented)."""
    return [(text[:m.start()].count("\n") + 2, textwrap.dedent(m.group(2))) for m in FENCE.finditer(text)]


def runnable(code: str) -> bool:
    first = code.lstrip().splitlines()[0].strip() if code.strip() else ""
    return not first.startswith(SKIP)


def _cases():
    for page in PAGES:
        blocks = python_blocks(page.read_text())
        if blocks:
            name = str(page.relative_to(ROOT))
            yield pytest.param(name, id=name, marks=PAGE_MARKS.get(name, []))


def test_blocks_are_found_and_not_run_is_honoured():
    text = ("x\n```python\na = 1\n```\n\n!!! note\n    ```python\n    # not run: needs a GPU\n    b = 2\n    ```\n"
            "```bash\nc\n```\n")
    blocks = python_blocks(text)
    assert [code for _, code in blocks] == ["a = 1\n", "# not run: needs a GPU\nb = 2\n"]
    assert [line for line, _ in blocks] == [3, 8]
    assert [runnable(code) for _, code in blocks] == [True, False]


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory) -> Path:
    """A folder with demo-data/ (the demo's first 100 users as events.csv + items.csv, as `promptrec data
    export-demo` writes them) and indexes/ holding the item indexes of the demo and of demo-data/, built once."""
    from promptrec import generate_demo, load_dataset
    from promptrec.retriever.fitting import item_index_for

    work = tmp_path_factory.mktemp("docs-demo")
    ds = generate_demo(n_users=100).dataset
    out = work / "demo-data"
    out.mkdir()
    items = ds.catalog.frame.reset_index()
    items["categories"] = items["categories"].map("|".join)
    items.to_csv(out / "items.csv", index=False)
    ds.interactions.frame.to_csv(out / "events.csv", index=False)
    item_index_for(ds, work / "indexes")
    item_index_for(load_dataset(out), work / "indexes")
    return work


@pytest.mark.parametrize("page", list(_cases()))
def test_page_snippets_run(page, demo_workdir, tmp_path, monkeypatch):
    for entry in demo_workdir.iterdir():
        shutil.copytree(entry, tmp_path / entry.name)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran, start, cpu = 0, time.perf_counter(), time.process_time()
    for line, code in python_blocks((ROOT / page).read_text()):
        if not runnable(code):
            continue
        exec(compile(code, f"{page}, block at line {line}", "exec"), namespace)
        ran += 1
    print(f"{page}: {ran} blocks in {time.perf_counter() - start:.1f} s ({time.process_time() - cpu:.1f} s of CPU)")
