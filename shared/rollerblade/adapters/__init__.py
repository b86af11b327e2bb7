"""Adapters: the only modules that talk to the outside world (files, SQLite, SDKs).

Each implements one port from :mod:`rollerblade.ports`. The embedded default is
``local_dir`` + ``sqlite_index`` + ``local_bus``; :mod:`rollerblade.stack` picks them
from :class:`~rollerblade.settings.Settings`.
"""
