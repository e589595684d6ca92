"""The shipped HIL scenarios: one TOML file each, read by ``hil.scenario``."""
