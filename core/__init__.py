"""The leaf every other package may import: typed config plumbing, user-facing errors, atomic files and
the results-table contract. It imports nothing from the project (only the standard library and YAML)."""
