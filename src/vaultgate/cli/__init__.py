"""The ``vaultgate`` command: local commands (init, serve, master-key, users) and API commands.

A secret's value is read from a prompt, standard input or a file, never from argv.
"""
