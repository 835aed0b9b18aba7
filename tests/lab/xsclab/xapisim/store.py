"""The simulator's database: objects by class and ref, generation counters for
event.from, and persistence that survives SIGKILL.

One lock guards everything. API calls run under `mutation()`; when the call
changed something, its changes are appended to a journal (one write of one
JSON line: the changed records, deletions, counters) before the call returns,
and event.from waiters are woken. Every JOURNAL_LIMIT bytes, and when the
simulator stops or starts, the journal is folded into a full snapshot (written
to a temp file, then renamed over STATE.json) and emptied. Replaying an entry
twice is harmless, so a crash between the two steps loses nothing.
"""

import contextlib
import json
import os
import threading
import uuid as uuidlib
from typing import IO, Any, Dict, Iterator, List, Optional, Set, Tuple

from .errors import NULL_REF, handle_invalid, uuid_invalid
from .schema import CLASSES, parents_of, relations_of

STATE_VERSION = 1
MAX_TOMBSTONES = 10000
JOURNAL_LIMIT = 16 * 1024 * 1024  # bytes of journal before it is folded into the snapshot

Record = Dict[str, Any]
Tombstone = Tuple[str, str, int, int]  # class, ref, generation created, generation deleted


def new_ref() -> str:
    return "OpaqueRef:%s" % uuidlib.uuid4()


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self.journal_path = path + ".journal"
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: Dict[str, Dict[str, Record]] = {cls: {} for cls in CLASSES}
        self._class_of: Dict[str, str] = {}
        self._by_uuid: Dict[str, Dict[str, str]] = {cls: {} for cls in CLASSES}
        # ref -> [generation created, generation last modified]
        self.meta: Dict[str, List[int]] = {}
        self.tombstones: List[Tombstone] = []
        self.generation = 0
        # simulator-only facts that are not XAPI fields
        self.lab: Dict[str, Any] = {"root_password": "", "guest_networks": {}}
        # changes not yet persisted
        self._changed_refs: Set[str] = set()
        self._deleted: List[Tuple[str, str]] = []
        self._new_tombstones: List[Tombstone] = []
        self._journal: Optional[IO[str]] = None
        self._journal_size = 0
        self._depth = 0

    # -- persistence ---------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> "Store":
        """The snapshot plus the journal written after it."""
        with open(path) as f:
            data = json.load(f)
        if data.get("version") != STATE_VERSION:
            raise ValueError("%s: unsupported state version %r" % (path, data.get("version")))
        store = cls(path)
        store.generation = data["generation"]
        store.meta = data["meta"]
        store.tombstones = [(t[0], t[1], t[2], t[3]) for t in data["tombstones"]]
        store.lab = data["lab"]
        for klass, objects in data["objects"].items():
            for ref, record in objects.items():
                store._index(klass, ref, record)
        if os.path.exists(store.journal_path):
            with open(store.journal_path) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:  # a line cut short by a crash: it was never acknowledged
                        break
                    store._replay(entry)
        return store

    def _replay(self, entry: Dict[str, Any]) -> None:
        for klass, ref in entry["deleted"]:
            record = self.objects[klass].pop(ref, None)
            if record is not None:
                del self._class_of[ref]
                del self._by_uuid[klass][record["uuid"]]
                self.meta.pop(ref, None)
        for ref, (klass, record, meta) in entry["changed"].items():
            self._index(klass, ref, record)
            self.meta[ref] = meta
        self.tombstones.extend((t[0], t[1], t[2], t[3]) for t in entry["tombstones"])
        del self.tombstones[:-MAX_TOMBSTONES]
        self.generation = entry["generation"]
        self.lab = entry["lab"]

    def save(self) -> None:
        """Write a full snapshot and empty the journal."""
        data = {
            "version": STATE_VERSION,
            "generation": self.generation,
            "objects": self.objects,
            "meta": self.meta,
            "tombstones": self.tombstones,
            "lab": self.lab,
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, self.path)
        if self._journal is not None:
            self._journal.close()
        self._journal = open(self.journal_path, "w")  # kept open for appends
        self._journal_size = 0
        self._forget_changes()

    def close(self) -> None:
        with self.lock:
            self.save()
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _forget_changes(self) -> None:
        self._changed_refs.clear()
        self._deleted.clear()
        self._new_tombstones.clear()

    def _commit(self) -> None:
        if self._journal is None or self._journal_size >= JOURNAL_LIMIT:
            self.save()
            return
        entry = {
            "generation": self.generation,
            "changed": {
                ref: [self._class_of[ref], self.objects[self._class_of[ref]][ref], self.meta[ref]]
                for ref in self._changed_refs if ref in self._class_of
            },
            "deleted": self._deleted,
            "tombstones": self._new_tombstones,
            "lab": self.lab,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        self._journal.write(line)
        self._journal.flush()
        self._journal_size += len(line)
        self._forget_changes()

    @contextlib.contextmanager
    def mutation(self) -> Iterator[None]:
        """Hold the lock; on the way out persist and notify if anything changed."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and (self._changed_refs or self._deleted):
                    self._commit()
                    self.changed.notify_all()

    # -- lookups -------------------------------------------------------------

    def _index(self, cls: str, ref: str, record: Record) -> None:
        self.objects[cls][ref] = record
        self._class_of[ref] = cls
        self._by_uuid[cls][record["uuid"]] = ref

    def exists(self, cls: str, ref: str) -> bool:
        return self._class_of.get(ref) == cls

    def get(self, cls: str, ref: Any) -> Record:
        if not isinstance(ref, str) or self._class_of.get(ref) != cls:
            raise handle_invalid(cls, ref)
        return self.objects[cls][ref]

    def by_uuid(self, cls: str, uuid: Any) -> str:
        ref = self._by_uuid[cls].get(uuid) if isinstance(uuid, str) else None
        if ref is None:
            raise uuid_invalid(cls, uuid)
        return ref

    def refs(self, cls: str) -> List[str]:
        return list(self.objects[cls])

    def children(self, child_cls: str, child_field: str, parent_ref: str) -> List[str]:
        return [r for r, rec in self.objects[child_cls].items() if rec[child_field] == parent_ref]

    def render(self, cls: str, ref: str) -> Record:
        """The record as get_record returns it (wire types, computed relations)."""
        record = self.get(cls, ref)
        fields = CLASSES[cls].fields
        out = {name: fields[name].to_wire(value) for name, value in record.items()}
        for parent_field, child_cls, child_field in relations_of(cls):
            out[parent_field] = self.children(child_cls, child_field, ref)
        return out

    # -- mutations -----------------------------------------------------------

    def _bump(self) -> int:
        self.generation += 1
        return self.generation

    def touch(self, ref: str) -> None:
        """Mark an object modified (a `mod` event), if it exists."""
        if ref in self._class_of:
            self.meta[ref][1] = self._bump()
            self._changed_refs.add(ref)

    def _touch_parents(self, cls: str, record: Record) -> None:
        for child_field, _parent_cls in parents_of(cls):
            if record[child_field] != NULL_REF:
                self.touch(record[child_field])

    def create(self, cls: str, record: Record) -> str:
        ref = new_ref()
        self._index(cls, ref, record)
        generation = self._bump()
        self.meta[ref] = [generation, generation]
        self._changed_refs.add(ref)
        self._touch_parents(cls, record)
        return ref

    def update(self, cls: str, ref: str, **changes: Any) -> Record:
        record = self.get(cls, ref)
        parent_fields = {f for f, _ in parents_of(cls)}
        for name, value in changes.items():
            if name in parent_fields and record[name] != value:
                self.touch(record[name])
                self.touch(value)
            record[name] = value
        self.touch(ref)
        return record

    def destroy(self, cls: str, ref: str) -> None:
        record = self.get(cls, ref)
        del self.objects[cls][ref]
        del self._class_of[ref]
        del self._by_uuid[cls][record["uuid"]]
        created = self.meta.pop(ref)[0]
        tombstone = (cls, ref, created, self._bump())
        self.tombstones.append(tombstone)
        del self.tombstones[:-MAX_TOMBSTONES]
        self._new_tombstones.append(tombstone)
        self._deleted.append((cls, ref))
        self._changed_refs.discard(ref)
        self._touch_parents(cls, record)
