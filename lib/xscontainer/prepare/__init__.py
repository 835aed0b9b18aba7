"""xscontainer-prepare-vm: make a VM's Docker engine manageable from the pool.

ssh mode (sshmode.py) for Linux guests, tls mode (tlsmode.py) for Windows
Server guests; the command line is in cli.py.
"""

import logging
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from xscontainer import log as xlog  # noqa: PLC0415

    # Library warnings (e.g. cryptography's about Python 3.6) go to the log, not
    # to the user's terminal: stderr carries exactly one line when something fails.
    xlog.configure("prepare-vm")
    logging.captureWarnings(True)
    from xscontainer.prepare import cli  # noqa: PLC0415 (after the two lines above)

    return cli.main(argv)
