"""Rerank requests for tests: demo test targets and the retriever's candidates for them."""

from promptrec.data.splits import leave_last_out
from promptrec.retriever.retriever import TimeAwareRetriever


def demo_targets_and_candidates(demo, n: int, k: int):
    """(dataset, split, the first ``n`` test targets, each one's top ``k`` from a small fitted retriever)."""
    ds = demo.dataset
    split = leave_last_out(ds.interactions)
    retriever = TimeAwareRetriever(signals=["transition", "trending", "freshness"]).fit(split.train, ds.catalog,
                                                                                        log=split.full)
    targets = split.test[:n]
    return ds, split, targets, retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=k)
