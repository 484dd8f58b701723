"""The clinical engine: facts -> variant -> ratings. Pure, typed, synchronous; no HTTP."""
