"""xsclab: the xscontainer lab, a simulated XAPI pool with real guest VMs.

Nothing in it is part of the product; it is what the tests, benchmarks and the
demo run the product against. `tests/lab` must be on the path (the executables
tests/lab/{lab,xe,demo} and pytest's pythonpath put it there).

labctl      the lab as a Python API (`Lab`, `up`, `down`, `footprint`); `lab` is its
            command line
labenv      where the lab keeps its files; the environment of a host's dom0
rig         guests: network, holder process (vm-init), daemons, image, teardown
procs       processes the lab starts, recorded by PID + start time, stopped by PID
labkeys     the pool SSH key, sshd host keys, the TLS CA and certificates
tlsadmin    the admin who installs the certificates of a TLS CD in a guest
xapisim     the XAPI simulator (`python -m xsclab.xapisim serve ...`)
simharness  runs one simulator in a throw-away folder, for tests

Importing the package imports none of them: the simulator's process loads only
what it needs.
"""
