"""python3 -m xsclab.xapisim serve ... | seed-example (run with PYTHONPATH=tests/lab)."""

import argparse
import json
import logging
import sys
from typing import List, Optional

from .seed import example
from .server import serve as run

DEFAULT_PLUGIN_TIMEOUT = 600.0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m xsclab.xapisim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the simulator until SIGTERM/SIGINT")
    serve.add_argument("--state", required=True, help="state file (created from --seed)")
    serve.add_argument("--seed", help="seed file, used only when the state file is missing")
    serve.add_argument("--socket", help="unix socket (default: labenv.xapi_socket())")
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    serve.add_argument("--url-file", help="write http://127.0.0.1:PORT/ here once serving")
    serve.add_argument("--pidfile", help="write the process id here")
    serve.add_argument("--plugins-dir", help="host plugins (default: labenv.tree())")
    serve.add_argument("--plugin-timeout", type=float, default=DEFAULT_PLUGIN_TIMEOUT,
                       help="seconds before a plugin is killed (default: %(default)s)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands.add_parser("seed-example", help="print an example seed")
    args = parser.parse_args(argv)

    if args.command == "seed-example":
        json.dump(example(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s xapisim[%(process)d] %(levelname)s %(message)s",
    )
    run(args.state, seed_path=args.seed, socket_path=args.socket, port=args.port,
        url_file=args.url_file, pidfile=args.pidfile, plugins_dir=args.plugins_dir,
        plugin_timeout=args.plugin_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
