"""Flask surfaces: one blueprint per surface (webhook, simulator, ...)."""
