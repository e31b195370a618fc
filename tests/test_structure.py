"""The package's shape: small modules, and imports that point down the stages
(data -> index -> retriever -> prompt -> reranker -> eval / serve), never up."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "promptrec"
# stage of each subpackage; top-level modules (context, models, metrics, templates...) are foundations that
# every stage may use
STAGES = {"data": 0, "index": 1, "sequential": 2, "retriever": 2, "prompt": 3, "reranker": 4, "finetune": 4,
          "eval": 5, "serve": 5, "batch": 5, "cli": 6, "testing": 6}
MAX_LINES = 400


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.get(parts[1]) if len(parts) > 1 and parts[0] == "promptrec" else None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _module(path: Path) -> str:
    return ".".join(("promptrec",) + path.relative_to(PACKAGE).with_suffix("").parts)


def test_no_module_imports_a_later_stage():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = _stage(_module(path))
        if mine is None:  # a foundation module: it may read the data stage only (the package's front door: all)
            upward += [f"{_module(path)} -> {m}" for m in _imports(path) if (_stage(m) or 0) > 0
                       and _module(path) not in ("promptrec.__init__", "promptrec._lazy")]
            continue
        upward += [f"{_module(path)} -> {m}" for m in _imports(path) if (_stage(m) or 0) > mine]
    assert upward == [], "imports against the stages:\n" + "\n".join(upward)


def test_every_module_is_small():
    big = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"
