"""`promptrec data ...`: inspect datasets, splits and the demo data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, kv_table, load, user_errors
from promptrec.data.repeats import REPEAT_THRESHOLD

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(shares: list[float]) -> str:
    """0h-23h as bars, with the peak hour."""
    top = max(shares) or 1.0
    bars = "".join(BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))] for v in shares)
    return f"0h {bars} 23h (peak {shares.index(max(shares))}h, {max(shares):.1%})"

app = typer.Typer(help="Inspect datasets and held-out splits.", no_args_is_help=True)


@app.command()
def info(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    errors: str = typer.Option("raise", help="raise: stop at bad rows; drop: drop and count them."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Counts, time range and data problems of a dataset."""
    with user_errors():
        ds = load(path, format, errors)
    d = ds.describe()
    if as_json:
        console.print_json(json.dumps(d, default=str))
        return
    rows = {"dataset": d["name"], "source": d["source"], "users": d["users"], "items": d["items"],
            "events": d["events"], "from": d["time_range"][0], "to": d["time_range"][1],
            "events per user (min/median/max)": "{min} / {median:g} / {max}".format(**d["events_per_user"]),
            "events sharing their second with another of the same user": f"{d['share_in_same_second_ties']:.1%}",
            "event types": ", ".join(f"{k} {v:,}" for k, v in d["event_types"].items()),
            "context columns": ", ".join(d["context_columns"]) or "-",
            "repeat rate (events whose user had used the item before)": f"{d['repeat_rate']:.1%} -> repeats="
            f"auto {'allows' if d['repeat_rate'] >= REPEAT_THRESHOLD else 'excludes'} them",
            "items with coordinates": f"{d['catalog']['with_coordinates']:,}",
            f"events by local hour ({d['timezone']})": sparkline(d["hour_profile"])}
    if not d["times_known"]:  # pseudo-times (promptrec.data.order): their range and hours mean nothing
        rows = {k: v for k, v in rows.items() if k not in ("from", "to") and not k.startswith("events by local hour")
                and not k.startswith("events sharing")} | {"times": "none: each user's items in order only"}
    console.print(kv_table("dataset", rows))
    if ds.report.problems:
        console.print("[yellow]rows dropped:[/]")
        for p in ds.report.problems:
            console.print(f"  {p.count:,} {p.kind}: {p}")


@app.command()
def split(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    name: str = typer.Option("leave-last-out", "--split", help="leave-last-out, temporal or session."),
    gap: str = typer.Option("30min", help="Inactivity gap that ends a session (session split)."),
    test_fraction: float = typer.Option(0.1, help="Share of events after the temporal cut."),
    test_days: Optional[int] = typer.Option(None, help="Temporal: the last N local days are test (instead of "
                                                       "--test-fraction)."),
    valid_days: Optional[int] = typer.Option(None, help="Temporal: the N local days before the test are validation."),
    seed: int = typer.Option(0, help="Seed for the order of same-second events."),
) -> None:
    """Make a held-out split and report its sizes."""
    from promptrec.data.splits import make_split

    with user_errors():
        ds = load(path, format, seed=seed)
        days = {k: v for k, v in (("test_days", test_days), ("valid_days", valid_days)) if v is not None}
        options = ({"gap": gap} if name == "session" else {"test_fraction": test_fraction, **days} if name == "temporal"
                   else {})
        sp = make_split(ds.interactions, name, **options)
    console.print(kv_table(f"{name} split of {ds.name}", sp.describe()))


@app.command("export-demo")
def export_demo(
    out: Path = typer.Argument(..., help="Folder to write events.csv and items.csv to."),
    seed: int = typer.Option(7, help="Generator seed."),
) -> None:
    """Write the demo data as CSV files (a template for your own data)."""
    from promptrec.data.demo import generate_demo

    ds = generate_demo(seed=seed).dataset
    out.mkdir(parents=True, exist_ok=True)
    items = ds.catalog.frame.reset_index()
    items["categories"] = items["categories"].map("|".join)
    items.to_csv(out / "items.csv", index=False)
    ds.interactions.frame.to_csv(out / "events.csv", index=False)
    console.print(f"wrote {len(items):,} items and {len(ds.interactions):,} events to {out}")


@app.command("export-sequences")
def export_sequences(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    out: Path = typer.Argument(..., help="Folder to write <name>.inter and <name>.item to."),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    name: Optional[str] = typer.Option(None, help="File name stem (default: the dataset's name)."),
) -> None:
    """Write a dataset as RecBole sequence files: each user's items in order, times dropped."""
    from promptrec.data.export import write_recbole_sequences

    with user_errors():
        ds = load(path, format, "raise")
        files = write_recbole_sequences(ds, out, name)
    console.print(f"wrote {files.users:,} users' sequences ({files.events:,} events) to {files.inter} and {files.item}")

