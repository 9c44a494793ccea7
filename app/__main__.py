"""``python -m app`` is the ``palidesk`` command."""

import sys

from app.cli.main import main

sys.exit(main())
