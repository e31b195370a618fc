"""`promptrec batch`: top-k for a user base, in process and on a real two-node Ray cluster on loopback (same
output), resumable batch by batch, failed batches retried and then reported (never dropped)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from promptrec.batch import BatchConfig, RerankSpec, recommend_all
from promptrec.cli.main import app
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.testing.process import free_port


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user_id", "now", "rank"]).reset_index(drop=True)


def test_in_process_batch_writes_top_k_per_user_and_resumes(served_demo, tmp_path):
    retriever_path, ds, now = served_demo
    cfg = BatchConfig(k=5, batch_size=64)
    report = recommend_all(retriever_path, tmp_path / "out", runner="local", config=cfg, progress=False)
    users = pd.unique(ds.interactions.frame["user_id"].astype(str))
    assert report.users == len(users) and report.batches == -(-len(users) // 64) and not report.failed
    out = pd.read_parquet(tmp_path / "out")
    assert len(out) == report.rows == 5 * len(users)
    assert out.groupby("user_id")["rank"].apply(list).map([1, 2, 3, 4, 5].__eq__).all()
    assert not out.duplicated(["user_id", "item_id"]).any() and not out["reranked"].any()
    # the same as asking the retriever for one user at the default time (one second after the last event)
    retriever = TimeAwareRetriever.load(retriever_path)
    last = pd.read_parquet(retriever_path / "events.parquet")["timestamp"].max()
    user = str(users[3])
    expected = retriever.retrieve(user, last + pd.Timedelta(seconds=1), k=5)
    mine = out[out["user_id"] == user]
    assert list(mine["item_id"]) == [c.item_id for c in expected]
    assert list(mine["score"]) == pytest.approx([c.score for c in expected])

    # resume: only missing parts are computed, and the result is the same
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    for p in parts[1:3]:
        p.unlink()
    again = recommend_all(retriever_path, tmp_path / "out", runner="local", config=cfg, progress=False)
    assert (again.already_done, again.computed) == (len(parts) - 2, 2)
    pd.testing.assert_frame_equal(_sorted(pd.read_parquet(tmp_path / "out")), _sorted(out))
    with pytest.raises(ValueError, match="other settings"):
        recommend_all(retriever_path, tmp_path / "out", runner="local", config=BatchConfig(k=6), progress=False)

    # a file of users with their own times (a user may come twice); each answer uses the past of its time only
    earlier = now - pd.Timedelta(days=20)
    times = pd.DataFrame({"user_id": [user, user, "nobody-yet"],
                          "now": [now.isoformat(), earlier.isoformat(), now.isoformat()]})
    times.to_csv(tmp_path / "users.csv", index=False)
    per_user = recommend_all(retriever_path, tmp_path / "per-user", users_file=tmp_path / "users.csv", runner="local",
                             config=cfg, progress=False)
    rows = pd.read_parquet(tmp_path / "per-user")
    assert per_user.users == 3 and set(rows["user_id"]) == {user, "nobody-yet"}
    assert rows.groupby(["user_id", "now"]).size().to_dict() == {(user, now): 5, (user, earlier): 5, ("nobody-yet", now): 5}
    then = rows[(rows["user_id"] == user) & (rows["now"] == earlier)]
    assert list(then["item_id"]) == [c.item_id for c in retriever.retrieve(user, earlier, k=5)]


def test_failed_batches_are_retried_then_reported_not_dropped(served_demo, tmp_path):
    retriever_path, _, _ = served_demo
    dead = f"http://127.0.0.1:{free_port()}/v1"  # no LLM server listens here
    result = CliRunner().invoke(app, ["batch", "--retriever", str(retriever_path), "--out", str(tmp_path / "out"),
                                      "--users", "u0001,u0002,u0003", "--batch-size", "2", "--retries", "1",
                                      "--llm", "openai", "--llm-url", dead, "--runner", "local"])
    assert result.exit_code == 1, result.output
    assert "2 batch(es) failed" in result.output and "2 attempts" in result.output
    assert not list((tmp_path / "out").glob("part-*")) and (tmp_path / "out" / "_report.json").exists()


def test_two_node_ray_cluster_gives_the_in_process_output(served_demo, ray_cluster, tmp_path):
    """`promptrec batch --ray-address` as a user runs it (a driver process holding the cluster's token)."""
    address, env = ray_cluster
    retriever_path, _, now = served_demo
    cfg = BatchConfig(k=10, batch_size=25)
    local = recommend_all(retriever_path, tmp_path / "local", runner="local", config=cfg, now=now, progress=False)
    proc = subprocess.run([sys.executable, "-m", "promptrec.cli.main", "batch", "--retriever", str(retriever_path),
                           "--out", str(tmp_path / "ray"), "--now", now.isoformat(), "--k", "10", "--batch-size", "25",
                           "--runner", "ray", "--workers", "2", "--ray-address", address],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    on_ray = json.loads((tmp_path / "ray" / "_report.json").read_text())
    assert on_ray["computed"] == local.computed == on_ray["batches"] and not on_ray["failed"]
    assert on_ray["runner"].startswith("ray (2 worker(s) at 127.0.0.1")
    assert len({w.split(" pid")[0] for w in on_ray["batches_per_worker"]}) == 2  # both nodes worked
    pd.testing.assert_frame_equal(_sorted(pd.read_parquet(tmp_path / "ray")),
                                  _sorted(pd.read_parquet(tmp_path / "local")))


@pytest.mark.vllm
def test_batch_reranks_with_the_llm_engine_each_worker_owns(served_demo, tmp_path, default_model_dir):
    retriever_path, _, now = served_demo
    cfg = BatchConfig(k=5, candidates=10, batch_size=3, rerank=RerankSpec(backend="vllm"))
    report = recommend_all(retriever_path, tmp_path / "out", users=["u0001", "u0002", "u0003", "u0004"],
                           runner="local", config=cfg, now=now, progress=False)
    assert report.computed == 2 and not report.failed
    out = pd.read_parquet(tmp_path / "out")
    assert len(out) == 20 and out["reranked"].all() and out["llm_score"].notna().all() and out["reason"].isna().all()
    retriever = TimeAwareRetriever.load(retriever_path)
    for user, rows in out.groupby("user_id"):  # the LLM orders the retriever's top candidates
        assert set(rows["item_id"]) <= {c.item_id for c in retriever.retrieve(user, now, k=10)}
