"""The journal: every session, decision, fault and relay action in SQLite (WAL, synchronous
writes) before the action is reported done (``store``), what the daemon writes into it
(``recorder``) and ``evse-gatekeeper sessions`` (``cli``)."""
