"""The aBIDS query language: text -> AST (``parser``) -> per-backend plans.

``fields`` defines what a record looks like to a query (the flat field view shared by
every backend) and which fields exist; ``evaluate`` is the pure-Python reference
semantics that backends must match and that finishes whatever a backend cannot express.
"""
