"""Regression: an empty config yields the documented defaults (slotted dataclasses keep no
class-level defaults, so the loader must not read them from the class)."""

from pathlib import Path

from firmware.daemon.config import parse_config


def test_empty_config_gives_the_documented_defaults() -> None:
    config = parse_config({})
    assert config.board.backend == "mock"
    assert config.charger.max_current_a == 32.0
    assert config.charger.sample_rate_hz == 400
    assert config.charger.ventilation is False
    assert config.contactor.min_close_interval_ms == 10_000
    assert config.paths.state_dir == Path("/var/lib/evse-gatekeeper")
    assert config.log.level == "info"
    assert config.control_socket == Path("/var/lib/evse-gatekeeper/control.sock")
    assert config.board.mock.relay_delay_ms == 10.0
