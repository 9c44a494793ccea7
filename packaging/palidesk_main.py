"""Entry point of the frozen PaliDesk (PyInstaller runs this file as ``__main__``)."""

import sys

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
