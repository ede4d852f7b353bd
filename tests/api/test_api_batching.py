"""Never-seen clip-objective queries that reach the server together share one autograd pass
(app.batching.MicroBatcher): each still gets exactly its own answer, or its own error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.batching import MicroBatcher
from app.main import create_app
from app.schemas import ClipObjectiveBothSignsResponse, ClipObjectiveResponse
from app.settings import Settings
from ppo_core import clip_objective_curve

# --- MicroBatcher ---------------------------------------------------------------------------


def run_recording(calls: list[list[int]]) -> Any:
    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [10 * i for i in items]

    return run


def test_items_submitted_together_share_one_run_and_get_their_own_results() -> None:
    calls: list[list[int]] = []
    batcher = MicroBatcher(run_recording(calls))

    async def main() -> tuple[list[int], list[int]]:
        first = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        later = await asyncio.gather(batcher.submit(7))
        return list(first), list(later)

    first, later = asyncio.run(main())
    assert first == [0, 10, 20, 30, 40] and later == [70]
    assert calls == [[0, 1, 2, 3, 4], [7]]  # the later item came after the flush: a batch alone
    assert (batcher.batches, batcher.items) == (2, 6)


def test_an_item_queued_one_loop_iteration_later_still_joins_the_batch() -> None:
    """The flush waits for one more loop iteration (the loop reads its sockets once more):
    a request whose task starts then is computed with the earlier ones."""
    calls: list[list[int]] = []
    batcher = MicroBatcher(run_recording(calls))

    async def main() -> tuple[int, int]:
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0)  # `first` has queued its item and scheduled the flush
        second = asyncio.ensure_future(batcher.submit(2))
        return await first, await second

    assert asyncio.run(main()) == (10, 20)
    assert calls == [[1, 2]]


def test_a_flush_is_cut_into_chunks_of_bounded_size() -> None:
    calls: list[list[int]] = []
    batcher = MicroBatcher(run_recording(calls), size=lambda i: i, max_size=5)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(batcher.submit(i) for i in (3, 2, 3, 9, 1))))

    assert asyncio.run(main()) == [30, 20, 30, 90, 10]
    assert calls == [[3, 2], [3], [9], [1]]  # 9 is over the bound: it runs alone


def test_a_failing_run_fails_its_chunk_only() -> None:
    def run(items: Sequence[int]) -> list[int]:
        if 4 in items:
            raise ValueError("no fours")
        return list(items)

    batcher = MicroBatcher(run, size=lambda i: i, max_size=4)

    async def main() -> list[object]:
        jobs = (batcher.submit(i) for i in (1, 4, 5))
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    ones, fours, fives = asyncio.run(main())
    assert ones == 1 and fives == 5  # chunks [1], [4], [5]
    assert isinstance(fours, ValueError) and str(fours) == "no fours"


def test_a_run_answering_the_wrong_count_is_an_error_not_a_mixup() -> None:
    batcher = MicroBatcher(lambda items: list(items)[:-1])

    async def main() -> list[object]:
        return list(
            await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        )

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_a_cancelled_waiter_leaves_the_others_answered() -> None:
    calls: list[list[int]] = []
    batcher = MicroBatcher(run_recording(calls))

    async def main() -> tuple[bool, int]:
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)  # both queued, the flush scheduled
        gone.cancel()
        answer = await kept
        return gone.cancelled(), answer

    cancelled, kept = asyncio.run(main())
    assert cancelled and kept == 20
    assert calls == [[1, 2]]


def test_a_new_event_loop_gets_its_own_flush() -> None:
    batcher = MicroBatcher(run_recording([]))
    assert asyncio.run(batcher.submit(1)) == 10
    assert asyncio.run(batcher.submit(2)) == 20  # (a test client starts a loop of its own)


# --- GET /api/v1/clip-objective, queries arriving together ---------------------------------

QUERIES = [
    {"epsilon": 0.2, "advantage": 1.0, "ratio_min": 0, "ratio_max": 2.5, "points": 101},
    {"epsilon": 0.2, "advantage": -1.0, "ratio_min": 0, "ratio_max": 2.5, "points": 101},
    {
        "epsilon": 0.13,
        "advantage": -2.0,
        "ratio_max": 4,
        "points": 9,
        "dual_clip": 3.0,
        "ratio": 3.5,
    },
    {"epsilon_low": 0.1, "epsilon_high": 0.28, "advantage": 0.7, "points": 5, "ratio": 1.2},
    {"advantage": 0.0, "points": 2, "ratio": 1.0},
    {"epsilon": 0.5, "advantage": 3.0, "ratio_min": 0, "ratio_max": 2.5, "points": 101},
]


def expected_body(q: dict[str, Any]) -> dict[str, Any]:
    """The answer built from ppo_core's curve computed alone (never from the app)."""
    c = clip_objective_curve(
        q.get("epsilon", 0.2),
        q["advantage"],
        ratio_min=q.get("ratio_min", 0.5),
        ratio_max=q.get("ratio_max", 1.5),
        points=q["points"],
        epsilon_low=q.get("epsilon_low"),
        epsilon_high=q.get("epsilon_high"),
        dual_clip=q.get("dual_clip"),
        at=q.get("ratio"),
    )
    point = None
    if c.point is not None:
        p = c.point
        point = {"ratio": p.ratio, "objective": p.objective, "gradient": p.gradient}
        point["clipped"] = p.clipped
    return {
        "ratio": c.ratio.tolist(),
        "unclipped": c.unclipped.tolist(),
        "clipped": c.clipped.tolist(),
        "objective": c.objective.tolist(),
        "gradient": c.gradient.tolist(),
        "clip_bounds": {
            "low": c.bounds.low,
            "high": c.bounds.high,
            "dual_clip": c.bounds.dual_clip,
        },
        "point": point,
    }


async def fetch_together(app: Any, queries: list[dict[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        jobs = (client.get("/api/v1/clip-objective", params=q) for q in queries)
        return list(await asyncio.gather(*jobs))


@pytest.fixture
def app() -> Any:
    return create_app(Settings(heavy_concurrency=1, log_json=False))


def test_queries_arriving_together_get_exactly_their_own_answers(app: Any) -> None:
    responses = asyncio.run(fetch_together(app, QUERIES))
    batcher = app.state.batchers["/clip-objective"]
    assert batcher.items == len(QUERIES)
    assert batcher.batches < len(QUERIES), "the queries were not computed together"
    for q, r in zip(QUERIES, responses, strict=True):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert json.dumps(body) == json.dumps(expected_body(q))  # every float, -0.0 included
        assert list(body) == list(ClipObjectiveResponse.model_fields)  # the documented shape
        ClipObjectiveResponse.model_validate_json(r.content)
    # Now cached: the same queries again compute nothing.
    again = asyncio.run(fetch_together(app, QUERIES))
    assert [r.content for r in again] == [r.content for r in responses]
    assert batcher.items == len(QUERIES)


def test_a_bad_query_among_them_is_its_own_422(app: Any) -> None:
    queries = [QUERIES[0], {"advantage": 1.0, "ratio_min": 2.0, "ratio_max": 1.0}, QUERIES[2]]
    good, bad, other = asyncio.run(fetch_together(app, queries))
    assert good.status_code == other.status_code == 200
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "ratio_max"]
    assert json.dumps(good.json()) == json.dumps(expected_body(QUERIES[0]))
    assert app.state.batchers["/clip-objective"].items == 2  # the bad one never reached it


# --- GET /api/v1/clip-objective/both-signs ----------------------------------------------------


def test_both_signs_answer_is_the_two_single_answers(app: Any) -> None:
    queries = [q for q in QUERIES if q["advantage"] > 0]

    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            jobs = (client.get("/api/v1/clip-objective/both-signs", params=q) for q in queries)
            return list(await asyncio.gather(*jobs))

    responses = asyncio.run(fetch())
    batcher = app.state.batchers["/clip-objective/both-signs"]
    assert batcher.items == len(queries) and batcher.batches < len(queries)
    for q, r in zip(queries, responses, strict=True):
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body) == ["positive", "negative"]
        negative = {**q, "advantage": -q["advantage"]}
        assert json.dumps(body["positive"]) == json.dumps(expected_body(q))
        assert json.dumps(body["negative"]) == json.dumps(expected_body(negative))
        ClipObjectiveBothSignsResponse.model_validate_json(r.content)
    # And the same numbers as the single-sign endpoint's, byte for byte.
    single = asyncio.run(fetch_together(app, [queries[0], {**queries[0], "advantage": -1.0}]))
    assert responses[0].content == (
        b'{"positive":' + single[0].content + b',"negative":' + single[1].content + b"}"
    )


@pytest.mark.parametrize("advantage", ["0", "-1"])
def test_both_signs_takes_the_magnitude_of_a(app: Any, advantage: str) -> None:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(f"/api/v1/clip-objective/both-signs?advantage={advantage}")

    r = asyncio.run(fetch())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "advantage"]
