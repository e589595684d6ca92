"""The firmware's version, read from the installed METADATA by hand."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from firmware import _metadata_version, firmware_version


def test_it_agrees_with_importlib_metadata_without_loading_it() -> None:
    assert firmware_version() == version("evse-gatekeeper")
    probe = "import sys; from firmware import firmware_version as v; v(); print('importlib.metadata' in sys.modules)"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_version_header_is_read_before_the_body(tmp_path: Path) -> None:
    metadata = tmp_path / "METADATA"
    metadata.write_text("Metadata-Version: 2.1\nName: x\nVersion: 1.2.3\n\nVersion: 9.9.9\n")
    assert _metadata_version(str(metadata)) == "1.2.3"
    metadata.write_text("Metadata-Version: 2.1\n\nVersion: 9.9.9\n")
    assert _metadata_version(str(metadata)) is None
    assert _metadata_version(str(tmp_path / "missing")) is None
