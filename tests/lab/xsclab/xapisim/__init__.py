"""A XAPI simulator for the xscontainer lab.

It speaks xapi's XML-RPC wire format (and its raw-disk HTTP handlers) on a unix
socket and on loopback TCP, so the real XenAPI client library and the product
cannot tell it from xapi for the calls xscontainer makes. It keeps its objects
in a JSON state file, runs host plugins the way xapi does, and serves
event.from. See HACKING.md, "The XAPI simulator", and `python3 -m xsclab.xapisim -h`.
"""
