"""The lab's own tests: the XAPI simulator with the real XenAPI client (no root),
and the lab itself (test_lab.py: root and a lab)."""
