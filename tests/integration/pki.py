"""Test certificates made with the openssl command (scripts/setup installs it).

A CA, a server certificate for 127.0.0.1 and localhost (subjectAltName) signed by it, a
client certificate signed by it, and a second CA with a client certificate of its own (one the
server must not trust). EC P-256 keys: quick to make.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key_and_csr(directory, name, subject):
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)


def _ca(directory, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out",
             f"{name}.crt", cwd=directory)


def _sign(directory, name, ca, extensions):
    (directory / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
             cwd=directory)


@dataclass(frozen=True)
class Pki:
    directory: Path

    def path(self, name):
        return str(self.directory / name)

    def read(self, name):
        return (self.directory / name).read_bytes()

    @property
    def ca(self):
        return self.path("ca.crt")


def make_pki(directory):
    directory = Path(directory)
    _ca(directory, "ca")
    _key_and_csr(directory, "server", "/CN=localhost")
    _sign(directory, "server", "ca",
          "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _key_and_csr(directory, "client", "/CN=web-tier")
    _sign(directory, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _ca(directory, "rogue_ca")
    _key_and_csr(directory, "rogue", "/CN=intruder")
    _sign(directory, "rogue", "rogue_ca", "extendedKeyUsage=clientAuth\n")
    return Pki(directory)
