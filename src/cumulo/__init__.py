"""cumulo: self-hosted serverless functions built for async execution.

The public API is small and pinned: :class:`Client` talks to a server; ``cumulo.app.create_app``
builds one from :class:`Settings`.
"""

from cumulo.client import Client
from cumulo.settings import Settings

__all__ = ["Client", "Settings", "__version__"]
__version__ = "0.1.0"
