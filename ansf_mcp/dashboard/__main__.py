"""`python -m ansf_mcp.dashboard` = `ansf dashboard` (until and besides the main CLI's subcommand)."""

import sys

from ansf_mcp.dashboard.cli import main

sys.exit(main())
