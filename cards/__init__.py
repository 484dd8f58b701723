"""Card, suggestion and system-action building from the engine's decisions."""
