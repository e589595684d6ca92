"""Hardware-in-the-loop tools: the rig client, the scenario suite with its runner and report,
the simulated vehicle, the scripted demo session, benchmarks.

Shipped with the firmware so that ``python -m hil...`` works after install; production code
never imports it.
"""
