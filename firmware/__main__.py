"""``python -m firmware`` is the ``evse-gatekeeper`` command."""

import sys

from firmware.cli import main

sys.exit(main())
