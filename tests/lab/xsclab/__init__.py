"""The lab's guest VMs: one network namespace each, with its own dockerd and sshd.

procs    processes the lab starts, recorded by PID + start time, stopped by PID
keys     the pool SSH key, sshd host keys, the TLS CA and certificates
rig      guests: network, holder process (vm-init), daemons, image, teardown
"""
