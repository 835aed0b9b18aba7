"""The command line of `xscontainer`: subcommands, options, --help text.

README's section "At the console" mirrors DESCRIPTION, EXAMPLES and the exit
statuses (exits.py).
"""

import argparse
import sys
from typing import List, NoReturn, Optional

from xscontainer.cli import exits

PROG = "xscontainer"
LIFECYCLE = ("start", "stop", "restart", "pause", "unpause")
MAX_TAIL = 10000

DESCRIPTION = """\
Containers in the VMs of this pool, from the dom0 of any of its hosts.

A VM is named by its uuid or its name-label (which must then be unique: when
several VMs share it, they are listed and nothing is done). Every command but
`ps` without a VM calls the xscontainer plugin through XAPI (host.call_plugin
on this host, which forwards to the VM's host), exactly as XenCenter and Xen
Orchestra do; `ps` without a VM reads the lists xscontainer-monitor publishes
and touches no guest. Tables fit the terminal; --json prints JSON for scripts.
Run it as root in dom0."""

EXAMPLES = """\
examples:
  xscontainer ps                         every registered VM's containers (published lists)
  xscontainer ps -a web-vm               all containers of VM web-vm, asked of its engine now
  xscontainer logs -n 5 web-vm nginx     the last 5 lines nginx wrote (stdout and stderr)
  xscontainer logs -f web-vm nginx       follow them; Ctrl-C stops
  xscontainer stats web-vm               CPU, memory, network, block I/O, PIDs of each
                                         running container
  xscontainer top web-vm nginx           its processes
  xscontainer inspect web-vm nginx       its main facts (--json: Docker's whole document)
  xscontainer restart web-vm nginx       also start, stop, pause, unpause
  xscontainer diagnose web-vm            each link from dom0 to the VM's engine, checked
  xscontainer prepare web-vm -u core     make a VM container-managed over SSH (asks for
                                         the user's password once) and register it
  xscontainer register web-vm            monitor it (deregister: stop monitoring)
  xscontainer --json ps | jq .           JSON, for scripts (also after the subcommand)

exit status:
%s
""" % exits.help_text()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write("%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))
        sys.exit(exits.USAGE)


def _tail(text: str) -> int:
    if text == "all":
        return MAX_TAIL
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of lines" % text) from None
    if not 0 <= value <= MAX_TAIL:
        raise argparse.ArgumentTypeError("the number of lines must be from 0 to %d" % MAX_TAIL)
    return value


def _since(text: str) -> int:
    """Unix seconds, or a duration before now: 30s, 10m, 2h, 1d."""
    import time  # noqa: PLC0415

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return int(time.time() - float(text[:-1]) * units[text[-1]])
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "%r is neither Unix seconds nor a duration such as 10m" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("since must not be negative")
    return value


def parser() -> argparse.ArgumentParser:
    # --json is accepted before and after the subcommand
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON (for scripts) instead of text")
    p = _Parser(prog=PROG, description=DESCRIPTION, epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", default=False,
                   help="print JSON (for scripts) instead of text")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    ps = command("ps", "list containers: of every registered VM as xscontainer-monitor "
                       "published them, or of the VMs named, asked of their engines now")
    ps.add_argument("vms", nargs="*", metavar="VM", help="uuid or name-label")
    ps.add_argument("-a", "--all", action="store_true",
                    help="stopped containers too (default: running ones)")
    ps.add_argument("--no-trunc", action="store_true", help="never shorten a column")

    for name, text in (("inspect", "a container's main facts (--json: Docker's whole "
                                   "inspect document)"),
                       ("top", "a container's processes")):
        c = command(name, text)
        c.add_argument("vm", metavar="VM", help="uuid or name-label")
        c.add_argument("container", metavar="CONTAINER", help="name or id")
        c.add_argument("--no-trunc", action="store_true", help="never shorten a column")

    logs = command("logs", "what a container wrote on stdout and stderr")
    logs.add_argument("vm", metavar="VM", help="uuid or name-label")
    logs.add_argument("container", metavar="CONTAINER", help="name or id")
    logs.add_argument("-n", "--tail", type=_tail, default=100, metavar="N",
                      help="the last N lines (default 100, at most %d; 'all' = %d)"
                           % (MAX_TAIL, MAX_TAIL))
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing new lines (polls every --interval); Ctrl-C stops")
    logs.add_argument("-t", "--timestamps", action="store_true",
                      help="each line with the time Docker received it")
    logs.add_argument("--since", type=_since, metavar="WHEN",
                      help="only lines since WHEN: Unix seconds, or a duration such as 10m, 2h")
    logs.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                      help="with -f: seconds between polls (default 1)")

    stats = command("stats", "one sample of CPU, memory, network and block I/O and PIDs "
                             "of a container, or of every running container of the VM")
    stats.add_argument("vm", metavar="VM", help="uuid or name-label")
    stats.add_argument("container", metavar="CONTAINER", nargs="?", help="name or id")
    stats.add_argument("--no-trunc", action="store_true", help="never shorten a column")

    for name in LIFECYCLE:
        c = command(name, "%s containers" % name)
        c.add_argument("vm", metavar="VM", help="uuid or name-label")
        c.add_argument("containers", metavar="CONTAINER", nargs="+", help="name or id")

    diagnose = command("diagnose", "check each link from dom0 to the VM's container engine")
    diagnose.add_argument("vm", metavar="VM", help="uuid or name-label")

    for name, text in (("register", "have xscontainer-monitor publish the VM's containers"),
                       ("deregister", "stop monitoring the VM (its published lists go)")):
        c = command(name, text)
        c.add_argument("vm", metavar="VM", help="uuid or name-label")

    prepare = command(
        "prepare",
        "make a running VM container-managed and register it, as the plugin's prepare "
        "(xscontainer-prepare-vm has the same options with the VM as -v UUID)")
    prepare.add_argument("vm", metavar="VM", help="uuid or name-label")
    prepare.add_argument("--mode", choices=("ssh", "tls"), default="ssh",
                         help="how dom0 reaches the VM's engine (default: ssh)")
    prepare.add_argument("-u", "--username", metavar="USER",
                         help="ssh: the user in the VM that may use Docker (default: the "
                              "VM's recorded user, else core)")
    prepare.add_argument("--password-stdin", action="store_true",
                         help="ssh: read the user's password from standard input")
    prepare.add_argument("--no-password", action="store_true",
                         help="ssh: the pool's key is authorised already; ask no password")
    prepare.add_argument("--ssh-host-key", metavar="KEY",
                         help="ssh: the VM's SSH host key you expect")
    prepare.add_argument("--generate-certs", action="store_true",
                         help="tls: generate certificates and hand them to the VM on a "
                              "temporary CD (run the command again once its administrator "
                              "ran configure_tls.cmd)")
    prepare.add_argument("--cd-timeout", type=int, metavar="SECONDS",
                         help="tls: how long the CD may stay (default 600)")
    prepare.add_argument("--client-cert", metavar="FILE", help="tls: client certificate (PEM)")
    prepare.add_argument("--client-key", metavar="FILE", help="tls: its private key (PEM)")
    prepare.add_argument("--ca-cert", metavar="FILE", help="tls: the CA certificate (PEM)")
    # for the bash completion (no help: not listed): names, one a line
    complete = sub.add_parser("complete", parents=[common])
    complete.add_argument("what", choices=("vms", "containers"))
    complete.add_argument("vm", nargs="?", default="")
    return p


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "logs":
        if args.follow and args.json:
            p.error("logs: --follow prints lines as they come; leave out --json")
        if args.interval <= 0:
            p.error("logs: --interval must be positive")
    if args.command == "prepare":
        files = (args.client_cert, args.client_key, args.ca_cert)
        if args.mode == "ssh" and (args.generate_certs or any(files) or args.cd_timeout):
            p.error("prepare: --generate-certs, --cd-timeout, --client-cert, --client-key and "
                    "--ca-cert are for --mode tls")
        if args.mode == "tls" and (args.password_stdin or args.no_password or args.ssh_host_key
                                   or args.username):
            p.error("prepare: --username, --password-stdin, --no-password and --ssh-host-key "
                    "are for --mode ssh")
        if args.password_stdin and args.no_password:
            p.error("prepare: give --password-stdin or --no-password, not both")
        if any(files) and (args.generate_certs or not all(files)):
            p.error("prepare: --mode tls takes either all of --client-cert, --client-key and "
                    "--ca-cert, or --generate-certs")
    return args
