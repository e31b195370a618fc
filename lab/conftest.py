"""`pytest lab/tests` from the repository root: the studies (lab/*.py) and the benchmarks they borrow from
(eval/benchmarks/*.py) import as top-level modules, as they do when run as scripts."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "eval" / "benchmarks", ROOT / "lab"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
