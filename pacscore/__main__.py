"""``python -m pacscore``: the pacscore command."""

import sys

from .cli import main

sys.exit(main())
