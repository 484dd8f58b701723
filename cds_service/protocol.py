"""Pydantic models of the CDS Hooks 2.0 wire format (request, hook contexts, response, feedback).

Field names follow the specification's camelCase. Optional response fields default to ``None``
and are dropped on output (`dump`), because the spec forbids ``null``, ``""``, ``[]`` and ``{}``
for optional fields; validators reject the empty forms on the way in to our own responses.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

# The hook library's invariant ord-1 for selections ("{type}/{id}"); FHIR ids allow [A-Za-z0-9\-\.].
_REFERENCE_RE = re.compile(r"^[A-Za-z]+/[A-Za-z0-9\-\.]{1,64}$")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------------------------------
# Request


class FhirAuthorization(_Wire):
    """``fhirAuthorization``: the OAuth 2.0 access token the CDS Client grants for its FHIR server."""

    access_token: NonEmptyStr
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: NonEmptyStr
    subject: NonEmptyStr
    patient: str | None = None

    def __repr__(self) -> str:  # keep the token out of any repr that reaches a log
        return f"FhirAuthorization(subject={self.subject!r}, scope={self.scope!r})"

    __str__ = __repr__


class BundleEntry(_Wire):
    resource: dict[str, Any]

    @field_validator("resource")
    @classmethod
    def _has_resource_type(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("resourceType"), str):
            raise ValueError("each draftOrders entry needs a resource with a resourceType")
        return value


class DraftOrders(_Wire):
    """``context.draftOrders``: a FHIR Bundle. ``type`` is tolerated absent (the sandbox omits it)."""

    resourceType: Literal["Bundle"]
    type: str | None = None
    entry: list[BundleEntry] = Field(default_factory=list)

    def references(self) -> list[str]:
        """``Type/id`` of every entry that has an id, in Bundle order."""
        return [
            f"{e.resource['resourceType']}/{e.resource['id']}"
            for e in self.entry
            if isinstance(e.resource.get("id"), str)
        ]


class OrderSignContext(_Wire):
    """Context of ``order-sign`` (and the shared part of ``order-select``)."""

    userId: NonEmptyStr
    patientId: NonEmptyStr
    encounterId: NonEmptyStr | None = None
    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    """Context of ``order-select``: ``selections`` must name entries of ``draftOrders``."""

    selections: list[NonEmptyStr] = Field(min_length=1)

    @model_validator(mode="after")
    def _selections_name_draft_orders(self) -> OrderSelectContext:
        known = set(self.draftOrders.references())
        for ref in self.selections:
            if not _REFERENCE_RE.match(ref):
                raise ValueError(f"selection {ref!r} is not of the form Type/id")
            if ref not in known:
                raise ValueError(f"selection {ref!r} names no entry of draftOrders")
        return self


class HookRequest(_Wire):
    """The body of ``POST /cds-services/{id}``; ``context`` is validated per hook afterwards."""

    hook: NonEmptyStr
    hookInstance: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    fhirServer: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)] | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> HookRequest:
        # cds-r-1: "If fhirAuthorization is provided, this field [fhirServer] is REQUIRED."
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is given")
        return self


# --------------------------------------------------------------------------------------------------
# Response


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Coding(_Out):
    system: NonEmptyStr
    code: NonEmptyStr
    display: NonEmptyStr | None = None


class Source(_Out):
    label: NonEmptyStr
    url: NonEmptyStr | None = None
    icon: NonEmptyStr | None = None
    topic: Coding | None = None


class Link(_Out):
    label: NonEmptyStr
    url: NonEmptyStr
    type: Literal["absolute", "smart"]
    appContext: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _app_context_only_smart(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is only allowed on smart links (cds-resp-3)")
        return self


class Action(_Out):
    type: Literal["create", "update", "delete"]
    description: NonEmptyStr
    resource: dict[str, Any] | None = None
    resourceId: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _resource_rules(self) -> Action:
        if self.type in ("create", "update") and not self.resource:
            raise ValueError(f"a {self.type} action needs a resource")
        if self.type == "delete" and not self.resourceId:
            raise ValueError("a delete action needs a resourceId")
        return self


class Suggestion(_Out):
    label: NonEmptyStr
    uuid: NonEmptyStr | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(default=None, min_length=1)


class OverrideReason(Coding):
    display: NonEmptyStr  # cds-resp-4: override reasons need a display


class Card(_Out):
    uuid: NonEmptyStr | None = None
    summary: Annotated[str, StringConstraints(min_length=1, max_length=139)]
    detail: NonEmptyStr | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] | None = Field(default=None, min_length=1)
    links: list[Link] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _selection_behavior_with_suggestions(self) -> Card:
        # cds-resp-6: "If suggestions are present, selectionBehavior MUST also be provided."
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when suggestions are present")
        return self


class HookResponse(_Out):
    cards: list[Card] = Field(default_factory=list)
    systemActions: list[Action] | None = Field(default=None, min_length=1)
    extension: dict[str, Any] | None = None

    def dump(self) -> dict[str, Any]:
        """The JSON body: optional fields omitted, ``cards`` always present (it has no None)."""
        return self.model_dump(exclude_none=True, mode="json")

    def to_json(self) -> bytes:
        """``dump`` encoded, in one step (pydantic's serializer writes JSON bytes itself; model_dump_json
        would decode them to a str, for us to encode again)."""
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)


# --------------------------------------------------------------------------------------------------
# Feedback


class AcceptedSuggestion(_Wire):
    id: NonEmptyStr


class FeedbackOverrideReason(_Wire):
    reason: Coding | None = None
    userComment: Annotated[str, StringConstraints(max_length=4096)] | None = None


class Feedback(_Wire):
    card: NonEmptyStr
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: FeedbackOverrideReason | None = None
    outcomeTimestamp: datetime

    @model_validator(mode="after")
    def _conditional_fields(self) -> Feedback:
        # cds-fb-1/2: accepted needs acceptedSuggestions; overrideReason only with overridden.
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted")
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("overrideReason is only allowed when outcome is overridden")
        if self.outcomeTimestamp.tzinfo is None:
            raise ValueError("outcomeTimestamp must carry a UTC offset (RFC 3339)")
        return self


class FeedbackRequest(_Wire):
    feedback: list[Feedback] = Field(min_length=1, max_length=1000)


# --------------------------------------------------------------------------------------------------
# Discovery


class ServiceDefinition(_Out):
    hook: NonEmptyStr
    id: NonEmptyStr
    title: NonEmptyStr
    description: NonEmptyStr
    usageRequirements: NonEmptyStr | None = None
    prefetch: dict[str, str] | None = None
