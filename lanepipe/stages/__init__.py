"""Pipeline stages (segment, edit, evaluate, render): thin, read items, call a backend, write the run layout."""
