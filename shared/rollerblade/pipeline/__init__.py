"""The event handlers and use cases, written against the ports only.

``indexing.index_object`` is the one handler every object event goes through (local
import, a file dropped in the bucket, a Cloud Function); ``reindex`` rebuilds a dataset in
batch with the same record builder; ``querying``, ``importing`` and ``download`` are the
use cases the CLI and the functions call.
"""
