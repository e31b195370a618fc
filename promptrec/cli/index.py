"""`promptrec index ...`: build, inspect and search item indexes."""

from __future__ import annotations

import logging
from typing import Optional

import typer
from rich.table import Table

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, kv_table, load, user_errors

app = typer.Typer(help="Build, inspect and search item embedding indexes (FAISS).", no_args_is_help=True)
ROOT_HELP = "Folder that holds the indexes."


def _open(name: str, root: str):
    from promptrec.index.item_index import ItemIndex, ItemIndexError

    try:
        return ItemIndex.load(name, root=root)
    except ItemIndexError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def _hits_table(title: str, index, hits) -> Table:
    table = Table(title=title)
    for col in ("#", "item", "title", "score"):
        table.add_column(col)
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), h.item_id, index.title(h.item_id), f"{h.score:.3f}")
    return table


@app.command()
def build(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    name: str = typer.Option(None, help="Index name (default: the dataset's name)."),
    root: str = typer.Option("indexes", help=ROOT_HELP),
    index_type: str = typer.Option("auto", "--type", help="auto, flat (exact), hnsw or ivfpq."),
    model: str = typer.Option("all-MiniLM-L6-v2", help="sentence-transformers model name or folder."),
    template: str = typer.Option("item.j2", help="Item text template (name in prompts/ or a .j2 file)."),
    prompts_dir: Optional[str] = typer.Option(None, help="Your prompts folder (defaults fill the gaps)."),
    batch_size: int = typer.Option(64, help="Embedding batch size."),
    backend: str = typer.Option("auto", help="Embedding backend: auto (= torch, float32), onnx (float32 in ONNX "
                                "Runtime), or bf16 (about 2.5x faster on CPUs/GPUs with native bf16; "
                                "vectors move slightly)."),
    threads: Optional[int] = typer.Option(None, help="Embedding threads (default: the cores other processes "
                                          "are not keeping busy)."),
    chunk_size: int = typer.Option(20_000, help="Items embedded between two saved chunks; a stopped build "
                                   "resumes from the saved ones."),
) -> None:
    """Embed every item and build (or refresh) an index; unchanged items are not embedded again."""
    from promptrec.index.embedder import Embedder
    from promptrec.index.item_index import ItemIndex

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with user_errors():
        ds = load(path, format)
        embedder = Embedder(model, batch_size=batch_size, backend=backend, threads=threads)
        index = ItemIndex.build(ds.catalog, name or ds.name, root=root, embedder=embedder, index_type=index_type,
                                template=template, prompts_dir=prompts_dir, chunk_size=chunk_size)
    console.print(f"built index [bold]{index.name}[/] at {index.path}: {len(index):,} items, "
                  f"{index.manifest['index_type']}, {index.dimension}-d, embedded with {embedder.backend}")


@app.command()
def info(name: str = typer.Argument(..., help="Index name or folder."),
         root: str = typer.Option("indexes", help=ROOT_HELP)) -> None:
    """Show an index's manifest."""
    console.print(kv_table(f"index {name}", {k: str(v) for k, v in _open(name, root).info().items()}))


@app.command()
def search(query: str = typer.Argument(..., help="Free text to search for."),
           name: str = typer.Option("demo", help="Index name or folder."),
           root: str = typer.Option("indexes", help=ROOT_HELP),
           k: int = typer.Option(10, help="How many items.")) -> None:
    """Items whose text is closest to a free-text query."""
    index = _open(name, root)
    console.print(_hits_table(f"'{query}' in {index.name}", index, index.search(query, k)))


@app.command()
def similar(item_id: str = typer.Argument(..., help="Item id."),
            name: str = typer.Option("demo", help="Index name or folder."),
            root: str = typer.Option("indexes", help=ROOT_HELP),
            k: int = typer.Option(10, help="How many items.")) -> None:
    """Items most similar to a given item."""
    index = _open(name, root)
    if item_id not in index:
        console.print(f"[bold red]error:[/] item '{item_id}' is not in index '{index.name}'.")
        raise typer.Exit(1)
    console.print(_hits_table(f"similar to {item_id} ({index.title(item_id)})", index, index.similar(item_id, k)))
