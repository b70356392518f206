"""PyInstaller entry point of ``restora-gui``."""

import sys

from app.main import main

sys.exit(main())
