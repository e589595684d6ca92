"""Time a utility can trust: whether the system clock is synchronized, whether it has been
since boot, and its steps (docs/time.md).

The board has no real-time clock. What this package owns: reading the kernel's view of the
clock (``kernel``), the since-boot latch (``latch``), step detection (``steps``), and the
watch that combines them for ``status``, the 2030.5 Time resource and the J3072 gate
(``watch``). It does not set the clock: a time service (systemd-timesyncd, chrony) does.
"""
