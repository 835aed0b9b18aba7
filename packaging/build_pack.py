#!/usr/bin/env python3
"""Builds the xscontainer supplemental pack: an update ISO that xapi accepts.

    packaging/build_pack.py --out dist/xscontainer-11.0.0.iso [--gpg-key KEYID]
        [--flavour xs8|xcpng9] RPM...

Flavours (the RPMs given must be built for the same one, packaging/build-rpm):
xs8 (default) for XCP-ng 8.3 / XenServer 8, xcpng9 for XCP-ng 9 (AlmaLinux 10
based, Python 3.12, dnf). They differ in the control package's Requires (see
below) and the description.

The ISO holds what XenServer's `build-update` (DDK) makes and xapi's pool_update
code reads:

* update.xml: <update uuid name-label version installation-size
  after-apply-guidance key control> with a <name-description> (template
  packaging/pack/update.xml.in). uuid is uuid5 of label and version: the same
  version always has the same uuid, so xapi refuses a second, different upload
  of it (UPDATE_ALREADY_EXISTS) instead of mixing them; the XCP-ng 9 flavour's
  uuid is that of "label-xcpng9-version". name-label starts with
  "xscontainer": XenCenter shows container features for pools with such an
  update. installation-size is the sum of the installed sizes of the packages.
  after-apply-guidance is empty: xapi runs the plugin afresh for every call and
  the RPM starts the monitor, so nothing needs a restart.
* Packages/: the payload RPMs, update-<label> (packaging/pack/update.spec) and
  control-<label> (packaging/pack/control.spec).
* repodata/: a yum repository (createrepo_c, gzip metadata and sha256 checksums:
  what CentOS 7's yum needs, and what dnf reads too; no zstd, which yum cannot
  read) with the comps group "update" (packaging/pack/groups.xml.in), which
  xapi's apply installs on both (`yum/dnf install @update`).
* with --gpg-key: the RPMs signed (xapi's yum configuration checks them),
  update.xml.asc and repodata/repomd.xml.asc (detached, armored: xapi checks
  both against /opt/xensource/gpg), and the public key next to the ISO as
  RPM-GPG-KEY-<label>, the name update.xml's key attribute gives.

Needs rpmbuild, rpm, createrepo_c, genisoimage (or xorriso) and, to sign, gpg
and rpmsign. Standard library only.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
PACK = os.path.join(HERE, "pack")
TIMEOUT = 300
LABEL = "xscontainer"
# flavour -> (hosts, what the control package requires: see packaging/pack/control.spec)
FLAVOURS = {
    "xs8": ("XCP-ng 8.3 and XenServer 8", "platform-version >= 3.4.0, python(abi) = 3.6"),
    "xcpng9": ("XCP-ng 9", "platform-version >= 3.4.0, python(abi) = 3.12"),
}
DESCRIPTION = (
    "Container management for %s: see and control the Docker "
    "containers inside VMs from XenCenter, Xen Orchestra and xe"
)
BASE_REQUIRES = FLAVOURS["xs8"][1]
GUIDANCE = ("restartHVM", "restartPV", "restartHost", "restartXAPI")
# Fixed namespace of xscontainer's update uuids (uuid5 of "label-version" in it).
UUID_NAMESPACE = uuid.UUID("5b0bd2b4-7d3c-4c47-9c57-3f6c1f3a0b11")


class PackError(Exception):
    pass


def run(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> str:
    try:
        proc = subprocess.run(
            list(argv), check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=TIMEOUT, env=env,
        )
    except FileNotFoundError:
        raise PackError("%s is not installed (make deps installs it)" % argv[0]) from None
    if proc.returncode != 0:
        raise PackError("%s failed (%d):\n%s%s" % (argv[0], proc.returncode, proc.stdout,
                                                  proc.stderr))
    return proc.stdout


def rpm_query(path: str, fmt: str) -> str:
    return run(["rpm", "-qp", "--nosignature", "--qf", fmt, path])


def update_uuid(label: str, version: str, flavour: str = "xs8") -> str:
    """uuid5 of "label-version" (xs8), "label-flavour-version" (another flavour): the
    two packs of a version are two updates to xapi, never one uploaded twice."""
    name = "%s-%s" % (label, version) if flavour == "xs8" else "%s-%s-%s" % (label, flavour,
                                                                            version)
    return str(uuid.uuid5(UUID_NAMESPACE, name))


def xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_attr(value: str) -> str:
    return xml_text(value).replace('"', "&quot;")


def fill(template: str, values: Dict[str, str]) -> str:
    with open(os.path.join(PACK, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("@%s@" % key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise PackError("%s: no value for %s" % (template, ", ".join(sorted(set(left)))))
    return text


def build_rpm(spec: str, topdir: str, defines: Dict[str, str]) -> str:
    argv = ["rpmbuild", "-bb", "--quiet", "--define", "_topdir %s" % topdir,
            "--define", "_binary_payload w6.xzdio"]
    for key, value in defines.items():
        argv += ["--define", "%s %s" % (key, value)]
    run([*argv, os.path.join(PACK, spec)])
    name = "%s-%s" % ("control" if spec == "control.spec" else "update", defines["label"])
    found = glob.glob(os.path.join(topdir, "RPMS", "noarch", name + "-*.noarch.rpm"))
    if len(found) != 1:
        raise PackError("rpmbuild %s made %s" % (spec, found))
    return found[0]


def gpg(args: Sequence[str]) -> str:
    return run(["gpg", "--batch", "--yes", *args])


def sign_file(key: str, path: str) -> None:
    gpg(["--local-user", key, "--armor", "--detach-sign", "--output", path + ".asc", path])


def sign_rpms(key: str, paths: List[str]) -> None:
    # rpm's default %__gpg is gpg2, which Debian does not have
    gpg_bin = shutil.which("gpg") or "gpg"
    run(["rpmsign", "--addsign", "--define", "_gpg_name %s" % key,
         "--define", "__gpg %s" % gpg_bin, *paths])


def make_iso(root: str, out: str, volume: str) -> None:
    tmp = out + ".tmp"
    if shutil.which("genisoimage"):
        run(["genisoimage", "-quiet", "-r", "-J", "-joliet-long", "-V", volume,
             "-A", "xscontainer supplemental pack", "-o", tmp, root])
    else:
        run(["xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-joliet-long", "-V", volume,
             "-A", "xscontainer supplemental pack", "-o", tmp, root])
    os.replace(tmp, out)


def build(rpms: List[str], out: str, key: Optional[str], base_requires: str,
          guidance: str, label: str = LABEL, flavour: str = "xs8") -> str:
    description = DESCRIPTION % FLAVOURS[flavour][0]
    if not rpms:
        raise PackError("no payload RPMs given")
    for g in filter(None, guidance.split(",")):
        if g not in GUIDANCE:
            raise PackError("after-apply guidance %r is not one of %s" % (g, GUIDANCE))
    main = [p for p in rpms if rpm_query(p, "%{NAME}") == label]
    if len(main) != 1:
        raise PackError("exactly one %s RPM expected among %s" % (label, rpms))
    version, release = rpm_query(main[0], "%{VERSION} %{RELEASE}").split()
    the_uuid = update_uuid(label, version, flavour)
    payload_requires = ", ".join(rpm_query(p, "%{NAME} = %{VERSION}-%{RELEASE}") for p in rpms)

    work = tempfile.mkdtemp(prefix="xsc-pack.")
    try:
        root = os.path.join(work, "root")
        packages = os.path.join(root, "Packages")
        os.makedirs(packages)
        defines = {"label": label, "pack_version": version, "pack_release": release,
                   "update_uuid": the_uuid}
        topdir = os.path.join(work, "rpmbuild")
        control = build_rpm("control.spec", topdir,
                            dict(defines, base_requires=base_requires))
        meta = build_rpm("update.spec", topdir, dict(defines, payload_requires=payload_requires))
        for path in [*rpms, control, meta]:
            shutil.copy2(path, packages)
        shipped = sorted(glob.glob(os.path.join(packages, "*.rpm")))
        if key:
            sign_rpms(key, shipped)
        size = sum(int(rpm_query(p, "%{SIZE}")) for p in shipped)

        groups = os.path.join(work, "groups.xml")
        with open(groups, "w") as f:
            f.write(fill("groups.xml.in", {"LABEL": label, "DESCRIPTION": xml_text(description)}))
        run(["createrepo_c", "--quiet", "--general-compress-type", "gz", "--checksum", "sha256",
             "--groupfile", groups, root])

        key_name = "RPM-GPG-KEY-%s" % label
        with open(os.path.join(root, "update.xml"), "w") as f:
            f.write(fill("update.xml.in", {
                "UUID": the_uuid,
                "LABEL": xml_attr(label),
                "VERSION": xml_attr(version),
                "INSTALLATION_SIZE": str(size),
                "AFTER_APPLY_GUIDANCE": xml_attr(guidance),
                "KEY_ATTRIBUTE": ' key="%s"' % key_name if key else "",
                "CONTROL": xml_attr("control-%s" % label),
                "DESCRIPTION": xml_text(description),
            }))
        if key:
            sign_file(key, os.path.join(root, "update.xml"))
            sign_file(key, os.path.join(root, "repodata", "repomd.xml"))
            public = gpg(["--armor", "--export", key])
            if "BEGIN PGP PUBLIC KEY BLOCK" not in public:
                raise PackError("gpg exported no public key for %s" % key)
            with open(os.path.join(os.path.dirname(os.path.abspath(out)), key_name), "w") as f:
                f.write(public)
        make_iso(root, out, ("%s-%s" % (label, version))[:32])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return the_uuid


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rpms", nargs="+", metavar="RPM", help="payload packages")
    parser.add_argument("--out", required=True, help="the ISO to write")
    parser.add_argument("--gpg-key", default=os.environ.get("GPG_KEY") or None,
                        help="sign with this gpg key (id, fingerprint or user id)")
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="xs8",
                        help="the hosts the pack is for (default: %(default)s)")
    parser.add_argument("--base-requires", default=None,
                        help="what the control package requires (default: the flavour's, "
                             + "; ".join("%s: %s" % (k, v[1]) for k, v in sorted(FLAVOURS.items()))
                             + ")")
    parser.add_argument("--after-apply", default="",
                        help="after-apply guidance, comma-separated (default: none)")
    args = parser.parse_args(argv)
    try:
        the_uuid = build(args.rpms, args.out, args.gpg_key,
                         args.base_requires or FLAVOURS[args.flavour][1], args.after_apply,
                         flavour=args.flavour)
    except PackError as e:
        print("build_pack: %s" % e, file=sys.stderr)
        return 1
    print("build_pack: %s (update uuid %s, %s)" % (
        args.out, the_uuid, "signed with %s" % args.gpg_key if args.gpg_key else "unsigned"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
