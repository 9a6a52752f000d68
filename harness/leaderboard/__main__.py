"""`python -m harness.leaderboard`: the focus-leaderboard command."""

import sys

from harness.leaderboard.cli import main

sys.exit(main())
