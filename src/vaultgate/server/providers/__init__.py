"""The provider catalogue: templates of hosts and injection rules for known APIs, shipped as data.

It holds public data and checks parameters and key shapes; it never stores, logs or echoes a
credential value.
"""

from vaultgate.server.providers.catalogue import (
    Catalogue,
    CatalogueError,
    load_catalogue,
    parse_catalogue,
    public_catalogue,
)
from vaultgate.server.providers.models import (
    AwsDefaults,
    CredentialField,
    HostParam,
    Placement,
    Provider,
)

__all__ = [
    "AwsDefaults",
    "Catalogue",
    "CatalogueError",
    "CredentialField",
    "HostParam",
    "Placement",
    "Provider",
    "load_catalogue",
    "parse_catalogue",
    "public_catalogue",
]
