"""Pipeline rules: the YAML model, its validation (unknown keys, analyses, queries, cycles,
self-triggers) and their pure evaluation against a triggering record."""
