"""Real remote servers for the sharing tests, each on 127.0.0.1 and stopped afterwards:
an S3 endpoint (moto's server mode) and an OpenSSH server with its own host and user keys."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from tests.support.repos import run

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s")


@contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, log)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str = "test-access-key"
    secret_key: str = "test-secret-key-never-logged"

    def create_bucket(self, bucket: str) -> None:
        boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Endpoint]:
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with running(command, port, workdir / "moto.log"):
        yield S3Endpoint(url=f"http://127.0.0.1:{port}")


@dataclass(frozen=True)
class SshEndpoint:
    host: str
    port: int
    user: str
    key_file: Path


def sshd_available() -> str | None:
    """None when an OpenSSH server can run here, else the reason it cannot."""
    if not SSHD.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "openssh-server"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            timeout=300,
            check=False,
        )
    if not SSHD.exists():
        return f"{SSHD} is missing and could not be installed (needs root and apt-get: .ci/run installs it)"
    if os.geteuid() != 0:
        return "sshd with its own config needs root here (privilege separation)"
    return None


@contextmanager
def ssh_server(workdir: Path) -> Iterator[SshEndpoint]:
    keys = workdir / "keys"
    keys.mkdir(parents=True)
    for name in ("host_ed25519", "user_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    authorized = keys / "authorized_keys"
    authorized.write_text((keys / "user_ed25519.pub").read_text())
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {keys / 'host_ed25519'}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {workdir / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    with running([str(SSHD), "-D", "-e", "-f", str(config)], port, workdir / "sshd.log"):
        yield SshEndpoint(host="127.0.0.1", port=port, user="root", key_file=keys / "user_ed25519")


def configure_remote(repo: Path, name: str, url: str, options: dict[str, str], local: dict[str, str]) -> None:
    """``options`` go to .dvc/config (what a team commits); ``local`` to config.local (secrets, keys)."""
    run(repo, "dvc", "remote", "add", "-f", name, url)
    for key, value in options.items():
        run(repo, "dvc", "remote", "modify", name, key, value)
    for key, value in local.items():
        run(repo, "dvc", "remote", "modify", "--local", name, key, value)
