"""The supplemental packs (update ISOs) of both flavours: update.xml as xapi's
parser reads it (ocaml/xapi/xapi_pool_update.ml parse_update_info), the yum
repository and comps group xapi's apply installs from (read by dnf too), the
control and meta packages, signatures."""

import gzip
import hashlib
import os
import re
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

from pkgbuild import Build, extract_iso, run

REPO_NS = {"repo": "http://linux.duke.edu/metadata/repo"}
COMMON_NS = {"c": "http://linux.duke.edu/metadata/common"}
GUIDANCE = {"restartHVM", "restartPV", "restartHost", "restartXAPI"}


def parse_update_info(path: Path) -> Dict[str, object]:
    """What xapi's parse_update_info accepts, checked as strictly as it does
    (and a little more: installation-size must be an integer, not default to 0)."""
    root = ET.parse(str(path)).getroot()
    assert root.tag == "update", "missing <update> in update.xml"
    for attr in ("uuid", "name-label", "version"):
        assert attr in root.attrib, "missing <%s> in update.xml" % attr
    uuid.UUID(root.get("uuid"))
    descriptions = root.findall("name-description")
    assert descriptions, "missing <name-description> in update.xml"
    # xapi takes the first one, and it must hold exactly one text node
    first = descriptions[0]
    assert len(first) == 0 and (first.text or "").strip(), "missing <name-description>"
    size = root.get("installation-size", "0")
    assert re.fullmatch(r"[0-9]+", size), size
    guidance = [g for g in root.get("after-apply-guidance", "").split(",") if g]
    assert set(guidance) <= GUIDANCE, guidance
    return dict(root.attrib, description=first.text, size=int(size), guidance=guidance)


def rpm_q(path: Path, fmt: str) -> str:
    return run(["rpm", "-qp", "--nosignature", "--qf", fmt, path]).stdout


def repomd(tree: Path) -> Dict[str, ET.Element]:
    root = ET.parse(str(tree / "repodata/repomd.xml")).getroot()
    return {d.get("type"): d for d in root.findall("repo:data", REPO_NS)}  # type: ignore[misc]


def location(tree: Path, data: ET.Element) -> Path:
    loc = data.find("repo:location", REPO_NS)
    assert loc is not None
    return tree / loc.get("href", "")


def read_metadata(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def test_update_xml_passes_xapis_checks(flavoured: Build) -> None:
    build = flavoured
    info = parse_update_info(build.tree / "update.xml")
    name = "xscontainer-%s" % build.version if build.flavour == "xs8" else \
        "xscontainer-%s-%s" % (build.flavour, build.version)
    assert info["uuid"] == str(uuid.uuid5(uuid.UUID("5b0bd2b4-7d3c-4c47-9c57-3f6c1f3a0b11"),
                                          name))
    # XenCenter shows container features for pools with an update named xscontainer*
    assert str(info["name-label"]).startswith("xscontainer")
    assert info["version"] == build.version
    assert info["guidance"] == []  # nothing to restart: see packaging/build_pack.py
    assert info["control"] == "control-xscontainer"
    assert "key" not in info  # unsigned
    packages = sorted((build.tree / "Packages").glob("*.rpm"))
    assert info["size"] == sum(int(rpm_q(p, "%{SIZE}")) for p in packages)
    # build-update's label rule; also the yum repository's id
    assert re.fullmatch(r"[\w-]+", str(info["name-label"]))


def test_uuid_is_stable_per_version(build: Build, tmp_path: Path) -> None:
    again = tmp_path / "again.iso"
    run([sys.executable, build.src / "packaging/build_pack.py", "--out", again,
         build.rpm("xscontainer"), build.rpm("xscontainer-pylibs")], cwd=build.src)
    tree = extract_iso(again, tmp_path / "again")
    assert parse_update_info(tree / "update.xml")["uuid"] == \
        parse_update_info(build.tree / "update.xml")["uuid"]


def test_packages_payload_meta_and_control(flavoured: Build) -> None:
    build = flavoured
    packages = {rpm_q(p, "%{NAME}"): p for p in (build.tree / "Packages").glob("*.rpm")}
    assert set(packages) == {"xscontainer", "xscontainer-pylibs", "update-xscontainer",
                             "control-xscontainer"}
    for name in ("xscontainer", "xscontainer-pylibs"):
        assert packages[name].read_bytes() == build.rpm(name).read_bytes()
    meta_requires = run(["rpm", "-qp", "--requires", packages["update-xscontainer"]]).stdout
    for name in ("xscontainer", "xscontainer-pylibs"):
        assert "%s = %s-%s" % (name, build.version, build.release) in meta_requires.splitlines()
    control_requires = run(["rpm", "-qp", "--requires", packages["control-xscontainer"]]
                           ).stdout.splitlines()
    assert "platform-version >= 3.4.0" in control_requires
    # the pack installs only where its bundled libraries run: 3.6 (8.3), 3.12 (XCP-ng 9)
    assert "python(abi) = %s" % build.python_version in control_requires
    assert not [r for r in control_requires if r.startswith("python(abi)")
                and r != "python(abi) = %s" % build.python_version]
    for name in ("update-xscontainer", "control-xscontainer"):
        assert rpm_q(packages[name], "%{ARCH} %{VERSION}") == "noarch %s" % build.version
        assert run(["rpm", "-qpl", packages[name]]).stdout.strip() == "(contains no files)"
    # rpm 4.11 (dom0) reads xz payloads, not zstd
    for p in packages.values():
        assert rpm_q(p, "%{PAYLOADCOMPRESSOR}") == "xz", p


def test_comps_group_update_requires_the_meta_package(flavoured: Build) -> None:
    build = flavoured
    data = repomd(build.tree)
    assert "group" in data, sorted(data)
    comps = ET.fromstring(read_metadata(location(build.tree, data["group"])))
    groups = {g.findtext("id"): g for g in comps.findall("group")}
    assert set(groups) == {"update"}
    reqs = [(r.get("type"), r.text) for r in groups["update"].iter("packagereq")]
    assert reqs == [("mandatory", "update-xscontainer")]


def test_repodata_lists_every_package_with_its_checksum(flavoured: Build) -> None:
    build = flavoured
    data = repomd(build.tree)
    for kind, entry in data.items():
        path = location(build.tree, entry)
        assert path.exists(), kind
        # yum on CentOS 7 reads gzip (not zstd or xz) metadata
        assert path.suffix in (".gz", ".xml"), path
        checksum = entry.find("repo:checksum", REPO_NS)
        assert checksum is not None and checksum.get("type") == "sha256"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == checksum.text, kind
    primary = ET.fromstring(read_metadata(location(build.tree, data["primary"])))
    listed: Dict[str, str] = {}
    for pkg in primary.findall("c:package", COMMON_NS):
        loc = pkg.find("c:location", COMMON_NS)
        checksum = pkg.find("c:checksum", COMMON_NS)
        assert loc is not None and checksum is not None and checksum.get("type") == "sha256"
        listed[loc.get("href", "")] = checksum.text or ""
    on_disk = {"Packages/" + p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (build.tree / "Packages").glob("*.rpm")}
    assert listed == on_disk
    assert primary.get("packages") == str(len(on_disk))


def test_unsigned_pack_has_no_signatures(build: Build) -> None:
    assert not list(build.tree.rglob("*.asc"))


def gpg_verify(keyring_dir: Path, public_key: Path, signed: Path) -> List[str]:
    env = dict(os.environ, GNUPGHOME=str(keyring_dir))
    run(["gpg", "--batch", "--import", public_key], env=env)
    proc = run(["gpg", "--batch", "--status-fd", "1", "--verify", str(signed) + ".asc", signed],
               env=env, check=False)
    return [line for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] VALIDSIG")] \
        if proc.returncode == 0 else []


def test_signed_pack_verifies_with_the_public_key(build: Build, tmp_path: Path) -> None:
    tree = build.signed_tree
    info = parse_update_info(tree / "update.xml")
    public_key = build.signed_dist / str(info["key"])
    assert info["key"] == "RPM-GPG-KEY-xscontainer" and public_key.exists()
    assert "BEGIN PGP PUBLIC KEY BLOCK" in public_key.read_text()
    # only the exported public key, in a keyring of its own (as /opt/xensource/gpg)
    keyring = tmp_path / "gpg"
    keyring.mkdir(mode=0o700)
    try:
        for signed in (tree / "update.xml", tree / "repodata/repomd.xml"):
            valid = gpg_verify(keyring, public_key, signed)
            assert valid and build.key in valid[0], signed
        # a changed file no longer verifies
        tampered = tmp_path / "update.xml"
        tampered.write_text((tree / "update.xml").read_text().replace("xscontainer",
                                                                      "xscontainex"))
        (tmp_path / "update.xml.asc").write_bytes((tree / "update.xml.asc").read_bytes())
        assert gpg_verify(keyring, public_key, tampered) == []
    finally:
        run(["gpgconf", "--kill", "gpg-agent"], env=dict(os.environ, GNUPGHOME=str(keyring)),
            check=False, timeout=30)
    # the packages are signed too (xapi's yum configuration sets gpgcheck=1)
    rpmdb = tmp_path / "rpmdb"
    rpmdb.mkdir()
    run(["rpm", "--dbpath", rpmdb, "--import", public_key])
    for package in (tree / "Packages").glob("*.rpm"):
        out = run(["rpm", "--dbpath", rpmdb, "-K", package]).stdout
        assert "signatures OK" in out and "NOKEY" not in out, out
    # the repository metadata of the signed pack lists the signed packages
    primary = read_metadata(location(tree, repomd(tree)["primary"]))
    for package in (tree / "Packages").glob("*.rpm"):
        assert hashlib.sha256(package.read_bytes()).hexdigest().encode() in primary


def test_iso_layout(build: Build) -> None:
    listing = run(["isoinfo", "-R", "-f", "-i", build.iso]).stdout.split()
    assert "/update.xml" in listing and "/repodata/repomd.xml" in listing
    assert any(p.startswith("/Packages/xscontainer-%s-" % build.version) for p in listing)


def test_dnf_reads_the_repository_and_its_update_group(flavoured: Build, tmp_path: Path) -> None:
    """dnf (XCP-ng 9's package manager; yum's successor) reads the pack's repository:
    the packages, the comps group "update" that xapi's apply installs, the control
    package's Requires. Its own configuration only: no system repository, no cache
    shared with anything."""
    build = flavoured
    dnf = ["dnf", "-q", "--installroot", tmp_path / "root", "--setopt=reposdir=/dev/null",
           "--setopt=cachedir=%s" % (tmp_path / "cache"), "--nogpgcheck",
           "--repofrompath=pack,file://%s" % build.tree, "--repo=pack",
           "--releasever=%s" % build.python_version]
    listed = run([*dnf, "repoquery", "--qf", "%{name}-%{version}-%{release}"]).stdout.split()
    release = "%s-%s" % (build.version, build.release)
    assert sorted(listed) == sorted("%s-%s" % (name, release) for name in (
        "control-xscontainer", "update-xscontainer", "xscontainer", "xscontainer-pylibs"))
    group = run([*dnf, "group", "info", "update"]).stdout
    assert "update-xscontainer" in group, group
    control = run([*dnf, "repoquery", "--requires", "control-xscontainer"]).stdout.split("\n")
    assert "python(abi) = %s" % build.python_version in control, control
