"""`promptrec train-sequential`: train SASRec (optionally time-aware) on a split's training events."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, kv_table, load, user_errors


def train_sequential(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    out: Optional[Path] = typer.Option(None, help="Folder for model.pt + manifest.json "
                                                  "(default indexes/<dataset>-sasrec[-time])."),
    split: str = typer.Option("leave-last-out", help="Split whose training part is learned from."),
    time_aware: bool = typer.Option(False, "--time-aware", help="Tell the model each event's gap, hour and weekday."),
    time_init: str = typer.Option("zero", help="With --time-aware: 'zero' starts the time embeddings at zero (the "
                                               "model starts as plain SASRec), 'random' as torch's embeddings."),
    max_len: int = typer.Option(50, help="Items of history the model reads."),
    dropout: float = typer.Option(0.2, help="0.2 for dense data (MovieLens), 0.5 for sparse data."),
    epochs: int = typer.Option(200, help="Most epochs (early stopping usually ends sooner)."),
    max_minutes: Optional[float] = typer.Option(None, help="Time budget for training in minutes (default: 4 s per "
                                                "1,000 training windows per epoch for 40 epochs, 10 to 120 minutes)."),
    seed: int = typer.Option(0, help="Random seed."),
    seeds: int = typer.Option(1, help="Models to train (seeds SEED, SEED+1, ...), scored as one by averaging "
                                      "their log-probabilities."),
    item_init: str = typer.Option("random", help="'text': start the item embeddings from the item index's text "
                                                 "vectors (built or updated under --index-root)."),
    index_root: Path = typer.Option(Path("indexes"), help="Folder of the item index (for --item-init text)."),
) -> None:
    """Train SASRec on the training events of a split and save it (use it as the `sasrec` /
    `sasrec_time` retriever signal with params {model: FOLDER})."""
    from promptrec.data.splits import make_split
    from promptrec.sequential import SASRecConfig, save_model, train_sasrec, user_sequences
    from promptrec.sequential.ensemble import assemble
    from promptrec.data.interactions import epoch_ns

    with user_errors():
        ds = load(path, format)
        config = SASRecConfig(max_len=max_len, dropout=dropout, epochs=epochs, max_minutes=max_minutes,
                              time_aware=time_aware, seed=seed, seeds=seeds, item_init=item_init,
                              time_init=time_init)
        vectors = None
        if item_init == "text":
            from promptrec.index.item_index import ItemIndex

            vectors = ItemIndex.for_catalog(ds.catalog, ds.name, root=index_root).vectors(list(ds.catalog.ids))
        train = make_split(ds.interactions, split).train.frame
        train = train.loc[train["item_id"].isin(ds.catalog.frame.index)]
        seqs = user_sequences(train["user_id"].to_numpy(), ds.catalog.codes(train["item_id"].to_numpy()),
                              epoch_ns(train["timestamp"]), ds.interactions.timezone)
        console.print(f"{len(train):,} training events of {len(seqs):,} users, {len(ds.catalog):,} items")
        results = [train_sasrec(seqs, len(ds.catalog), member, item_vectors=vectors) for member in config.members()]
        model, summary = assemble([r.model for r in results], [r.summary() for r in results])
        target = out or Path("indexes") / f"{ds.name}-sasrec{'-time' if time_aware else ''}"
        save_model(model, target, summary, {"dataset": ds.name, "split": split,
                                            "item_ids": [str(i) for i in ds.catalog.ids]})
    console.print(kv_table("trained SASRec" + (f" ({seeds} seeds)" if seeds > 1 else ""), {
        "saved to": str(target), "epochs": f"{summary['epochs_run']} (best {summary['best_epoch']}, stopped by "
                                          f"{summary['stopped_by']}; stop_reason {summary.get('stop_reason')})",
        "validation NDCG@10": f"{summary['valid_ndcg10']} ({results[0].valid_users:,} users' last training event)",
        "seconds": f"{summary['seconds']}"}))
