"""One module per study; each registers itself with :func:`experiments.registry.experiment`.
Adding a study is adding a file here (the registry scans this folder)."""
