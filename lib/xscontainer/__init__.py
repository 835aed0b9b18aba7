"""xscontainer: container management for XenServer and XCP-ng pools.

The package holds all logic; the executables in plugins/ and scripts/ are thin
entry points. Runtime code must stay Python 3.6 compatible (dom0 of XCP-ng 8.3).
"""

__version__ = "11.0.0"
