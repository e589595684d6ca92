"""HomePlug Green PHY on the pilot (docs/homeplug-slac.md): the MME codec (``frame``,
``messages``, ``codec``), keys, the links and the port that carry frames, the modem client, the
SLAC state machine and its service, the stack the daemon runs, and the mock modems and vehicle
of mock mode (``mock``)."""
