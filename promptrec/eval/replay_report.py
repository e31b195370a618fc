"""The replay's report: per-day metrics of each arm, refitted-minus-frozen differences with bootstrap intervals,
new-item freshness; results.json, results.md and two figures (promptrec.eval.replay runs the replay)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from promptrec.eval.replay import NEVER, TOP_K
from promptrec.metrics import bootstrap_ci, hit_rate, mrr, ndcg, ndcg_gains
from promptrec.plots import pyplot, save_figure

WEEK = 7


def _metrics(ranks: np.ndarray) -> dict[str, float]:
    return {"NDCG@10": ndcg(ranks, 10), "HR@10": hit_rate(ranks, 10), "MRR": mrr(ranks), "targets": int(len(ranks))}


def _paired(diff: np.ndarray, days: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    """Mean per-target difference with 95% intervals resampling targets, and resampling whole days."""
    if not len(diff):
        return {"mean": None, "ci95_targets": None, "ci95_days": None, "targets": 0}
    day_ids = np.unique(days)
    sums = np.array([diff[days == d].sum() for d in day_ids])
    counts = np.array([(days == d).sum() for d in day_ids])
    by_day = bootstrap_ci(np.arange(len(day_ids)), lambda i: sums[i].sum() / counts[i].sum(), n, seed)
    return {"mean": float(diff.mean()), "ci95_targets": list(bootstrap_ci(diff, np.mean, n, seed)),
            "ci95_days": list(by_day), "targets": int(len(diff))}


def build_replay_results(replay: Any, meta: dict[str, Any]) -> dict[str, Any]:
    days = replay.day_of
    dates = [str(b.tz_convert(replay.ds.interactions.timezone).date()) for b in replay.bounds[:-1]]
    n, seed = replay.cfg.bootstrap_samples, replay.cfg.seed
    arms, ranks = {}, {}
    for arm in replay.arms:
        r = ranks[arm.name] = replay.ranks(arm)
        arms[arm.name] = {"pipeline": arm.pipeline.name, "refit_every_days": arm.cadence,
                          "fitted_on_days": arm.fitted_days, "fit_seconds": arm.fit_seconds, "overall": _metrics(r),
                          "by_day": [{"day": d, "date": dates[d], **_metrics(r[days == d])} for d in range(replay.days)]}
    paired = []
    for arm in replay.arms:
        if arm.cadence == NEVER:
            continue
        frozen = next(a for a in replay.arms if a.pipeline.name == arm.pipeline.name and a.cadence == NEVER)
        row = {"arm": arm.name, "against": frozen.name}
        for metric, gain in (("NDCG@10", lambda r: ndcg_gains(r, 10)), ("HR@10", lambda r: (r < 10).astype(float))):
            diff = gain(ranks[arm.name]) - gain(ranks[frozen.name])
            row[metric] = _paired(diff, days, n, seed)
            if metric == "NDCG@10":
                row["NDCG@10 by week"] = [{"days": f"{w * WEEK + 1}-{min((w + 1) * WEEK, replay.days)}",
                                           **_paired(diff[days // WEEK == w], days[days // WEEK == w], n, seed)}
                                          for w in range((replay.days + WEEK - 1) // WEEK)]
        paired.append(row)
    new = replay.new_items()
    fresh = {arm.name: replay.freshness(arm, new) for arm in replay.arms}
    for f in fresh.values():
        hours = [h for h in f["hours_to_first_top10"].values() if h is not None]
        f["median_hours_to_first_top10"] = float(np.median(hours)) if hours else None
        f["share_recommended_within"] = {f"{h} h": (sum(x <= h for x in hours) / f["new_items"] if f["new_items"]
                                                    else None) for h in (1, 6, 24, 72)}
    s = replay.s
    period = {"start": str(replay.start), "end": str(replay.end), "days": replay.days, "step_days": s.step_days,
              "dates": dates, "targets": len(replay.targets), "users_sampled": s.users, "live_until": s.live_until,
              "valid_days": s.valid_days, "refit_tune": s.refit_tune,
              "targets_are": "every event of the day whose user has an earlier event, ranked over the full catalogue"}
    reading = [f"{name}: NDCG@10 {a['overall']['NDCG@10']:.4f} over {replay.days} days" for name, a in arms.items()]
    reading += [f"{r['arm']} minus frozen: NDCG@10 {r['NDCG@10']['mean']:+.4f}, 95% CI over targets "
                f"{_ci(r['NDCG@10'], 'ci95_targets')}, over days {_ci(r['NDCG@10'], 'ci95_days')}" for r in paired]
    return {**meta, "period": period, "arms": arms, "paired": paired, "freshness": fresh, "reading": reading}


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, (np.floating, np.integer)) else str(x)


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _ci(p: dict[str, Any], key: str) -> str:
    return "-" if p.get(key) is None else f"[{p[key][0]:+.4f}, {p[key][1]:+.4f}]"


def arm_order(res: dict[str, Any]) -> list[str]:
    """The arms' names with the frozen arms (the baselines) first, otherwise in the order of the results."""
    return sorted(res["arms"], key=lambda name: res["arms"][name]["refit_every_days"] != NEVER)


def markdown(res: dict[str, Any], plots: list[str]) -> str:
    p = res["period"]
    names = arm_order(res)
    lines = [f"# Replay: {res['config']['name']}", "",
             f"`{res['command']}`", "",
             f"{res['dataset']}: {p['days']} days from {p['start']} to {p['end']}, {p['targets']} targets "
             f"({p['targets_are']}{'; a sample of ' + str(p['users_sampled']) + ' users' if p['users_sampled'] else ''}"
             f"); each target sees the events before {'its time' if p['live_until'] == 'now' else 'its day'}. "
             f"Every fit tunes on the {p['valid_days']} days before it. Run time {res['seconds']:.0f} s.", "",
             "## Over the period", "", "| arm | refits | fit seconds | NDCG@10 | HR@10 | MRR |", "|---|---|---|---|---|---|"]
    for name in names:
        a = res["arms"][name]
        o = a["overall"]
        lines.append(f"| {name} | {len(a['fitted_on_days'])} | {sum(a['fit_seconds']):.0f} | {o['NDCG@10']:.4f} | "
                     f"{o['HR@10']:.4f} | {o['MRR']:.4f} |")
    lines += ["", "## Refitted minus frozen (paired, 95% bootstrap intervals over targets and over days)", "",
              "| arm | NDCG@10 diff | CI targets | CI days | HR@10 diff | CI targets | CI days |",
              "|---|---|---|---|---|---|---|"]
    for r in res["paired"]:
        n, h = r["NDCG@10"], r["HR@10"]
        lines.append(f"| {r['arm']} | {n['mean']:+.4f} | {_ci(n, 'ci95_targets')} | {_ci(n, 'ci95_days')} | "
                     f"{h['mean']:+.4f} | {_ci(h, 'ci95_targets')} | {_ci(h, 'ci95_days')} |")
    lines += ["", "NDCG@10 difference by week of the period (how the gap grows as the frozen model ages):", "",
              "| arm | days | NDCG@10 diff | CI targets |", "|---|---|---|---|"]
    for r in res["paired"]:
        for w in r["NDCG@10 by week"]:
            lines.append(f"| {r['arm']} | {w['days']} | {_fmt(w['mean'])} | {_ci(w, 'ci95_targets')} |")
    lines += ["", "## NDCG@10 by day", "", "| day | date | targets | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for d, date in enumerate(p["dates"]):
        cells = [res["arms"][n]["by_day"][d] for n in names]
        lines.append(f"| {d + 1} | {date} | {cells[0]['targets']} | " +
                     " | ".join(_fmt(c["NDCG@10"]) for c in cells) + " |")
    lines += ["", "## New items (first event in the period)", "",
              "Time from an item's first event to its first appearance in any target's top 10, and the share of its "
              "later events (those that are targets) whose target had it in the top 10. The frozen arm gets every "
              "event through add_events: it is the live-statistics-only arm. Negative hours: in a top 10 before its first "
              "event (an item the catalogue releases at a time is recommendable from then).", "",
              "| arm | new items | ever in a top 10 | median hours to first top 10 | within 24 h | later events "
              "| share in top 10 |", "|---|---|---|---|---|---|---|"]
    for name in names:
        f = res["freshness"][name]
        lines.append(f"| {name} | {f['new_items']} | {f['recommended']} | {_fmt(f['median_hours_to_first_top10'], 1)} "
                     f"| {_fmt(f['share_recommended_within']['24 h'], 3)} | {f['later_events_as_targets']} | "
                     f"{_fmt(f['share_in_top10'], 3)} |")
    lines += [""] + [f"![{Path(x).stem}]({x})" for x in plots] + [""]
    return "\n".join(lines)


def plot_days(res: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in arm_order(res):
        a = res["arms"][name]
        ax.plot([d["day"] + 1 for d in a["by_day"]], [d["NDCG@10"] for d in a["by_day"]], marker="o", ms=3, label=name)
    ax.set(xlabel="day of the replayed period", ylabel="NDCG@10 (full catalogue)", title=f"{res['dataset']}: replay")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_new_items(res: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in arm_order(res):
        f = res["freshness"][name]
        hours = np.sort([h for h in f["hours_to_first_top10"].values() if h is not None])
        if f["new_items"]:
            ax.step(np.concatenate([[min([0.0, *hours[:1]])], hours]), np.arange(len(hours) + 1) / f["new_items"], where="post", label=name)
    ax.set(xlabel="hours since the item's first event", ylabel="share of new items in a top 10 so far",
           title=f"{res['dataset']}: new items recommended")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write_replay_report(res: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=2, default=_plain))
    plot_days(res, out / "ndcg_by_day.png")
    plots = ["ndcg_by_day.png"]
    if any(f["new_items"] for f in res["freshness"].values()):
        plot_new_items(res, out / "new_items.png")
        plots.append("new_items.png")
    (out / "results.md").write_text(markdown(res, plots))


def rewrite_markdown(out: str | Path) -> Path:
    """Write ``out``/results.md again from ``out``/results.json (the figures already there are linked), without
    re-running the replay."""
    out = Path(out)
    res = json.loads((out / "results.json").read_text())
    plots = [name for name in ("ndcg_by_day.png", "new_items.png") if (out / name).exists()]
    (out / "results.md").write_text(markdown(res, plots))
    return out / "results.md"


if __name__ == "__main__":  # python -m promptrec.eval.replay_report eval/results/*-replay
    import sys

    for folder in sys.argv[1:]:
        print(rewrite_markdown(folder))
