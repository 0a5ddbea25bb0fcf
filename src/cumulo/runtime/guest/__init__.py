"""The folder put on every instance's ``sys.path``: it holds only :mod:`cumulo_runtime`, the
small stdlib-only runtime that runs inside zygotes and instances.

The server imports the same files as ``cumulo.runtime.guest.cumulo_runtime`` (for the wire
format); inside an instance they are ``cumulo_runtime``, so the modules import each other
relatively and never import ``cumulo``.
"""
