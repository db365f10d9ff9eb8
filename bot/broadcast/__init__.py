"""Everything pushed to subscribers (alerts, digests, campaigns), run on RQ workers."""
