"""Building blocks with no product knowledge: clock, Redis connection, text folding, safety policy."""
