"""Which fields each layer of the SQLite index holds, with their values: ``layer_fields``.

A count that tests an inherited field (``meta.RepetitionTime<2``) reads the rows of that
field here, one per layer holding it, instead of every record's layers (see the
``layered`` form of :mod:`rollerblade.adapters.sqlite_query`). Triggers on ``layers``
keep the table, whatever code writes a layer.
"""

from __future__ import annotations

#: Texts longer than this are not copied into ``layer_fields`` (a query reads them from
#: the layer): a sidecar's long values (SliceTiming, a 1 MB key) are stored once.
FIELD_TEXT_KEPT = 64


def fill_layer_fields(row: str, source: str = "") -> tuple[str, str]:
    """The two statements adding the ``layer_fields`` rows of the layer ``row`` (``new``
    in a trigger; ``layers`` with ``source`` ``"layers, "`` for every stored layer): its
    text view's keys, then their number forms. Each view is read once (a join of the two
    ``json_each`` would compare every key with every key)."""
    return (
        f"INSERT OR IGNORE INTO layer_fields SELECT t.key, {row}.dataset, {row}.id, "
        f"CASE WHEN length(t.value) <= {FIELD_TEXT_KEPT} THEN t.value END, NULL FROM {source}json_each({row}.s) AS t",
        f"INSERT INTO layer_fields SELECT u.key, {row}.dataset, {row}.id, NULL, u.value "
        f"FROM {source}json_each({row}.n) AS u WHERE true ON CONFLICT DO UPDATE SET n = excluded.n",
    )


_FORGET_FIELDS = (
    "DELETE FROM layer_fields WHERE field IN (SELECT key FROM json_each(old.s)) "
    "AND dataset = old.dataset AND layer = old.id;\n"
)
_FILL_NEW = "".join(f"{statement};\n" for statement in fill_layer_fields("new"))

#: The fields each layer holds with their number form and their text form up to
#: FIELD_TEXT_KEPT characters, kept by triggers: a query on an inherited field reads that
#: field's rows instead of every record's layers (see sqlite_query's ``layered``).
LAYER_FIELDS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS layer_fields (
    field TEXT NOT NULL,
    dataset TEXT NOT NULL,
    layer INTEGER NOT NULL,
    s, -- no type: stored as json_each gives it; NULL: a null, or a text longer than FIELD_TEXT_KEPT
    n,
    PRIMARY KEY (field, dataset, layer)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS layer_fields_insert AFTER INSERT ON layers BEGIN
{_FILL_NEW}END;
CREATE TRIGGER IF NOT EXISTS layer_fields_update AFTER UPDATE OF s, n ON layers BEGIN
{_FORGET_FIELDS}{_FILL_NEW}END;
CREATE TRIGGER IF NOT EXISTS layer_fields_delete AFTER DELETE ON layers BEGIN
{_FORGET_FIELDS}END;
"""
