"""A stand-in for a connected DockerClient (docker_api.py) and for the monitor's
workers, shared by the unit tests of the operations and of the paths that run them;
XAPI is fakexapi's."""

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from xscontainer import containers, errors, xmlenc
from xscontainer.guest import Guest
from xscontainer.monitor.control import Dispatcher

from .fakexapi import FakeXapiServer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
WHERE = "VM web (u-1)"


def data(name: str) -> Any:
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


class FakeDocker:
    """One guest's engine with the containers in `containers` (name -> state).

    Records every call in `calls`; `fail` (an exception) makes the next Docker
    request raise it. Unknown containers give Docker's 404 as docker_api does.
    """

    def __init__(self, **containers: str) -> None:
        self.containers: Dict[str, str] = dict(containers) or {"web": "running"}
        self.calls: List[Tuple[str, ...]] = []
        self.fail: Optional[BaseException] = None
        self.closed = False
        self.where = WHERE

    def _request(self, *call: str) -> None:
        self.calls.append(call)
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail

    def _known(self, ref: str, action: str) -> None:
        if ref not in self.containers:
            raise errors.NoSuchContainer.from_response(
                404, "No such container: %s" % ref, action, self.where)

    def inspect(self, ref: str) -> Dict[str, Any]:
        self._request("inspect", ref)
        self._known(ref, "inspect container %s" % ref)
        inspect = dict(data("docker_inspect.json"))
        inspect["Name"] = "/" + ref
        inspect["State"] = dict(inspect.get("State") or {}, Status=self.containers[ref])
        return inspect

    def top(self, ref: str) -> Dict[str, Any]:
        self._request("top", ref)
        self._known(ref, "list the processes of container %s" % ref)
        return dict(data("docker_top_ps_ef.json"))

    def lifecycle(self, operation: str, ref: str) -> None:
        self._request("lifecycle", operation, ref)
        self._known(ref, "%s container %s" % (operation, ref))
        state = {"start": "running", "stop": "exited", "restart": "running",
                 "pause": "paused", "unpause": "running"}[operation]
        if operation == "pause" and self.containers[ref] == "paused":
            raise errors.DockerError.from_response(
                409, "Container %s is already paused" % ref, "pause container %s" % ref,
                self.where)
        self.containers[ref] = state

    def stats(self, ref: str) -> Dict[str, Any]:
        """A one-shot sample: CPU time grows by 0.5 s of 2 CPUs' 1 s per call."""
        self._request("stats", ref)
        name = next((n for n in self.containers if ref == n * 4), ref)  # an id of ps()
        self._known(name, "report the resource use of container %s" % ref)
        count = sum(1 for call in self.calls if call == ("stats", ref))
        return {"id": name * 4, "name": "/" + name,
                "cpu_stats": {"cpu_usage": {"total_usage": count * 500000000},
                              "system_cpu_usage": count * 2000000000, "online_cpus": 2},
                "precpu_stats": {"cpu_usage": {"total_usage": 0}},
                "memory_stats": {"usage": 10 << 20, "limit": 100 << 20,
                                 "stats": {"inactive_file": 2 << 20}},
                "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 50}},
                "blkio_stats": {"io_service_bytes_recursive": [
                    {"op": "read", "value": 4096}, {"op": "write", "value": 8192}]},
                "pids_stats": {"current": 3}}

    def logs(self, ref: str, sink: Any, tail: int, since: Optional[str] = None,
             timestamps: bool = False, max_bytes: int = 0) -> None:
        self._request("logs", ref, str(tail))
        self._known(ref, "read the logs of container %s" % ref)
        lines = [("stdout" if n % 2 else "stderr", b"line %d\n" % n) for n in range(1, 6)]
        for stream, line in lines[-tail:] if tail else []:
            sink(stream, line)

    def ps(self) -> List[Dict[str, Any]]:
        self._request("ps")
        return [{"Id": name * 4, "Names": ["/" + name], "Image": "busybox",
                 "Status": "Up 1 second" if state == "running" else
                 "Up 1 second (Paused)" if state == "paused" else "Exited (0) 1 second ago",
                 "State": state}
                for name, state in sorted(self.containers.items())]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "FakeDocker":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# -- the direct path: containers.docker_backed on the real Guest and Xapi -----------------


VM_UUID = "u-1"


def guest_vm(other_config: Dict[str, str]) -> Tuple[FakeXapiServer, str]:
    """A fake XAPI holding one running VM, web (VM_UUID), with this other-config;
    returns the server and the VM's ref."""
    server = FakeXapiServer()
    host = server.add("host")
    vm = server.add("VM", uuid=VM_UUID, name_label="web", power_state="Running",
                    resident_on=host, other_config=dict(other_config))
    return server, vm


class EngineGuest(Guest):
    """The real Guest, except that docker() hands out `engine` instead of connecting."""

    engine: Optional[FakeDocker] = None

    def docker(self, timeouts: Any = None, cache: Any = None, early_bridge: bool = False) -> Any:
        assert self.engine is not None
        return self.engine


def direct_path(monkeypatch: Any, engine: FakeDocker, server: FakeXapiServer) -> Any:
    """containers.docker_backed(name, xapi, args) with guests reaching `engine`, on a
    real Xapi over `server`."""
    guest_cls = type("Guest", (EngineGuest,), {"engine": engine})
    monkeypatch.setattr(containers, "Guest", guest_cls)
    xapi = server.xapi()
    return lambda name, args: containers.docker_backed(name, xapi, args)


# -- the warm path: the monitor's Dispatcher with fake workers -------------------------------


class FakePublisher:
    def __init__(self, writes: bool = True) -> None:
        self.values: Dict[Tuple[str, str], str] = {}
        self.waited: List[Tuple[str, str, str]] = []
        self.writes = writes

    def set(self, ref: str, key: str, value: str) -> None:
        self.values[(ref, key)] = value

    def wait_written(self, ref: str, key: str, value: str, timeout: float) -> bool:
        self.waited.append((ref, key, value))
        return self.writes and self.values.get((ref, key)) == value


class FakeWorker:
    """What the Dispatcher uses of a VMWorker."""

    def __init__(self, uuid: str, engine: Optional[FakeDocker], publisher: FakePublisher,
                 ps_fails: Optional[BaseException] = None) -> None:
        self.uuid = uuid
        self.ref = "OpaqueRef:" + uuid
        self.where = WHERE
        self.engine = engine
        self.publisher = publisher
        self.ps_fails = ps_fails
        self.lost = 0

    def live_client(self) -> Optional[FakeDocker]:
        return self.engine

    def refresh_ps(self, client: FakeDocker) -> str:
        if self.ps_fails is not None:
            raise self.ps_fails
        xml = xmlenc.docker_ps(client.ps())
        self.publisher.set(self.ref, "docker_ps", xml)
        return xml

    def connection_lost(self) -> None:
        self.lost += 1


class FakeSupervisor:
    def __init__(self, *workers: FakeWorker) -> None:
        self.workers = {w.uuid: w for w in workers}

    def worker_by_uuid(self, uuid: str) -> Optional[FakeWorker]:
        return self.workers.get(uuid)


def dispatcher(*workers: FakeWorker, publisher: Optional[FakePublisher] = None) -> Any:
    return Dispatcher(FakeSupervisor(*workers), publisher or FakePublisher(),
                      lambda: {"vms": {}})
