"""Prefetch: template rendering, key states, and fetching what is absent or failed (respx as the EHR)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from cds_service.errors import FhirFetchError, PreconditionFailed
from cds_service.fhir_client import FhirFetcher
from cds_service.prefetch import (
    KeyState,
    PrefetchTemplate,
    ResolvedPrefetch,
    key_state,
    read_key,
    render_template,
    resolve_prefetch,
)
from cds_service.protocol import HookRequest
from tests import factories as f

BASE = "https://ehr.example.org/fhir"
TEMPLATES = [
    PrefetchTemplate("patient", "Patient/{{context.patientId}}", required=False),
    PrefetchTemplate("conditions", "Condition?patient={{context.patientId}}"),
    PrefetchTemplate("encounter", "Encounter/{{context.encounterId}}", required=False),
]
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}


# ------------------------------------------------------------------------------------------- pure parts


def test_render_replaces_context_tokens() -> None:
    assert render_template("Condition?patient={{context.patientId}}", {"patientId": "p1"}) == "Condition?patient=p1"
    assert render_template("{{ context.userId }}", {"userId": "Practitioner/9"}) == "Practitioner/9"


@pytest.mark.parametrize("context", [{}, {"encounterId": None}, {"encounterId": ""}, {"encounterId": {"a": 1}}])
def test_render_gives_none_when_a_token_has_no_primitive_value(context: dict[str, Any]) -> None:
    assert render_template("Encounter/{{context.encounterId}}", context) is None


@pytest.mark.parametrize(
    ("prefetch", "state"),
    [
        (None, KeyState.ABSENT),
        ({}, KeyState.ABSENT),
        ({"k": None}, KeyState.NULL),
        ({"k": {"resourceType": "Bundle"}}, KeyState.EMPTY_BUNDLE),
        ({"k": {"resourceType": "Bundle", "entry": []}}, KeyState.EMPTY_BUNDLE),
        ({"k": f.bundle([{"resourceType": "Condition", "id": "c"}])}, KeyState.BUNDLE),
        ({"k": {"resourceType": "Patient", "id": "p"}}, KeyState.RESOURCE),
        ({"k": OUTCOME}, KeyState.OPERATION_OUTCOME),
        ({"k": f.bundle([OUTCOME])}, KeyState.OPERATION_OUTCOME),
        ({"k": "garbage"}, KeyState.OPERATION_OUTCOME),
        ({"k": {"no": "type"}}, KeyState.OPERATION_OUTCOME),
    ],
)
def test_key_state(prefetch: dict[str, Any] | None, state: KeyState) -> None:
    assert key_state(prefetch, "k") is state
    resources = read_key(prefetch, "k")[1]
    assert (resources != []) == (state in (KeyState.BUNDLE, KeyState.RESOURCE))


def test_read_key_drops_outcomes_from_bundles() -> None:
    cond = {"resourceType": "Condition", "id": "c"}
    assert read_key({"k": f.bundle([cond, OUTCOME])}, "k") == (KeyState.BUNDLE, [f.resource(cond)])
    assert read_key({"k": OUTCOME}, "k") == (KeyState.OPERATION_OUTCOME, [])
    assert read_key({"k": None}, "k") == (KeyState.NULL, [])


def test_all_resources_holds_each_resource_once_by_type_and_id() -> None:
    """A resource answering two keys is read once; the same id under two types is two resources."""
    cond, obs = (
        f.resource({"resourceType": "Condition", "id": "1"}),
        f.resource({"resourceType": "Observation", "id": "1"}),
    )
    other = f.resource({"resourceType": "Condition", "id": "2"})
    no_id = [f.resource({"resourceType": "Condition"}), f.resource({"resourceType": "Condition"})]
    both = ResolvedPrefetch({"conditions": [cond, other], "problems": [cond], "observations": [obs]})
    assert both.all_resources() == [cond, other, obs]
    assert ResolvedPrefetch({"conditions": [cond, other, *no_id]}).all_resources() == [cond, other, *no_id]


# ------------------------------------------------------------------------------------------- resolution


@pytest.fixture
async def fetcher() -> AsyncIterator[FhirFetcher]:
    async with httpx.AsyncClient() as client:
        yield FhirFetcher(client, max_pages=3, max_response_bytes=100_000)


def request(prefetch: dict[str, Any] | None, *, token: bool = True, server: bool = True) -> HookRequest:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": "h1",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": prefetch,
    }
    if server:
        body["fhirServer"] = BASE
    if token:
        body["fhirAuthorization"] = {
            "access_token": "TKN",
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": "s",
            "subject": "c",
        }
    return HookRequest.model_validate(body)


async def resolve(req: HookRequest, fetcher: FhirFetcher | None, **kw: Any) -> Any:
    kw.setdefault("fetch_without_token", False)
    return await resolve_prefetch(TEMPLATES, req, fetcher, timeout=1.0, budget=kw.pop("budget", 2.0), **kw)


async def test_prefetched_keys_are_used_without_fetching(fetcher: FhirFetcher) -> None:
    cond = {"resourceType": "Condition", "id": "c1"}
    with respx.mock(assert_all_mocked=True):
        data = await resolve(
            request({"patient": {"resourceType": "Patient", "id": "p1"}, "conditions": f.bundle([cond])}), fetcher
        )
    assert data.resources["conditions"] == [f.resource(cond)]
    assert data.origin == {
        "patient": "prefetch:resource",
        "conditions": "prefetch:bundle",
        "encounter": "not-applicable",
    }


async def test_null_and_empty_bundle_are_answers_not_gaps(fetcher: FhirFetcher) -> None:
    """Spec: "If the CDS Client has no data to populate a template prefetch key, ... null"."""
    with respx.mock(assert_all_mocked=True):
        data = await resolve(request({"patient": None, "conditions": f.bundle([])}), fetcher)
    assert data.resources == {"patient": [], "conditions": [], "encounter": []}


async def test_absent_keys_are_fetched_with_the_bearer_token(fetcher: FhirFetcher) -> None:
    cond = {"resourceType": "Condition", "id": "c1"}
    with respx.mock(assert_all_called=True) as mock:
        p = mock.get(f"{BASE}/Patient/p1").mock(
            return_value=httpx.Response(200, json={"resourceType": "Patient", "id": "p1"})
        )
        c = mock.get(f"{BASE}/Condition", params={"patient": "p1"}).mock(
            return_value=httpx.Response(200, json=f.bundle([cond]))
        )
        data = await resolve(request(None), fetcher)
    assert data.resources["conditions"] == [f.resource(cond)]
    assert data.origin["conditions"] == "fetched"
    for route in (p, c):
        assert route.calls.last.request.headers["Authorization"] == "Bearer TKN"


async def test_operation_outcome_key_is_refetched(fetcher: FhirFetcher) -> None:
    cond = {"resourceType": "Condition", "id": "c1"}
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(200, json=f.bundle([cond])))
        data = await resolve(request({"patient": None, "conditions": OUTCOME}), fetcher)
    assert data.resources["conditions"] == [f.resource(cond)]


async def test_missing_required_key_without_server_is_412(fetcher: FhirFetcher) -> None:
    with pytest.raises(PreconditionFailed, match="conditions") as info:
        await resolve(request({"patient": None}, token=False, server=False), fetcher)
    assert info.value.status_code == 412


async def test_missing_optional_key_without_server_is_left_empty(fetcher: FhirFetcher) -> None:
    data = await resolve(request({"conditions": None}, token=False, server=False), fetcher)
    assert data.resources["patient"] == []
    assert data.origin["patient"] == "unavailable:absent"


async def test_server_without_token_is_not_read_unless_allowed(fetcher: FhirFetcher) -> None:
    with pytest.raises(PreconditionFailed):
        await resolve(request({"patient": None}, token=False), fetcher, fetch_without_token=False)
    with respx.mock() as mock:
        route = mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(200, json=f.bundle([])))
        await resolve(request({"patient": None}, token=False), fetcher, fetch_without_token=True)
    assert "Authorization" not in route.calls.last.request.headers


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(401), "refused access"),
        (httpx.Response(403), "refused access"),
        (httpx.Response(500), "HTTP 500"),
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(200, content=b"<html>oops</html>"), "not JSON"),
        (httpx.Response(200, json=[1, 2]), "not a FHIR resource"),
        (httpx.Response(200, json=OUTCOME), "OperationOutcome"),
        (httpx.Response(200, content=b"{" + b" " * 200_000 + b"}"), "larger than"),
    ],
)
async def test_fetch_failures_on_required_keys_are_412_naming_the_query(
    fetcher: FhirFetcher, response: httpx.Response, reason: str
) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(return_value=response)
        with pytest.raises(FhirFetchError, match=reason) as info:
            await resolve(request({"patient": None}), fetcher)
    assert info.value.status_code == 412
    assert info.value.expression == ["Condition?patient=p1"]
    assert "TKN" not in info.value.message


async def test_fetch_timeout_is_412(fetcher: FhirFetcher) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(FhirFetchError, match="no answer within"):
            await resolve(request({"patient": None}), fetcher)


async def test_connection_error_is_412(fetcher: FhirFetcher) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(FhirFetchError, match="connection failed"):
            await resolve(request({"patient": None}), fetcher)


async def test_budget_bounds_the_whole_fetch(fetcher: FhirFetcher) -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1.0)
        return httpx.Response(200, json=f.bundle([]))

    # The budget cancels the call before respx records it, so it is not "called".
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/Condition").mock(side_effect=slow)
        with pytest.raises(FhirFetchError, match=r"budget|no answer"):
            await resolve(request({"patient": None}), fetcher, budget=0.05)


async def test_optional_key_failure_is_left_empty(fetcher: FhirFetcher) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(500))
        data = await resolve(request({"conditions": None}), fetcher)
    assert data.resources["patient"] == [] and data.origin["patient"] == "fetch-failed"


async def test_pagination_follows_next_links(fetcher: FhirFetcher) -> None:
    page1 = f.bundle([{"resourceType": "Condition", "id": "c1"}])
    page1["link"] = [{"relation": "next", "url": f"{BASE}/Condition?patient=p1&page=2"}]
    page2 = f.bundle([{"resourceType": "Condition", "id": "c2"}])
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition", params={"page": "2"}).mock(return_value=httpx.Response(200, json=page2))
        mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(200, json=page1))
        data = await resolve(request({"patient": None}), fetcher)
    assert [r.id for r in data.resources["conditions"]] == ["c1", "c2"]


async def test_pagination_is_bounded(fetcher: FhirFetcher) -> None:
    looping = f.bundle([{"resourceType": "Condition", "id": "c1"}])
    looping["link"] = [{"relation": "next", "url": f"{BASE}/Condition?patient=p1"}]
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(200, json=looping))
        with pytest.raises(FhirFetchError, match="more than 3 pages"):
            await resolve(request({"patient": None}), fetcher)


async def test_next_link_to_another_host_is_refused(fetcher: FhirFetcher) -> None:
    """The token must never leave fhirServer."""
    page = f.bundle([])
    page["link"] = [{"relation": "next", "url": "https://attacker.example/steal"}]
    with respx.mock(assert_all_mocked=True) as mock:
        mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(200, json=page))
        with pytest.raises(FhirFetchError, match="outside fhirServer"):
            await resolve(request({"patient": None}), fetcher)


async def test_independent_keys_are_fetched_concurrently(fetcher: FhirFetcher) -> None:
    in_flight = 0
    peak = 0

    async def tracked(req: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        if "Patient" in req.url.path:
            return httpx.Response(200, json={"resourceType": "Patient", "id": "p1"})
        return httpx.Response(200, json=f.bundle([]))

    with respx.mock() as mock:
        mock.route(host="ehr.example.org").mock(side_effect=tracked)
        await resolve(request(None), fetcher)
    assert peak == 2


async def test_two_required_failures_are_both_named(fetcher: FhirFetcher) -> None:
    templates = [
        PrefetchTemplate("a", "Condition?patient={{context.patientId}}"),
        PrefetchTemplate("b", "Procedure?patient={{context.patientId}}"),
    ]
    with respx.mock() as mock:
        mock.get(f"{BASE}/Condition").mock(return_value=httpx.Response(500))
        mock.get(f"{BASE}/Procedure").mock(return_value=httpx.Response(502))
        with pytest.raises(PreconditionFailed) as info:
            await resolve_prefetch(templates, request(None), fetcher, fetch_without_token=False, timeout=1, budget=1)
    assert info.value.expression == ["Condition?patient=p1", "Procedure?patient=p1"]
