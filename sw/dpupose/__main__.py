"""`python -m dpupose` is the `dpupose` command."""

import signal
import sys

previous = signal.getsignal(signal.SIGTERM)
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
finally:
    # The command is over: a SIGTERM as the interpreter shuts down (an exit hook, a thread joined) ends it
    # as before, not in a Terminated traceback 'ignored' with exit status 0.
    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

sys.exit(code)
