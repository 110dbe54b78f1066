"""Everything the CLI shows: the two consoles, progress bars and spinners, and one renderer per result
(a stats summary, a For You page with its explanation and trace, model metrics and versions, experiment
results, an evaluation, a simulation). Commands hand results here; library code never prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from foryou.experiments import Experiment
    from foryou.registry import ModelVersion
    from foryou.simulation import SimulationResult
    from foryou.timeline.engine import TimelineItem, TimelineResponse

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however narrow the terminal

HEARTBEAT_S = 30.0  # off a terminal, a stage still running says how far it got at most this often


# -- progress -------------------------------------------------------------------------------------


@contextmanager
def progress_bars() -> Iterator[Callable[[str, float], None]]:
    """A `(stage, fraction)` callback drawing one rich bar per stage on a terminal; elsewhere (a pipe, a
    log file) one plain line per stage as it starts, `[elapsed] stage`, and a line when all is done."""
    if not err.is_terminal:
        with _plain_lines() as say:
            yield _heartbeat(say)
        return
    with Progress(TextColumn("[bold]{task.description:<26}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=False) as bars:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=1.0)
            bars.update(tasks[stage], completed=min(max(frac, 0.0), 1.0))

        yield update


def _heartbeat(say: Callable[[str], None]) -> Callable[[str, float], None]:
    """A progress callback saying each stage once as it starts, then at most every HEARTBEAT_S."""
    started: dict[str, float] = {}

    def line(stage: str, frac: float) -> None:
        now = time.perf_counter()
        if stage not in started:
            say(stage)
            started[stage] = now
        elif now - started[stage] >= HEARTBEAT_S and frac < 1.0:
            say(f"{stage} {min(max(frac, 0.0), 1.0):.0%}")
            started[stage] = now

    return line


@contextmanager
def _plain_lines() -> Iterator[Callable[[str], None]]:
    """`say(what)` prints `[  12.3 s] what` on stderr; a last `done` line when the block succeeds."""
    start = time.perf_counter()

    def say(what: str) -> None:
        err.print(f"[{time.perf_counter() - start:7.1f} s] {what}", highlight=False, markup=False)

    yield say
    say("done")


@contextmanager
def status(what: str) -> Iterator[None]:
    """A spinner on a terminal; elsewhere a plain line when the work starts and one when it is done."""
    if err.is_terminal:
        with err.status(what):
            yield
        return
    with _plain_lines() as say:
        say(what)
        yield


# -- summaries --------------------------------------------------------------------------------------


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
    return "—" if v is None else str(v)


def print_summary(title: str, stats: dict[str, Any]) -> None:
    """Render a nested stats dict as one two-column table (nested dicts become indented rows)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")

    def rows(d: dict[str, Any], indent: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict) and (len(v) > 6 or any(isinstance(x, dict) for x in v.values())):
                table.add_row(f"{indent}{k}", "")
                rows(v, indent + "  ")
            else:
                table.add_row(f"{indent}{k}", fmt(v))

    rows(stats)
    console.print(table)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"results → {path}")


# -- the For You page -------------------------------------------------------------------------------


def print_page(page: TimelineResponse, explain: bool) -> None:
    title = f"For You · user {page.user_id} · {len(page.items)} posts"
    if page.cold_start:
        title += " · cold start (follows nobody: trending and interest sources)"
    table = Table(title=title, title_justify="left")
    for col in ("#", "post", "author", "source", "score", "top reasons"):
        table.add_column(col, justify="right" if col in ("#", "post", "author", "score") else "left")
    for it in page.items:
        table.add_row(str(it.rank), str(it.post_id), str(it.author_id), it.source, f"{it.score:.4f}",
                      _reasons(it))
    console.print(table)
    console.print("sources: " + ", ".join(f"{k} {v}" for k, v in page.sources.items()), highlight=False)
    for e in page.errors:
        console.print(f"[yellow]fell back:[/] {e}", highlight=False)
    console.print("models: " + ", ".join(f"{k}={v}" for k, v in page.models.items()), highlight=False)
    if explain and len(page.items) >= 2:
        for it in page.items[:2]:
            _print_explanation(it)


def _reasons(item: TimelineItem) -> str:
    heads = sorted(item.predictions.items(), key=lambda kv: -abs(kv[1]))
    parts = [item.network_reason or ("in-network" if item.in_network else "out-of-network")]
    if item.liked_by:
        parts.append(f"liked by {', '.join(map(str, item.liked_by[:3]))}")
    if item.explanation:
        contrib = sorted(item.explanation["heads"].items(), key=lambda kv: -abs(kv[1]["contribution"]))[:2]
        parts += [f"{h} {c['p']:.3f}×{c['weight']:g}" for h, c in contrib]
        parts += [f"{k}×{v:g}" for k, v in item.explanation["factors"].items() if v != 1.0]
    else:
        parts.append(f"p(like) {dict(heads)['like']:.3f}")
    return "; ".join(parts)


def _print_explanation(item: TimelineItem) -> None:
    e = item.explanation
    assert e is not None  # recommend(explain=True) explains every item
    table = Table(title=f"why post {item.post_id} (rank {item.rank}, {e['source']})", title_justify="left")
    for col in ("head", "p", "weight", "p × weight"):
        table.add_column(col, justify="right")
    for h, c in e["heads"].items():
        table.add_row(h, f"{c['p']:.4f}", f"{c['weight']:g}", f"{c['contribution']:+.4f}")
    table.add_row("utility Σ", "", "", f"{e['utility']:+.4f}")
    table.add_row("heavy score", "", "", f"{e['heavy_score']:.4f}")
    for k, v in e["factors"].items():
        table.add_row(f"× {k}", "", "", f"{v:.3f}")
    table.add_row("final score", "", "", f"{e['score']:.4f}")
    console.print(table)
    console.print("features: " + ", ".join(f"{k} {v}" for k, v in e["features"].items()), highlight=False)
    console.print("filters passed: " + ", ".join(e["filters_passed"]), highlight=False)


def print_trace(page: TimelineResponse) -> None:
    table = Table(title="trace", title_justify="left")
    for col in ("step", "component", "in", "out", "ms", "removed / error"):
        table.add_column(col)
    assert page.trace is not None  # recommend(trace=True)
    for st in page.trace["steps"]:
        note = st.get("error") or (", ".join(map(str, st.get("removed_ids", [])[:6])) if st.get("removed_ids") else "")
        table.add_row(st["kind"], (st.get("pipeline") + "/" if st.get("pipeline") else "") + st["name"],
                      str(st["n_in"]), str(st["n_out"]), f"{st['duration_ms']:.2f}", note)
    console.print(table)


# -- models -----------------------------------------------------------------------------------------


def print_model_metrics(name: str, r: dict[str, Any]) -> None:
    """One trained model: its fit in a line, then its test-window metrics per head (or in a line)."""
    if "skipped" in r:
        console.print(f"[yellow]{name} skipped[/]: {r['skipped']}", highlight=False)
        return
    fit = r.get("fit", {})
    parts = [f"{k} {fmt(len(v) if isinstance(v, list) else v)}" for k, v in fit.items()
             if k in ("epochs", "train_rows", "edges", "seconds", "examples_per_s")]
    console.print(f"[green]{name} v{r['version']}[/]: " + ", ".join(parts), highlight=False)
    test = r.get("test", {})
    heads = {h: m for h, m in test.items() if isinstance(m, dict)}
    sampled = r.get("negatives")
    if not heads:
        if test:
            console.print("  test" + (" (vs sampled negatives)" if sampled else "") + ": "
                          + ", ".join(f"{k} {fmt(v)}" for k, v in test.items()), highlight=False)
        return
    title = f"{name}: test window" + (f", vs {sampled['per_positive']} sampled negatives per positive (no impressions)"
                                      if sampled else "")
    table = Table(title=title, title_justify="left")
    for col in ("head", "AUC", "ceiling AUC", "RCE", "PR-AUC", "ECE", "positives"):
        table.add_column(col, justify="right")
    silent = [h for h, m in heads.items() if m["positives"] == 0]
    if silent:  # a head no test row fires (e.g. repost on MovieLens) has no AUC to show
        table.caption = f"no positives in the test window: {', '.join(silent)}"
        table.caption_justify = "left"
    for head, m in heads.items():
        if head in silent:
            continue
        ceiling = m.get("ceiling_auc", float("nan"))  # only worlds with a ground truth have one
        table.add_row(head, f"{m['auc']:.4f}", "—" if np.isnan(ceiling) else f"{ceiling:.4f}", f"{m['rce']:.2f}",
                      f"{m['pr_auc']:.4f}", f"{m['ece']:.4f}", f"{m['positives']:,}")
    console.print(table)


def print_model_versions(dataset: Path, versions: Sequence[ModelVersion]) -> None:
    """The registry as a table: * marks the promoted version, ! a damaged one (spelled out below)."""
    # Identifiers are never cut: "name vN" keeps its full width and the metrics theirs; created and code
    # fold in a narrow terminal; what is wrong with a damaged version is spelled out below the table.
    from rich import box

    table = Table(title=f"models in {dataset}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("")
    table.add_column("model", no_wrap=True)
    for col in ("AUC\nlike", "AUC\nclick", "RCE\nlike"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("created", overflow="fold")
    table.add_column("code", overflow="fold")
    damaged = []
    for v in versions:
        test = (v.metrics or {}).get("test", {})
        state = getattr(v, "status", "")  # "promoted", "not promoted", or what is wrong ("corrupt: ...")
        bad = state not in ("", "promoted", "not promoted")
        if bad:
            damaged.append(f"{v.label}: {state}")
        table.add_row("!" if bad else "*" if v.promoted else "", v.label, _metric(test, "like", "auc"),
                      _metric(test, "click", "auc"), _metric(test, "like", "rce"), v.created[:16].replace("T", " "),
                      v.code_revision)
    console.print(table)
    for line in damaged:
        console.print(f"[red]![/] {line}", highlight=False, soft_wrap=True)


def _metric(test: dict[str, Any], head: str, key: str) -> str:
    value = test.get(head, {}).get(key)
    return "—" if value is None else f"{value:.4f}"


# -- experiments, simulation, evaluation ------------------------------------------------------------


def _arms(e: Experiment, sep: str = "; ") -> str:
    return sep.join(f"{a.name} ×{a.weight:g} {json.dumps(a.overrides)}" for a in e.arms)


def print_created_experiment(e: Experiment) -> None:
    console.print(f"[green]created[/] experiment {e.name} in layer {e.layer} "
                  f"(buckets {e.offset:.0%}–{e.offset + e.traffic:.0%}); arms: " + _arms(e, ", "),
                  highlight=False)


def print_experiments(dataset: Path, exps: Sequence[Experiment]) -> None:
    table = Table(title=f"experiments in {dataset}", title_justify="left")
    for col in ("name", "status", "layer", "traffic", "primary", "arms"):
        table.add_column(col)
    for e in exps:
        table.add_row(e.name, e.status, e.layer, f"{e.offset:.0%}–{e.offset + e.traffic:.0%}", e.primary_metric,
                      _arms(e))
    console.print(table)


def print_experiment(r: dict[str, Any]) -> None:
    """An experiment's results: per-arm metrics, then each arm against the control, then the SRM check."""
    table = Table(title=f"experiment {r['experiment']} · {r['users']:,} users", title_justify="left")
    for col in ("arm", "users", "impressions", "utility", "engagement", "negative", "depth"):
        table.add_column(col, justify="right")
    for a in r["arms"]:
        m = a["metrics"]
        table.add_row(a["arm"], f"{a['users']:,}", f"{a['impressions']:,}",
                      *(f"{m[k]['mean']:.4g} ± {(m[k]['ci_high'] - m[k]['mean']):.2g}"
                        for k in ("utility", "engagement_rate", "negative_rate", "session_depth")))
    console.print(table)
    table = Table(title=f"vs {r['control']} (Welch; * = primary metric)", title_justify="left")
    for col in ("arm", "metric", "diff", "95% CI", "lift", "p", "MDE (rel)", ""):
        table.add_column(col, justify="right")
    for c in r["comparisons"]:
        table.add_row(c["arm"], c["metric"] + (" *" if c["primary"] else ""), f"{c['diff']:+.4g}",
                      f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]", f"{c['lift']:+.1%}", f"{c['p']:.3g}",
                      f"{c['mde_relative']:.1%}", "significant" if c["significant"] else "")
    console.print(table)
    srm = r["srm"]
    console.print(f"sample ratio: {srm.get('observed')} vs expected {srm.get('expected')}, p = {srm['p']:.3g}"
                  + (" [red]MISMATCH[/]" if srm["mismatch"] else " ok") + f"; decision: {r['decision']}",
                  highlight=False)


SIMULATION_COLUMNS = {"engagement": "engagement_rate", "expected utility": "expected_utility",
                      "realised utility": "realised_utility", "regret/slot": "regret", "negative": "negative_rate",
                      "depth": "session_depth", "creator Gini": "creator_gini", "OON share": "out_of_network_share"}


def print_simulation(result: SimulationResult) -> None:
    """A simulation's totals, each arm's whole-run means and cumulative regret, and its experiment."""
    s = result.summary
    console.print(f"[green]simulated[/] {s['days']} days, {s['users_simulated']:,} users, {s['sessions']:,} sessions, "
                  f"{s['impressions']:,} impressions, {s['new_posts']:,} new posts in {s['seconds']:.0f} s"
                  + (f" ({s['new_posts_note']})" if s.get("new_posts_note") else ""), highlight=False)
    table = Table(title="per arm (whole run)", title_justify="left")
    for col in ("arm", *SIMULATION_COLUMNS):
        table.add_column(col, justify="right")
    for arm in result.arms:
        d = result.daily[arm]
        table.add_row(arm, *(f"{float(np.mean(d[k])):.4g}" for k in SIMULATION_COLUMNS.values()))
    console.print(table)
    for arm, r in result.regret.get("arms", {}).items():
        console.print(f"  {arm}: cumulative regret " + "; ".join(
            f"{label} {r[k]['cumulative']:.3g} [{r[k]['low']:.3g}, {r[k]['high']:.3g}]"
            for k, label in (("regret", "all slots"), ("new_post_regret", "new-post slots"))), highlight=False)
    if result.experiment:
        print_experiment(result.experiment)


def print_eval(r: dict[str, Any]) -> None:
    """Each method's ranking metrics with 95 % intervals (and utility ÷ oracle), then retrieval and targets."""
    k = 10 if 10 in r["k_values"] else r["k_values"][0]
    cols = [f"ndcg@{k}", f"recall@{r['k_values'][-1]}", f"hit_rate@{k}", "mrr"]
    table = Table(title=f"{r['dataset_name']} · {r['protocol']} · {r['users']:,} users · 95 % intervals",
                  title_justify="left")
    table.add_column("method")
    for c in cols:
        table.add_column(c, justify="right")
    if "oracle" in r:
        table.add_column("utility ÷ oracle", justify="right")
    for name, m in r["methods"].items():
        cells = [f"{m['ranking'][c]['mean']:.4f} [{m['ranking'][c]['lo']:.4f}, {m['ranking'][c]['hi']:.4f}]"
                 for c in cols]
        if "oracle" in r:
            o = r["oracle"]["methods"][name]["ratio"]
            cells.append(f"{o['mean']:.3f} [{o['lo']:.3f}, {o['hi']:.3f}]")
        table.add_row(name, *cells, style="bold" if name == "foryou" else None)
    console.print(table)
    _print_segments(r, f"ndcg@{k}")
    _print_tuning(r)
    stages = r.get("retrieval", {}).get("stages", {})
    if stages:
        console.print("  retrieval recall@K: " + ", ".join(
            f"{n} {s['recall']['mean']:.3f} (K={s['candidates_per_user']:g})" for n, s in stages.items()),
            highlight=False)
    if "oracle" in r:
        console.print("  utility ÷ oracle, references: " + ", ".join(
            f"{n} {m['ratio']['mean']:.3f}" for n, m in r["oracle"]["methods"].items() if n not in r["methods"]),
            highlight=False)
    for key, value in r["targets"].items():
        console.print(f"  {key}: {fmt(value)}", highlight=False)


def _print_segments(r: dict[str, Any], metric: str) -> None:
    """One metric per method for all, cold and warm users, with 95 % intervals."""
    segs = r.get("segments") or {}
    parts = [("all", r["users"], r["methods"])] + [(name, e["users"], e.get("methods") or {})
                                                   for name, e in segs.items() if name != "all"]
    if len(parts) < 2:
        return
    table = Table(title=f"{metric} by user segment (cold: no positive engagement before the split; warm: ≥ 5)",
                  title_justify="left")
    table.add_column("method")
    for name, n, _ in parts:
        table.add_column(f"{name} ({n:,})", justify="right")
    for method in r["methods"]:
        cells = []
        for _, _, methods in parts:
            v = methods.get(method, {}).get("ranking", {}).get(metric)
            cells.append(f"{v['mean']:.4f} [{v['lo']:.4f}, {v['hi']:.4f}]" if v else "—")
        table.add_row(method, *cells, style="bold" if method == "foryou" else None)
    console.print(table)


def _print_tuning(r: dict[str, Any]) -> None:
    """Each tuned baseline's chosen hyperparameters and its validation score."""
    baselines = r.get("baselines")
    if not isinstance(baselines, dict):
        return
    tuned = {n: b["tuning"] for n, b in baselines.items() if b.get("tuning", {}).get("validation")}
    if not tuned:
        return
    v = r.get("validation") or {}
    console.print(f"  baselines tuned on the validation split ({v.get('protocol', '?')}, {v.get('users', 0):,} users, "
                  "NDCG@10; grids in foryou/eval/tuning.py):", highlight=False)
    for name, t in tuned.items():
        params = " ".join(f"{k}={'all' if p is None else p}" for k, p in t["chosen"].items())
        console.print(f"    {name}: {params} (validation {t['validation_score']:.4f} of "
                      f"{len(t['validation'])} grid points)", highlight=False)

