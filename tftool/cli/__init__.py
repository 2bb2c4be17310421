"""absl entry points, one module per console script; the one flag table is in flags.py, the
parsing and the one-line error exit in run.py, and what the mains share once the flags are
parsed in shared.py. Each main parses flags, calls the library and writes files."""
