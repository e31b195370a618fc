"""One fit path: `promptrec retriever fit` and the library's `fit_retriever` build the same retriever, and the
front door exposes what users need."""

import pandas as pd
import pytest
from typer.testing import CliRunner

import promptrec
from promptrec.cli.main import app
from promptrec.retriever.fitting import RetrieverSettings

from checkin_data import make_checkins


@pytest.fixture(scope="module")
def checkin_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fitpath") / "checkins.csv"
    make_checkins(n_users=30, days=35, seed=3).to_csv(path, index=False)
    return path


def test_the_front_door_has_the_names_users_need():
    from promptrec import (Context, ItemIndex, Reranker, TimeAwareRetriever, evaluate, fit_retriever,  # noqa: F401
                           load_dataset, rerank)
    from promptrec.eval import evaluate as twin
    from promptrec.retriever import TimeAwareRetriever as same

    assert same is TimeAwareRetriever and twin is evaluate
    for package in ("promptrec", "promptrec.data", "promptrec.index", "promptrec.retriever", "promptrec.prompt",
                    "promptrec.reranker", "promptrec.eval"):
        module = __import__(package, fromlist=["_"])
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, (package, missing)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        promptrec.NoSuchThing  # noqa: B018


def test_cli_and_library_fit_the_same_retriever(checkin_file, tmp_path):
    root, out = tmp_path / "indexes", tmp_path / "cli-retriever"
    result = CliRunner().invoke(app, ["retriever", "fit", str(checkin_file), "--out", str(out), "--root", str(root)])
    assert result.exit_code == 0, result.output
    from_cli = promptrec.TimeAwareRetriever.load(out)

    ds = promptrec.load_dataset(checkin_file)
    from_library = promptrec.fit_retriever(ds, index_root=root)
    assert sorted(from_cli.signals) == sorted(from_library.signals)
    assert {"place", "returns"} <= set(from_library.signals)  # auto: the scene and repeats of check-ins

    users = sorted(ds.interactions.frame["user_id"].unique())[:12]
    for user in users:
        for now in ("2012-12-05T08:30:00-05:00", "2012-12-08T19:10:00-05:00"):
            a = [c.item_id for c in from_cli.retrieve(user, now, k=20)]
            b = [c.item_id for c in from_library.retrieve(user, now, k=20)]
            assert a == b and len(a) == 20, (user, now)


def test_settings_refuse_what_they_do_not_know():
    with pytest.raises(TypeError, match="unknown retriever setting"):
        RetrieverSettings().replace(signal="auto")
    with pytest.raises(ValueError, match="tune='yes'"):
        RetrieverSettings(tune="yes")
    assert RetrieverSettings(signals=["trending"]).wants_index() is False
    assert RetrieverSettings().wants_index() is True


def test_untuned_fit_keeps_the_default_weights(checkin_file):
    ds = promptrec.load_dataset(checkin_file)
    r = promptrec.fit_retriever(ds, index=None, tune=False, signals=["transition", "trending"])
    assert r.tuning is None and r.ranker is None
    assert isinstance(r.retrieve(str(ds.interactions.frame["user_id"].iloc[0]), pd.Timestamp("2012-12-01", tz="UTC"),
                                 k=5), list)
