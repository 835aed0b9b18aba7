"""Output for people: tables sized to the terminal, sizes and durations as
`docker` prints them. (The command's stdout and stderr write UTF-8 whatever
the locale: wireio.utf8_stdio.)
"""

import os
import shutil
import sys
import time
from typing import IO, List, Optional, Sequence

ELLIPSIS = "..."
MIN_WIDTH = 6  # a shrunk column keeps at least this many characters
GAP = "   "


def write(text: str, stream: Optional[IO[str]] = None) -> None:
    """`text` on stdout (or `stream`), flushed."""
    stream = stream if stream is not None else sys.stdout
    stream.write(text)
    stream.flush()


def line(text: str = "", stream: Optional[IO[str]] = None) -> None:
    write(text + "\n", stream)


def width() -> Optional[int]:
    """The terminal's width when stdout is a terminal (or COLUMNS is set), else
    None: output to a pipe or file is never cut."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _one_line(cell: str) -> str:
    return " ".join(str(cell).split()) if ("\n" in cell or "\t" in cell or "\r" in cell) \
        else cell


def _cut(cell: str, size: int) -> str:
    if len(cell) <= size:
        return cell
    if size <= len(ELLIPSIS):
        return cell[:size]
    return cell[:size - len(ELLIPSIS)] + ELLIPSIS


def render(header: Sequence[str], rows: Sequence[Sequence[str]], shrink: Sequence[str] = (),
           columns: Optional[int] = None) -> str:
    """A table: `header` then `rows`, columns left-aligned with a gap between.

    When `columns` (the terminal's width) is given and the table is wider, the
    columns named in `shrink` are cut (ending in ...), widest first, down to
    MIN_WIDTH each; the others are never cut (ids, states, numbers).
    """
    body = [[_one_line(str(cell)) for cell in row] for row in rows]
    sizes = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    if columns is not None:
        over = sum(sizes) + len(GAP) * (len(sizes) - 1) - columns
        floors = {i: max(MIN_WIDTH, len(h)) for i, h in enumerate(header) if h in shrink}
        while over > 0:
            room = [i for i in floors if sizes[i] > floors[i]]
            if not room:
                break
            widest = max(room, key=lambda i: sizes[i])
            # down to the next widest at once (long commands shrink in one step)
            below = max([sizes[i] for i in room if i != widest] + [floors[widest]])
            step = max(1, min(over, sizes[widest] - below))
            sizes[widest] -= step
            over -= step
    out: List[str] = []
    for row in [list(header), *body]:
        cells = [_cut(cell, size) for cell, size in zip(row, sizes)]
        out.append(GAP.join(c.ljust(s) for c, s in zip(cells, sizes)).rstrip())
    return "\n".join(out)


def human_bytes(value: float, binary: bool = False) -> str:
    """1.5MB / 1.5MiB, as `docker stats` prints memory (binary) and I/O (decimal)."""
    base = 1024.0 if binary else 1000.0
    units = ["B", "KiB", "MiB", "GiB", "TiB"] if binary else ["B", "kB", "MB", "GB", "TB"]
    size = float(value)
    for unit in units:
        if abs(size) < base or unit == units[-1]:
            return ("%d%s" % (size, unit)) if unit == "B" else ("%.3g%s" % (size, unit))
        size /= base
    return "%dB" % value  # pragma: no cover (the loop always returns)


def ago(unix_seconds: float, now: Optional[float] = None) -> str:
    """'5 minutes ago', as `docker ps` prints CREATED."""
    seconds = max(0.0, (time.time() if now is None else now) - unix_seconds)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return "%d %s%s ago" % (count, unit, "" if count == 1 else "s")
    count = int(seconds)
    return "%d second%s ago" % (count, "" if count == 1 else "s")
