from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from foryou.mixer import (
    CandidateBatch,
    CandidatePipeline,
    CandidateSource,
    Decorator,
    Filter,
    Gate,
    PipelineOrderError,
    PipelineResult,
    ProductPipeline,
    Query,
    QueryHydrator,
    Scorer,
    ScoringPipeline,
    Selector,
    SideEffect,
)

# -- toy components ------------------------------------------------------------------------------


class RangeSource(CandidateSource):
    def __init__(self, lo: int, hi: int, name: str | None = None) -> None:
        self.lo, self.hi = lo, hi
        if name:
            self.name = name

    def fetch(self, query: Query) -> CandidateBatch:
        ids = np.arange(self.lo, self.hi, dtype=np.int64)
        return CandidateBatch({"post_id": ids, "origin": np.full(len(ids), self.lo, dtype=np.int64)})


class BrokenSource(CandidateSource):
    def fetch(self, query: Query) -> CandidateBatch:
        raise RuntimeError("index offline")


class DropEven(Filter):
    def keep(self, query: Query, batch: CandidateBatch) -> np.ndarray:
        return batch["post_id"] % 2 == 1


class ScoreIsId(Scorer):
    def score(self, query: Query, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return {"score": batch["post_id"].astype(np.float64)}


class TopK(Selector):
    def __init__(self, k: int) -> None:
        self.k = k

    def select(self, query: Query, batch: CandidateBatch) -> np.ndarray:
        return np.argsort(-batch["score"], kind="stable")[: self.k]


class Label(Decorator):
    def decorate(self, query: Query, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return {"label": np.array([f"#{i}" for i in batch["post_id"]], dtype=object)}


class Hydrate(QueryHydrator):
    def hydrate(self, query: Query) -> dict:
        return {"hydrated": True}


class No(Gate):
    def should_run(self, query: Query) -> bool:
        return False


class Yes(Gate):
    def should_run(self, query: Query) -> bool:
        return True


class Record(SideEffect):
    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.thread: str | None = None

    def apply(self, query: Query, result: PipelineResult) -> None:
        self.thread = threading.current_thread().name
        self.seen.append(result.batch["post_id"].tolist())


class Explode(SideEffect):
    def apply(self, query: Query, result: PipelineResult) -> None:
        raise ValueError("side effect boom")


def make_product(sources: list[CandidateSource] | None = None, **kw: object) -> ProductPipeline:
    sources = sources if sources is not None else [RangeSource(0, 10, "low"), RangeSource(5, 15, "high")]
    cps = [CandidatePipeline(name=s.name, source=s) for s in sources]
    defaults: dict = dict(
        gates=[Yes()],
        query_hydrators=[Hydrate()],
        candidate_pipelines=cps,
        dedup_column="post_id",  # the framework has no default id column: the product names it
        filters=[DropEven()],
        scoring_pipelines=[ScoringPipeline("rank", scorers=[ScoreIsId()])],
        selectors=[TopK(3)],
        decorators=[Label()],
    )
    defaults.update(kw)
    return ProductPipeline("toy", **defaults)


# -- batch ---------------------------------------------------------------------------------------


def test_batch_basic_ops() -> None:
    b = CandidateBatch({"id": np.arange(5), "x": np.linspace(0, 1, 5)})
    assert len(b) == 5 and b.column_names == ("id", "x")
    assert b.filter(b["id"] > 2)["id"].tolist() == [3, 4]
    assert b.take([4, 0, 4])["id"].tolist() == [4, 0, 4]
    b2 = b.with_columns(y=np.ones(5))
    assert "y" in b2 and "y" not in b
    with pytest.raises(ValueError):
        b.with_columns(z=np.ones(4))
    with pytest.raises(ValueError):
        CandidateBatch({"a": np.arange(3), "b": np.arange(4)})
    with pytest.raises(ValueError):
        b.filter(np.ones(5, dtype=np.int64))  # an int array is not a mask
    assert b.to_rows(["id"], limit=2) == [{"id": 0}, {"id": 1}]
    assert type(b.to_rows(limit=1)[0]["x"]) is float
    assert len(CandidateBatch.empty()) == 0


def test_batch_concat_fills_missing_columns_with_typed_defaults() -> None:
    a = CandidateBatch({"id": np.array([1, 2]), "f": np.array([0.5, 1.5]), "flag": np.array([True, True])})
    b = CandidateBatch({"id": np.array([3]), "n": np.array([7], dtype=np.int32), "emb": np.ones((1, 2))})
    c = CandidateBatch.concat([a, CandidateBatch.empty(), b])
    assert len(c) == 3
    assert c["id"].tolist() == [1, 2, 3]
    assert np.isnan(c["f"][2]) and c["f"][:2].tolist() == [0.5, 1.5]
    assert c["flag"].tolist() == [True, True, False]
    assert c["n"].tolist() == [0, 0, 7] and c["n"].dtype == np.int32
    assert c["emb"].shape == (3, 2) and np.isnan(c["emb"][0]).all()
    assert len(CandidateBatch.concat([])) == 0


# -- product pipeline ----------------------------------------------------------------------------


def test_product_pipeline_exact_output_and_dedup_keeps_first() -> None:
    q = Query()
    res = make_product().run(q)
    # union 0..14, odd only, top 3 by score = id
    assert res.batch["post_id"].tolist() == [13, 11, 9]
    # 9 appears in both sources: dedup keeps the first occurrence ("low", origin 0)
    assert res.batch["source"].tolist() == ["high", "high", "low"]
    assert res.batch["origin"].tolist() == [5, 5, 0]
    assert res.batch["label"].tolist() == ["#13", "#11", "#9"]
    assert q.features["hydrated"] is True
    assert res.errors == [] and res.trace is None and res.skipped is None


def test_dedup_keeps_first_without_selectors() -> None:
    res = make_product(filters=[], selectors=[]).run(Query())
    ids = res.batch["post_id"].tolist()
    assert ids == list(range(15))
    assert res.batch["source"].tolist() == ["low"] * 10 + ["high"] * 5


def test_failing_source_fails_open() -> None:
    p = make_product([RangeSource(0, 10, "low"), BrokenSource()])
    res = p.run(Query(), trace=True)
    assert res.batch["post_id"].tolist() == [9, 7, 5]
    assert len(res.errors) == 1
    assert "BrokenSource" in res.errors[0] and "index offline" in res.errors[0]
    failed = [s for s in res.trace.steps if s.error]
    assert len(failed) == 1 and failed[0].name == "BrokenSource" and "index offline" in failed[0].error
    assert failed[0].pipeline == "BrokenSource"


def test_fail_closed_pipeline_raises() -> None:
    p = ProductPipeline("x", candidate_pipelines=[CandidatePipeline("b", BrokenSource(), fail_open=False)])
    with pytest.raises(RuntimeError):
        p.run(Query())


def test_gate_closed_gives_empty_result() -> None:
    rec = Record()
    p = make_product(gates=[Yes(), No()], side_effects=[rec])
    q = Query()
    res = p.run(q)
    assert len(res.batch) == 0
    assert res.skipped == "gate:No"
    assert "hydrated" not in q.features  # nothing after the gate ran
    assert p.flush(5) and rec.seen == []


def test_candidate_pipeline_gate_skips_only_that_source() -> None:
    cps = [CandidatePipeline("low", RangeSource(0, 10)), CandidatePipeline("high", RangeSource(5, 15), gates=[No()])]
    res = make_product(candidate_pipelines=cps).run(Query())
    assert res.batch["post_id"].tolist() == [9, 7, 5]
    assert res.errors == []


def test_trace_counts_and_removed_ids() -> None:
    res = make_product().run(Query(), trace=True)
    steps = {(s.kind, s.name): s for s in res.trace.steps}
    dedup = steps[("dedup", "post_id")]
    assert (dedup.n_in, dedup.n_out, dedup.removed) == (20, 15, 5)
    f = steps[("filter", "DropEven")]
    assert (f.n_in, f.n_out, f.removed) == (15, 7, 8)
    assert f.removed_ids == [0, 2, 4, 6, 8, 10, 12, 14]
    assert f.reason == "DropEven"
    sel = steps[("selector", "TopK")]
    assert (sel.n_in, sel.n_out) == (7, 3)
    src = steps[("source", "high")]
    assert src.n_out == 10 and src.pipeline == "high"
    json.dumps(res.trace.to_dict())  # JSON-able


def test_candidate_pipeline_own_filter_scorer_selector() -> None:
    cp = CandidatePipeline("low", RangeSource(0, 10), filters=[DropEven()], scorers=[ScoreIsId()], selector=TopK(2))
    p = ProductPipeline("p", candidate_pipelines=[cp], dedup_column=None, id_column="post_id")
    res = p.run(Query(), trace=True)
    assert res.batch["post_id"].tolist() == [9, 7]
    f = next(s for s in res.trace.steps if s.kind == "filter")
    assert f.pipeline == "low" and f.removed_ids == [0, 2, 4, 6, 8]
    assert "low/filter:DropEven" in res.timings_ms


def test_side_effects_never_fail_and_run_after_flush() -> None:
    rec = Record()
    p = make_product(side_effects=[Explode(), rec])
    try:
        res = p.run(Query())
        assert res.batch["post_id"].tolist() == [13, 11, 9]
        assert p.flush(5)
        assert rec.seen == [[13, 11, 9]]
        assert rec.thread != threading.current_thread().name
    finally:
        p.close()


def test_timings_contain_every_step() -> None:
    res = make_product().run(Query())
    expected = {
        "gate:Yes",
        "query_hydrator:Hydrate",
        "candidate_pipeline:low",
        "candidate_pipeline:high",
        "low/source:low",
        "high/source:high",
        "dedup:post_id",
        "filter:DropEven",
        "scoring_pipeline:rank",
        "rank/scorer:ScoreIsId",
        "selector:TopK",
        "decorator:Label",
        "total",
    }
    assert expected <= set(res.timings_ms)
    assert all(0 < v <= res.timings_ms["total"] for v in res.timings_ms.values())
    assert res.timings_ms["total"] >= res.timings_ms["filter:DropEven"]


def test_component_names_default_to_class_name() -> None:
    assert DropEven.name == "DropEven" and DropEven().name == "DropEven"
    assert RangeSource(0, 1, "custom").name == "custom" and RangeSource(0, 1).name == "RangeSource"


# -- many queries, stages, declared order --------------------------------------------------------


class QuerySource(CandidateSource):
    """Ten ids starting at the query's own `lo`: each query gets different candidates."""

    def fetch(self, query: Query) -> CandidateBatch:
        lo = query.params["lo"]
        return CandidateBatch({"post_id": np.arange(lo, lo + 10, dtype=np.int64)})


def test_run_many_gives_each_query_its_own_result() -> None:
    p = make_product([QuerySource()])
    queries = [Query(params={"lo": lo}) for lo in (0, 100, 7)]
    out = p.run_many(queries, trace=True)
    assert out.segments.lengths.tolist() == [3, 3, 3] and len(out.batch) == 9
    for q, res in zip(queries, out.results, strict=True):
        alone = p.run(Query(params=dict(q.params)))
        assert res.batch["post_id"].tolist() == alone.batch["post_id"].tolist()
        assert res.batch["label"].tolist() == alone.batch["label"].tolist()
        assert set(res.timings_ms) == set(alone.timings_ms)
        f = next(s for s in res.trace.steps if s.kind == "filter")
        assert (f.n_in, f.n_out) == (10, 5)


def test_run_many_with_a_gate_closed_for_one_query() -> None:
    class OddLo(Gate):
        def should_run(self, query: Query) -> bool:
            return query.params["lo"] % 2 == 0

    out = make_product([QuerySource()], gates=[OddLo()]).run_many([Query(params={"lo": lo}) for lo in (0, 1, 2)])
    assert out.segments.lengths.tolist() == [3, 0, 3]
    assert out.results[1].skipped == "gate:OddLo" and len(out.results[1].batch) == 0
    assert out.results[2].batch["post_id"].tolist() == [11, 9, 7]


def test_until_stops_after_a_stage_and_observe_sees_each_stage() -> None:
    seen: dict[str, list[int]] = {}
    res = make_product().run(Query(), until="filters", observe=lambda stage, b, seg: seen.setdefault(
        stage, b["post_id"].tolist() if len(b) else []))
    assert res.batch["post_id"].tolist() == [1, 3, 5, 7, 9, 11, 13]  # no scoring, no selection
    assert seen["candidate_pipeline:low"] == list(range(10)) and len(seen["candidate_pipelines"]) == 20
    assert seen["dedup"] == list(range(15)) and "scoring_pipeline:rank" not in seen
    with pytest.raises(ValueError, match="unknown stage"):
        make_product().run(Query(), until="ranking")


def test_post_selection_filters_run_on_the_selected_page() -> None:
    class NotThirteen(Filter):
        def keep(self, query: Query, batch: CandidateBatch) -> np.ndarray:
            return batch["post_id"] != 13

    res = make_product(post_selection_filters=[NotThirteen()]).run(Query(), trace=True)
    assert res.batch["post_id"].tolist() == [11, 9]  # selected 13, 11, 9; then 13 was dropped
    assert res.batch["label"].tolist() == ["#11", "#9"]  # decorators see the final page


def test_a_pipeline_that_reads_a_column_before_it_is_written_fails_when_built() -> None:
    class Source(CandidateSource):
        writes = ("post_id",)

        def fetch(self, query: Query) -> CandidateBatch:
            return CandidateBatch({"post_id": np.arange(3)})

    class Scored(Scorer):
        writes = ("score",)

        def score(self, query: Query, batch: CandidateBatch) -> dict[str, np.ndarray]:
            return {"score": np.ones(len(batch))}

    class Positive(Filter):
        reads = ("score",)

        def keep(self, query: Query, batch: CandidateBatch) -> np.ndarray:
            return batch["score"] > 0

    cps = [CandidatePipeline("s", Source())]
    ProductPipeline("ok", candidate_pipelines=cps, scoring_pipelines=[ScoringPipeline("r", scorers=[Scored()])],
                    post_filters=[Positive()])
    with pytest.raises(PipelineOrderError, match=r"filter Positive reads column 'score' before it exists "
                                                 r"\(written only later, by scorer Scored\)"):
        ProductPipeline("bad", candidate_pipelines=cps, filters=[Positive()],
                        scoring_pipelines=[ScoringPipeline("r", scorers=[Scored()])])
    with pytest.raises(PipelineOrderError, match="dedup column 'id'"):
        ProductPipeline("bad", candidate_pipelines=cps, dedup_column="id")
