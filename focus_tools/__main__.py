"""`python -m focus_tools`: the focus-dataset command."""

import sys

from focus_tools.cli import main

sys.exit(main())
