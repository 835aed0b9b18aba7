"""Pure logic, no lab, fast; the only suite that may use fakes."""
