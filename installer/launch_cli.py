"""PyInstaller entry point of the ``restora`` command."""

import sys

from engine.cli import main

sys.exit(main())
