"""The benchmarks (``make bench…``): each measures one claim of the firmware under a stated load
and prints p50/p99/max beside its target. ``storm`` is the load that several share and
``platform_probe`` what the machine itself allows; both are also used by the storm test."""
