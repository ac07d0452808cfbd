"""Entry points over the library: CLI, input checks, selection, reports, bench, reliability."""
