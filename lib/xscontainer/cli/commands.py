"""Each subcommand of `xscontainer`: what it asks of the pool, what it prints.

A subcommand returns its exit status, or raises pool.CommandError. Text goes
to stdout through tables.write (UTF-8 whatever the locale); --json prints one
JSON document.
"""

import argparse
import getpass
import json
import logging
import sys
from typing import Any, Callable, Dict, List, Optional

from xscontainer import xapi_keys
from xscontainer.cli import exits, follow, tables, views
from xscontainer.cli.pool import VM, CommandError, Pool

log = logging.getLogger(__name__)

Command = Callable[[Pool, argparse.Namespace], int]


def emit_json(value: Any) -> None:
    tables.line(json.dumps(value, indent=2, sort_keys=False))


def _plugin_json(pool: Pool, fn: str, args: Dict[str, str]) -> Any:
    """The plugin function's JSON answer (format=json), decoded."""
    payload = pool.plugin(fn, dict(args, format="json"))
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise CommandError("The plugin's %s did not answer JSON (%s); update xscontainer on "
                           "every host of the pool." % (fn, exc), exits.XAPI) from exc


def _columns(args: argparse.Namespace) -> Optional[int]:
    return None if getattr(args, "no_trunc", False) else tables.width()


def _vm_json(vm: VM) -> Dict[str, Any]:
    return {"uuid": vm.uuid, "name_label": vm.name}


# -- ps -----------------------------------------------------------------------


def ps(pool: Pool, args: argparse.Namespace) -> int:
    listed: List[Dict[str, Any]] = []
    failures: List[CommandError] = []
    if args.vms:
        for name in args.vms:
            try:
                vm = pool.vm(name)
                containers = _ps_now(pool, vm, args.all)
            except CommandError as exc:
                failures.append(exc)
                _warn("%s: %s" % (name, exc.message))
                continue
            listed.append(dict(_vm_json(vm), containers=containers))
    else:
        registered = [vm for vm in pool.all_vms() if vm.registered]
        if not registered and not args.json:
            _warn("No VM is registered for container monitoring (xscontainer register VM).")
        for vm in registered:
            published = vm.other_config.get(xapi_keys.DOCKER_PS)
            try:
                containers = views.ps_containers(published or "")
            except views.BadDocument as exc:
                _warn("%s: its published docker_ps is unreadable: %s" % (vm.name, exc))
                containers = []
            if not args.all:
                containers = [c for c in containers if views.is_running(c)]
            entry = dict(_vm_json(vm), containers=containers)
            entry["power_state"] = vm.power_state
            entry["published"] = published is not None  # False: not (yet) published
            listed.append(entry)
    if args.json:
        emit_json({"vms": listed})
    else:
        rows = [views.ps_row(vm["name_label"], c) for vm in listed for c in vm["containers"]]
        tables.line(tables.render(views.PS_HEADER, rows, views.PS_SHRINK, _columns(args)))
        quiet = [vm["name_label"] for vm in listed if vm.get("published") is False
                 and vm["power_state"] == "Running"]
        if quiet:
            _warn("Nothing published yet for %s: is xscontainer-monitor running on its host? "
                  "(xscontainer ps VM asks the VM's engine now.)" % ", ".join(quiet))
    return failures[-1].status if failures else exits.OK


def _ps_now(pool: Pool, vm: VM, all_containers: bool) -> List[Dict[str, Any]]:
    # get_ps lists every container unless all=false (then running and paused ones)
    arguments = {"vmuuid": vm.uuid, "all": "true" if all_containers else "false"}
    answer = _plugin_json(pool, "get_ps", arguments)
    containers = answer.get("containers") if isinstance(answer, dict) else None
    if not isinstance(containers, list):
        raise CommandError("The plugin's get_ps answered JSON without a container list.",
                           exits.ENGINE)
    if answer.get("not_shown"):
        _warn("%s: %s more containers not shown (the answer's size limit)"
              % (vm.name, answer["not_shown"]))
    return [c for c in containers if isinstance(c, dict)]


# -- inspect, top -------------------------------------------------------------------


def _target(pool: Pool, args: argparse.Namespace) -> Dict[str, str]:
    return {"vmuuid": pool.vm(args.vm).uuid, "object": args.container}


def inspect(pool: Pool, args: argparse.Namespace) -> int:
    target = _target(pool, args)
    if args.json:
        emit_json(_plugin_json(pool, "get_inspect", target))
        return exits.OK
    facts = views.inspect_summary(pool.plugin("get_inspect", target))
    tables.line(tables.render(("FIELD", "VALUE"), facts, ("VALUE",), _columns(args)))
    return exits.OK


def top(pool: Pool, args: argparse.Namespace) -> int:
    target = _target(pool, args)
    if args.json:
        emit_json(_plugin_json(pool, "get_top", target))
        return exits.OK
    titles, rows = views.top_processes(pool.plugin("get_top", target))
    tables.line(tables.render(titles, rows, ("CMD", "COMMAND", "ARGS"), _columns(args)))
    return exits.OK


# -- logs -----------------------------------------------------------------------------


def logs(pool: Pool, args: argparse.Namespace) -> int:
    target = _target(pool, args)
    target["tail"] = str(args.tail)
    if args.since is not None:
        target["since"] = str(args.since)
    if args.follow:
        return follow.Follower(pool, target, args.timestamps, args.interval).run()
    if args.timestamps:
        target["timestamps"] = "true"
    if args.json:
        emit_json(_plugin_json(pool, "get_logs", target))
        return exits.OK
    tables.write(pool.plugin("get_logs", target))
    return exits.OK


# -- stats --------------------------------------------------------------------------

STATS_HEADER = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                "BLOCK I/O", "PIDS")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _sizes(sample: Dict[str, Any], first: str, second: str, binary: bool) -> str:
    return "%s / %s" % (tables.human_bytes(_number(sample.get(first)), binary),
                        tables.human_bytes(_number(sample.get(second)), binary))


def stats_row(sample: Dict[str, Any]) -> List[str]:
    """A get_stats row as `docker stats` shows it (memory in binary units, I/O in
    decimal ones)."""
    return [str(sample.get("id", ""))[:12], str(sample.get("name", "")).lstrip("/"),
            "%.2f%%" % _number(sample.get("cpu_percent")),
            _sizes(sample, "memory_usage", "memory_limit", True),
            "%.2f%%" % _number(sample.get("memory_percent")),
            _sizes(sample, "network_rx", "network_tx", False),
            _sizes(sample, "block_read", "block_write", False),
            str(sample.get("pids", ""))]


def stats(pool: Pool, args: argparse.Namespace) -> int:
    target = {"vmuuid": pool.vm(args.vm).uuid}
    if args.container:
        target["object"] = args.container
    answer = _plugin_json(pool, "get_stats", target)
    if args.json:
        emit_json(answer)
        return exits.OK
    samples = answer.get("containers") if isinstance(answer, dict) else None
    if not isinstance(samples, list):
        raise CommandError("The plugin's get_stats answered JSON without a container list.",
                           exits.ENGINE)
    rows = [stats_row(s) for s in samples if isinstance(s, dict)]
    tables.line(tables.render(STATS_HEADER, rows, ("NAME",), _columns(args)))
    return exits.OK


# -- lifecycle ---------------------------------------------------------------------------


def lifecycle(pool: Pool, args: argparse.Namespace) -> int:
    vm = pool.vm(args.vm)
    done: List[Dict[str, Any]] = []
    failure: Optional[CommandError] = None
    for container in args.containers:
        try:
            pool.plugin(args.command, {"vmuuid": vm.uuid, "container": container})
        except CommandError as exc:
            failure = exc
            _warn("%s: %s" % (container, exc.message))
            done.append({"container": container, "ok": False, "code": exc.code,
                         "message": exc.message})
            continue
        done.append({"container": container, "ok": True})
        if not args.json:
            tables.line(container)
    if args.json:
        emit_json({"vm": _vm_json(vm), "action": args.command, "containers": done})
    return failure.status if failure else exits.OK


# -- diagnose, register, deregister -----------------------------------------------------


def diagnose(pool: Pool, args: argparse.Namespace) -> int:
    target = {"vmuuid": pool.vm(args.vm).uuid}
    if args.json:
        report = _plugin_json(pool, "diagnose", target)
        emit_json(report)
        ok = report.get("ok") if isinstance(report, dict) else None
        return exits.FAILED if ok is False else exits.OK
    text = pool.plugin("diagnose", target)
    tables.line(text)
    return exits.FAILED if "[FAIL]" in text else exits.OK


def register(pool: Pool, args: argparse.Namespace) -> int:
    vm = pool.vm(args.vm)
    pool.plugin(args.command, {"vmuuid": vm.uuid})
    registered = args.command == "register"
    if args.json:
        emit_json({"vm": _vm_json(vm), "registered": registered})
    else:
        tables.line("%s %s (%s)" % ("Registered" if registered else "Deregistered",
                                    vm.name, vm.uuid))
    return exits.OK


# -- prepare -----------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read(1024 * 1024)
    except OSError as exc:
        raise CommandError("Cannot read %s: %s" % (path, exc.strerror), exits.USAGE) from exc


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\n").rstrip("\r")
    else:
        try:
            password = getpass.getpass("Password of the VM's user: ")
        except EOFError:
            password = ""
    if not password:
        raise CommandError("No password given: type it at the prompt, pass it with "
                           "--password-stdin, or use --no-password when the pool's key is "
                           "authorised in the VM already.", exits.USAGE)
    return password


def prepare(pool: Pool, args: argparse.Namespace) -> int:
    vm = pool.vm(args.vm)
    call = {"vmuuid": vm.uuid, "mode": args.mode}
    made: List[str] = []  # secrets of ours: the plugin destroys what it uses
    try:
        if args.mode == "ssh":
            if args.username:
                call["username"] = args.username
            if args.ssh_host_key:
                call["sshhostkey"] = args.ssh_host_key
            if not args.no_password:
                made.append(pool.create_secret(_password(args)))
                call["passwordsecret"] = made[-1]
        elif args.client_cert:
            for key, path in (("clientcertsecret", args.client_cert),
                              ("clientkeysecret", args.client_key),
                              ("cacertsecret", args.ca_cert)):
                made.append(pool.create_secret(_read(path)))
                call[key] = made[-1]
        else:
            if args.generate_certs:
                call["generatecerts"] = "true"
            if args.cd_timeout:
                call["cdtimeout"] = str(args.cd_timeout)
        report = pool.plugin("prepare", call)
    finally:
        _clean_up(pool, vm, made)
    if args.json:
        emit_json({"vm": _vm_json(vm), "report": report})
    else:
        tables.line(report)
    return exits.OK


def _clean_up(pool: Pool, vm: VM, made: List[str]) -> None:
    """Destroy the secrets the command made, unless the VM now keeps one as its
    own (TLS certificates); the plugin destroyed those it used already."""
    if not made:
        return
    try:
        kept = set(pool.vm(vm.uuid).other_config.get(k, "") for k in xapi_keys.TLS_SECRETS)
    except CommandError:
        kept = set()
    for uuid in made:
        if uuid not in kept:
            pool.destroy_secret(uuid)


def complete(pool: Pool, args: argparse.Namespace) -> int:
    """Names for the bash completion: every VM's name-label, or the names of a
    VM's containers as published (nothing asked of the guest)."""
    if args.what == "vms":
        names = sorted({vm.name for vm in pool.all_vms() if vm.name})
    else:
        published = pool.vm(args.vm).other_config.get(xapi_keys.DOCKER_PS, "")
        names = sorted({str(c["names"]) for c in views.ps_containers(published) if c["names"]})
    if names:
        tables.line("\n".join(names))
    return exits.OK


COMMANDS: Dict[str, Command] = {
    "complete": complete, "ps": ps, "inspect": inspect, "top": top, "logs": logs, "stats": stats,
    "diagnose": diagnose, "register": register, "deregister": register, "prepare": prepare,
}
COMMANDS.update({name: lifecycle for name in ("start", "stop", "restart", "pause", "unpause")})


def _warn(message: str) -> None:
    tables.write("xscontainer: %s\n" % message, sys.stderr)
