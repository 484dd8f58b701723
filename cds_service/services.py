"""What a CDS service is to this app: discovery entry, prefetch templates, context model, orders to rate.

The two services live in ``hooks/``; they differ only in hook, id and which draft orders they rate
(product-spec §1: order-select rates the ``selections``, order-sign every draft order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import BadRequest
from .prefetch import PrefetchTemplate
from .protocol import OrderSignContext, ServiceDefinition

# Only instance reads and token-equality searches on {{context.patientId}}: the spec's restricted
# subset, with a token both order hooks allow. Conditions, Procedures, Observations and
# AllergyIntolerances feed the facts (product-spec §3.2); the Patient is context only.
PATIENT_RECORD_PREFETCH: tuple[PrefetchTemplate, ...] = (
    PrefetchTemplate("patient", "Patient/{{context.patientId}}", required=False),
    PrefetchTemplate("conditions", "Condition?patient={{context.patientId}}"),
    PrefetchTemplate("procedures", "Procedure?patient={{context.patientId}}"),
    PrefetchTemplate("observations", "Observation?patient={{context.patientId}}&category=laboratory,imaging,exam"),
    PrefetchTemplate("allergies", "AllergyIntolerance?patient={{context.patientId}}"),
)

USAGE_REQUIREMENTS = (
    "Send draft orders as FHIR R4 ServiceRequests coded with CPT, LOINC (RSNA Playbook), RadLex RPID or "
    "SNOMED CT. Prefetch the patient's Conditions, Procedures, Observations (laboratory, imaging, exam) and "
    "AllergyIntolerances, or grant fhirServer with fhirAuthorization so the service can read them."
)


@dataclass(frozen=True)
class CdsService:
    """One entry of discovery and the rules for calling it."""

    id: str
    hook: str
    title: str
    description: str
    context_model: type[OrderSignContext]
    orders_to_rate: Callable[[Any], list[dict[str, Any]]]
    prefetch: tuple[PrefetchTemplate, ...] = PATIENT_RECORD_PREFETCH
    usage_requirements: str = USAGE_REQUIREMENTS

    def definition(self) -> ServiceDefinition:
        """This service's entry in ``GET /cds-services``."""
        return ServiceDefinition(
            hook=self.hook,
            id=self.id,
            title=self.title,
            description=self.description,
            usageRequirements=self.usage_requirements,
            prefetch={t.key: t.query for t in self.prefetch},
        )

    def parse_context(self, raw: dict[str, Any]) -> OrderSignContext:
        """The hook context validated against this hook's model; ``BadRequest`` names what is wrong."""
        try:
            return self.context_model.model_validate(raw)
        except ValidationError as exc:
            raise BadRequest(
                "Invalid context: " + validation_summary(exc),
                expression=[_location("context", err["loc"]) for err in exc.errors()],
            ) from None


def validation_summary(exc: ValidationError) -> str:
    """One line naming each pydantic error by JSON path, without echoing input values."""
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}" for err in exc.errors()[:10]]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    return ".".join([prefix, *(str(p) for p in loc)])
