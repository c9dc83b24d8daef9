"""The live surfaces: supervisor console (wall, call view, history, search, listen-in), agent stream."""
