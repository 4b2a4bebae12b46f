"""`python -m dpupose` is the `dpupose` command."""

import sys

from dpupose.cli import main

sys.exit(main())
