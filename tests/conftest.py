"""Set-up for the whole test session."""

from __future__ import annotations

import signal

from tickrelay import log


# A launcher may start the suite with SIGINT ignored: bash does so for a background job when job control
# is off. Children inherit an ignored signal across exec, and tickrelay's long-running commands respect an
# ignored SIGINT or SIGTERM as nohup's users expect (runtime.run), so every test that stops a process
# with Ctrl-C would wait out its timeout and leave the process running. The suite runs as from a
# foreground shell, whoever starts it.
signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

# Code run in the test process logs as the CLI sets it up (one line per record, on the stderr pytest
# captures at the time), so a test reads its diagnostics as a user would.
log.setup()
