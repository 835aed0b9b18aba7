"""ISO9660 images: build one with the host's mkisofs-style tool, read one in Python.

Reading needs no mount, no loop device and no external tool, so it works on an
image held in memory (a config drive exported from XAPI) as well as on a file
(the guest tools ISO). It understands what genisoimage, mkisofs and xorriso
write: the primary volume descriptor, Rock Ridge names and modes (SUSP, with
continuation areas), and Joliet names when there is no Rock Ridge. Every read is
bounded and every offset checked against the image, so a damaged or hostile
image gives an IsoError, never a huge allocation or a loop.

Building runs `genisoimage` (or `mkisofs`, or `xorriso -as mkisofs`, whichever
the host has) with Rock Ridge and Joliet. On XenServer / XCP-ng dom0 they come
from the RPM `genisoimage` (which provides genisoimage, the mkisofs alternative
and isoinfo): the xscontainer RPM Requires it.
"""

import os
import shutil
import struct
import subprocess
from typing import IO, Dict, List, Optional, Tuple

SECTOR = 2048
FIRST_DESCRIPTOR = 16
MAX_DESCRIPTORS = 64
MAX_DIRECTORY_BYTES = 4 << 20
MAX_DEPTH = 16
MAX_CONTINUATIONS = 32
FLAG_DIRECTORY = 0x02
FLAG_MULTI_EXTENT = 0x80
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")

# genisoimage first: its options are the reference; xorriso emulates them.
BUILDERS: Tuple[Tuple[str, ...], ...] = (
    ("genisoimage",),
    ("mkisofs",),
    ("xorriso", "-as", "mkisofs"),
)
BUILD_TIMEOUT = 120.0
MAX_TOOL_OUTPUT = 2000


class IsoError(Exception):
    """The image is not a readable ISO9660 image, or a path is missing from it."""


def _le16(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<H", data, offset)[0])


def _le32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


class Entry:
    """One directory record: a file or a directory of the image."""

    __slots__ = ("extent", "is_dir", "mode", "name", "size")

    def __init__(self, name: str, extent: int, size: int, is_dir: bool,
                 mode: Optional[int]) -> None:
        self.name = name
        self.extent = extent
        self.size = size
        self.is_dir = is_dir
        self.mode = mode  # Rock Ridge st_mode, or None without Rock Ridge

    def __repr__(self) -> str:
        return "Entry(%r, %s, %d bytes)" % (self.name, "dir" if self.is_dir else "file", self.size)


class IsoReader:
    """Read-only access to an ISO9660 image in a seekable binary file object."""

    def __init__(self, f: IO[bytes], image_size: Optional[int] = None) -> None:
        self._f = f
        if image_size is None:
            f.seek(0, os.SEEK_END)
            image_size = f.tell()
        self.image_size = image_size
        self.volume_id = ""
        self.joliet_volume_id: Optional[str] = None
        self._block = SECTOR
        self._dirs: Dict[Tuple[int, int], List[Entry]] = {}
        primary, joliet = self._descriptors()
        self._block = _le16(primary, 128) or SECTOR
        if self._block not in (512, 1024, 2048):
            raise IsoError("unsupported logical block size %d" % self._block)
        self.volume_id = primary[40:72].decode("ascii", "replace").rstrip(" \x00")
        root = self._root(primary)
        self._skip = 0
        self.rock_ridge = self._has_rock_ridge(root)
        if self.rock_ridge or joliet is None:
            self._root_entry = root
            self._joliet = False
        else:
            self._root_entry = self._root(joliet)
            self._joliet = True
        if joliet is not None:
            self.joliet_volume_id = joliet[40:72].decode("utf-16-be", "replace").rstrip(" \x00")

    @property
    def names(self) -> str:
        """Where file names come from: rockridge, joliet or iso9660 (8.3, upper case)."""
        if self.rock_ridge:
            return "rockridge"
        return "joliet" if self._joliet else "iso9660"

    # -- low level ------------------------------------------------------------------

    def _read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.image_size:
            raise IsoError("the image is truncated or damaged (read past its end)")
        self._f.seek(offset)
        data = self._f.read(length)
        if len(data) != length:
            raise IsoError("the image is truncated (short read)")
        return data

    def _descriptors(self) -> Tuple[bytes, Optional[bytes]]:
        primary: Optional[bytes] = None
        joliet: Optional[bytes] = None
        for n in range(FIRST_DESCRIPTOR, FIRST_DESCRIPTOR + MAX_DESCRIPTORS):
            if (n + 1) * SECTOR > self.image_size:
                break
            data = self._read_at(n * SECTOR, SECTOR)
            if data[1:6] != b"CD001":
                break
            kind = data[0]
            if kind == 1 and primary is None:
                primary = data
            elif kind == 2 and joliet is None and any(e in data[88:120] for e in JOLIET_ESCAPES):
                joliet = data
            elif kind == 255:
                break
        if primary is None:
            raise IsoError("no ISO9660 primary volume descriptor (not an ISO9660 image)")
        return primary, joliet

    def _root(self, descriptor: bytes) -> Entry:
        record = descriptor[156:156 + 34]
        return Entry("", _le32(record, 2), _le32(record, 10), True, None)

    def _has_rock_ridge(self, root: Entry) -> bool:
        """Rock Ridge is announced by a SUSP "SP" entry in the root's "." record."""
        records = self._raw_records(root)
        if not records:
            return False
        system_use = records[0][2]
        if len(system_use) >= 7 and system_use[0:2] == b"SP" and system_use[4:6] == b"\xbe\xef":
            self._skip = system_use[6]
            return True
        return False

    def _raw_records(self, directory: Entry) -> List[Tuple[bytes, int, bytes, int, int]]:
        """(name bytes, flags, system use, extent, size) of each record of a directory."""
        if directory.size > MAX_DIRECTORY_BYTES:
            raise IsoError("a directory of %d bytes is larger than allowed" % directory.size)
        data = self._read_at(directory.extent * self._block, directory.size)
        records = []
        offset = 0
        while offset < len(data):
            length = data[offset]
            if length == 0:  # records never span blocks: the rest of this one is padding
                offset = (offset // self._block + 1) * self._block
                continue
            if length < 34 or offset + length > len(data):
                raise IsoError("damaged directory record")
            record = data[offset:offset + length]
            name_length = record[32]
            if 33 + name_length > length:
                raise IsoError("damaged directory record name")
            name = record[33:33 + name_length]
            system_use_start = 33 + name_length + (0 if name_length % 2 else 1)
            records.append((name, record[25], record[system_use_start:],
                            _le32(record, 2), _le32(record, 10)))
            offset += length
        return records

    def _rock_ridge(self, system_use: bytes) -> Tuple[Optional[str], Optional[int]]:
        """(NM name, PX mode) from a record's System Use area, following CE areas."""
        name_parts: List[bytes] = []
        mode: Optional[int] = None
        area = system_use[self._skip:]
        for _hop in range(MAX_CONTINUATIONS):
            next_area: Optional[bytes] = None
            i = 0
            while i + 4 <= len(area):
                signature, length = area[i:i + 2], area[i + 2]
                if length < 4 or i + length > len(area):
                    break
                entry = area[i:i + length]
                if signature == b"NM" and length >= 5:
                    if not entry[4] & 0x06:  # CURRENT / PARENT: not a real name
                        name_parts.append(entry[5:])
                elif signature == b"PX" and length >= 12:
                    mode = _le32(entry, 4)
                elif signature == b"CE" and length >= 28:
                    block, offset, size = _le32(entry, 4), _le32(entry, 12), _le32(entry, 20)
                    if size > MAX_DIRECTORY_BYTES:
                        raise IsoError("damaged Rock Ridge continuation area")
                    next_area = self._read_at(block * self._block + offset, size)
                elif signature == b"ST":
                    break
                i += length
            if next_area is None:
                break
            area = next_area
        else:
            raise IsoError("too many Rock Ridge continuation areas")
        name = b"".join(name_parts).decode("utf-8", "replace") if name_parts else None
        return name, mode

    def _plain_name(self, raw: bytes) -> str:
        if self._joliet:
            name = raw.decode("utf-16-be", "replace")
        else:
            name = raw.decode("ascii", "replace")
        if ";" in name:
            name = name.rsplit(";", 1)[0]
        if not self._joliet and name.endswith("."):
            name = name[:-1]  # "NAME." for a file without an extension
        return name

    # -- directories ------------------------------------------------------------------

    def entries(self, directory: Entry) -> List[Entry]:
        """The entries of a directory, without "." and ".."."""
        key = (directory.extent, directory.size)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        result = []
        for raw, flags, system_use, extent, size in self._raw_records(directory):
            if raw in (b"\x00", b"\x01"):
                continue
            if flags & FLAG_MULTI_EXTENT:
                raise IsoError("multi-extent files are not supported")
            name: Optional[str] = None
            mode: Optional[int] = None
            if self.rock_ridge:
                name, mode = self._rock_ridge(system_use)
            if not name:
                name = self._plain_name(raw)
            if not name or name in (".", "..") or "/" in name:
                raise IsoError("damaged directory: bad file name")
            result.append(Entry(name, extent, size, bool(flags & FLAG_DIRECTORY), mode))
        self._dirs[key] = result
        return result

    def lookup(self, path: str) -> Entry:
        """The entry at `path` ("a/b/c", leading "/" optional). Exact names first;
        case-insensitive when that finds nothing (for images with 8.3 names only)."""
        entry = self._root_entry
        parts = [p for p in path.split("/") if p]
        if len(parts) > MAX_DEPTH:
            raise IsoError("path too deep: %s" % path)
        for part in parts:
            if not entry.is_dir:
                raise IsoError("%s: not a directory" % path)
            children = self.entries(entry)
            found = [c for c in children if c.name == part]
            if not found:
                folded = part.lower().replace("-", "_")
                found = [c for c in children if c.name.lower().replace("-", "_") == folded]
            if not found:
                raise IsoError("%s: no such file in the image" % path)
            entry = found[0]
        return entry

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path)
        except IsoError:
            return False
        return True

    def listdir(self, path: str = "") -> List[str]:
        entry = self.lookup(path)
        if not entry.is_dir:
            raise IsoError("%s: not a directory" % path)
        return sorted(c.name for c in self.entries(entry))

    def walk(self) -> List[str]:
        """Every path of the image ("dir/", "dir/file"), directories ending in "/"."""
        found: List[str] = []

        def visit(directory: Entry, prefix: str, depth: int) -> None:
            if depth > MAX_DEPTH:
                raise IsoError("directories nested too deep")
            for child in self.entries(directory):
                path = prefix + child.name
                if child.is_dir:
                    found.append(path + "/")
                    visit(child, path + "/", depth + 1)
                else:
                    found.append(path)

        visit(self._root_entry, "", 0)
        return sorted(found)

    # -- files ----------------------------------------------------------------------

    def read(self, path: str, max_bytes: int) -> bytes:
        """The content of the file at `path`; IsoError if larger than max_bytes."""
        entry = self.lookup(path)
        if entry.is_dir:
            raise IsoError("%s: is a directory" % path)
        if entry.size > max_bytes:
            raise IsoError("%s: %d bytes, more than the %d allowed" % (path, entry.size, max_bytes))
        return self._read_at(entry.extent * self._block, entry.size)

    def mode(self, path: str) -> Optional[int]:
        """The Rock Ridge permission bits of `path`, or None without Rock Ridge."""
        mode = self.lookup(path).mode
        return None if mode is None else mode & 0o7777


def open_image(path: str) -> Tuple[IO[bytes], IsoReader]:
    """Open an image file; the caller closes the returned file."""
    f = open(path, "rb")  # returned to the caller, who closes it
    try:
        return f, IsoReader(f)
    except BaseException:
        f.close()
        raise


# -- building -----------------------------------------------------------------------


def builder() -> Optional[List[str]]:
    """The argv prefix of the first ISO builder this host has, or None."""
    for argv in BUILDERS:
        if shutil.which(argv[0]):
            return list(argv)
    return None


def build(source_dir: str, output: str, volume_id: str,
          timeout: float = BUILD_TIMEOUT) -> None:
    """Write an ISO9660 image of `source_dir` (Rock Ridge + Joliet) to `output`.

    Raises IsoError when no builder exists, it fails, or it times out (the tool
    is killed then).
    """
    prefix = builder()
    if prefix is None:
        raise IsoError(
            "no ISO builder on this host (genisoimage, mkisofs or xorriso): "
            "install the genisoimage package"
        )
    argv = [*prefix, "-R", "-J", "-V", volume_id, "-input-charset", "utf-8", "-quiet",
            "-o", output, source_dir]
    try:
        result = subprocess.run(
            argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise IsoError("%s did not finish within %d s" % (prefix[0], timeout)) from exc
    except OSError as exc:
        raise IsoError("%s could not run: %s" % (prefix[0], exc)) from exc
    if result.returncode != 0:
        output_text = (result.stderr or result.stdout or "").strip()[-MAX_TOOL_OUTPUT:]
        raise IsoError("%s failed (exit status %d): %s"
                       % (prefix[0], result.returncode, output_text or "no output"))
    if not os.path.isfile(output):
        raise IsoError("%s wrote no image" % prefix[0])
