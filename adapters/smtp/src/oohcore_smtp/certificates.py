"""Recipients' certificates and our own identity, read from PEM files with located errors.

Recipients' certificates are "Regularly Variable Data" (2.3.3): an officer's certificate is
renewed or added without a new sign-off. They come from a folder with one PEM file per address
(``j.patel@example.gov.uk.pem``) or a per-officer mapping of address to file. A file is read when
first needed and read again when it changes on disk, so a renewed certificate is used without a
restart. Every problem names the file (``path:line:col``), says what is wrong and what to do:
a file that is not PEM, a certificate that has expired or is not yet valid, one issued to another
address, one whose key is not RSA (the only key transport S/MIME here supports) or whose key
usage forbids encryption.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oohcore.channels import ChannelError
from oohcore.errors import Problem

from .config import parse_address

__all__ = [
    "CertificateError",
    "Identity",
    "RecipientCertificates",
    "load_certificate",
    "load_identity",
]

_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"


class CertificateError(ChannelError):
    """A certificate or key file cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(cls, path: str, message: str, code: str = "certificate") -> CertificateError:
        """A problem with the whole file ``path``."""
        return cls([Problem(path, 0, 0, message, code)])


@dataclass(frozen=True, slots=True)
class Identity:
    """Our own certificate and private key: we sign with them and decrypt with them.

    The key is not shown by ``repr``.
    """

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"Identity(certificate={_describe(self.certificate)!r}, key=<hidden>)"


def load_certificate(path: Path, *, address: str | None, now: datetime) -> x509.Certificate:
    """The first certificate in the PEM file ``path``, checked for use at ``now``.

    With ``address``, the certificate must be for that address (when it names any) and allow
    encryption. Raises :class:`CertificateError` naming the file and what to do.
    """
    data = _read(path)
    line = _line_of(data, _BEGIN_CERT)
    if line == 0:
        raise _problem(
            path,
            0,
            "no certificate found (expected a PEM block starting -----BEGIN CERTIFICATE-----); "
            "export the certificate as PEM (Base-64) and replace the file",
            "certificate.not_pem",
        )
    try:
        cert = x509.load_pem_x509_certificates(data)[0]
    except ValueError as exc:
        raise _problem(
            path,
            line,
            f"the certificate cannot be read ({exc}); export it again as PEM and replace the file",
            "certificate.unreadable",
        ) from None
    problem = _check(cert, address=address, now=now)
    if problem is not None:
        message, code = problem
        raise _problem(path, line, message, code)
    return cert


def load_identity(
    certificate: Path, key: Path, *, password: bytes | None, now: datetime
) -> Identity:
    """Our certificate and its RSA private key, checked to belong together and be valid now."""
    cert = load_certificate(certificate, address=None, now=now)
    data = _read(key)
    line = _line_of(data, b"-----BEGIN") or 1
    try:
        private = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        raise _problem(
            key,
            line,
            "the private key is protected by a passphrase: set identity_key_password"
            if password is None
            else "the private key is not protected by a passphrase: remove identity_key_password",
            "key.password",
        ) from None
    except ValueError:
        # the library's message may name the wrong passphrase; it never repeats it
        raise _problem(
            key,
            line,
            "the private key cannot be read: it is not a PEM private key, or "
            "identity_key_password is wrong",
            "key.unreadable",
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise _problem(
            key, line, "the private key is not RSA; S/MIME here needs an RSA key", "key.not_rsa"
        )
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != (
        private.public_key().public_numbers()
    ):
        raise _problem(
            key,
            line,
            f"this key does not belong to the certificate in {certificate} "
            f"({_describe(cert)}); give the key that was issued with it",
            "key.mismatch",
        )
    return Identity(cert, private)


class RecipientCertificates:
    """Recipients' certificates by address: a per-officer mapping, then a folder.

    :meth:`find` reads a file when first asked and again when its size or modification time
    changes; it checks the certificate against ``now`` every time, so one that expires while
    the channel runs stops being used. :meth:`check_all` reads every file at once (a host runs it
    at start-up, or ``oohcore``'s configuration check does) and reports every problem together.
    """

    def __init__(self, folder: Path | None = None, files: dict[str, Path] | None = None) -> None:
        self.folder = folder
        self.files = {k.lower(): v for k, v in (files or {}).items()}
        self._cache: dict[Path, tuple[tuple[int, int], x509.Certificate]] = {}
        self._lock = threading.Lock()
        if folder is not None and not folder.is_dir():
            raise _problem(
                folder,
                0,
                "the certificates folder does not exist (or is not a folder); create it and put "
                "one PEM file per recipient in it, named <address>.pem",
                "certificates.no_folder",
            )

    def path_for(self, address: str) -> Path | None:
        """The file that should hold ``address``'s certificate, or None if there is none."""
        address = address.lower()
        if address in self.files:
            return self.files[address]
        if self.folder is not None:
            candidate = self.folder / f"{address}.pem"
            if candidate.exists():
                return candidate
            for entry in self.folder.glob("*.pem"):  # file names in another case
                if entry.name.lower() == f"{address}.pem":
                    return entry
        return None

    def find(self, address: str, *, now: datetime) -> x509.Certificate | None:
        """``address``'s certificate, valid at ``now``; None when it has none.

        Raises :class:`CertificateError` when its file exists but cannot be used.
        """
        path = self.path_for(address)
        if path is None:
            return None
        stamp = _stamp(path)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            problem = _check(cached[1], address=address, now=now)
            if problem is None:
                return cached[1]
        cert = load_certificate(path, address=address, now=now)
        with self._lock:
            self._cache[path] = (stamp, cert)
        return cert

    def check_all(self, *, now: datetime) -> None:
        """Read every certificate file; raise one :class:`CertificateError` listing them all."""
        problems: list[Problem] = []
        entries: list[tuple[str, Path]] = list(self.files.items())
        if self.folder is not None:
            for path in sorted(self.folder.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                if path.suffix.lower() != ".pem":
                    problems.append(
                        Problem(
                            str(path),
                            0,
                            0,
                            "not a .pem file: name each certificate <address>.pem",
                            "certificates.name",
                        )
                    )
                    continue
                try:
                    address = parse_address(path.stem)
                except ValueError:
                    problems.append(
                        Problem(
                            str(path),
                            0,
                            0,
                            f"the file name {path.name!r} is not an e-mail address: name each "
                            "certificate <address>.pem (e.g. j.patel@example.gov.uk.pem)",
                            "certificates.name",
                        )
                    )
                    continue
                if address.lower() not in self.files:
                    entries.append((address, path))
        for address, path in entries:
            try:
                load_certificate(path, address=address, now=now)
            except CertificateError as exc:
                problems.extend(exc.problems)
        if problems:
            raise CertificateError(problems)


def _check(cert: x509.Certificate, *, address: str | None, now: datetime) -> tuple[str, str] | None:
    """Why ``cert`` cannot be used at ``now`` (a message and a code), or None."""
    if now > cert.not_valid_after_utc:
        return (
            f"the certificate ({_describe(cert)}) expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; ask its holder for a renewed "
            "certificate and replace the file",
            "certificate.expired",
        )
    if now < cert.not_valid_before_utc:
        return (
            f"the certificate ({_describe(cert)}) is not valid until "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock or use "
            "the current certificate",
            "certificate.not_yet_valid",
        )
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        return (
            f"the certificate's key is not RSA ({_describe(cert)}); S/MIME encryption here "
            "needs an RSA certificate: ask for one",
            "certificate.not_rsa",
        )
    if address is None:
        return None
    named = _addresses(cert)
    if named and address.lower() not in named:
        return (
            f"the certificate is for {', '.join(sorted(named))}, not {address}; rename the file "
            "or put the right certificate in it",
            "certificate.wrong_address",
        )
    try:
        purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is not None and not {
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    } & set(purposes):
        # RFC 8550 4.4.4: a certificate whose extended key usage lacks emailProtection is not
        # for S/MIME (a TLS server's certificate, say)
        return (
            f"the certificate ({_describe(cert)}) is not for e-mail: its extended key usage "
            "lacks emailProtection; ask for an S/MIME (e-mail protection) certificate",
            "certificate.usage",
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not usage.key_encipherment:
        return (
            f"the certificate ({_describe(cert)}) does not allow encryption (its key usage "
            "lacks keyEncipherment); ask for an encryption certificate",
            "certificate.usage",
        )
    return None


def _addresses(cert: x509.Certificate) -> set[str]:
    found: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found.update(a.lower() for a in san.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        found.add(str(attr.value).lower())
    return found


def _describe(cert: x509.Certificate) -> str:
    return f"subject {cert.subject.rfc4514_string()}, serial {cert.serial_number:x}"


MAX_PEM_BYTES = 1024 * 1024  # a certificate chain is a few kilobytes


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_PEM_BYTES:
            raise _problem(
                path,
                0,
                f"the file is larger than {MAX_PEM_BYTES:,} bytes, far more than a certificate; "
                "check the path or replace the file",
                "file.too_large",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise _problem(
            path, 0, "the file does not exist; check the path in the configuration", "file.missing"
        ) from None
    except OSError as exc:
        raise _problem(
            path, 0, f"the file cannot be read ({exc.strerror}); check it", "file.unreadable"
        ) from None


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _line_of(data: bytes, marker: bytes) -> int:
    at = data.find(marker)
    return 0 if at < 0 else data.count(b"\n", 0, at) + 1


def _problem(path: Path, line: int, message: str, code: str) -> CertificateError:
    return CertificateError([Problem(str(path), line, 1 if line else 0, message, code)])
