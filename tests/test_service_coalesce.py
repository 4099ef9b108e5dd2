"""Concurrent /score requests scored as one batch: each request gets the answer it gets alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fraudvae_service.coalesce import Coalescer
from fraudvae_service.events import score_batch, score_rows, validate_events
from fraudvae_service.settings import Settings
from fraudvae_service.state import LoadedModel, load_model

from fraudvae import VAEDetector
from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import DataError, SchemaError
from tests.conftest import a_transaction


def _same(a: ScoreResult, b: ScoreResult) -> None:
    for name in ("anomaly_score", "reconstruction", "neg_elbo", "p_value", "is_anomaly", "contributions", "excess"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.latent_mean, b.latent_mean)
    assert a.top_features(3) == b.top_features(3)
    assert a.threshold == b.threshold and len(a) == len(b)


def _requests() -> list[list[dict[str, Any]]]:
    """Records of six requests: one with a column missing where the others have text, one of two rows."""
    rows = [a_transaction() | {"amount": float(a)} for a in (5, 50, 500, 5000, 12.5)]
    rows[1] |= {"country": None}
    return [[r] for r in rows] + [[a_transaction() | {"amount": 7.0}, a_transaction() | {"amount": 70.0}]]


def _gather(model: LoadedModel, requests: list[tuple[list[dict[str, Any]], Any, bool]], passes: list[int]) -> list[Any]:
    async def run() -> list[Any]:
        coalescer = Coalescer(score_batch)
        return await asyncio.gather(
            *(coalescer.score(model, recs, ids, record, 3, on_pass=passes.append) for recs, ids, record in requests),
            return_exceptions=True,
        )

    return asyncio.run(run())


@pytest.fixture(scope="module")
def served(model_dir: Path) -> LoadedModel:
    return load_model(model_dir)


def test_concurrent_requests_share_one_pass_and_keep_their_answers(served: LoadedModel) -> None:
    requests = [(recs, [f"e{i}"] * len(recs), True) for i, recs in enumerate(_requests())]
    passes: list[int] = []
    together = _gather(served, requests, passes)
    assert passes == [len(requests)]  # one pass answered every request
    for (recs, ids, record), (frame, answers, result) in zip(requests, together, strict=True):
        alone_frame, alone_answers, alone = score_rows(served, recs, ids, record, 3)
        assert answers == alone_answers and answers[0]["event_id"] == ids[0]
        _same(result, alone)
        pd.testing.assert_frame_equal(frame, alone_frame)


def test_a_refused_request_gets_its_own_error_and_the_others_their_answers(served: LoadedModel) -> None:
    requests = [(recs, [None] * len(recs), True) for recs in _requests()]
    requests[2] = ([a_transaction() | {"amount": "lots"}], [None], True)
    passes: list[int] = []
    together = _gather(served, requests, passes)
    assert isinstance(together[2], SchemaError) and "amount" in str(together[2]) and "'lots'" in str(together[2])
    assert passes == [len(requests)]  # one batch: it failed, and each request was scored alone
    for i, ((recs, ids, record), got) in enumerate(zip(requests, together, strict=True)):
        if i != 2:
            assert got[1] == score_rows(served, recs, ids, record, 3)[1]


def test_events_batched_count_as_they_would_one_request_at_a_time(
    spec_model_dir: Path, card_events: pd.DataFrame, tmp_path: Path
) -> None:
    """A spec model's events of one batch (some of one card, a retried id, a late one) get the
    features, flags and scores they get when each request comes alone, in the same order."""
    events = card_events.iloc[4000:4048].drop(columns=["is_fraud"]).reset_index(drop=True)  # each commit syncs: few
    bodies = json.loads(events.to_json(orient="records", date_format="iso"))
    bodies[30] = dict(bodies[12])  # a retry of an earlier event
    bodies[31] = bodies[31] | {"card_id": bodies[20]["card_id"], "timestamp": bodies[0]["timestamp"]}  # late
    bodies[32] = bodies[32] | {"card_id": bodies[33]["card_id"]}  # one card, two events, one batch

    def model(name: str) -> LoadedModel:
        url = f"sqlite:///{tmp_path / name}"
        return load_model(
            spec_model_dir, Settings(model_dir=spec_model_dir, state_url=url, event_id_column="transaction_id")
        )

    one_by_one = model("alone.sqlite")
    alone = [score_rows(one_by_one, *validate_events([b], one_by_one, batch=False), 3)[1][0] for b in bodies]
    batched = model("batched.sqlite")
    passes: list[int] = []
    together = _gather(batched, [validate_events([b], batched, batch=False) for b in bodies], passes)
    assert sum(passes) == len(bodies) and max(passes) > 1
    assert [answers[0] for _, answers, _ in together] == alone
    assert alone[31]["late"] and alone[30]["replayed"] and not alone[29]["replayed"]
    for m in (one_by_one, batched):
        m.state.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"amount": "lots"}, id="refused by the features (nothing recorded)"),
        pytest.param({"merchant": "\ud800"}, id="refused by the detector (after recording)"),
    ],
)
def test_a_refused_event_fails_alone_and_its_batch_counts_once(
    spec_model_dir: Path, card_events: pd.DataFrame, tmp_path: Path, bad: dict[str, str]
) -> None:
    events = card_events.iloc[4300:4316].drop(columns=["is_fraud"]).reset_index(drop=True)
    bodies = json.loads(events.to_json(orient="records", date_format="iso"))

    def model(name: str) -> LoadedModel:
        url = f"sqlite:///{tmp_path / name}"
        return load_model(
            spec_model_dir, Settings(model_dir=spec_model_dir, state_url=url, event_id_column="transaction_id")
        )

    def requests(m: LoadedModel) -> list[Any]:
        out = [validate_events([b], m, batch=False) for b in bodies]
        out[7] = ([out[7][0][0] | bad], *out[7][1:])  # past the request's validation, as a bug might let it
        return out

    one_by_one = model("alone.sqlite")
    alone = [score_batch(one_by_one, [(recs, ids)], record, 3)[0] for recs, ids, record in requests(one_by_one)]
    batched = model("batched.sqlite")
    passes: list[int] = []
    together = _gather(batched, requests(batched), passes)
    assert passes == [len(bodies)]
    field = next(iter(bad))
    for got in (alone[7], together[7]):
        assert isinstance(got, SchemaError | DataError) and field in str(got), got
    for i, (a, t) in enumerate(zip(alone, together, strict=True)):
        if i != 7:
            assert t[1] == a[1] and not t[1][0]["replayed"]
    for m in (one_by_one, batched):
        m.state.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("rows", [slice(0, 1), slice(2, 5), slice(4, 6)])
def test_take_is_the_result_of_those_rows(fitted: VAEDetector, rows: slice) -> None:
    frame = pd.DataFrame([a_transaction() | {"amount": float(a)} for a in (5, 50, 500, 5000, 12.5, 1)])
    whole = fitted.score_frame(frame, explain_top_k=3)
    _same(whole.take(rows), fitted.score_frame(frame.iloc[rows].reset_index(drop=True), explain_top_k=3))
