"""The CDS services this app offers, one module each."""

from __future__ import annotations

from cds_service.services import CdsService

from .order_select import SERVICE as ORDER_SELECT
from .order_sign import SERVICE as ORDER_SIGN

SERVICES: tuple[CdsService, ...] = (ORDER_SELECT, ORDER_SIGN)

__all__ = ["ORDER_SELECT", "ORDER_SIGN", "SERVICES"]
