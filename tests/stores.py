"""One real server per store for the whole test session, and, for each, the store's own
client to look at what a delivery left there."""

from __future__ import annotations

import io
import json
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from connectors.models import Connector, login_for
from tests import services
from tests.conftest import _test_database_url

S3_BUCKET = "exports-bucket"
GCS_BUCKET = "exports-gcs"
AZURE_CONTAINER = "exports-container"
SFTP_USER = "acme"
SFTP_PASSWORD = "sftp-password-Zq83"
SFTP_KEY_PASSPHRASE = "key-passphrase-71x"
# A client key the external server accepts: RSA, encrypted with a passphrase.
_CLIENT_KEY = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
SFTP_CLIENT_KEY = _CLIENT_KEY.export_private_key("openssh", passphrase=SFTP_KEY_PASSPHRASE).decode()
SFTP_CLIENT_PUBLIC_KEY = _CLIENT_KEY.export_public_key("openssh").decode()


@dataclass
class StoredObject:
    path: str
    data: bytes
    modified: float  # seconds since the epoch, as the store reports it


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


# --- S3: moto, with real IAM credentials checks -------------------------------------------


@dataclass
class S3Side:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    read_only_key_id: str
    read_only_secret: str

    def client(self, key_id=None, secret=None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id or self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
            region_name="us-east-1",
        )

    def connector(self, owner, *, base_path="team/crm", **options) -> Connector:
        connector = Connector(
            name=f"S3 {uuid.uuid4().hex[:6]}",
            kind=Connector.Kind.S3,
            owner=owner,
            base_path=base_path,
            options={
                "bucket": S3_BUCKET,
                "region": "us-east-1",
                "access_key_id": self.access_key_id,
                "endpoint_url": self.endpoint,
                **options,
            },
        )
        connector.set_secrets({"secret_access_key": self.secret_access_key})
        connector.save()
        return connector

    def objects(self, prefix: str) -> list[StoredObject]:
        client = self.client()
        listed = client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix).get("Contents", [])
        return [
            StoredObject(
                item["Key"],
                client.get_object(Bucket=S3_BUCKET, Key=item["Key"])["Body"].read(),
                item["LastModified"].timestamp(),
            )
            for item in listed
        ]


def create_iam_user(iam, name: str, *, may_write: bool) -> tuple[str, str]:
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    if may_write:
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    else:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}],
        }
    iam.put_user_policy(UserName=name, PolicyName="exports", PolicyDocument=json.dumps(policy))
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def moto(service_logs):
    server = services.start_moto(service_logs, unauthenticated_actions=6)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(moto) -> S3Side:
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=moto.url, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    )
    writer = create_iam_user(iam, "exporter", may_write=True)
    reader = create_iam_user(iam, "reader", may_write=False)
    side = S3Side(moto.url, *writer, *reader)
    side.client().create_bucket(Bucket=S3_BUCKET)
    return side


# --- GCS: gcp-storage-emulator -------------------------------------------------------------


@dataclass
class GCSSide:
    endpoint: str

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
        )

    def connector(self, owner, *, base_path="team/crm", **options) -> Connector:
        return Connector.objects.create(
            name=f"GCS {uuid.uuid4().hex[:6]}",
            kind=Connector.Kind.GCS,
            owner=owner,
            base_path=base_path,
            options={"bucket": GCS_BUCKET, "project": "test", "endpoint_url": self.endpoint, **options},
        )

    def objects(self, prefix: str) -> list[StoredObject]:
        client = self.client()
        return [
            StoredObject(blob.name, blob.download_as_bytes(), blob.updated.timestamp())
            for blob in client.list_blobs(GCS_BUCKET, prefix=prefix)
        ]


@pytest.fixture(scope="session")
def gcs(service_logs):
    server = services.start_gcs(service_logs)
    side = GCSSide(server.url)
    side.client().create_bucket(GCS_BUCKET)
    yield side
    server.stop()


# --- Azure Blob: Azurite -----------------------------------------------------------------


@dataclass
class AzureSide:
    port: int

    @property
    def connection_string(self) -> str:
        return services.azurite_connection_string(self.port)

    def client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def connector(self, owner, *, base_path="team/crm", connection_string=None, **options) -> Connector:
        connector = Connector(
            name=f"Azure {uuid.uuid4().hex[:6]}",
            kind=Connector.Kind.AZURE_BLOB,
            owner=owner,
            base_path=base_path,
            options={"container": AZURE_CONTAINER, "auth": "connection_string", **options},
        )
        connector.set_secrets({"connection_string": connection_string or self.connection_string})
        connector.save()
        return connector

    def objects(self, prefix: str) -> list[StoredObject]:
        container = self.client().get_container_client(AZURE_CONTAINER)
        return [
            StoredObject(blob.name, container.download_blob(blob.name).readall(), blob.last_modified.timestamp())
            for blob in container.list_blobs(name_starts_with=prefix)
        ]


@pytest.fixture(scope="session")
def azure(service_logs):
    server = services.start_azurite(service_logs)
    side = AzureSide(server.port)
    side.client().create_container(AZURE_CONTAINER)
    yield side
    server.stop()


# --- SFTP: an external asyncssh server, and our own sftpd -----------------------------------


def write_host_key(path: Path) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    return key.get_fingerprint("sha256")


@dataclass
class SFTPSide:
    root: Path
    host_key: Path
    fingerprint: str
    service: services.Service
    logs: Path

    @property
    def port(self) -> int:
        return self.service.port

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop the server and start it again on the same port (with a new host key)."""
        self.service.stop()
        if new_host_key:
            self.fingerprint = write_host_key(self.host_key)
        self.start()

    def start(self) -> None:
        self.service = services.start_external_sftp(
            self.logs,
            self.root,
            self.host_key,
            user=SFTP_USER,
            password=SFTP_PASSWORD,
            authorized_key=SFTP_CLIENT_PUBLIC_KEY,
            port=self.service.port,
        )

    def connector(self, owner, *, base_path="/upload", pin=True, **options) -> Connector:
        connector = Connector(
            name=f"SFTP {uuid.uuid4().hex[:6]}",
            kind=Connector.Kind.SFTP,
            owner=owner,
            base_path=base_path,
            options={
                "host": "127.0.0.1",
                "port": self.port,
                "username": SFTP_USER,
                "auth": "password",
                **({"host_key_fingerprint": self.fingerprint} if pin else {}),
                **options,
            },
        )
        connector.set_secrets({"password": SFTP_PASSWORD})
        connector.save()
        return connector

    def objects(self, prefix: str) -> list[StoredObject]:
        return sftp_objects(self.port, SFTP_USER, prefix, password=SFTP_PASSWORD)


def sftp_objects(port: int, username: str, prefix: str, *, password=None, private_key=None) -> list[StoredObject]:
    """Every file under `prefix`, read over SFTP with paramiko."""
    import paramiko

    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        if private_key:
            key = paramiko.Ed25519Key.from_private_key(io.StringIO(private_key))
            transport.connect(username=username, pkey=key)
        else:
            transport.connect(username=username, password=password)
        client = paramiko.SFTPClient.from_transport(transport)
        found = []

        def walk(folder: str) -> None:
            for entry in client.listdir_attr(folder):
                path = f"{folder.rstrip('/')}/{entry.filename}"
                if stat.S_ISDIR(entry.st_mode):
                    walk(path)
                else:
                    with client.open(path, "rb") as fh:
                        found.append(StoredObject(path, fh.read(), float(entry.st_mtime)))

        walk(prefix)
        return found
    finally:
        transport.close()


@pytest.fixture(scope="session")
def external_sftp(service_logs, tmp_path_factory):
    root = tmp_path_factory.mktemp("external-sftp")
    (root / "upload").mkdir()
    host_key = tmp_path_factory.mktemp("external-sftp-key") / "host_key"
    fingerprint = write_host_key(host_key)
    service = services.start_external_sftp(
        service_logs, root, host_key, user=SFTP_USER, password=SFTP_PASSWORD, authorized_key=SFTP_CLIENT_PUBLIC_KEY
    )
    side = SFTPSide(root, host_key, fingerprint, service, service_logs)
    yield side
    side.service.stop()


@dataclass
class HostedSide:
    """Our own sftpd; the store's side is the owner's zone, read over SFTP by the tests."""

    service: services.Service | None = None

    def connector(self, owner, *, base_path="exports", **options) -> Connector:
        connector = Connector(
            name=f"Hosted {uuid.uuid4().hex[:6]}",
            kind=Connector.Kind.HOSTED_SFTP,
            owner=owner,
            base_path=base_path,
            options={"login": login_for(owner)},
        )
        connector.new_key_pair()
        connector.save()
        return connector

    def objects_of(self, connector: Connector, prefix: str) -> list[StoredObject]:
        return sftp_objects(
            self.service.port, connector.sftp_login, prefix, private_key=connector.secret("private_key")
        )


@pytest.fixture
def sftpd(service_logs, transactional_db):
    """The project's `manage.py sftpd`, on the test database."""
    server = services.start_sftpd(service_logs, _test_database_url())
    yield HostedSide(server)
    server.stop()
