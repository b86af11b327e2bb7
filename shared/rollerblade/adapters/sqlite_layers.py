"""Metadata by reference in the SQLite index: records point at layers stored once.

A record row holds only what is the data file's own: entities, header and storage facts,
error and warning. What it inherits lives in ``layers`` rows that many records share, and
the record holds their ids:

- ``m``: the merged sidecars of its inheritance chain without its own sidecar (layer kind
  ``chain``, key: the sidecars' paths, far to near, one per line);
- ``o``: its own sidecar, the one named like the data file (``sidecar``, key: its path);
- ``p``: its row of ``participants.tsv`` (``participant``, key ``sub-01``);
- ``q``: its row of its subject's sessions table (``session``, key ``sub-01/ses-1``).

A record's metadata is ``{**m, **o}``, exactly what the inheritance principle merges,
since a data file's own sidecar is always the nearest one. So a changed sidecar is one
write per layer holding it (one chain for a top-level sidecar, whatever the number of
records), and a changed participants row is one write. Adding or removing a sidecar
changes which records inherit it: their references are recomputed, nothing else.

Layers are kept current inside the transaction that writes the metadata files, so the
records resolve to what the stored metadata says now. A record written with metadata that
differs from what its references resolve to (it was computed from a metadata version that
has changed since, and its handler will index it again) keeps that metadata in layers of
its own, keyed ``=`` and its path, until it is written again.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from rollerblade.abids import sidecars
from rollerblade.abids.paths import BidsPath, parse_record_path
from rollerblade.adapters.sqlite_layer_fields import LAYER_FIELDS_SCHEMA
from rollerblade.errors import BidsNameError
from rollerblade.query.fields import TAGS_KEY, forms
from rollerblade.records import JSONValue, MetadataFile, ScanRecord

LAYERS_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS layers (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    s TEXT NOT NULL,
    n TEXT NOT NULL,
    UNIQUE (dataset, kind, key)
);
CREATE TABLE IF NOT EXISTS layer_members (
    dataset TEXT NOT NULL,
    path TEXT NOT NULL,
    layer INTEGER NOT NULL,
    PRIMARY KEY (dataset, path, layer)
) WITHOUT ROWID;
"""
    + LAYER_FIELDS_SCHEMA
)

#: The record columns holding layer ids, in the order of :meth:`LayerWriter.refs`.
REF_COLUMNS = ("m", "o", "p", "q")
#: The layer kind each reference points at.
_NAMESPACE = {"chain": "meta", "sidecar": "meta", "participant": "participant", "session": "session"}

Refs = tuple[int | None, int | None, int | None, int | None]


class _Data(NamedTuple):
    """What the inheritance principle reads of a data file's name."""

    path: str
    directory: str
    suffix: str
    entities: Mapping[str, str]
    extension: str

    @classmethod
    def of(cls, record: ScanRecord) -> _Data:
        entities = record.entities
        return cls(
            record.path, record.path.rpartition("/")[0], entities["suffix"], entities, entities.get("extension", "")
        )


@functools.lru_cache(maxsize=1 << 16)
def _parsed(path: str) -> BidsPath | None:
    try:
        return parse_record_path(path)
    except BidsNameError:
        return None


def _sidecar_name(path: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The suffix and entities of a sidecar's name (``sub-01_task-rest_bold.json`` ->
    ``("bold", (("sub", "01"), ("task", "rest")))``); the full parser for anything unusual."""
    *parts, suffix = path.rpartition("/")[2].removesuffix(".json").split("_")
    pairs = [part.split("-", 1) for part in parts]
    if all(len(pair) == 2 and pair[0] and pair[1] for pair in pairs) and suffix and "-" not in suffix:
        return suffix, tuple((k, v) for k, v in pairs)
    parsed = _parsed(path)
    return (parsed.suffix, tuple(parsed.entities.items())) if parsed is not None and parsed.suffix else None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def layer_views(kind: str, key: str, content: Mapping[str, JSONValue]) -> tuple[str, str, list[str]]:
    """The text and number views of a layer and its field names, as
    :func:`~rollerblade.query.fields.flatten` names them for the records that use it.

    A sidecar layer also keeps its null values in the text view: a null in a data file's
    own sidecar hides the value its chain gives that key (see ``field_expr``).
    """
    namespace = _NAMESPACE[kind]
    texts: dict[str, Any] = {}
    numbers: dict[str, float] = {}
    for name, value in content.items():
        field = f"{namespace}.{name}"
        if value is None:
            if kind == "sidecar":
                texts[field] = None
            continue
        texts[field], number = forms(value)
        if number is not None and math.isfinite(number):
            numbers[field] = number
    tags = content.get(TAGS_KEY)
    if namespace == "meta" and key.lstrip("=").startswith("derivatives/") and isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str):
                texts[f"tags.{tag}"] = "true"
    return _dumps(texts), _dumps(numbers), [f for f, v in texts.items() if v is not None]


class LayerWriter:
    """Resolves and writes the layers of one dataset inside one write transaction."""

    def __init__(
        self,
        db: sqlite3.Connection,
        dataset: str,
        decode: Callable[[str], Any],
        read_metadata: Callable[[str], MetadataFile],
        *,
        files: Sequence[MetadataFile] | None = None,
    ) -> None:
        """``files``: every metadata file the dataset has, which has no layers yet (a
        dataset written anew: nothing is read from the tables)."""
        self.db = db
        self.dataset = dataset
        self._decode = decode
        self._read_metadata = read_metadata  # a stored metadata document -> the file
        self._folders: dict[str, list[MetadataFile]] = {}  # directory -> its metadata files
        self._complete = files is not None
        for doc in sorted(files or (), key=lambda f: f.path):
            self._folders.setdefault(doc.directory, []).append(doc)
        self._ids: dict[tuple[str, str], tuple[int, Any]] = {}  # (kind, key) -> (id, content)
        self._chains: dict[str, dict[str, JSONValue]] = {}  # chain key -> merged content
        self._tables: dict[tuple[str, str], Mapping[str, Any]] = {}  # (kind, folder) -> rows
        self._sidecars: dict[tuple[str, str], list[Any]] = {}  # (folder, suffix) -> see _candidates
        self._suffixes: dict[str, dict[str, list[Any]]] = {}  # folder -> see _by_suffix
        self.fields: set[str] = set()  # field names of the layers written

    # -- the stored metadata files ------------------------------------------------------
    def folder(self, directory: str) -> list[MetadataFile]:
        files = self._folders.get(directory)
        if files is None and self._complete:
            return []
        if files is None:
            # sorted here: ORDER BY path would let the planner walk the whole dataset on
            # the primary key instead of searching the folder's index
            rows = self.db.execute(
                "SELECT path, doc FROM metadata WHERE dataset = ? AND directory = ?", (self.dataset, directory)
            )
            files = [self._read_metadata(doc) for _, doc in sorted(rows.fetchall())]
            self._folders[directory] = files
        return files

    def _rows(self, kind: str, directory: str) -> Mapping[str, Any]:
        """The rows of the participants (``directory`` "") or sessions table, by id."""
        found = self._tables.get((kind, directory))
        if found is None:
            found = {}
            for doc in self.folder(directory):  # path order: the last one wins, as in DatasetContext
                if doc.kind == kind and isinstance(doc.content, dict):
                    found = _table_rows(doc)
            self._tables[(kind, directory)] = found
        return found

    def _candidates(self, directory: str, suffix: str) -> list[tuple[tuple[tuple[str, str], ...], MetadataFile]]:
        """The sidecars of ``suffix`` in the folders a data file in ``directory`` inherits
        from, in merge order (far to near; at one level, fewer entities first), each with
        the entities a data file must have to inherit it."""
        found = self._sidecars.get((directory, suffix))
        if found is None:
            found = [
                item for folder in sidecars.ancestors(directory) for item in self._by_suffix(folder).get(suffix, ())
            ]
            self._sidecars[(directory, suffix)] = found
        return found

    def _by_suffix(self, directory: str) -> dict[str, list[tuple[tuple[tuple[str, str], ...], MetadataFile]]]:
        """The sidecars of one folder by suffix, fewer entities first (then by path)."""
        found = self._suffixes.get(directory)
        if found is None:
            ranked = sorted(
                (len(name[1]), doc.path, *name, doc)
                for doc in self.folder(directory)
                if doc.kind == "sidecar" and (name := _sidecar_name(doc.path)) is not None
            )
            found = {}
            for _, _, suffix, entities, doc in ranked:
                found.setdefault(suffix, []).append((entities, doc))
            self._suffixes[directory] = found
        return found

    def chain(self, data: _Data) -> tuple[list[MetadataFile], MetadataFile | None]:
        """The sidecars a data file inherits, far to near, without its own; and its own
        (the inheritance principle, as :func:`~rollerblade.abids.sidecars.applies_to`)."""
        chain = [
            doc
            for entities, doc in self._candidates(data.directory, data.suffix)
            if all(data.entities.get(k) == v for k, v in entities)
        ]
        if chain and chain[-1].path == data.path[: len(data.path) - len(data.extension)] + ".json":
            return chain[:-1], chain[-1]
        return chain, None

    # -- references -----------------------------------------------------------------
    def refs(self, record: ScanRecord) -> Refs:
        """The layer ids a record points at, writing the layers it needs."""
        m = o = p = q = None
        resolved = False
        if record.entities.get("suffix"):  # a name read as entities
            chain, own = self.chain(_Data.of(record))
            key = "\n".join(doc.path for doc in chain)
            merged = self._merged(key, chain)
            own_content = _content(own)
            if {**merged, **own_content} == record.meta:
                m = self.layer("chain", key, merged, members=[d.path for d in chain]) if chain else None
                o = self.layer("sidecar", own.path, own_content) if own is not None else None
                resolved = True
        if not resolved and record.meta:
            o = self.layer("sidecar", "=" + record.path, record.meta)
        sub, ses = record.entities.get("sub"), record.entities.get("ses")
        if sub and dict(self._rows("participants", "").get(f"sub-{sub}") or {}) == record.participant:
            p = self.layer("participant", f"sub-{sub}", record.participant)
        elif record.participant:
            p = self.layer("participant", "=" + record.path, record.participant)
        if sub and ses and dict(self._rows("sessions", f"sub-{sub}").get(f"ses-{ses}") or {}) == record.session:
            q = self.layer("session", f"sub-{sub}/ses-{ses}", record.session)
        elif record.session:
            q = self.layer("session", "=" + record.path, record.session)
        return m, o, p, q

    def _merged(self, key: str, chain: list[MetadataFile]) -> dict[str, JSONValue]:
        merged = self._chains.get(key)
        if merged is None:
            merged = self._chains[key] = _merge(chain)
        return merged

    def layer(self, kind: str, key: str, content: Mapping[str, JSONValue], *, members: Sequence[str] = ()) -> int:
        """The id of a layer holding ``content``: created, or updated where it differs."""
        known = self._ids.get((kind, key))
        if known is None:
            row = None
            if not self._complete:
                row = self.db.execute(
                    "SELECT id, doc FROM layers WHERE dataset = ? AND kind = ? AND key = ?", (self.dataset, kind, key)
                ).fetchone()
            if row is None:
                s, n, names = layer_views(kind, key, content)
                cursor = self.db.execute(
                    "INSERT INTO layers (dataset, kind, key, doc, s, n) VALUES (?, ?, ?, ?, ?, ?)",
                    (self.dataset, kind, key, _dumps(content), s, n),
                )
                assert cursor.lastrowid is not None
                self.fields.update(names)
                self.db.executemany(
                    "INSERT OR IGNORE INTO layer_members VALUES (?, ?, ?)",
                    [(self.dataset, path, cursor.lastrowid) for path in members],
                )
                known = self._ids[(kind, key)] = (cursor.lastrowid, content)
            else:
                known = self._ids[(kind, key)] = (row[0], self._decode(row[1]))
        if known[1] is not content and known[1] != content:
            self._rewrite(known[0], kind, key, content, _dumps(content))
            self._ids[(kind, key)] = (known[0], content)
        return known[0]

    def _rewrite(self, layer: int, kind: str, key: str, content: Mapping[str, JSONValue], doc: str) -> None:
        s, n, names = layer_views(kind, key, content)
        self.db.execute("UPDATE layers SET doc = ?, s = ?, n = ? WHERE id = ?", (doc, s, n, layer))
        self.fields.update(names)

    # -- metadata changes -----------------------------------------------------------
    def file_changed(self, path: str, old: MetadataFile | None, new: MetadataFile | None) -> None:
        """Bring the layers in line with a metadata file just written (``new``) or deleted
        over ``old``: a changed sidecar rewrites the layers holding it, an added or removed
        one re-points the records that inherit it, a changed table rewrites its changed rows."""
        file = new or old
        if file is None:
            return
        if file.kind == "sidecar":
            self.content_changed(path)
            if (old is None) != (new is None):
                self.rechain(path)
        elif file.kind == "participants" and file.directory == "":
            self.rows_changed("participant", _table_rows(old), _table_rows(new))
        elif file.kind == "sessions":
            self.rows_changed("session", _table_rows(old), _table_rows(new), prefix=file.directory + "/")

    def content_changed(self, path: str) -> int:
        """Rewrite the layers holding the sidecar at ``path`` from the stored metadata;
        returns how many changed."""
        changed = 0
        own = self.db.execute(
            "SELECT id, doc FROM layers WHERE dataset = ? AND kind = 'sidecar' AND key = ?", (self.dataset, path)
        ).fetchone()
        if own is not None:
            changed += self._update_if(own[0], own[1], "sidecar", path, _content(self._stored(path)))
        rows = self.db.execute(
            "SELECT l.id, l.key, l.doc FROM layer_members AS lm JOIN layers AS l ON l.id = lm.layer "
            "WHERE lm.dataset = ? AND lm.path = ?",
            (self.dataset, path),
        ).fetchall()
        for layer, key, old in rows:
            changed += self._update_if(layer, old, "chain", key, _merge(self._stored(m) for m in key.split("\n")))
        return changed

    def _stored(self, path: str) -> MetadataFile | None:
        """The stored metadata file at ``path`` (None: there is none now)."""
        return next((doc for doc in self.folder(path.rpartition("/")[0]) if doc.path == path), None)

    def rechain(self, path: str) -> int:
        """Re-point the records a sidecar added or removed at ``path`` can feed (those of
        its suffix below its folder) at their inheritance chain now; returns how many moved.
        A record holding metadata of its own (``=`` layers) is left to its handler."""
        parsed = _parsed(path)
        if parsed is None:
            return 0
        low = parsed.directory + "/" if parsed.directory else ""
        rows = self.db.execute(
            "SELECT r.path, r.m, r.o, lo.key FROM records r LEFT JOIN layers lo ON lo.id = r.o "
            "WHERE r.dataset = ? AND r.path >= ? AND r.path < ? AND json_extract(r.s, '$.\"suffix\"') = ?",
            (self.dataset, low, low + "\U0010ffff", parsed.suffix),
        ).fetchall()
        moves = []
        for record_path, m, o, own_key in rows:
            parsed = _parsed(record_path)
            if parsed is None or not parsed.suffix or (own_key is not None and own_key.startswith("=")):
                continue
            chain, own = self.chain(
                _Data(record_path, parsed.directory, parsed.suffix, parsed.entities, parsed.extension)
            )
            key = "\n".join(doc.path for doc in chain)
            new_m = (
                self.layer("chain", key, self._merged(key, chain), members=[d.path for d in chain]) if chain else None
            )
            new_o = self.layer("sidecar", own.path, _content(own)) if own is not None else None
            if (new_m, new_o) != (m, o):
                moves.append((new_m, new_o, self.dataset, record_path))
        self.db.executemany("UPDATE records SET m = ?, o = ? WHERE dataset = ? AND path = ?", moves)
        return len(moves)

    def rows_changed(self, kind: str, old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> int:
        """Rewrite the participant (or session) layers of the rows that differ between two
        versions of a table; returns how many changed."""
        changed = 0
        keys = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
        for start in range(0, len(keys), 500):
            chunk = [prefix + k for k in keys[start : start + 500]]
            marks = ", ".join("?" * len(chunk))
            found = self.db.execute(
                f"SELECT id, key, doc FROM layers WHERE dataset = ? AND kind = ? AND key IN ({marks})",  # noqa: S608
                (self.dataset, kind, *chunk),
            ).fetchall()
            for layer, key, doc in found:
                changed += self._update_if(layer, doc, kind, key, dict(new.get(key[len(prefix) :]) or {}))
        return changed

    def _update_if(self, layer: int, old: str, kind: str, key: str, content: Mapping[str, JSONValue]) -> int:
        doc = _dumps(content)
        if doc == old:
            return 0
        self._rewrite(layer, kind, key, content, doc)
        self._ids.pop((kind, key), None)
        return 1


def _merge(chain: Iterable[MetadataFile | None]) -> dict[str, JSONValue]:
    """The sidecars of a chain merged, far to near (the nearer value wins)."""
    merged: dict[str, JSONValue] = {}
    for doc in chain:
        merged.update(_content(doc))
    return merged


def _table_rows(table: MetadataFile | None) -> Mapping[str, Any]:
    """The rows of a participants or sessions table by id (none when missing or unread)."""
    if table is None or not isinstance(table.content, dict):
        return {}
    rows = table.content.get("rows", {})
    return rows if isinstance(rows, dict) else {}


def _content(doc: MetadataFile | None) -> dict[str, JSONValue]:
    """What a sidecar gives: its object, or nothing when it could not be parsed."""
    if doc is None or doc.error is not None or not isinstance(doc.content, dict):
        return {}
    return dict(doc.content)


def resolve(
    own: dict[str, Any],
    chain: Mapping[str, JSONValue] | None,
    sidecar: Mapping[str, JSONValue] | None,
    participant: Mapping[str, JSONValue] | None,
    session: Mapping[str, JSONValue] | None,
) -> dict[str, Any]:
    """A record's stored document (``own``, completed in place) with the contents of its
    layers put back: the record as it was written, or as its metadata says now."""
    own["meta"] = {**chain, **sidecar} if chain and sidecar else dict(chain or sidecar or {})
    own["participant"] = dict(participant or {})
    own["session"] = dict(session or {})
    return own
