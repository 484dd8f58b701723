"""ServiceRequests the suggestions carry: a draft replaced by a better study, and new orders (consults).

Every resource keeps the draft's patient, encounter, requester and reasons, is ``status: draft``,
and codes the procedure with every code the catalog knows (CPT first, as the sandbox reads the first).
"""

from __future__ import annotations

from typing import Any

from cards.ids import new_uuid
from cds_service.knowledge.models import CatalogItem

from .pama import with_rating

_CARRIED = ("subject", "encounter", "requester", "reasonCode", "reasonReference", "authoredOn", "occurrenceDateTime")


def coded(item: CatalogItem) -> dict[str, Any]:
    """The CodeableConcept for a catalog item: all its codes, and our own short display as text."""
    return {"coding": [{"system": c.system, "code": c.code} for c in item.codes], "text": item.display}


def replacement(
    draft: dict[str, Any], item: CatalogItem, extensions: list[dict[str, Any]], *, keep_id: bool
) -> dict[str, Any]:
    """The draft re-coded as ``item`` with its own rating; same id when updating in place."""
    resource = dict(draft)  # top-level keys change; nested elements are shared and never modified
    resource["code"] = coded(item)
    resource["status"] = "draft"
    resource.pop("bodySite", None)  # the old study's body site may not fit the new one
    if not keep_id:
        resource["id"] = new_uuid()
    return with_rating(resource, extensions)


def new_order(
    template: dict[str, Any],
    item: CatalogItem,
    extensions: list[dict[str, Any]],
    *,
    patient_reference: str,
    priority: str | None = None,
) -> dict[str, Any]:
    """A new draft order for ``item``, carrying over the template order's context."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": new_uuid(),
        "status": "draft",
        "intent": template.get("intent") if isinstance(template.get("intent"), str) else "order",
        "code": coded(item),
        "subject": {"reference": patient_reference},
    }
    for name in _CARRIED:
        if name in template:
            resource[name] = template[name]  # shared, never modified: the result is only serialised
    if priority:
        resource["priority"] = priority
    if extensions:
        resource["extension"] = extensions
    return resource
