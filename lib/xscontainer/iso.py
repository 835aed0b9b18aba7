"""ISO 9660 images, built and read in Python with pycdlib (no external tool).

pycdlib is a pure Python ISO 9660 library (Rock Ridge, Joliet); the
xscontainer-pylibs RPM bundles it, so neither building nor reading an image
needs genisoimage, mkisofs or xorriso on the host, nor a mount or loop device.

Building writes what `genisoimage -R -J -V LABEL` writes: ISO 9660 level 1 names
(8.3, upper case; readers use the two others), Rock Ridge 1.09 names with the
source files' permission bits, Joliet (UCS-2 level 3) names, the volume label in
the primary and the Joliet descriptor.

Reading works on an image held in memory (a config drive exported from XAPI) as
well as on a file (the guest tools ISO). Names come from Rock Ridge, else
Joliet, else ISO 9660 (8.3, upper case). A damaged or hostile image gives an
IsoError: pycdlib's own checks, plus ours on the whole image's size, the
directories' depth and number of entries, and every file's size before it is
read.
"""

import io
import os
import re
import stat
from typing import IO, Any, BinaryIO, Dict, List, Optional, Tuple, cast

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

SECTOR = 2048
MAX_DEPTH = 8  # ISO 9660 allows 8 levels of directories
MAX_ENTRIES = 20000  # every entry of the image, all directories together
MAX_IMAGE_BYTES = 1 << 30  # an image to read: the tools ISO is ~100 MB, the drives ~1 MB
# the source tree of an image we build: only small files (config drive, TLS CD)
MAX_BUILD_BYTES = 64 << 20
ISO_NAME_CHARS = re.compile(r"[^A-Z0-9_]")


class IsoError(Exception):
    """The image is not a readable ISO 9660 image, or a path is missing from it."""


class Entry:
    """One file or directory of the image."""

    __slots__ = ("children", "extent", "is_dir", "mode", "name", "size")

    def __init__(self, name: str, extent: int, size: int, is_dir: bool,
                 mode: Optional[int]) -> None:
        self.name = name
        self.extent = extent
        self.size = size
        self.is_dir = is_dir
        self.mode = mode  # Rock Ridge st_mode, or None without Rock Ridge
        self.children: List["Entry"] = []

    def __repr__(self) -> str:
        return "Entry(%r, %s, %d bytes)" % (self.name, "dir" if self.is_dir else "file", self.size)


def _decode_plain(raw: bytes, joliet: bool) -> str:
    name = raw.decode("utf-16-be" if joliet else "ascii", "replace")
    if ";" in name:
        name = name.rsplit(";", 1)[0]
    if not joliet and name.endswith("."):
        name = name[:-1]  # "NAME." for a file without an extension
    return name


class IsoReader:
    """Read-only access to an ISO 9660 image in a seekable binary file object.

    The whole directory tree is read when the reader is made (bounded by
    MAX_DEPTH and MAX_ENTRIES); file contents are read on demand.
    """

    def __init__(self, f: IO[bytes], image_size: Optional[int] = None) -> None:
        self._f = f
        if image_size is None:
            f.seek(0, os.SEEK_END)
            image_size = f.tell()
        self.image_size = image_size
        if image_size > MAX_IMAGE_BYTES:
            raise IsoError("an image of %d bytes is larger than the %d allowed"
                           % (image_size, MAX_IMAGE_BYTES))
        f.seek(0)
        image = pycdlib.PyCdlib()
        try:
            image.open_fp(cast(BinaryIO, f))
            self._load(image)
        except IsoError:
            raise
        except PyCdlibException as exc:
            raise IsoError("not a readable ISO 9660 image: %s" % exc) from exc
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError,
                MemoryError, RecursionError, UnicodeError, EOFError) as exc:
            # pycdlib's parsers on a damaged image (struct errors are ValueErrors)
            raise IsoError("the image is damaged: %s" % exc) from exc
        finally:
            try:
                image.close()
            except PyCdlibException:
                pass

    def _load(self, image: Any) -> None:
        pvd = image.pvd
        self._block = int(pvd.logical_block_size())
        self.volume_id = bytes(pvd.volume_identifier).decode("ascii", "replace").rstrip(" \x00")
        self.joliet_volume_id: Optional[str] = None
        joliet_vd = image.joliet_vd
        if joliet_vd is not None:
            self.joliet_volume_id = bytes(joliet_vd.volume_identifier).decode(
                "utf-16-be", "replace").rstrip(" \x00")
        self.rock_ridge = bool(image.has_rock_ridge())
        self._joliet = not self.rock_ridge and joliet_vd is not None
        root_record = (joliet_vd if self._joliet else pvd).root_directory_record()
        self._count = 0
        self._root_entry = Entry("", 0, 0, True, None)
        self._load_dir(root_record, self._root_entry, 0)

    def _load_dir(self, record: Any, entry: Entry, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise IsoError("directories nested too deep")
        for child in record.children:
            if child is None or child.is_dot() or child.is_dotdot():
                continue
            self._count += 1
            if self._count > MAX_ENTRIES:
                raise IsoError("more than %d files and directories in the image" % MAX_ENTRIES)
            name: Optional[str] = None
            mode: Optional[int] = None
            if self.rock_ridge and child.rock_ridge is not None:
                raw = child.rock_ridge.name()
                name = raw.decode("utf-8", "replace") if raw else None
                try:
                    mode = int(child.rock_ridge.get_file_mode())
                except PyCdlibException:
                    mode = None
            if not name:
                name = _decode_plain(bytes(child.file_identifier()), self._joliet)
            if not name or name in (".", "..") or "/" in name:
                raise IsoError("damaged directory: bad file name")
            size = int(child.get_data_length())
            extent = int(child.extent_location())
            node = Entry(name, extent, size, bool(child.is_dir()), mode)
            if not node.is_dir and extent * self._block + size > self.image_size:
                raise IsoError("%s: the file lies past the end of the image" % name)
            entry.children.append(node)
            if node.is_dir:
                self._load_dir(child, node, depth + 1)

    @property
    def names(self) -> str:
        """Where file names come from: rockridge, joliet or iso9660 (8.3, upper case)."""
        if self.rock_ridge:
            return "rockridge"
        return "joliet" if self._joliet else "iso9660"

    # -- directories ------------------------------------------------------------------

    def lookup(self, path: str) -> Entry:
        """The entry at `path` ("a/b/c", leading "/" optional). Exact names first;
        case-insensitive when that finds nothing (for images with 8.3 names only)."""
        entry = self._root_entry
        parts = [p for p in path.split("/") if p]
        if len(parts) > MAX_DEPTH + 1:
            raise IsoError("path too deep: %s" % path)
        for part in parts:
            if not entry.is_dir:
                raise IsoError("%s: not a directory" % path)
            found = [c for c in entry.children if c.name == part]
            if not found:
                folded = part.lower().replace("-", "_")
                found = [c for c in entry.children if c.name.lower().replace("-", "_") == folded]
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
        return sorted(c.name for c in entry.children)

    def walk(self) -> List[str]:
        """Every path of the image ("dir/", "dir/file"), directories ending in "/"."""
        found: List[str] = []

        def visit(directory: Entry, prefix: str) -> None:
            for child in directory.children:
                path = prefix + child.name
                if child.is_dir:
                    found.append(path + "/")
                    visit(child, path + "/")
                else:
                    found.append(path)

        visit(self._root_entry, "")
        return sorted(found)

    # -- files ----------------------------------------------------------------------

    def read(self, path: str, max_bytes: int) -> bytes:
        """The content of the file at `path`; IsoError if larger than max_bytes."""
        entry = self.lookup(path)
        if entry.is_dir:
            raise IsoError("%s: is a directory" % path)
        if entry.size > max_bytes:
            raise IsoError("%s: %d bytes, more than the %d allowed" % (path, entry.size, max_bytes))
        self._f.seek(entry.extent * self._block)
        data = self._f.read(entry.size)
        if len(data) != entry.size:
            raise IsoError("the image is truncated (short read)")
        return data

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


def _iso_name(name: str, is_dir: bool, taken: Dict[str, bool]) -> str:
    """A unique ISO 9660 level 1 name (8.3, d-characters) for `name` in its directory."""
    if is_dir:
        base, ext = name, ""
    else:
        base, dot, ext = name.rpartition(".")
        if not dot or not base:
            base, ext = name, ""
    base = ISO_NAME_CHARS.sub("_", base.upper()) or "_"
    ext = ISO_NAME_CHARS.sub("_", ext.upper())[:3]
    n = 0
    while True:
        suffix = "" if n == 0 else str(n)
        candidate = base[:8 - len(suffix)] + suffix
        if not is_dir:
            candidate += "." + ext
        if candidate not in taken:
            taken[candidate] = True
            return candidate if is_dir else candidate + ";1"
        n += 1


def build(source_dir: str, output: str, volume_id: str) -> None:
    """Write an ISO 9660 image of `source_dir` (Rock Ridge + Joliet) to `output`.

    Regular files and directories only; raises IsoError for anything else, for a
    tree deeper than ISO 9660 allows or larger than MAX_BUILD_BYTES, and when
    writing fails.
    """
    if not os.path.isdir(source_dir):
        raise IsoError("%s: no such directory to make an image of" % source_dir)
    image = pycdlib.PyCdlib()
    streams: List[IO[bytes]] = []
    try:
        image.new(interchange_level=1, rock_ridge="1.09", joliet=3, vol_ident=volume_id)
        total = 0

        def add_tree(directory: str, iso_dir: str, joliet_dir: str, depth: int) -> None:
            nonlocal total
            if depth > MAX_DEPTH - 1:
                raise IsoError("%s: directories nested too deep for ISO 9660" % directory)
            taken: Dict[str, bool] = {}
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                st = os.lstat(path)
                is_dir = stat.S_ISDIR(st.st_mode)
                if not is_dir and not stat.S_ISREG(st.st_mode):
                    raise IsoError("%s: neither a regular file nor a directory" % path)
                iso_path = iso_dir + "/" + _iso_name(name, is_dir, taken)
                joliet_path = joliet_dir + "/" + name
                mode = stat.S_IMODE(st.st_mode)
                if is_dir:
                    image.add_directory(iso_path=iso_path, rr_name=name, joliet_path=joliet_path,
                                        file_mode=stat.S_IFDIR | mode)
                    add_tree(path, iso_path, joliet_path, depth + 1)
                    continue
                total += st.st_size
                if total > MAX_BUILD_BYTES:
                    raise IsoError("%s: more than %d bytes to put in an image"
                                   % (source_dir, MAX_BUILD_BYTES))
                with open(path, "rb") as f:
                    data = f.read(MAX_BUILD_BYTES + 1)
                stream = io.BytesIO(data)
                streams.append(stream)
                image.add_fp(stream, len(data), iso_path=iso_path, rr_name=name,
                             joliet_path=joliet_path, file_mode=stat.S_IFREG | mode)

        add_tree(source_dir, "", "", 0)
        image.write(output)
    except PyCdlibException as exc:
        raise IsoError("building the image failed: %s" % exc) from exc
    except OSError as exc:
        raise IsoError("building the image failed: %s" % exc) from exc
    finally:
        try:
            image.close()
        except PyCdlibException:
            pass
