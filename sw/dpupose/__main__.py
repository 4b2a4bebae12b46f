"""`python -m dpupose` is the `dpupose` command."""

import signal
import sys

try:
    from dpupose.errors import Terminated  # a few milliseconds: no handler can raise it before it exists

    def _on_sigterm(signum, frame):
        raise Terminated()

    # SIGTERM while dpupose.cli loads (60 ms or more), before main() sets its own handler: unwind to one line
    signal.signal(signal.SIGTERM, _on_sigterm)
    from dpupose.cli import main

    code = main()
except KeyboardInterrupt as exc:  # the command's first modules loading, or main() entered but not yet in its try
    terminated = type(exc).__name__ == "Terminated"
    print(f"dpupose: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    code = 143 if terminated else 130

sys.exit(code)
