"""Build probes (one Protocol, named implementations) and compiler diagnostics parsers."""
