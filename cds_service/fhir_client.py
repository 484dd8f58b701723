"""Reads from the CDS Client's FHIR server: one shared ``httpx.AsyncClient``, bounded pagination.

The bearer token goes only to URLs under the request's ``fhirServer`` (a ``next`` link pointing
elsewhere is refused), and never into a log line, an exception message or a stored value.
"""

from __future__ import annotations

from urllib.parse import urljoin

import httpx
import msgspec

from .engine.fhir import Document, Resource, read_document
from .errors import FhirFetchError

FHIR_JSON = "application/fhir+json"


class FhirFetcher:
    """Runs prefetch-style queries (reads and searches) against a FHIR server."""

    def __init__(
        self, client: httpx.AsyncClient, *, max_pages: int, max_response_bytes: int, max_resources: int = 5000
    ) -> None:
        self._client = client
        self._max_pages = max_pages
        self._max_response_bytes = max_response_bytes
        self._max_resources = max_resources

    async def fetch(self, base_url: str, query: str, *, token: str | None, timeout: float) -> list[Resource]:
        """Resources answered for ``query`` (a relative FHIR URL), following ``next`` links.

        A read gives its one resource; a search gives every entry's resource except
        OperationOutcomes in ``search.mode = outcome``. Any failure raises ``FhirFetchError``.
        """
        base = base_url.rstrip("/") + "/"
        url: str | None = urljoin(base, query)
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resources: list[Resource] = []
        pages = 0
        while url is not None:
            if not url.startswith(base):
                raise FhirFetchError(query, "a next link points outside fhirServer")
            pages += 1
            if pages > self._max_pages:
                raise FhirFetchError(query, f"more than {self._max_pages} pages of results")
            body = await self._get_document(url, query, headers, timeout)
            kind = body.resourceType
            if kind == "OperationOutcome":
                raise FhirFetchError(query, "the server answered with an OperationOutcome")
            if kind != "Bundle":
                if pages == 1 and kind is not None:
                    return [body]
                raise FhirFetchError(query, "the answer is not a FHIR resource")
            resources.extend(body.resources())
            if len(resources) > self._max_resources:
                raise FhirFetchError(query, f"more than {self._max_resources} resources")
            url = body.next_link()
        return resources

    async def _get_document(self, url: str, query: str, headers: dict[str, str], timeout: float) -> Document:
        try:
            response = await self._client.get(url, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise FhirFetchError(query, f"no answer within {timeout:.2f} s") from None
        except httpx.HTTPError as exc:
            raise FhirFetchError(query, f"connection failed ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise FhirFetchError(query, f"the server refused access (HTTP {response.status_code})")
        if response.status_code != 200:
            raise FhirFetchError(query, f"HTTP {response.status_code}")
        if len(response.content) > self._max_response_bytes:
            raise FhirFetchError(query, f"response larger than {self._max_response_bytes} bytes")
        try:
            body = read_document(response.content)
        except msgspec.DecodeError:
            raise FhirFetchError(query, "the answer is not JSON") from None
        if body is None:
            raise FhirFetchError(query, "the answer is not a FHIR resource")
        return body
