"""One module per command-line command, each with ``run(args, config) -> exit status``.

The CLI imports only the module it needs, so ``--help`` and error paths stay instant.
"""
