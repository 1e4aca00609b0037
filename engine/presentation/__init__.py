"""How huoke's documents look to a person: the use cases return documents (plain dicts, the same
the ``--json`` output and the API give), and the modules here turn them into tables and text
(the CLI) or rows and formatted figures (the dashboard). Nothing here reads a store, parses a
command line or answers a request: that is the entrypoints' job; they call one use case and hand
its document here."""
