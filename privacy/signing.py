"""An owner's signing key (Ed25519): what the owner records, no one else can forge or alter.

Every line an owner appends to its ledger (spend, refusal, exhaustion, non-private
release) carries ``key_id`` (the first 16 hex digits of the sha256 of the raw public
key) inside the hashed body, and ``signature``: the owner's Ed25519 signature of the
line's ``hash``. The coordinator embeds the signed line verbatim in its own ledger,
and the audit checks it against the public key the owner registered
(``owner-N.pub``, OpenSSH format, like a SuperNode's key).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from privacy.atomic import write_with


class SigningKeyError(Exception):
    """A signing key that cannot be read; the message names the file."""


def public_path(key_path: str | Path) -> Path:
    """Where the public half of ``key_path`` lives: ``owner-0.key`` -> ``owner-0.pub``."""
    key_path = Path(key_path)
    return key_path.with_suffix(".pub") if key_path.suffix == ".key" else \
        key_path.with_name(key_path.name + ".pub")


def public_text(public: Ed25519PublicKey) -> bytes:
    """The OpenSSH line of a public key (``ssh-ed25519 AAAA...``)."""
    return public.public_bytes(serialization.Encoding.OpenSSH,
                               serialization.PublicFormat.OpenSSH) + b"\n"


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: 16 hex digits of the sha256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _write(path: Path, data: bytes, private: bool) -> None:
    write_with(path, lambda handle: handle.write(data))
    os.chmod(path, 0o600 if private else 0o644)


def write_key_pair(key_path: str | Path) -> Ed25519PrivateKey:
    """Make a new key, write it (mode 0600) and its public half beside it; return it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write(Path(key_path), pem, private=True)
    _write(public_path(key_path), public_text(key.public_key()), private=False)
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key in OpenSSH format; SigningKeyError names a bad file."""
    try:
        key = serialization.load_ssh_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as err:
        raise SigningKeyError(f"{path}: not a readable public key ({err})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key (ssh-ed25519)")
    return key


def load_owner_keys(folder: str | Path) -> dict[int, Ed25519PublicKey]:
    """Every ``owner-N.pub`` in ``folder``, by owner id."""
    keys = {}
    for path in sorted(Path(folder).glob("owner-*.pub")):
        suffix = path.stem.removeprefix("owner-")
        # canonical ASCII ids only: owner-01 and owner-1 must not merge into one owner
        if suffix.isascii() and suffix.isdigit() and str(int(suffix)) == suffix:
            keys[int(suffix)] = load_public(path)
    return keys


@dataclass(frozen=True)
class Signer:
    """An owner's private key and the id of its public half."""

    key: Ed25519PrivateKey
    key_id: str

    @classmethod
    def load_or_create(cls, path: str | Path) -> Signer:
        """The key at ``path``, made (with its ``.pub``) on first use."""
        path = Path(path)
        if not path.exists():
            key = write_key_pair(path)
        else:
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as err:
                raise SigningKeyError(f"{path}: not a readable private key ({err})") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise SigningKeyError(f"{path}: not an Ed25519 private key")
        return cls(key, key_id(key.public_key()))

    def sign(self, digest: str) -> str:
        """The hex signature of a line's ``hash``."""
        return self.key.sign(digest.encode("ascii")).hex()


def verify(public: Ed25519PublicKey, entry: dict) -> bool:
    """Whether ``entry['signature']`` is ``public``'s signature of ``entry['hash']``."""
    try:
        public.verify(bytes.fromhex(str(entry["signature"])), str(entry["hash"]).encode("ascii"))
    except (InvalidSignature, KeyError, ValueError, UnicodeEncodeError):
        return False
    return key_id(public) == entry.get("key_id")
