"""Sharing through the remotes a lab has: an SSH server (Debian's OpenSSH, key authentication,
dvc-ssh) and an S3-compatible object store (moto in server mode, dvc-s3), each started on localhost
by its fixture and stopped by PID. A fresh clone pulls everything and neither runner plans a job;
a push killed half-way and run again leaves every object whole; wrong credentials fail clearly and
change nothing. A fixture that cannot start its server skips its tests, saying why."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import BIN, dvc_ran, dvc_up_to_date, make, run_env, sh, snakemake_plans_nothing

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"{what} exited at start ({proc.returncode}): {proc.stderr.read()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.skip(f"{what} did not listen on port {port} within {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


class Remote:
    """A DVC remote on a server of this test session: how to configure a workspace for it (URL in
    .dvc/config, credentials in .dvc/config.local), the environment its clients need, its objects
    (path -> bytes) and whether an upload of an object (its path under files/md5/) is under way."""

    def __init__(self, name: str, url: str, credentials: dict, env: dict, objects, in_flight):
        self.name, self.url, self.credentials, self.env = name, url, credentials, env
        self.objects, self.in_flight = objects, in_flight

    def configure(self, ws: Path, credentials: dict | None = None) -> None:
        """Add the remote (the default one) and set the credentials of this clone."""
        if self.name not in sh(["dvc", "remote", "list"], ws).stdout:
            sh(["dvc", "remote", "add", self.name, self.url], ws)
        sh(["dvc", "remote", "default", self.name], ws)
        for key, value in (credentials or self.credentials).items():
            sh(["dvc", "remote", "modify", "--local", self.name, key, value], ws)

    def run(self, args, ws: Path, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(args, cwd=ws, env={**run_env(ws), **self.env}, capture_output=True, text=True,
                             timeout=600)
        if check and res.returncode:
            raise AssertionError(f"{args} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res


@pytest.fixture(scope="module")
def ssh_remote(tmp_path_factory):
    """OpenSSH's sshd on a free localhost port, key authentication only, serving a directory; the
    client's HOME holds the server's host key in known_hosts and nothing else."""
    sshd, keygen = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh-keygen")
    if not (Path(sshd).is_file() and keygen):
        pytest.skip("no OpenSSH server here (Debian: apt-get install openssh-server; `make servers` does it as root)")
    if os.geteuid() != 0:
        pytest.skip("sshd's privilege separation needs root here (the test logs in as this user)")
    root, port = tmp_path_factory.mktemp("ssh"), free_port()
    for key in ("host", "client", "stranger"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    shutil.copy(root / "client.pub", root / "authorized_keys")
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        f"PidFile {root / 'sshd.pid'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc, "sshd")
        yield from _ssh_remote(root, port)
    finally:
        stop(proc)


def _ssh_remote(root: Path, port: int):
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    host_key = (root / "host.pub").read_text().split()
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    store = root / "store"
    store.mkdir()

    def objects():
        return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}

    def in_flight(rel: str) -> bool:  # DVC uploads to a temporary .<random>.tmp beside the final name
        return any((store / rel).parent.glob(".*.tmp"))

    yield Remote("lab_ssh", f"ssh://127.0.0.1:{port}{store}", {"user": "root", "keyfile": str(root / "client")},
                 {"HOME": str(home)}, objects, in_flight)


@pytest.fixture(scope="module")
def s3_remote(tmp_path_factory):
    """moto's S3 server on a free localhost port with authentication on: its first requests (no
    authentication yet) create a user, its access key and the bucket; every later one must be signed."""
    if not (BIN / "moto_server").exists():
        pytest.skip("moto's server is not installed (pip install 'moto[server]'; `make install` does)")
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    proc = subprocess.Popen([str(BIN / "moto_server"), "-p", str(port)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        wait_for_port(port, proc, "moto_server")
        yield from _s3_remote(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("s3-home"))
    finally:
        stop(proc)


def _s3_remote(endpoint: str, home: Path):
    import boto3

    anonymous = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "x",
                 "aws_secret_access_key": "x"}
    iam = boto3.client("iam", **anonymous)
    iam.create_user(UserName="lab")
    iam.put_user_policy(UserName="lab", PolicyName="store", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="lab")["AccessKey"]
    signed = {**anonymous, "aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    boto3.client("s3", **anonymous).create_bucket(Bucket="lab")
    s3 = boto3.client("s3", **signed)

    def objects():
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lab"):
            for item in page.get("Contents", []):
                found[item["Key"]] = s3.get_object(Bucket="lab", Key=item["Key"])["Body"].read()
        return found

    def in_flight(rel: str) -> bool:  # a multipart upload (s3fs: objects over 50 MiB) becomes an object at its end
        uploads = s3.list_multipart_uploads(Bucket="lab").get("Uploads", [])
        return any(u["Key"].endswith(rel) for u in uploads)

    credentials = {"endpointurl": endpoint, "access_key_id": key["AccessKeyId"],
                   "secret_access_key": key["SecretAccessKey"], "region": "us-east-1"}
    yield Remote("lab_s3", "s3://lab/store", credentials, {"HOME": str(home)}, objects, in_flight)


@pytest.fixture(params=["ssh", "s3"])
def remote(request):
    return request.getfixturevalue(f"{request.param}_remote")


def cache_objects(ws: Path) -> dict[str, bytes]:
    """The workspace's DVC cache: its relative path (files/md5/xx/yyyy) -> bytes."""
    cache = ws / ".dvc/cache"
    return {str(p.relative_to(cache)): p.read_bytes() for p in cache.rglob("*") if p.is_file()
            and "runs" not in p.relative_to(cache).parts}


def assert_whole(remote: Remote, ws: Path) -> None:
    """DVC finds every object of the workspace on the remote, and every object there is whole: byte
    for byte the workspace's cached copy, its name its content's MD5."""
    status = remote.run(["dvc", "status", "--cloud", "--json"], ws).stdout
    assert json.loads(status) == {}, status
    cache = cache_objects(ws)
    for rel, data in remote.objects().items():
        rel = rel.split("store/", 1)[-1]
        if Path(rel).name.startswith("."):  # an upload's temporary name, never an object's
            continue
        assert data == cache[rel], rel
        assert rel.endswith(".dir") or hashlib.md5(data).hexdigest() == "".join(Path(rel).parts[-2:]), rel


@pytest.fixture(scope="module")
def published(workspaces):
    """The DVC workspace of the tiny DAG as a git repository others clone (results committed)."""
    _, a = workspaces
    sh(["git", "add", "-A"], a)
    sh([*GIT, "commit", "-qm", "results"], a)
    return a


def test_push_then_a_fresh_clone_pulls_everything_and_plans_nothing(remote, published, tmp_path):
    a = published
    remote.configure(a)
    remote.run(["dvc", "push"], a)
    assert_whole(remote, a)
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], a)
    remote.configure(b)  # credentials stay local to each clone (.dvc/config.local)
    remote.run(["make", "-o", "install", "-o", f"{BIN.parent}/.installed", "pull", f"VENV={BIN.parent}"], b)
    assert dvc_up_to_date(b) and dvc_ran(b) == set() and snakemake_plans_nothing(b)


def test_a_push_killed_half_way_completes_when_run_again(remote, published, tmp_path):
    """A 128 MiB output makes its upload long enough to kill the push while it is in flight: the
    partial upload lies under a temporary name (SSH) or is an unfinished multipart upload (S3), never
    under the object's name, which a later push would skip. `make push` run again sends what is
    missing, and every object on the remote is whole."""
    a = published
    remote.configure(a)
    big = a / f"big-{remote.name}.bin"
    big.write_bytes(os.urandom(128 << 20))
    sh(["dvc", "add", "-q", big.name], a)
    md5 = yaml.safe_load((a / f"{big.name}.dvc").read_text())["outs"][0]["md5"]
    proc = subprocess.Popen(["dvc", "push", "-j", "1"], cwd=a, env={**run_env(a), **remote.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not remote.in_flight(f"files/md5/{md5[:2]}/{md5[2:]}"):
        time.sleep(0.01)
    assert proc.poll() is None, "the push ended before its largest object was in flight"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"files/md5/{md5[:2]}/{md5[2:]}" not in {k.split("store/", 1)[-1] for k in remote.objects()}
    remote.run(["make", "-o", "install", "-o", f"{BIN.parent}/.installed", "push", f"VENV={BIN.parent}"], a)
    assert_whole(remote, a)
    sh(["dvc", "remove", "-q", f"{big.name}.dvc"], a)
    big.unlink()


def test_wrong_credentials_fail_clearly_and_change_nothing(remote, published, tmp_path):
    a = published
    remote.configure(a)
    remote.run(["dvc", "push"], a)
    before = remote.objects()
    (a / "note.txt").write_text("a result to share\n")
    sh(["dvc", "add", "-q", "note.txt"], a)
    wrong = ({"keyfile": str(Path(remote.credentials["keyfile"]).with_name("stranger"))} if remote.name == "lab_ssh"
             else {"secret_access_key": "not-the-secret"})
    remote.configure(a, wrong)
    res = remote.run(["dvc", "push"], a, check=False)
    message = res.stdout + res.stderr
    assert res.returncode != 0
    assert any(s in message for s in ("Permission denied", "SignatureDoesNotMatch", "InvalidAccessKeyId",
                                      "Forbidden", "not authorized")), message
    assert remote.objects() == before
    remote.configure(a)
    sh(["dvc", "remove", "-q", "note.txt.dvc"], a)
    (a / "note.txt").unlink()
