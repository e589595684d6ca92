"""The EVSE's energy meter on the gatekeeper's side: its ``[meter]`` section (``config``)."""
