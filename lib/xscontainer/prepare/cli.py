"""The command line of xscontainer-prepare-vm.

Exit status: 0 when the VM is prepared and container management works for it;
1 when something failed (one line on stderr says what, and what to do); 2 for
wrong options; 130 after Ctrl-C. Progress goes to stdout, details to the
xscontainer log. No secret (password, key) is ever printed or logged.
"""

import argparse
import logging
import sys
from typing import List, NoReturn, Optional

from xscontainer import errors, paths
from xscontainer import log as xlog
from xscontainer.prepare import common, lock
from xscontainer.prepare.console import Aborted, Console
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)
PROG = "xscontainer-prepare-vm"
LOCK_WAIT = 5.0  # another preparation of the VM (plugin prepare, a second tool) runs

DESCRIPTION = """Prepares VMs for container management.

--mode ssh (default; Linux guests with sshd and Docker): logs in once as USER with
  the user's password, records the VM's SSH host key, adds the pool's SSH key to
  ~USER/.ssh/authorized_keys, checks that the key login and the Docker socket work,
  then stores the user and mode and registers the VM for monitoring. Safe to run
  again, e.g. after the VM moved to another pool.

--mode tls (Windows Server guests; Docker on TCP 2376 with mutual TLS):
  --generate-certs makes a CA, a server certificate for the VM's IPv4 addresses
  and a client certificate, and hands the server side to the VM on a temporary CD
  with configure_tls.cmd, which an administrator runs in the VM. The CD is readable
  by everyone in the VM while inserted: only for VMs with a single trusted user.
  If the CD drive holds other media you are asked to eject it (it is put back
  afterwards); with --yes the tool refuses instead.
  --client-cert/--client-key/--ca-cert store certificates of your own (Docker in
  the VM already configured for them), after checking them.
  Either way the client side is kept as XAPI secrets, the chain is checked, and
  once it works the VM is registered for monitoring."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write("%s: error: %s (see --help)\n" % (PROG, message))
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--vmuuid", required=True, metavar="VM_UUID",
                   help="the VM to prepare (it must be running)")
    p.add_argument("--mode", choices=("ssh", "tls"), default="ssh",
                   help="how dom0 reaches Docker in the VM (default: ssh)")
    p.add_argument("-u", "--username", metavar="USER",
                   help="ssh: the user in the VM that may use Docker (required)")
    p.add_argument("--password-stdin", action="store_true",
                   help="ssh: read the user's password from standard input, not a prompt")
    p.add_argument("--password-secret", metavar="SECRET_UUID",
                   help="ssh: take the user's password from this XAPI secret (xe secret-create "
                        "value=...); the secret is destroyed once read, also on failure")
    p.add_argument("--ssh-host-key", metavar="KEY",
                   help="ssh: the VM's SSH host key you expect ('ssh-ed25519 AAAA...' or its "
                        "base64 part); the VM must present it (default: the key seen at the "
                        "first login is recorded)")
    p.add_argument("--docker-socket", metavar="PATH",
                   help="ssh: the engine's socket in the VM, stored as other-config "
                        "xscontainer-docker-socket (default: the first usable of "
                        "/var/run/docker.sock and the user's rootless Podman and Docker "
                        "sockets, found at each connection)")
    p.add_argument("--generate-certs", action="store_true",
                   help="tls: generate certificates and deploy them with a temporary CD")
    p.add_argument("--client-cert", metavar="FILE", help="tls: your client certificate (PEM)")
    p.add_argument("--client-key", metavar="FILE", help="tls: its private key (PEM)")
    p.add_argument("--ca-cert", metavar="FILE",
                   help="tls: the CA that signed it and Docker's server certificate (PEM)")
    p.add_argument("--yes", action="store_true",
                   help="answer yes to every question; with --generate-certs wait until Docker "
                        "in the VM answers with the new certificate instead of asking")
    p.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                   help="tls with --yes: how long to wait for that (default: 600)")
    return p


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    files = (args.client_cert, args.client_key, args.ca_cert)
    if args.mode == "ssh":
        if not args.username:
            p.error("--mode ssh needs --username USER")
        if args.generate_certs or any(files):
            p.error("--generate-certs, --client-cert, --client-key and --ca-cert are for "
                    "--mode tls")
        if args.password_stdin and args.password_secret:
            p.error("give either --password-stdin or --password-secret, not both")
        return
    if args.password_stdin or args.password_secret or args.ssh_host_key or args.docker_socket:
        p.error("--password-stdin, --password-secret, --ssh-host-key and --docker-socket are "
                "for --mode ssh")
    if args.generate_certs and any(files):
        p.error("give either --generate-certs or --client-cert/--client-key/--ca-cert, not both")
    if not args.generate_certs and not all(files):
        p.error("--mode tls needs either --generate-certs, or all of --client-cert FILE "
                "--client-key FILE --ca-cert FILE")
    if args.wait <= 0:
        p.error("--wait must be positive")


def main(argv: Optional[List[str]] = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    _check(p, args)
    xlog.configure("prepare-vm")
    console = Console(assume_yes=args.yes)
    log.info("preparing VM %s for mode %s", args.vmuuid, args.mode)
    try:
        with Xapi.login() as xapi, lock.held(args.vmuuid, LOCK_WAIT):
            if args.mode == "ssh":
                from xscontainer.prepare import sshmode  # noqa: PLC0415 (paramiko only here)

                expected = (sshmode.host_key_body(args.ssh_host_key) if args.ssh_host_key
                            else None)
                sshmode.run(console, xapi, args.vmuuid, args.username, args.password_stdin,
                            args.password_secret, expected, args.docker_socket)
            elif args.generate_certs:
                from xscontainer.prepare import tlsmode  # noqa: PLC0415

                tlsmode.run_generated(console, xapi, args.vmuuid, args.wait)
            else:
                from xscontainer.prepare import tlsmode  # noqa: PLC0415

                tlsmode.run_external(console, xapi, args.vmuuid,
                                     (args.client_cert, args.client_key, args.ca_cert))
    except KeyboardInterrupt:
        log.warning("interrupted")
        return _fail("interrupted; run it again to complete the preparation", 130)
    except Aborted as exc:
        log.info("aborted: %s", exc)
        return _fail(str(exc))
    except common.NotWorking as exc:
        log.warning("%s", exc)
        return _fail("%s (fix it, then run this again)" % exc)
    except errors.XSContainerError as exc:
        log.warning("failed: %s %s", exc.code, exc.message)
        return _fail(exc.message)
    except Exception as exc:
        log.exception("failed unexpectedly")
        return _fail("unexpected %s: %s (details in %s)" % (
            exc.__class__.__name__, exc, paths.log_file()))
    log.info("prepared VM %s", args.vmuuid)
    return 0


def _fail(message: str, status: int = 1) -> int:
    one_line = " ".join(xlog.redact(message).split())
    sys.stdout.flush()
    sys.stderr.write("%s: error: %s\n" % (PROG, one_line))
    return status
