"""`xscontainer`: the containers of the pool's VMs for a person at a dom0 shell,
and for scripts (--json, exit statuses that say what failed).

options.py (the command line and --help), commands.py (each subcommand),
pool.py (VMs by uuid or name-label, the plugin through XAPI), views.py (the
plugin's documents read), tables.py (output sized to the terminal, UTF-8),
follow.py (logs -f), exits.py (exit statuses). It imports neither paramiko nor
the Docker SDK: the plugin does the work.
"""

import json
import logging
import os
import sys
from typing import List, Optional

log = logging.getLogger(__name__)

# XAPI call deadline: longer than any plugin call but prepare takes
TIMEOUT = 120.0
PREPARE_TIMEOUT = 1200.0


def main(argv: Optional[List[str]] = None) -> int:
    from xscontainer import log as xlog  # noqa: PLC0415
    from xscontainer import paths, wireio  # noqa: PLC0415
    from xscontainer.cli import commands, exits, options, tables  # noqa: PLC0415
    from xscontainer.cli.pool import CommandError, Pool  # noqa: PLC0415

    if argv is None:  # as the bytes were, whatever the locale (wireio.py)
        wireio.quiet_warnings()
        wireio.utf8_stdio()
        argv = [wireio.utf8_arg(arg) for arg in sys.argv[1:]]
    args = options.parse(argv)
    xlog.configure("cli")
    logging.captureWarnings(True)
    log.info("xscontainer %s", args.command)
    try:
        timeout = PREPARE_TIMEOUT if args.command == "prepare" else TIMEOUT
        with Pool.connect(timeout) as pool:
            return commands.COMMANDS[args.command](pool, args)
    except CommandError as exc:
        log.warning("%s failed: %s %s", args.command, exc.code, exc.message)
        if args.json:
            tables.line(json.dumps({"error": {"status": exc.status, "code": exc.code,
                                              "message": exc.message}}, indent=2))
        tables.write("xscontainer: %s\n" % xlog.redact(exc.message), sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        log.warning("%s interrupted", args.command)
        tables.write("xscontainer: interrupted\n", sys.stderr)
        return exits.INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): nothing more to say, and nothing at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.OK
    except Exception as exc:
        log.exception("%s failed unexpectedly", args.command)
        tables.write("xscontainer: unexpected %s: %s (details in %s)\n" % (
            exc.__class__.__name__, xlog.redact(str(exc)), paths.log_file()), sys.stderr)
        return exits.FAILED
