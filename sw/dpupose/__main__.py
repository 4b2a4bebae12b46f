"""`python -m dpupose` is the `dpupose` command."""

import sys

try:
    from dpupose.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command's first modules load: its one line, as main() says it later
    print("dpupose: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
