"""Text in and out of a dom0 process whatever its locale (standard library only).

xapi starts a plugin with PATH as its only environment variable and the methodCall
in argv[1] as UTF-8 bytes; systemd starts the monitor without LANG either. On a
CentOS 7 based dom0 there is no C.UTF-8 locale, so Python 3.6 runs with an ASCII
locale: argv arrives as surrogate escapes (\\udcc3\\udca9 for "é") and stdout
encodes to ASCII, so a non-ASCII argument or result breaks xmlrpc.client.loads
or print. The entry points call these functions first, before xapi's
XenAPIPlugin module (or anything else) reads argv or writes a byte:

* `plugin_argv()`: argv re-read from its raw bytes as UTF-8, with the characters
  XML 1.0 forbids removed (xapi never passes them; a parser would refuse them);
* `utf8_argv()`: the same without the XML rule, for a command's arguments;
* `utf8_stdio()`: stdout and stderr write UTF-8, never raising on a character;
* `quiet_warnings()`: library warnings (cryptography's Python 3.6 deprecation
  notice, paramiko's TripleDES one) never reach stderr, which xapi logs;
* `plugin_entry()`: what a plugin needs of these; `command_entry()`, what a
  command (the monitor, prepare-vm) needs.

Importing this module costs next to nothing: it imports only modules Python has
already loaded at start-up (os, sys, io) and `warnings`.
"""

import io
import os
import sys
from typing import Any, List, Optional

# XML 1.0's Char production: TAB, LF, CR, and the ranges below. A lone surrogate
# is not a character either (and has no UTF-8 form).
_XML_LEGAL = ((0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))


def _xml_legal(ch: str) -> bool:
    if ch in "\t\n\r":
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _XML_LEGAL)


def drop_xml_illegal(text: str) -> str:
    """`text` without the characters XML 1.0 does not allow anywhere (control
    characters other than tab, LF and CR; lone surrogates; U+FFFE, U+FFFF)."""
    illegal = [ch for ch in set(text) if not _xml_legal(ch)]  # distinct characters only
    if not illegal:
        return text
    return "".join(ch for ch in text if _xml_legal(ch))


def utf8_arg(arg: str) -> str:
    """One argument as the UTF-8 its bytes were, whatever locale decoded it.

    Python decodes argv with the locale's encoding and the surrogateescape
    handler; `os.fsencode` gives the exact bytes back. Bytes that are not UTF-8
    become U+FFFD."""
    try:
        raw = os.fsencode(arg)
    except UnicodeError:  # not from argv (no surrogate escapes to undo)
        raw = arg.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def utf8_argv(argv: Optional[List[str]] = None) -> List[str]:
    """Rewrites `argv` (sys.argv by default) in place: every argument after the
    program decoded from its bytes as UTF-8 (a command's VM name, say). Returns it."""
    if argv is None:
        argv = sys.argv
    argv[1:] = [utf8_arg(a) for a in argv[1:]]
    return argv


def plugin_argv(argv: Optional[List[str]] = None) -> List[str]:
    """Rewrites `argv` (sys.argv by default) in place: every argument after the
    program decoded from its bytes as UTF-8, XML-illegal characters removed.
    Returns it."""
    if argv is None:
        argv = sys.argv
    argv[1:] = [drop_xml_illegal(utf8_arg(a)) for a in argv[1:]]
    return argv


def _utf8_stream(stream: Any, errors: str) -> Any:
    encoding = getattr(stream, "encoding", None) or ""
    if encoding.replace("-", "").replace("_", "").lower() == "utf8" and getattr(
        stream, "errors", None
    ) == errors:
        return stream
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # replaced already (a test's capture): leave it
        return stream
    stream.flush()
    line_buffering = bool(getattr(stream, "line_buffering", False))
    return io.TextIOWrapper(
        stream.detach(), encoding="utf-8", errors=errors, line_buffering=line_buffering
    )


def utf8_stdio() -> None:
    """sys.stdout and sys.stderr write UTF-8 whatever the locale. A character
    UTF-8 cannot carry (a lone surrogate) becomes `?` on stdout (an XML-RPC
    reply must stay UTF-8) and a backslash escape on stderr."""
    if sys.stdout is not None:
        sys.stdout = _utf8_stream(sys.stdout, "replace")
    if sys.stderr is not None:
        sys.stderr = _utf8_stream(sys.stderr, "backslashreplace")


def quiet_warnings() -> None:
    """Library warnings never reach stderr (unless asked for with -W or
    PYTHONWARNINGS). Call before importing the libraries: some warn on import."""
    if sys.warnoptions:
        return
    import warnings  # noqa: PLC0415

    warnings.simplefilter("ignore")


def command_entry() -> None:
    """What a command's executable runs before importing the package's modules."""
    quiet_warnings()
    utf8_stdio()
    utf8_argv()


def plugin_entry() -> None:
    """What a plugin's executable runs before XenAPIPlugin.dispatch."""
    quiet_warnings()
    utf8_stdio()
    plugin_argv()
