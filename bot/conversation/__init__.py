"""One resident turn: webhook event -> dialogue -> messages -> reply (outbox), and its state."""
