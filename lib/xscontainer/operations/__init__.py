"""The Docker-backed plugin functions: named once, implemented once.

Laid out as the Docker SDK is (api / transport / models):

* table.py: which operations exist, the argument that names the container,
  read or lifecycle, and the check of container references. Standard library
  only (and xscontainer.errors): the plugin and the monitor's client import it
  at start-up, and the plugin's warm path must not load the Docker SDK or
  paramiko.
* implementation.py: each operation as a function of an already connected
  DockerClient (docker_api.py) and a checked container reference, returning
  the payload without the plugin's `True` prefix.

Two paths run them: the direct one (containers.py: the plugin connects to the
guest itself) and the warm one (monitor/control.py: the monitor's live
connection, asked over its control socket by monitor/client.py). They differ
only in how they get the connected client and in how a lifecycle operation
then publishes the refreshed docker_ps.

This file imports nothing, so that importing table.py stays cheap.
"""
