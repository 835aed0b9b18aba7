"""xscontainer-prepare-vm: make a VM's Docker engine manageable from the pool.

ssh mode (sshmode.py) for Linux guests, tls mode (tlsmode.py) for Windows
Server guests; the command line is in cli.py.
"""

from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from xscontainer.prepare import cli  # noqa: PLC0415 (keeps `import xscontainer.prepare` light)

    return cli.main(argv)
