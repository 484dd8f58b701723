"""``python -m cds_service`` is the ``cds-service`` command."""

import sys

from .cli import main

sys.exit(main())
