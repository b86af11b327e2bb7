"""Access control: principals, rights, grants, tokens and the decision function (pure)."""
