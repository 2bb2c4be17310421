"""absl entry points, one module per console script; the shared flags and the one-line error
exit are in common.py. Each main parses flags, calls the library and writes files."""
