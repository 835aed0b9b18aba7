"""Container engines a lab guest can run, and their files.

`docker20` is the machine's own Debian bookworm docker.io (installed by
`make deps`). Every other engine comes from Debian's archive: its packages
are fetched with a private apt configuration (its own sources list, lists and
cache folders; the machine's apt configuration is never read or changed) and
unpacked with `dpkg -x` into the kept cache, CACHE_DIR (outside any clone, so
CI runs and labs on the machine share it):

  CACHE_DIR/apt/            sources.list, lists/, cache/ (the private apt)
  CACHE_DIR/layers/ENGINE/  the engine's files, unpacked under root/: root/usr
                            is laid over the guest's /usr (a read-only overlay),
                            root/etc/containers copied into a Podman guest's
                            /etc/containers; private/ holds libraries only the
                            engine's binaries use (patched with patchelf to
                            load them, never the guest's own programs)
  CACHE_DIR/layers/ENGINE/versions.json   the packages and versions used
  CACHE_DIR/newest-docker.json   the newest docker.io of the newest suite

A layer is made once and reused; `fill` (or a layer that is missing)
resolves the newest version of each package in its suite at that moment.
A guest sees exactly its engine's CLI: the machine's unpackaged
/usr/local/bin/docker is hidden in every guest (a whiteout), and so is
/usr/bin/docker on a guest whose engine has no `docker` command.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

CACHE_DIR = os.environ.get("XSC_LAB_ENGINE_CACHE") or "/var/cache/xscontainer-lab/engines"
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SUITES = ("bookworm", "trixie", "sid")  # oldest to newest
NEWEST_SUITE = SUITES[-1]
DEFAULT = "docker20"
FETCH_TIMEOUT = 600


class EngineError(Exception):
    """An engine cannot be had; the message names the engine or package."""


class Engine:
    """One engine a guest can run.

    kind: "docker" (dockerd) or "podman" (`podman system service`);
    rootless: the service runs as the guest's SSH user on its own socket;
    packages: (suite, package) unpacked into the layer (usr/, etc/);
    private: (suite, package) whose libraries only the engine's binaries load;
    patch: layer paths of binaries that must run with the private libraries;
    docker_cli: the guest has a `docker` command (the engine's own CLI or
    podman-docker)."""

    def __init__(
        self,
        name: str,
        kind: str,
        packages: Sequence[Tuple[str, str]] = (),
        private: Sequence[Tuple[str, str]] = (),
        patch: Sequence[str] = (),
        rootless: bool = False,
        docker_cli: bool = True,
    ) -> None:
        self.name = name
        self.kind = kind
        self.packages = list(packages)
        self.private = list(private)
        self.patch = list(patch)
        self.rootless = rootless
        self.docker_cli = docker_cli

    @property
    def layer(self) -> str:
        return os.path.join(CACHE_DIR, "layers", self.name)

    @property
    def fetched(self) -> bool:
        return bool(self.packages or self.private)

    def versions(self) -> Dict[str, str]:
        """package/suite -> version of the layer in the cache ({} for docker20)."""
        try:
            with open(os.path.join(self.layer, "versions.json")) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        return dict(data["packages"])


# Podman's programs and the libraries they need from their own suite.
_PODMAN5_PRIVATE = [
    ("trixie", p)
    for p in (
        "libc6",
        "libgpgme11t64",
        "libassuan9",
        "libgpg-error0",
        "libseccomp2",
        "libsubid5",
        "libaudit1",
        "libcap-ng0",
        "libsemanage2",
        "libselinux1",
        "libpcre2-8-0",
        "libbz2-1.0",
        "libsepol2",
        "libgcc-s1",
        "libsystemd0",
        "libcap2",
        "liblz4-1",
        "liblzma5",
        "libzstd1",
        "libgcrypt20",
        "libglib2.0-0t64",
        "libffi8",
        "libmount1",
        "libblkid1",
        "zlib1g",
        "libyajl2",
    )
]
_PODMAN5_BINARIES = [
    "usr/bin/podman",
    "usr/bin/conmon",
    "usr/bin/passt",
    "usr/lib/podman/netavark",
    "usr/lib/podman/aardvark-dns",
    "usr/lib/podman/rootlessport",
    "usr/lib/podman/catatonit",
]

ENGINES: Dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("docker20", "docker"),
        Engine(
            "docker26",
            "docker",
            [("trixie", "docker.io"), ("trixie", "docker-cli"), ("trixie", "containerd")],
        ),
        Engine(
            "docker28",
            "docker",
            # sid's runc and tini need GLIBC_2.38: the machine's runc (bookworm)
            # and sid's tini-static (docker-init) run here
            [
                ("sid", "docker.io"),
                ("sid", "docker-cli"),
                ("sid", "containerd"),
                ("sid", "tini-static"),
            ],
        ),
        Engine(
            "podman4",
            "podman",
            [
                ("bookworm", "podman"),
                ("bookworm", "podman-docker"),
                ("bookworm", "conmon"),
                ("bookworm", "golang-github-containers-common"),
                ("bookworm", "netavark"),
                ("bookworm", "aardvark-dns"),
                ("bookworm", "catatonit"),
                ("bookworm", "libsubid4"),
                ("bookworm", "libgpgme11"),
                ("bookworm", "libyajl2"),
            ],
        ),
        Engine(
            "podman5",
            "podman",
            [
                ("trixie", "podman"),
                ("trixie", "podman-docker"),
                ("trixie", "conmon"),
                ("trixie", "golang-github-containers-common"),
                ("trixie", "netavark"),
                ("trixie", "aardvark-dns"),
                ("trixie", "catatonit"),
            ],
            [*_PODMAN5_PRIVATE, ("bookworm", "patchelf")],
            _PODMAN5_BINARIES,
        ),
        Engine(
            "podman5-rootless",
            "podman",
            [
                ("trixie", "podman"),
                ("trixie", "conmon"),
                ("trixie", "golang-github-containers-common"),
                ("trixie", "netavark"),
                ("trixie", "aardvark-dns"),
                ("trixie", "catatonit"),
                # newuidmap/newgidmap (setuid) for the user's namespace
                ("bookworm", "uidmap"),
                # pasta: a rootless container's network
                ("trixie", "passt"),
            ],
            [*_PODMAN5_PRIVATE, ("bookworm", "patchelf")],
            _PODMAN5_BINARIES,
            rootless=True,
            docker_cli=False,
        ),
    )
}


def get(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise EngineError(
            "unknown engine %r (one of %s)" % (name, ", ".join(ENGINES))
        ) from None


def parse(spec: str, count: int) -> List[str]:
    """`--engines a,b,...` (one per guest, the last repeated for the rest) or
    one name for all; unknown names are refused."""
    names = [n.strip() for n in spec.split(",") if n.strip()] or [DEFAULT]
    for n in names:
        get(n)
    if len(names) > count:
        raise EngineError("%d engines named for %d guests" % (len(names), count))
    return names + [names[-1]] * (count - len(names))


# --- the private apt ----------------------------------------------------------------


def _apt_dir(*parts: str) -> str:
    return os.path.join(CACHE_DIR, "apt", *parts)


def _apt_options() -> List[str]:
    return [
        "-o", "Dir::Etc::sourcelist=" + _apt_dir("sources.list"),
        "-o", "Dir::Etc::sourceparts=-",
        "-o", "Dir::Etc::preferences=" + _apt_dir("preferences"),
        "-o", "Dir::Etc::preferencesparts=-",
        "-o", "Dir::State::Lists=" + _apt_dir("lists"),
        "-o", "Dir::Cache=" + _apt_dir("cache"),
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root",
        "-o", "Acquire::Retries=2",
        "-o", "Acquire::http::Timeout=60",
    ]  # fmt: skip


def _apt(args: List[str], cwd: Optional[str] = None, timeout: float = FETCH_TIMEOUT) -> str:
    try:
        done = subprocess.run(
            ["apt-get", *_apt_options(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            cwd=cwd,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise EngineError("apt-get %s timed out after %s s" % (" ".join(args), timeout)) from e
    if done.returncode != 0:
        raise EngineError("apt-get %s failed: %s" % (" ".join(args), done.stderr.strip()[-2000:]))
    return done.stdout


def _apt_cache(args: List[str]) -> str:
    done = subprocess.run(
        ["apt-cache", *_apt_options(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise EngineError("apt-cache %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout


def update() -> None:
    """The private apt's lists, fresh (every suite's newest versions)."""
    for d in ("lists/partial", "cache/archives/partial"):
        os.makedirs(_apt_dir(d), exist_ok=True)
    with open(_apt_dir("sources.list"), "w") as f:
        for suite in SUITES:
            f.write("deb [signed-by=%s] %s %s main\n" % (KEYRING, MIRROR, suite))
    open(_apt_dir("preferences"), "w").close()
    _apt(["update"])


def _lists_fresh() -> bool:
    """Lists fetched by this lab in the last 12 hours."""
    try:
        return time.time() - os.path.getmtime(_apt_dir("updated")) < 12 * 3600
    except OSError:
        return False


def ensure_lists() -> None:
    if not _lists_fresh():
        update()
        with open(_apt_dir("updated"), "w") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def newest_versions(pkgs: Sequence[Tuple[str, str]]) -> Dict[Tuple[str, str], str]:
    """The version of each (suite, package) in the private lists, in one
    apt-cache run; a package missing from its suite is named."""
    found: Dict[Tuple[str, str], str] = {}
    names = sorted({p for _, p in pkgs})
    for line in _apt_cache(["madison", *names]).splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 3:
            continue
        for suite in SUITES:
            if " %s/" % suite in " " + cells[2]:
                found.setdefault((suite, cells[0]), cells[1])
    missing = [p for p in pkgs if p not in found]
    if missing:
        raise EngineError(
            "not in Debian's archive (apt-cache madison): %s"
            % ", ".join("%s (%s)" % (p, s) for s, p in missing)
        )
    return {p: found[p] for p in pkgs}


def newest(package: str, suite: str) -> str:
    """The version of `package` in `suite` (the private lists)."""
    return newest_versions([(suite, package)])[(suite, package)]


def record_newest_docker() -> Dict[str, str]:
    """Which Docker the newest suite has (docker.io), kept in the cache so that
    the day a suite ships Docker 29 shows up in the lab's output."""
    info = {
        "suite": NEWEST_SUITE,
        "package": "docker.io",
        "version": newest("docker.io", NEWEST_SUITE),
        "checked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(CACHE_DIR, exist_ok=True)
    _write_json(os.path.join(CACHE_DIR, "newest-docker.json"), info)
    return info


def _write_json(path: str, data: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _download(pkgs: Sequence[Tuple[str, str]], into: str) -> Dict[str, str]:
    """Each package's newest version in its suite, downloaded into `into`;
    {package/suite: version}. A failed download names the package."""
    if not pkgs:
        return {}
    versions = newest_versions(pkgs)
    wanted = ["%s=%s" % (p, v) for (_, p), v in versions.items()]
    try:
        _apt(["download", *wanted], cwd=into)
    except EngineError:
        for (suite, pkg), version in versions.items():  # which one: each alone
            try:
                _apt(["download", "%s=%s" % (pkg, version)], cwd=into)
            except EngineError as e:
                raise EngineError(
                    "downloading %s %s (Debian %s) failed: %s" % (pkg, version, suite, e)
                ) from e
        raise
    return {"%s/%s" % (p, s): v for (s, p), v in versions.items()}


def _unpack(debs_dir: str, dest: str) -> None:
    for name in sorted(os.listdir(debs_dir)):
        subprocess.run(["dpkg", "-x", os.path.join(debs_dir, name), dest], check=True, timeout=300)


def _whiteout(path: str) -> None:
    """An overlayfs whiteout: `path` is hidden in the merged view."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def _libdirs(root: str) -> List[str]:
    return [
        os.path.join(root, d)
        for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
        if os.path.isdir(os.path.join(root, d))
    ]


def _patch(engine: Engine, tmp: str) -> None:
    """Binaries of the layer that need a newer glibc load it from private/:
    the layer's final path as interpreter and RPATH (which also applies to
    the libraries they load). Static binaries are left as they are."""
    private_tmp = os.path.join(tmp, "private")
    root_tmp = os.path.join(tmp, "root")
    patchelf = os.path.join(private_tmp, "usr/bin/patchelf")
    final_private = os.path.join(engine.layer, "private")
    interp = next(
        (
            os.path.join(final_private, rel)
            for rel in ("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
            if os.path.exists(os.path.join(private_tmp, rel))
        ),
        None,
    )  # fmt: skip
    if interp is None:
        raise EngineError("%s: no ld-linux-x86-64.so.2 in its private libraries" % engine.name)
    rpath = ":".join(
        os.path.join(final_private, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")
    )
    targets = [os.path.join(root_tmp, rel) for rel in engine.patch]
    for d in ("usr/bin", "usr/sbin", "usr/lib/podman", "usr/libexec/podman"):
        full = os.path.join(root_tmp, d)
        if os.path.isdir(full):
            targets += [os.path.join(full, n) for n in sorted(os.listdir(full))]
    for path in sorted(set(targets)):
        if not os.path.isfile(path) or os.path.islink(path) or os.stat(path).st_mode & 0o6000:
            continue  # setuid programs (newuidmap) are the machine's suite's
        probe = subprocess.run(
            [patchelf, "--print-interpreter", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        if probe.returncode != 0:
            continue  # static, or not ELF
        for args in (["--set-interpreter", interp], ["--force-rpath", "--set-rpath", rpath]):
            done = subprocess.run([patchelf, *args, path], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=120)  # fmt: skip
            if done.returncode != 0:
                raise EngineError(
                    "%s: patchelf %s failed: %s"
                    % (engine.name, path, done.stderr.decode(errors="replace").strip())
                )


def _whiteouts(engine: Engine, root: str) -> None:
    # the machine's unpackaged CLI never shows in a guest
    _whiteout(os.path.join(root, "usr/local/bin/docker"))
    if not engine.docker_cli:
        _whiteout(os.path.join(root, "usr/bin/docker"))
    elif engine.fetched and not os.path.exists(os.path.join(root, "usr/bin/docker")):
        raise EngineError("%s: no usr/bin/docker in its packages" % engine.name)


def ensure(engine: Engine, refresh: bool = False) -> str:
    """The engine's layer in the cache, made if missing (or `refresh`): the
    newest version of each package in its suite, unpacked; its path. Labs and
    CI runs on the machine share the cache: one makes a layer at a time (a
    lock), and a layer replaced by `refresh` is moved aside, not deleted, so
    guests running on it keep their files."""
    layer = engine.layer
    if os.path.exists(os.path.join(layer, "versions.json")) and not refresh:
        return layer
    os.makedirs(os.path.dirname(layer), exist_ok=True)
    fd = os.open(os.path.join(os.path.dirname(layer), ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another lab making a layer: minutes at most
        if os.path.exists(os.path.join(layer, "versions.json")) and not refresh:
            return layer
        _sweep_aside(os.path.dirname(layer))
        return _make(engine)
    finally:
        os.close(fd)


def _sweep_aside(layers: str) -> None:
    """Layers replaced more than a day ago (no lab runs that long)."""
    for name in os.listdir(layers):
        path = os.path.join(layers, name)
        if name.startswith(".old-") and time.time() - os.path.getmtime(path) > 86400:
            shutil.rmtree(path, ignore_errors=True)


def _make(engine: Engine) -> str:
    layer = engine.layer
    tmp = tempfile.mkdtemp(prefix=".%s." % engine.name, dir=os.path.dirname(layer))
    os.chmod(tmp, 0o755)  # a rootless engine's user runs its programs
    try:
        versions: Dict[str, str] = {}
        if engine.fetched:
            ensure_lists()
            for part, pkgs in (("usr-debs", engine.packages), ("private-debs", engine.private)):
                debs = os.path.join(tmp, part)
                os.makedirs(debs)
                versions.update(_download(pkgs, debs))
            _unpack(os.path.join(tmp, "usr-debs"), os.path.join(tmp, "root"))
            if engine.private:
                _unpack(os.path.join(tmp, "private-debs"), os.path.join(tmp, "private"))
            for part in ("usr-debs", "private-debs"):
                shutil.rmtree(os.path.join(tmp, part))
            if engine.patch:
                _patch(engine, tmp)
            try:
                record_newest_docker()
            except EngineError as e:
                sys.stderr.write("lab: could not record the newest Docker: %s\n" % e)
        os.makedirs(os.path.join(tmp, "root", "usr"), exist_ok=True)
        os.makedirs(os.path.join(tmp, "root", "etc"), exist_ok=True)
        _whiteouts(engine, os.path.join(tmp, "root"))
        _write_json(
            os.path.join(tmp, "versions.json"),
            {"engine": engine.name, "packages": versions,
             "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        )  # fmt: skip
        if os.path.exists(layer):
            aside = os.path.join(
                os.path.dirname(layer), ".old-%s-%d" % (engine.name, time.time() * 1000)
            )
            os.rename(layer, aside)
            os.utime(aside)
        os.rename(tmp, layer)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return layer


def fill(names: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """Make every named engine's layer anew from the newest versions."""
    ensure_lists_now()
    return {n: (ensure(get(n), refresh=True), get(n).versions())[1] for n in names}


def ensure_lists_now() -> None:
    update()
    with open(_apt_dir("updated"), "w") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def newest_docker() -> Optional[Dict[str, str]]:
    try:
        with open(os.path.join(CACHE_DIR, "newest-docker.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return dict(data)
