"""CDS Hooks 2.0 service: ACR appropriateness for vertebral compression fracture orders."""

__version__ = "0.1.0"
