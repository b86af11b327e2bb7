"""Analyses: the ``analysis.yaml`` model (``spec``), derivative name patterns
(``patterns``) and pure job planning with reproducible job keys (``jobs``)."""
