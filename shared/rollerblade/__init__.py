"""Rollerblade: an aBIDS store, index and query engine for brain-imaging data.

The public surface is re-exported here; everything else is reached through its module
(``rollerblade.query.parser``, ``rollerblade.adapters.sqlite_index`` ...).
"""

from rollerblade.errors import (
    AlreadyExists,
    BidsNameError,
    InputError,
    NotFound,
    PermanentError,
    QueryError,
    RollerbladeError,
    TemporaryError,
)

__all__ = [
    "AlreadyExists",
    "BidsNameError",
    "InputError",
    "NotFound",
    "PermanentError",
    "QueryError",
    "RollerbladeError",
    "TemporaryError",
]
__version__ = "0.1.0"
