"""Config drives for CoreOS-family guests (today Flatcar Container Linux).

Three plugin functions, called by XenCenter's and Xen Orchestra's New VM wizards:

* get_config_drive_default(templateuuid): the default cloud-config, placeholders
  in place: the admin's override `<files_dir>/cloud-config.template` if present,
  else the packaged data/cloud-config.template.
* create_config_drive(vmuuid, sruuid, configuration): fill in the placeholders,
  build an ISO9660 image labelled `config-2` (openstack/latest/user_data, the
  received text as openstack/latest/user_data.template, the Linux guest agent
  from the host's tools ISO under agent/), import it as a VDI on the SR, replace
  the VM's previous config drive with it (read-only VBD), and seed
  `xscontainer-monitor=False` when the text keeps the pool key line.
* get_config_drive_configuration(vdiuuid): the user_data.template of a drive.

Placeholders (new and legacy spellings are equivalent):

  %VMNAMETOHOSTNAME%  %XSVMNAMETOHOSTNAME%   VM name_label reduced to [a-z0-9]
  %CONTAINERRSAPUB%   %XSCONTAINERRSAPUB%    base64 body of the pool's public key
  %HIN%               %XSHIN%                device number of the VM's VIF on the
                                             host internal network (bridge xenapi)
  %HINEXISTS% ... %ENDHINEXISTS%             kept (markers dropped) only when the
  %XSHINEXISTS% ... %XSENDHINEXISTS%         VM has such a VIF, else removed;
  (older end marker: %ENDXSHINEXISTS%)       a marker alone on its line takes the
                                             line with it

Differences from the original Python 2 xscontainer:
markers are dropped when the block is kept (the original left them, which is
invalid YAML); every block is matched on its own (the original's greedy match
swallowed the text between blocks); the old end marker is recognised; the newest
tools ISO is chosen by version numbers, not string order; images are read
without mounting; a failure leaves no VDI, VBD or VIF behind; the cloud-config
text, the key and session refs are never logged.
"""

import functools
import logging
import os
import re
import shutil
import tempfile
from io import BytesIO
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, cast

from xscontainer import errors, iso, paths, xapi_keys
from xscontainer.xapi import NULL_REF, Xapi

log = logging.getLogger(__name__)

TEMPLATE_NAME = "cloud-config.template"
PACKAGED_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 "data", TEMPLATE_NAME)
VOLUME_ID = "config-2"
USER_DATA = "openstack/latest/user_data"
USER_DATA_TEMPLATE = "openstack/latest/user_data.template"
AGENT_DIR = "agent"
# The Linux guest agent files the original copied from the tools ISO's Linux/ folder.
AGENT_FILES = (
    "xe-daemon",
    "xe-linux-distribution",
    "xe-linux-distribution.service",
    "xen-vcpu-hotplug.rules",
    "install.sh",
    "versions.deb",
    "versions.rpm",
    "versions.tgz",
)
AGENT_EXECUTABLES = ("xe-daemon", "xe-linux-distribution", "install.sh")
TOOLS_ISO_GLOB = re.compile(r"^.*tools-.*\.iso$")

DRIVE_NAME = "Automatic Config Drive"
HIN_BRIDGE = "xenapi"
TRUE_WORDS = ("1", "yes", "true", "on")

# Sizes: the VDI is the image rounded up to 2 MiB, the allocation unit of xapi's
# VHD-based SRs (they round any size up to it anyway). Reads are bounded.
VDI_ALIGN = 2 << 20
MAX_CONFIGURATION_BYTES = 1 << 20
MAX_TEMPLATE_BYTES = 1 << 20
MAX_AGENT_FILE_BYTES = 32 << 20
MAX_DRIVE_BYTES = 128 << 20
UPLOAD_TIMEOUT = 300.0
FIRST_USERDEVICE = 1
VBD_CREATE_ATTEMPTS = 3
MAX_HOSTNAME = 63

# -- placeholders -------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(?:XS)?(VMNAMETOHOSTNAME|CONTAINERRSAPUB|HIN)%")
_BLOCK_START = re.compile(r"%(?:XS)?HINEXISTS%")
_BLOCK_END = re.compile(r"%(?:ENDHINEXISTS|XSENDHINEXISTS|ENDXSHINEXISTS)%")
_KEY_LINE = re.compile(r"^[ \t]*-[ \t]+ssh-rsa[ \t]+%(?:XS)?CONTAINERRSAPUB%", re.MULTILINE)
_NOT_HOSTNAME = re.compile(r"[^A-Za-z0-9]+")
_KEY_BODY = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def decode_configuration(text: str) -> str:
    """The configuration as received from a client: `%BR%` (the CLI's newline, as
    XAPI plugin arguments cannot carry newlines from `xe`) becomes CRLF."""
    return text.replace("%BR%", "\r\n")


def hostname_from_name(name_label: str, vm_uuid: str) -> str:
    """%VMNAMETOHOSTNAME%: the name without its runs of non-alphanumerics, lower
    case, at most 63 characters; "vm" + the start of the uuid if nothing is left."""
    hostname = _NOT_HOSTNAME.sub("", name_label).lower()[:MAX_HOSTNAME]
    if not hostname:
        hostname = "vm" + re.sub(r"[^0-9a-f]", "", vm_uuid.lower())[:8]
    return hostname


def _whole_lines(text: str, start: int, end: int) -> Tuple[int, int]:
    """Widen text[start:end] to whole lines (with the newline) when nothing but
    blanks shares its first and last lines; else leave it as it is."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    after = text[end:] if line_end < 0 else text[end:line_end]
    if text[line_start:start].strip(" \t") or after.strip(" \t\r"):
        return start, end
    return line_start, len(text) if line_end < 0 else line_end + 1


def _remove_spans(text: str, spans: List[Tuple[int, int]]) -> str:
    pieces = []
    position = 0
    for span in spans:
        start, end = _whole_lines(text, *span)
        pieces.append(text[position:max(start, position)])
        position = max(position, end)
    pieces.append(text[position:])
    return "".join(pieces)


def resolve_hin_blocks(text: str, keep: bool) -> str:
    """Keep (without the markers) or remove every host-internal-network block.

    Each start marker pairs with the next end marker (non-greedy). An end marker
    without a start is dropped; a start without an end is an error, as guessing
    where the block ends could cut the configuration in the wrong place.
    """
    spans: List[Tuple[int, int]] = []
    position = 0
    while True:
        start = _BLOCK_START.search(text, position)
        if start is None:
            break
        end = _BLOCK_END.search(text, start.end())
        if end is None:
            raise errors.InvalidArgument(
                "The configuration has %s without a matching %%ENDHINEXISTS%% after it. "
                "Close the host internal network block, or remove its start marker."
                % start.group(0),
                "configuration",
            )
        # stray end markers before this block go too
        spans.extend(m.span() for m in _BLOCK_END.finditer(text, position, start.start()))
        if keep:
            spans.extend([start.span(), end.span()])
        else:
            spans.append((start.start(), end.end()))
        position = end.end()
    spans.extend(m.span() for m in _BLOCK_END.finditer(text, position))
    return _remove_spans(text, sorted(spans))


def customize(text: str, hostname: str, key_body: Optional[str],
              hin_device: Optional[str]) -> str:
    """The user_data for a VM: blocks resolved, placeholders substituted.

    `key_body` None leaves the key placeholders alone (the caller passes it
    whenever the text has one); `hin_device` None means the VM has no VIF on
    the host internal network, so the blocks go and `%HIN%` stays as it is.
    """
    text = resolve_hin_blocks(text, keep=hin_device is not None)
    values = {"VMNAMETOHOSTNAME": hostname, "CONTAINERRSAPUB": key_body, "HIN": hin_device}

    def substitute(match: Any) -> str:
        value = values[match.group(1)]
        return match.group(0) if value is None else value

    return _PLACEHOLDER.sub(substitute, text)


def needs_pool_key(text: str) -> bool:
    return "%CONTAINERRSAPUB%" in text or "%XSCONTAINERRSAPUB%" in text


def has_uncommented_key_line(text: str) -> bool:
    """Whether a `- ssh-rsa %CONTAINERRSAPUB%` line (or the XS spelling) is present
    and not commented out: the user keeps container management's key."""
    return _KEY_LINE.search(text) is not None


def key_body(public_line: str) -> str:
    """The base64 part of an `ssh-rsa AAAA... comment` line."""
    parts = public_line.split()
    if len(parts) < 2 or not _KEY_BODY.match(parts[1]):
        raise errors.ConfigDriveError(
            "The pool's public SSH key is malformed, so it cannot go into the config drive. "
            "Check the secret named by pool other-config xscontainer-public-secret-uuid."
        )
    return parts[1]


def _true(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


# -- the template -------------------------------------------------------------------


def template_path() -> str:
    """The admin's override if it exists, else the packaged template."""
    override = os.path.join(paths.files_dir(), TEMPLATE_NAME)
    return override if os.path.isfile(override) else PACKAGED_TEMPLATE


def _read_text(path: str, max_bytes: int) -> str:
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise errors.ConfigDriveError(
            "%s is larger than %d bytes; a cloud-config template must be smaller."
            % (path, max_bytes),
            path,
        )
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_template() -> Tuple[str, str]:
    """(text with LF newlines, path it came from)."""
    path = template_path()
    try:
        text = _read_text(path, MAX_TEMPLATE_BYTES)
    except OSError as exc:
        raise errors.ConfigDriveError(
            "Cannot read the cloud-config template %s: %s. Reinstall xscontainer, or fix "
            "or remove the override." % (path, exc.strerror or exc),
            path,
        ) from exc
    if not text.strip() and path != PACKAGED_TEMPLATE:
        log.warning("the cloud-config override %s is empty: using the packaged template", path)
        path = PACKAGED_TEMPLATE
        text = _read_text(path, MAX_TEMPLATE_BYTES)
    return text, path


def default_configuration(use_hin: bool) -> str:
    text, path = load_template()
    text = text.rstrip("\n") + "\n\n# Template loaded from %s\n" % path
    if not use_hin:
        text = resolve_hin_blocks(text, keep=False)
    return text


# -- the guest tools ISO ------------------------------------------------------------

_TOOLS_VERSION = re.compile(
    r"^.*tools-(?P<version>\d+(?:\.\d+)*)(?:-(?P<release>[0-9A-Za-z][0-9A-Za-z._~+]*?))?\.iso$"
)


def _release_key(release: str) -> Tuple[Tuple[int, int, str], ...]:
    # numbers compare as numbers and rank above letters, as in rpm's version order
    return tuple(
        (1, int(part), "") if part.isdigit() else (0, 0, part)
        for part in re.findall(r"\d+|[A-Za-z]+", release)
    )


def tools_iso_key(name: str) -> Tuple[Any, ...]:
    """Sort key of a tools ISO file name: by version numbers, then release numbers;
    a name without a release ranks below released ones of the same version, and a
    name without a version below all others."""
    match = _TOOLS_VERSION.match(os.path.basename(name))
    if match is None:
        return (0, (), 0, (), name)
    version = tuple(int(n) for n in match.group("version").split("."))
    release = match.group("release")
    if release is None:
        return (1, version, 0, (), name)
    return (1, version, 1, _release_key(release), name)


def newest_tools_iso(directory: Optional[str] = None) -> Optional[str]:
    """The newest `*tools-*.iso` in the tools ISO folder, or None."""
    directory = directory or paths.tools_iso_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    candidates = [
        n for n in names if TOOLS_ISO_GLOB.match(n) and os.path.isfile(os.path.join(directory, n))
    ]
    if not candidates:
        return None
    return os.path.join(directory, max(candidates, key=tools_iso_key))


def copy_agent(tools_iso: str, destination: str) -> List[str]:
    """Copy the guest agent files found in the tools ISO's Linux/ folder to
    `destination`; returns their names. Raises iso.IsoError."""
    copied = []
    f, image = iso.open_image(tools_iso)
    with f:
        if not image.exists("Linux"):
            return []
        os.makedirs(destination, exist_ok=True)
        for name in AGENT_FILES:
            path = "Linux/" + name
            if not image.exists(path):
                continue
            data = image.read(path, MAX_AGENT_FILE_BYTES)
            mode = image.mode(path)
            if mode is None:
                mode = 0o755 if name in AGENT_EXECUTABLES else 0o644
            target = os.path.join(destination, name)
            with open(target, "wb") as out:
                out.write(data)
            os.chmod(target, mode & 0o755)
            copied.append(name)
    return copied


# -- the image ------------------------------------------------------------------------


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    os.chmod(path, 0o644)


def build_image(workdir: str, user_data: str, template: str,
                tools_iso: Optional[str]) -> str:
    """Build the config drive image in `workdir` (a private folder the caller
    removes); returns the image's path."""
    tree = os.path.join(workdir, "drive")
    _write(os.path.join(tree, USER_DATA), user_data)
    _write(os.path.join(tree, USER_DATA_TEMPLATE), template)
    if tools_iso:
        try:
            copied = copy_agent(tools_iso, os.path.join(tree, AGENT_DIR))
            log.info("guest agent from %s: %s", os.path.basename(tools_iso),
                     ", ".join(copied) or "no agent files in its Linux folder")
        except (iso.IsoError, OSError) as exc:
            # the drive still configures the guest; only the agent is missing
            shutil.rmtree(os.path.join(tree, AGENT_DIR), ignore_errors=True)
            log.warning("config drive without guest agent: cannot read %s: %s", tools_iso, exc)
    else:
        log.info("no *tools-*.iso in %s: config drive without guest agent", paths.tools_iso_dir())
    image = os.path.join(workdir, "config-2.iso")
    try:
        iso.build(tree, image, VOLUME_ID)
    except iso.IsoError as exc:
        raise errors.ConfigDriveError(
            "Building the config drive image failed: %s." % exc
        ) from exc
    return image


def read_template_from_image(data: bytes) -> str:
    """The user_data.template of a config drive image, LF newlines."""
    try:
        image = iso.IsoReader(BytesIO(data), len(data))
        raw = image.read(USER_DATA_TEMPLATE, MAX_CONFIGURATION_BYTES)
    except iso.IsoError as exc:
        raise errors.ConfigDriveError(
            "This disk is not a config drive made by xscontainer (%s)." % exc
        ) from exc
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


class _Padded:
    """A file read to its end, then zeros up to `size` bytes (the VDI's size)."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._left = size

    def read(self, n: int) -> bytes:
        n = min(n, self._left)
        data = self._f.read(n)
        data += b"\0" * (n - len(data))
        self._left -= len(data)
        return data


def vdi_size(image_bytes: int) -> int:
    """The image size rounded up to the next 2 MiB (an aligned size stays)."""
    return max(VDI_ALIGN, -(-image_bytes // VDI_ALIGN) * VDI_ALIGN)


# -- XAPI objects -------------------------------------------------------------------


def _sr(xapi: Xapi, sr_uuid: str) -> str:
    return xapi.by_uuid("SR", sr_uuid, errors.ConfigDriveError(
        "There is no SR with uuid %s in this pool. Pass the SR of the VM's first disk "
        "(xe sr-list lists them)." % sr_uuid, sr_uuid))


def _require_sr_here(xapi: Xapi, sr: str, sr_uuid: str, vm_uuid: str) -> None:
    host = xapi.this_host()
    for pbd in xapi.call("SR.get_PBDs", sr):
        record = xapi.call("PBD.get_record", pbd)
        if record.get("host") == host and record.get("currently_attached"):
            return
    host_uuid = xapi.call("host.get_uuid", host)
    raise errors.ConfigDriveError(
        "SR %s is not attached to host %s, where the config drive of VM %s must be made "
        "(the host the VM runs on, or one with the SR). Use a shared SR or one local to "
        "that host, or plug the SR's PBD on it." % (sr_uuid, host_uuid, vm_uuid),
        vm_uuid,
        sr_uuid,
    )


def _vbd_is_drive(xapi: Xapi, record: Dict[str, Any]) -> bool:
    if _true(record.get("other_config", {}).get(xapi_keys.CONFIG_DRIVE)):
        return True
    vdi = record.get("VDI")
    if not vdi or vdi == NULL_REF:
        return False
    try:
        return _true(xapi.call("VDI.get_other_config", vdi).get(xapi_keys.CONFIG_DRIVE))
    except errors.XAPIError as exc:
        if exc.gone:  # its VDI is gone
            return False
        raise


def config_drive_vbds(xapi: Xapi, vm: str) -> List[Tuple[str, Dict[str, Any]]]:
    """(ref, record) of each VBD of the VM that is a config drive."""
    return [(vbd, record)
            for vbd, record in xapi.live_records("VBD", xapi.call("VM.get_VBDs", vm))
            if _vbd_is_drive(xapi, record)]


def _free_userdevices(xapi: Xapi, vm: str, also_free: List[str]) -> List[str]:
    allowed = set(xapi.call("VM.get_allowed_VBD_devices", vm)) | set(also_free)
    numbers = sorted(int(d) for d in allowed if str(d).isdigit() and int(d) >= FIRST_USERDEVICE)
    return [str(n) for n in numbers]


def _no_userdevice(vm_uuid: str) -> errors.ConfigDriveError:
    return errors.ConfigDriveError(
        "VM %s has no free disk slot (userdevice) for the config drive. Remove a disk or "
        "an empty CD drive from it and retry." % vm_uuid,
        vm_uuid,
    )


def _remove_drive(xapi: Xapi, vbd: str, record: Dict[str, Any], vm_uuid: str) -> None:
    try:
        if record.get("currently_attached") and xapi.api.VBD.get_currently_attached(vbd):
            xapi.api.VBD.unplug(vbd)
        xapi.api.VBD.destroy(vbd)
    except errors.XAPIError as exc:
        if not exc.gone:  # gone already is fine
            raise errors.ConfigDriveError(
                "The VM's current config drive could not be detached (%s). The guest may be "
                "using it: shut VM %s down and retry." % (" ".join(exc.details), vm_uuid),
                vm_uuid,
            ) from exc
    vdi = record.get("VDI")
    if vdi and vdi != NULL_REF:
        try:
            xapi.call("VDI.destroy", vdi)
        except errors.XAPIError as exc:
            if not exc.gone:
                raise


class _Undo:
    """What a create made so far, destroyed again (newest first) if it fails."""

    def __init__(self) -> None:
        self._steps: List[Tuple[str, Callable[[], None]]] = []

    def add(self, what: str, step: Callable[[], None]) -> None:
        self._steps.append((what, step))

    def run(self) -> None:
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # keep undoing the rest
                log.warning("cleanup after a failed create_config_drive: %s: %s", what, exc)

    def forget(self) -> None:
        self._steps = []


def _use_hin(xapi: Xapi) -> bool:
    """Pool other-config xscontainer-use-hostinternalnetwork (set by the admin)."""
    return _true(xapi.pool_other_config().get(xapi_keys.USE_HOST_INTERNAL_NETWORK))


def _hin_network(xapi: Xapi) -> Optional[str]:
    """The host internal management network (bridge xenapi), if the pool has it."""
    for ref, record in xapi.call("network.get_all_records").items():
        if record.get("bridge") == HIN_BRIDGE:
            return str(ref)
    return None


def _hin_device(xapi: Xapi, vm: str, network: Optional[str]) -> Optional[str]:
    if network is None:
        return None
    for _vif, record in xapi.live_records("VIF", xapi.call("VM.get_VIFs", vm)):
        if record.get("network") == network:
            return str(record.get("device"))
    return None


def _add_hin_vif(xapi: Xapi, vm: str, network: str, undo: _Undo) -> str:
    """As the original, when the pool asks for it: no default gateway from the
    host internal network, and a VIF on it for the VM. Returns its device."""
    xapi.set_other_config_key("network", network, "ip_disable_gw", "true")
    for _attempt in range(3):
        free = xapi.call("VM.get_allowed_VIF_devices", vm)
        if not free:
            raise errors.ConfigDriveError(
                "The pool asks for a host internal network interface in config-drive VMs "
                "(%s), but the VM has no free network device slot. Remove a network "
                "interface, or remove that pool setting." % xapi_keys.USE_HOST_INTERNAL_NETWORK
            )
        device = str(sorted(free, key=lambda d: int(d) if str(d).isdigit() else 1 << 30)[0])
        try:
            vif = xapi.api.VIF.create({
                "device": device, "network": network, "VM": vm, "MAC": "", "MTU": "1500",
                "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
            })
        except errors.XAPIError as exc:
            if exc.xapi_code == "DEVICE_ALREADY_EXISTS":
                continue
            raise
        undo.add("destroy VIF %s" % device, functools.partial(xapi.api.VIF.destroy, vif))
        log.info("added a VIF (device %s) on the host internal network", device)
        return device
    raise errors.ConfigDriveError("Could not add a host internal network interface: its "
                                  "device numbers kept being taken concurrently. Retry.")


def _import_image(xapi: Xapi, sr: str, image: str, vm_uuid: str, undo: _Undo) -> str:
    size = vdi_size(os.path.getsize(image))
    try:
        vdi = xapi.call("VDI.create", {
            "name_label": DRIVE_NAME,
            "name_description": "Cloud-config drive for VM %s, made by xscontainer" % vm_uuid,
            "SR": sr,
            "virtual_size": str(size),
            "type": "system",  # made and replaced by the system, as the original's
            "sharable": False,
            "read_only": False,  # written once below; the VM gets it read-only
            "other_config": {xapi_keys.CONFIG_DRIVE: "True"},
        })
    except errors.XAPIError as exc:
        raise errors.ConfigDriveError(
            "Creating the config drive's disk failed: %s Check that the SR has %d MiB free."
            % (exc.message, size >> 20),
            vm_uuid,
        ) from exc
    undo.add("destroy the new VDI", lambda: xapi.api.VDI.destroy(vdi))
    try:
        with open(image, "rb") as f:
            source = cast(IO[bytes], _Padded(f, size))  # it only reads
            xapi.import_raw_vdi(vdi, source, size, timeout=UPLOAD_TIMEOUT)
    except (errors.XSContainerError, OSError) as exc:
        raise errors.ConfigDriveError(
            "Uploading the config drive failed: %s Check the SR and retry." % exc, vm_uuid
        ) from exc
    return str(vdi)


def _attach(xapi: Xapi, vm: str, vdi: str, vm_uuid: str, undo: _Undo) -> str:
    for _attempt in range(VBD_CREATE_ATTEMPTS):
        free = _free_userdevices(xapi, vm, [])
        if not free:
            raise _no_userdevice(vm_uuid)
        try:
            vbd = xapi.api.VBD.create({
                "VM": vm, "VDI": vdi, "userdevice": free[0], "bootable": False,
                "mode": "RO", "type": "Disk", "unpluggable": True, "empty": False,
                "other_config": {xapi_keys.CONFIG_DRIVE: "True"},
                "qos_algorithm_type": "", "qos_algorithm_params": {},
            })
        except errors.XAPIError as exc:
            if exc.xapi_code == "DEVICE_ALREADY_EXISTS":
                continue  # taken meanwhile: the next free one
            raise
        undo.add("destroy the new VBD", functools.partial(xapi.api.VBD.destroy, vbd))
        return str(vbd)
    raise _no_userdevice(vm_uuid)


def _plug_if_running(xapi: Xapi, vm: str, vbd: str) -> None:
    if xapi.call("VM.get_power_state", vm) != "Running":
        return
    try:
        xapi.api.VBD.plug(vbd)
    except errors.XAPIError as exc:
        if exc.failure is None:  # XAPI itself is unreachable: not a plug problem
            raise
        # Attached all the same: the guest sees it at its next boot, which is when
        # it reads its cloud-config.
        log.warning("the new config drive could not be hot-plugged (%s); the VM gets it "
                    "at its next boot", " ".join(exc.failure))


def _seed_monitor_key(xapi: Xapi, vm: str) -> None:
    """xscontainer-monitor=False if absent, so XenCenter offers container management."""
    if xapi_keys.MONITOR in xapi.vm_other_config(vm):
        return
    # someone may set it meanwhile: theirs stays
    xapi.add_key_if_absent("VM", vm, xapi_keys.MONITOR, "False")


# -- plugin functions -----------------------------------------------------------------


def get_config_drive_default(xapi: Xapi, args: Dict[str, str]) -> str:
    """`templateuuid` is required by the contract but does not change the answer."""
    return default_configuration(_use_hin(xapi))


def create_config_drive(xapi: Xapi, args: Dict[str, str]) -> str:
    vm_uuid = args.get("vmuuid", "").strip()
    sr_uuid = args.get("sruuid", "").strip()
    raw = args.get("configuration", "")
    received = decode_configuration(raw)
    if not received.strip():
        raise errors.InvalidArgument(
            "The configuration is empty. Pass the cloud-config text (get_config_drive_default "
            "gives a starting point) as args:configuration=..., with %BR% for each newline.",
            "configuration",
        )
    if len(raw.encode("utf-8")) > MAX_CONFIGURATION_BYTES:
        raise errors.InvalidArgument(
            "The configuration is larger than %d bytes." % MAX_CONFIGURATION_BYTES,
            "configuration",
        )
    resolve_hin_blocks(received, keep=False)  # refuse an unclosed block before any change

    vm = xapi.vm_by_uuid(vm_uuid)
    sr = _sr(xapi, sr_uuid)
    _require_sr_here(xapi, sr, sr_uuid, vm_uuid)
    old = config_drive_vbds(xapi, vm)
    if not _free_userdevices(xapi, vm, [str(r.get("userdevice")) for _, r in old]):
        raise _no_userdevice(vm_uuid)

    undo = _Undo()
    try:
        network = _hin_network(xapi)
        hin = _hin_device(xapi, vm, network)
        if hin is None and network is not None and _use_hin(xapi):
            hin = _add_hin_vif(xapi, vm, network, undo)
        body = None
        if needs_pool_key(received):
            from xscontainer import poolkey  # noqa: PLC0415 (cryptography: only when needed)

            body = key_body(poolkey.public_key_line(xapi))
        name = str(xapi.call("VM.get_name_label", vm))
        user_data = customize(received, hostname_from_name(name, vm_uuid), body, hin)

        workdir = tempfile.mkdtemp(prefix="xscontainer-configdrive-")
        try:
            image = build_image(workdir, user_data, received, newest_tools_iso())
            vdi = _import_image(xapi, sr, image, vm_uuid, undo)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        for old_vbd, old_record in old:
            _remove_drive(xapi, old_vbd, old_record, vm_uuid)
        vbd = _attach(xapi, vm, vdi, vm_uuid, undo)
    except BaseException:
        undo.run()
        raise
    undo.forget()
    _plug_if_running(xapi, vm, vbd)
    if has_uncommented_key_line(received):
        _seed_monitor_key(xapi, vm)
    vdi_uuid = str(xapi.call("VDI.get_uuid", vdi))
    log.info("config drive %s created on SR %s for VM %s%s", vdi_uuid, sr_uuid, vm_uuid,
             " (replacing %d)" % len(old) if old else "")
    return vdi_uuid


def get_config_drive_configuration(xapi: Xapi, args: Dict[str, str]) -> str:
    vdi_uuid = args.get("vdiuuid", "").strip()
    vdi = xapi.by_uuid("VDI", vdi_uuid, errors.ConfigDriveError(
        "There is no VDI with uuid %s in this pool. Pass the uuid of the VM's config drive "
        "(its VDI has other-config config-drive=True)." % vdi_uuid, vdi_uuid))
    size = int(xapi.call("VDI.get_virtual_size", vdi))
    if size > MAX_DRIVE_BYTES:
        raise errors.ConfigDriveError(
            "VDI %s (%d MiB) is too large to be a config drive; pass the uuid of the VM's "
            "config drive." % (vdi_uuid, size >> 20),
            vdi_uuid,
        )
    data = xapi.export_raw_vdi(vdi, MAX_DRIVE_BYTES, timeout=UPLOAD_TIMEOUT)
    text = read_template_from_image(data)
    if not text:
        raise errors.ConfigDriveError(
            "The config drive %s holds an empty configuration." % vdi_uuid, vdi_uuid
        )
    return text
