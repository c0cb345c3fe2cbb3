"""Security building blocks: CURVE key files, the ACL and authorization checks.

Pure pieces the runtime wires in (sockets, CURVE options and ZAP live in the
runtime/transport): :mod:`.keys` (key files; libzmq only to make and check a
pair), :mod:`.acl` (who may do what where) and :mod:`.authz` (what each
request and subscription needs).  See docs/SECURITY.md.
"""

from meshreg.security.acl import NODE, OPEN, Access, Acl, Principal, Rule
from meshreg.security.authz import authorize, authorize_topic, required_access, visible_services
from meshreg.security.keys import (
    KeyPair,
    generate_key_files,
    load_public_key,
    load_secret_key,
    z85_public,
)

__all__ = [
    "NODE",
    "OPEN",
    "Access",
    "Acl",
    "KeyPair",
    "Principal",
    "Rule",
    "authorize",
    "authorize_topic",
    "generate_key_files",
    "load_public_key",
    "load_secret_key",
    "required_access",
    "visible_services",
    "z85_public",
]
