"""`python -m handoff` is the `handoff` command."""

import sys

from handoff.programs.cli import main

sys.exit(main())
