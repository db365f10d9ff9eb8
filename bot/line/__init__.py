"""The LINE platform: API client, message builders within LINE's limits, rate limiter, rich menu,
and the strict fake Messaging API."""
