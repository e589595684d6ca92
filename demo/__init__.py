"""``make run``: the whole story in mock mode, narrated (``python -m demo``)."""
