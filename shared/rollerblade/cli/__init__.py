"""The ``rollerblade`` command: thin click commands that decode options, call the
pipeline and print. Results go to stdout, diagnostics and progress to stderr."""
