"""Histories without timestamps: RecBole sequence files and plain sequence files load in order with their times
marked absent; clock signals, time splits and time words are left out or refused; the candidates protocol ranks
a file's lists (a small table computed by hand)."""

import logging

import pandas as pd
import pytest

from promptrec import load_dataset
from promptrec.data.order import ORDER_END, steps_back_word
from promptrec.data.problems import DataError
from promptrec.data.splits import make_split

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
# four users' whole sequences, oldest first; the last item is the test item (leave-last-out)
SEQUENCES = {"u1": "a b c d", "u2": "d b e c", "u3": "a d e b", "u4": "a c d e"}


def write_recbole(folder, sequences=SEQUENCES, name="games"):
    """RecBole's split form: per role one row per user (train: history + next; valid, test: one item longer)."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, cut in (("train", 2), ("valid", 1), ("test", 0)):
        rows = []
        for user, seq in sequences.items():
            items = seq.split()[: len(seq.split()) - cut]
            rows.append(f"{user}\t{' '.join(items[:-1])}\t{items[-1]}\n")
        (folder / f"{name}.{role}.inter").write_text(HEADER + "".join(rows))
    titles = sorted({i for s in sequences.values() for i in s.split()} | {"f", "g"})
    (folder / f"{name}.item").write_text("item_id:token\ttitle:token_seq\n" + "".join(f"{i}\tGame {i.upper()}\n"
                                                                                      for i in titles))
    return folder


def ordered(ds):
    f = ds.interactions.frame
    return {u: " ".join(g["item_id"]) for u, g in f.groupby("user_id", sort=True)}


def test_recbole_sequence_files_keep_order_and_mark_times_absent(tmp_path):
    ds = load_dataset(write_recbole(tmp_path / "games"))
    assert ordered(ds) == SEQUENCES
    assert ds.interactions.times_known is False and ds.describe()["times_known"] is False
    assert ds.catalog["a"].title == "Game A" and len(ds.catalog) == 7
    last = ds.interactions.frame.groupby("user_id")["timestamp"].max()
    assert (last == ORDER_END).all()  # every user's last event at the same pseudo-time
    split = make_split(ds.interactions, "leave-last-out")
    assert sorted((t.user_id, t.item_id) for t in split.test) == [("u1", "d"), ("u2", "c"), ("u3", "b"), ("u4", "e")]
    assert split.train.times_known is False and split.full.before(ORDER_END).times_known is False


def test_one_sequence_file_with_a_row_per_prefix_is_joined(tmp_path):
    rows = "u1\ta\tb\nu1\ta b\tc\nu1\ta b c\td\nu2\tx\ty\n"
    (tmp_path / "aug.inter").write_text(HEADER + rows)
    assert ordered(load_dataset(tmp_path)) == {"u1": "a b c d", "u2": "x y"}


def test_sequence_rows_that_do_not_belong_together_are_refused(tmp_path):
    (tmp_path / "bad.inter").write_text(HEADER + "u1\ta b\tc\nu1\tx y\tz\n")
    with pytest.raises(DataError, match=r"bad.inter, row 3.*u1.*neither repeats nor continues"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("text", ["u1\ta c b\nu2\tx y\n", "user_id,item_ids\nu1,a c b\nu2,x y\n",
                                  "u1\ta,c,b\nu2\tx,y\n"])
def test_plain_sequence_files_are_detected_and_keep_order(tmp_path, text):
    path = tmp_path / "histories.tsv"
    path.write_text(text)
    ds = load_dataset(path)
    assert ordered(ds) == {"u1": "a c b", "u2": "x y"} and ds.interactions.times_known is False
    assert ordered(load_dataset(path, format="sequences")) == ordered(ds)


def test_plain_sequence_file_errors_name_the_file_line_and_fix(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("u1\ta b\nu2\t\n")
    with pytest.raises(DataError, match=r"s.txt.*line 2.*not a user id followed by items.*Fix: write each line"):
        load_dataset(path, format="sequences")
    path.write_text("u1\ta b\nu1\tc\n")
    with pytest.raises(DataError, match=r"user 'u1' is on line 1 and again on line 2.*one line"):
        load_dataset(path, format="sequences")


def test_time_windows_and_time_splits_are_refused_leave_last_out_works(tmp_path):
    folder = write_recbole(tmp_path / "games")
    with pytest.raises(ValueError, match="since / until.*needs clock times.*only each user's order"):
        load_dataset(folder, since="1999-01-01T00:00Z")
    ds = load_dataset(folder)
    for name in ("temporal", "session"):
        with pytest.raises(ValueError, match=f"split '{name}'.*needs clock times.*leave-last-out"):
            make_split(ds.interactions, name)
    assert len(make_split(ds.interactions, "leave-last-out").test) == 4


def test_auto_signals_leave_out_clock_signals_with_one_message(tmp_path, caplog):
    from promptrec.retriever.fitting import fit_retriever

    ds = load_dataset(write_recbole(tmp_path / "games"))
    with caplog.at_level(logging.WARNING):
        r = fit_retriever(ds, index=None, tune=False)
    said = [m.getMessage() for m in caplog.records if "no times" in m.getMessage()]
    assert len(said) == 1 and "time_context, freshness, habit" in said[0]
    assert set(r.signals) == {"transition", "trending"}
    assert r.signals["trending"].params["window_days"] >= 1e6 and r.fitted_on["times_known"] is False
    # a request's real now lies years after the pseudo-times: order-based scores still count
    top = r.retrieve("u4", pd.Timestamp("2026-12-05T10:00Z"), k=3)  # u4 had a c d e; a -> b and d -> b
    assert top[0].item_id == "b" and top[0].components["transition"] > 0
    with pytest.raises(ValueError, match=r"signal 'time_context' reads clock time.*hour and weekday.*no times"):
        fit_retriever(ds, index=None, tune=False, signals=["transition", "time_context"])
    with pytest.raises(ValueError, match=r"signal 'trending' reads clock time.*window of days"):
        fit_retriever(ds, index=None, tune=False, signals=["trending"])


def test_saved_retriever_keeps_the_mark_and_serves_at_real_times(tmp_path):
    from promptrec.retriever.fitting import fit_retriever
    from promptrec.retriever.retriever import TimeAwareRetriever

    ds = load_dataset(write_recbole(tmp_path / "games"))
    fit_retriever(ds, index=None, tune=False).save(tmp_path / "ret")
    loaded = TimeAwareRetriever.load(tmp_path / "ret")
    assert loaded.events.times_known is False
    assert loaded.retrieve("u2", "2026-12-05T10:00Z", k=2)


def test_prompts_say_the_order_not_the_time(tmp_path):
    from promptrec.prompt.builder import PromptBuilder

    ds = load_dataset(write_recbole(tmp_path / "games"))
    history = ds.interactions.history("u1", before=ORDER_END)
    builder = PromptBuilder()
    items = [ds.catalog["d"], ds.catalog["f"]]
    text = builder.build("listwise", history, items, ORDER_END, ds.catalog).text
    assert "- 3rd most recent: Game A" in text and "- 2nd most recent: Game B" in text
    assert "- most recent: Game C" in text
    assert "ago" not in text and "It is now" not in text and "1999" not in text
    timed = builder.build("listwise", history, items, ORDER_END, ds.catalog, times_known=True).text
    assert "It is now Saturday" in timed and "days ago" in timed  # the switch, and the default for timed data
    assert [steps_back_word(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "most recent", "2nd most recent", "3rd most recent", "4th most recent", "11th most recent",
        "12th most recent", "13th most recent", "21st most recent", "22nd most recent"]


CONFIG = """
name: paper-table
dataset: {{path: games}}
protocols: [candidates]
candidates_file: candidates.tsv
ks: [1, 10]
bootstrap_samples: 50
index_root: {root}
pipelines:
  - {{name: popularity, kind: popularity}}
  - {{name: last week, kind: recent_popularity}}
"""
# each test user's candidates: the test item and items the user has not had (f and g: nobody's)
CANDIDATES = "user_id\tcandidates\nu1\tf d e\nu2\ta c f\nu3\tg f b\nu4\tf e g\nu9\ta b c\n"


def test_candidates_protocol_reproduces_a_hand_computed_table(tmp_path):
    """Popularity before the test time (every user's events but the test items): a 3, d 3, b 2, c 2, e 2,
    f 0, g 0; the user's own items are not recommended. Ranks of the test items among the candidates:
    u1 d (3) over e (2), f: 0; u2 c (2) under a (3): 1; u3 b (2) over g, f: 0; u4 e (2) over f, g: 0.
    HR@1 = 3/4, NDCG@10 = (1 + 1/log2(3) + 1 + 1) / 4, MRR = (1 + 1/2 + 1 + 1) / 4."""
    from promptrec.eval.config import load_config
    from promptrec.eval.runner import run_eval

    write_recbole(tmp_path / "games")
    (tmp_path / "candidates.tsv").write_text(CANDIDATES)
    (tmp_path / "paper.yaml").write_text(CONFIG.format(root=tmp_path / "indexes"))
    res = run_eval(load_config(tmp_path / "paper.yaml"), tmp_path / "out", progress=False)
    row = res["protocols"]["candidates"]["all"]["popularity"]
    assert row["HR@1"] == pytest.approx(0.75)
    assert row["NDCG@10"] == pytest.approx((3 + 1 / 1.5849625007211562) / 4)
    assert row["MRR"] == pytest.approx(0.875)
    assert res["candidates_file"]["lines_without_test_target"] == 1
    assert set(res["protocols"]) == {"candidates"}
    assert "reads clock time" in res["not_run"]["last week"]  # reported; the other pipelines ran
    assert "(d) given candidates" in (tmp_path / "out" / "results.md").read_text()


def test_candidate_lines_without_the_test_item_are_errors(tmp_path):
    from promptrec.data.catalog import Catalog
    from promptrec.eval.candidates import CandidateFile, with_candidates
    from promptrec.eval.config import ConfigError, parse_config
    from promptrec.eval.targets import build_targets

    ds = load_dataset(write_recbole(tmp_path / "games"))
    targets = build_targets(make_split(ds.interactions), ds.catalog, negatives=2)
    path = tmp_path / "c.tsv"
    path.write_text("u1\tf e g\nu2\ta c f\nu3\tg f b\n")
    with pytest.raises(ValueError, match=r"c.tsv: 1 of 4 test targets' users have no line \(e.g. \['u4'\]\).*"
                                         r"line 1 \(user 'u1', test item 'd'\)"):
        with_candidates(targets, CandidateFile.read(path), ds.catalog)
    path.write_text("u1\td zz\nu2\tc\nu3\tb\nu4\te\n")
    with pytest.raises(ValueError, match=r"not in the catalogue \(e.g. \['zz'\]\)"):
        with_candidates(targets, CandidateFile.read(path), ds.catalog)
    assert isinstance(ds.catalog, Catalog)
    with pytest.raises(ConfigError, match="candidates_file"):
        parse_config({"protocols": ["candidates"], "pipelines": [{"kind": "popularity"}]})


def test_a_server_fitted_on_sequences_answers_at_real_times_and_takes_events(tmp_path):
    from promptrec.retriever.fitting import fit_retriever
    from promptrec.testing.process import ServerProcess

    ds = load_dataset(write_recbole(tmp_path / "games"))
    fit_retriever(ds, index=None, tune=False).save(tmp_path / "ret")
    now = "2026-12-05T10:00:00+00:00"
    server_args = ["--retriever", str(tmp_path / "ret"), "--db", str(tmp_path / "events.sqlite"), "--llm", "none"]
    with ServerProcess(*server_args, log=tmp_path / "log") as server, server.client() as client:
        first = client.get("/recommendations/u4", params={"k": 3, "now": now}).json()
        assert first["history_events"] == 4 and first["items"][0]["item_id"] == "b"
        event = {"user_id": "u4", "item_id": "b", "timestamp": "2026-12-05T09:00:00+00:00"}
        assert client.post("/events", json=event).json()["stored"] == 1
        second = client.get("/recommendations/u4", params={"k": 3, "now": now}).json()
        assert second["history_events"] == 5 and "b" not in [i["item_id"] for i in second["items"]]


def test_a_dataset_exported_as_sequence_files_loads_back_in_order_without_times(tmp_path):
    from typer.testing import CliRunner

    from promptrec.cli.main import app
    from promptrec.data.demo import generate_demo

    ds = generate_demo(n_users=30, seed=3).dataset
    ds.interactions.frame.to_csv(tmp_path / "events.csv", index=False)
    items = ds.catalog.frame.reset_index()
    items["categories"] = items["categories"].map("|".join)
    items[["item_id", "title", "categories"]].to_csv(tmp_path / "items.csv", index=False)
    result = CliRunner().invoke(app, ["data", "export-sequences", str(tmp_path), str(tmp_path / "seq"), "--name", "demo"])
    assert result.exit_code == 0, result.output
    back = load_dataset(tmp_path / "seq")
    assert back.interactions.times_known is False
    assert ordered(back) == ordered(ds)  # every user's items in the same order
    assert back.catalog.frame.loc[items["item_id"].iloc[0], "title"] == items["title"].iloc[0]


def test_export_refuses_ids_that_recbole_would_split(tmp_path):
    from promptrec.data.export import write_recbole_sequences
    from promptrec.data.loaders import load_events_with_items

    (tmp_path / "log.csv").write_text("user_id,item_id,timestamp,title\nu 1,a,2024-01-01T00:00:00Z,A\n")
    ds = load_events_with_items(tmp_path / "log.csv")
    with pytest.raises(ValueError, match="user ids contain spaces"):
        write_recbole_sequences(ds, tmp_path / "out")
