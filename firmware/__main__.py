"""``python -m firmware`` is the ``evse-gatekeeper`` command."""

import sys

from firmware.daemon.cli import main

sys.exit(main())
