"""The cloud-config text: the default template, and filling in its placeholders.

Placeholders (new and legacy spellings are equivalent):

  %VMNAMETOHOSTNAME%  %XSVMNAMETOHOSTNAME%   VM name_label reduced to [a-z0-9]
  %CONTAINERRSAPUB%   %XSCONTAINERRSAPUB%    base64 body of the pool's public key
  %HIN%               %XSHIN%                device number of the VM's VIF on the
                                             host internal network (bridge xenapi)
  %HINEXISTS% ... %ENDHINEXISTS%             kept (markers dropped) only when the
  %XSHINEXISTS% ... %XSENDHINEXISTS%         VM has such a VIF, else removed;
  (older end marker: %ENDXSHINEXISTS%)       a marker alone on its line takes the
                                             line with it

The default text is the admin's override `<files_dir>/cloud-config.template` if
present, else the packaged data/cloud-config.template.

Differences from the original Python 2 xscontainer: markers are dropped when
the block is kept (the original left them, which is invalid YAML); every block
is matched on its own (the original's greedy match swallowed the text between
blocks); the old end marker is recognised.
"""

import logging
import os
import re
from typing import Any, List, Optional, Tuple

from xscontainer import errors, paths

log = logging.getLogger(__name__)

TEMPLATE_NAME = "cloud-config.template"
PACKAGED_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 "data", TEMPLATE_NAME)
MAX_CONFIGURATION_BYTES = 1 << 20
MAX_TEMPLATE_BYTES = 1 << 20
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
