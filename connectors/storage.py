"""Every call to a store goes through this module: nothing else imports boto3, the GCS
or Azure clients or paramiko.

One small interface, `Destination`, with one class per connector kind and a registry
(`DESTINATIONS`) from kind to class. Names given to a destination are relative to the
connector's path (prefix or remote folder). Every failure comes out as a
`DestinationError` saying what went wrong and whether a retry may help.

Uploads stream from local files: S3 in multipart chunks, GCS in resumable chunks, Azure
in blocks, SFTP in 32 KB writes; none reads a file whole into memory.

- S3 and Azure use django-storages' backends, with their clients' own retries turned
  down (we retry with backoff ourselves) and content types set per file, so a `.csv.gz`
  is stored as gzip bytes, never as `Content-Encoding: gzip` that clients undo.
- GCS uses the SDK: the django-storages backend retries connection errors for two
  minutes with no way to shorten it.
- SFTP uses django-storages' backend with our own host key policy (the backend accepts
  any key) and `save()` only (its chunked `open("wb")` loses data).
- Hosted SFTP writes into the owner's zone on local disk, which `sftpd` serves.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage

from connectors.errors import DestinationError, HostKeyNotTrusted, Problem
from connectors.models import Connector, zone_path
from connectors.sshkeys import fingerprint_of_blob
from exportsite import outbound

if TYPE_CHECKING:
    from storages.backends.azure_storage import AzureStorage
    from storages.backends.s3 import S3Storage
    from storages.backends.sftpstorage import SFTPStorage

logger = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024

_CONTENT_TYPES = [
    (".csv.gz", "application/gzip"),
    (".json.gz", "application/gzip"),
    (".gz.parquet", "application/vnd.apache.parquet"),
    (".parquet", "application/vnd.apache.parquet"),
    (".csv", "text/csv"),
    (".json", "application/x-ndjson"),
    (".tnf", "application/json"),
]


def content_type_for(name: str) -> str:
    return next((ctype for suffix, ctype in _CONTENT_TYPES if name.endswith(suffix)), "application/octet-stream")


class Destination:
    """A connector opened for work. Subclasses implement the five primitives."""

    kind: str = ""

    def __init__(self, connector: Connector):
        self.connector = connector
        self.options = connector.options
        self.root = connector.base_path.strip("/")
        self._guard = ExitStack()

    def hosts(self) -> list[str]:
        """The hosts a user chose that this destination connects to, each checked by the
        outbound address policy (exportsite/outbound.py) before any connection; none for
        the fixed public endpoints of Amazon, Google and Microsoft."""
        return []

    # The primitives --------------------------------------------------------

    def check(self) -> None:
        """Connect and make sure the bucket, container or folder is there."""
        raise NotImplementedError

    def upload(self, local_path: str, name: str) -> None:
        raise NotImplementedError

    def write_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def listdir(self, folder: str) -> list[str]:
        """File names (not paths) directly in `folder`."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def open_read(self, name: str):
        """A binary file-like object reading `name` in pieces (never whole into memory)."""
        raise NotImplementedError

    def classify(self, exc: Exception) -> DestinationError:
        """The fixed message for the kind of problem `exc` is. Never the SDK's text: it
        may quote what the remote end answered (`call` logs it instead)."""
        return DestinationError(Problem.WRITE, f"unexpected error ({type(exc).__name__})")

    def close(self) -> None:
        pass

    # Shared behaviour ------------------------------------------------------

    def full_path(self, name: str) -> str:
        """The path inside the bucket, container or server, as the TNF names it."""
        return posixpath.join(self.connector.base_path, name) if self.connector.base_path else name

    def name_of(self, path: str) -> str:
        """The name `full_path` made `path` from: what the primitives take."""
        prefix = self.full_path("")
        return path[len(prefix) :] if path.startswith(prefix) else path

    def call(self, what: str, action: Callable, *args):
        """Run one primitive and turn any failure into a DestinationError with no secret in it."""
        try:
            return action(*args)
        except DestinationError as exc:
            exc.message = self.connector.redact(exc.message)
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK has its own hierarchy
            refused = outbound.verdict_in(exc)
            if isinstance(refused, outbound.HostNotFound):
                raise DestinationError(Problem.UNREACHABLE, refused.message) from None
            if refused is not None:
                # A host that resolved to an allowed address when opened, and to another now.
                raise DestinationError(Problem.NOT_ALLOWED, refused.message) from None
            error = self.classify(exc)
            error.message = self.connector.redact(f"{what}: {error.message}")
            logger.info(
                "destination %s: %s failed: %s (%s: %s)",
                self.connector.id,
                what,
                error.message,
                type(exc).__name__,
                self.connector.redact(str(exc)),
            )
            raise error from None

    def read_chunks(self, name: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """`name`'s bytes, a chunk at a time; failures come out as DestinationError."""
        fh = self.call(f"opening {name}", self.open_read, name)
        try:
            while chunk := self.call(f"reading {name}", fh.read, chunk_size):
                yield chunk
        finally:
            close = getattr(fh, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - the bytes were read; a failed close changes nothing
                    pass

    def __enter__(self):
        # Every name resolution of these hosts, by any SDK, goes through the policy until exit.
        try:
            self._guard.enter_context(outbound.guard(self.hosts()))
        except outbound.HostNotFound as exc:
            raise DestinationError(Problem.UNREACHABLE, exc.message) from None
        except outbound.AddressNotAllowed as exc:
            raise DestinationError(Problem.NOT_ALLOWED, exc.message) from None
        return self

    def __exit__(self, *exc_info):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            pass
        finally:
            self._guard.close()


def _endpoint_host(url: str, what: str, *, bare: bool = True) -> str:
    try:
        return outbound.check_url(url, what=what, bare=bare)
    except outbound.HostNotFound as exc:
        raise DestinationError(Problem.UNREACHABLE, exc.message) from None
    except outbound.AddressNotAllowed as exc:
        raise DestinationError(Problem.NOT_ALLOWED, exc.message) from None


class StorageDestination(Destination):
    """A destination whose store is a Django storage backend (`self.storage`):
    `save()` streams from the file it is given."""

    storage: Storage

    def upload(self, local_path: str, name: str) -> None:
        with open(local_path, "rb") as fh:
            self.storage.save(name, File(fh))

    def write_bytes(self, name: str, data: bytes) -> None:
        self.storage.save(name, File(io.BytesIO(data)))

    def listdir(self, folder: str) -> list[str]:
        try:
            return self.storage.listdir(folder)[1]
        except FileNotFoundError:
            return []

    def delete(self, name: str) -> None:
        try:
            self.storage.delete(name)
        except FileNotFoundError:
            pass

    def open_read(self, name: str):
        return self.storage.open(name, "rb")


# The error codes of the stores we know, by the problem each means. A code outside these
# (which a server we don't know may have made up) is shown as its HTTP status only.
NOT_FOUND_CODES = {"NoSuchBucket", "ContainerNotFound", "NoSuchKey", "BucketNotFound"}
AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthenticationFailed",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidAuthenticationInfo",
    # Azure's answer to a key or SAS signature it can't verify (Azurite's too).
    "AuthorizationFailure",
}
PERMISSION_CODES = {"AccessDenied", "AuthorizationPermissionMismatch", "AllAccessDisabled", "AccountIsDisabled"}
OTHER_CODES = {"SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable", "ServerBusy", "QuotaExceeded"}
KNOWN_CODES = NOT_FOUND_CODES | AUTH_CODES | PERMISSION_CODES | OTHER_CODES


def _answer(status: int | None, code: str) -> str:
    return code if code in KNOWN_CODES else f"HTTP {status}" if status else "an error"


def _http_problem(status: int | None, code: str = "") -> Problem:
    if code in NOT_FOUND_CODES:
        return Problem.NOT_FOUND
    if code in AUTH_CODES:
        return Problem.AUTH
    if code in PERMISSION_CODES:
        return Problem.PERMISSION
    if status == 401:
        return Problem.AUTH
    if status == 403:
        return Problem.PERMISSION
    if status == 404:
        return Problem.NOT_FOUND
    return Problem.WRITE


# Amazon S3 and S3-compatible stores ----------------------------------------


def _bounded_transfer_config():
    """At most 4 parts of 8 MB read into memory at once: memory stays bounded whatever
    the file's size (s3transfer's default holds 10 parts in memory)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=4)
    config.max_in_memory_upload_chunks = 4
    return config


class S3Destination(StorageDestination):
    kind = Connector.Kind.S3
    storage: S3Storage

    def __init__(self, connector: Connector):
        super().__init__(connector)
        from botocore.config import Config
        from storages.backends.s3 import S3Storage

        class _Storage(S3Storage):
            def get_object_parameters(self, name):
                return {"ContentType": content_type_for(name)}

        endpoint = self.options.get("endpoint_url") or None
        self.storage = _Storage(
            bucket_name=self.options["bucket"],
            access_key=self.options.get("access_key_id", ""),
            secret_key=connector.secret("secret_access_key"),
            region_name=self.options.get("region") or "us-east-1",
            endpoint_url=endpoint,
            addressing_style="path" if endpoint else None,
            location=self.root,
            file_overwrite=True,
            querystring_auth=False,
            client_config=Config(
                connect_timeout=settings.DESTINATION_CONNECT_TIMEOUT,
                read_timeout=120,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
            transfer_config=_bounded_transfer_config(),
        )

    def hosts(self) -> list[str]:
        endpoint = self.options.get("endpoint_url")
        return [_endpoint_host(endpoint, "the endpoint URL")] if endpoint else []

    def check(self) -> None:
        # Not HeadBucket: its answers have no body, so a bad key and a refusal both read "403".
        client = self.storage.connection.meta.client
        client.list_objects_v2(Bucket=self.storage.bucket_name, Prefix=self.root, MaxKeys=1)

    def open_read(self, name: str):
        # The backend's own files download the whole object first.
        key = posixpath.join(self.root, name) if self.root else name
        return self.storage.bucket.Object(key).get()["Body"]

    def classify(self, exc: Exception) -> DestinationError:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        bucket = self.options.get("bucket")
        if isinstance(exc, ConnectionError | HTTPClientError):
            return DestinationError(Problem.UNREACHABLE, "can't reach the S3 endpoint, or it did not answer")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return DestinationError(Problem.AUTH, "the access key id or secret access key is missing")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        elif isinstance(exc, S3UploadFailedError):
            found = re.search(r"\((\w+)\)", str(exc))
            code, status = (found.group(1) if found else ""), None
        else:
            return super().classify(exc)
        problem = _http_problem(status, code)
        messages = {
            Problem.AUTH: "S3 refused the credentials (access key id or secret access key)",
            Problem.NOT_FOUND: f"the bucket {bucket!r} does not exist",
            Problem.PERMISSION: f"the credentials may not write to {bucket!r} ({_answer(status, code)})",
        }
        retryable = (status is not None and status >= 500) or code in {"SlowDown", "InternalError", "RequestTimeout"}
        return DestinationError(
            problem, messages.get(problem, f"S3 answered {_answer(status, code)}"), retryable=retryable
        )


# Google Cloud Storage --------------------------------------------------------


def police_requests(session) -> None:
    """Every request `session` sends (a requests.Session) goes to an address the outbound
    policy allows, checked when it connects: a URL a server handed back included."""
    from requests.adapters import HTTPAdapter

    class _Policed(HTTPAdapter):
        def send(self, request, *args, **kwargs):
            with outbound.guard([urlsplit(request.url).hostname or ""]):
                return super().send(request, *args, **kwargs)

    adapter = _Policed()
    session.mount("https://", adapter)
    session.mount("http://", adapter)


# Where a service-account key may send its signed token request.
GOOGLE_TOKEN_HOSTS = {"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"}


class GCSDestination(Destination):
    kind = Connector.Kind.GCS

    def __init__(self, connector: Connector):
        super().__init__(connector)
        from google.cloud import storage as gcs

        key_json = connector.secret("service_account_json")
        endpoint = self.options.get("endpoint_url") or None
        self.token_uri = ""
        if key_json:
            from google.oauth2 import service_account

            try:
                info = json.loads(key_json)
                self.token_uri = str(info.get("token_uri") or "")
                credentials = service_account.Credentials.from_service_account_info(info)
            except (ValueError, KeyError, AttributeError) as exc:
                raise DestinationError(Problem.AUTH, f"the service-account key is not valid: {exc}") from None
        elif endpoint:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # emulators and public test servers
        else:
            raise DestinationError(Problem.AUTH, "a service-account JSON key is required")
        client_options = {"api_endpoint": endpoint} if endpoint else None
        self.client = gcs.Client(
            project=self.options.get("project") or None, credentials=credentials, client_options=client_options
        )
        # A redirect could lead anywhere, past the outbound policy: none are followed. And
        # a resumable upload sends its bytes where the endpoint's answer says: every
        # request is checked against the policy, whatever its URL.
        self.client._http.max_redirects = 0
        police_requests(self.client._http)
        # Nor does the client fetch bucket metadata for tracing in background threads,
        # which would outlive the destination and retry on their own.
        self.client._bucket_metadata_cache = None
        self.bucket = self.client.bucket(self.options["bucket"])
        self.timeout = (settings.DESTINATION_CONNECT_TIMEOUT, 120)

    def _key(self, name: str) -> str:
        return posixpath.join(self.root, name) if self.root else name

    def hosts(self) -> list[str]:
        hosts = []
        endpoint = self.options.get("endpoint_url")
        if endpoint:
            hosts.append(_endpoint_host(endpoint, "the endpoint URL"))
        if self.token_uri:
            host = _endpoint_host(self.token_uri, "the key's token_uri", bare=False)
            if host not in GOOGLE_TOKEN_HOSTS and not outbound.in_allowed_network(host):
                raise DestinationError(
                    Problem.NOT_ALLOWED, f"the address is not allowed: the key's token_uri must be Google's, not {host}"
                )
            hosts.append(host)
        return hosts

    def check(self) -> None:
        self.bucket.reload(retry=None, timeout=self.timeout)

    def upload(self, local_path: str, name: str) -> None:
        blob = self.bucket.blob(self._key(name), chunk_size=CHUNK)  # resumable upload in 8 MB chunks
        with open(local_path, "rb") as fh:
            blob.upload_from_file(fh, content_type=content_type_for(name), retry=None, timeout=self.timeout)

    def write_bytes(self, name: str, data: bytes) -> None:
        blob = self.bucket.blob(self._key(name))
        blob.upload_from_string(data, content_type=content_type_for(name), retry=None, timeout=self.timeout)

    def listdir(self, folder: str) -> list[str]:
        prefix = self._key(folder).rstrip("/") + "/" if self._key(folder) else ""
        blobs = self.client.list_blobs(self.bucket, prefix=prefix, delimiter="/", retry=None, timeout=self.timeout)
        return [blob.name[len(prefix) :] for blob in blobs]

    def open_read(self, name: str):
        return self.bucket.blob(self._key(name)).open("rb", chunk_size=CHUNK, retry=None, timeout=self.timeout)

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(self._key(name)).delete(retry=None, timeout=self.timeout)
        except NotFound:
            pass

    def close(self) -> None:
        self.client.close()

    def classify(self, exc: Exception) -> DestinationError:
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.cloud.storage.exceptions import DataCorruption
        from google.resumable_media import InvalidResponse

        bucket = self.options.get("bucket")
        if isinstance(exc, requests.ConnectionError | requests.Timeout | auth_exc.TransportError):
            return DestinationError(Problem.UNREACHABLE, "can't reach Google Cloud Storage, or it did not answer")
        if isinstance(exc, auth_exc.RefreshError | auth_exc.DefaultCredentialsError):
            # Its text quotes the token endpoint's answer.
            return DestinationError(Problem.AUTH, "Google refused the service-account key")
        if isinstance(exc, gexc.NotFound):
            return DestinationError(Problem.NOT_FOUND, f"the bucket {bucket!r} does not exist")
        if isinstance(exc, gexc.Unauthorized):
            return DestinationError(Problem.AUTH, "Google Cloud Storage refused the service-account key")
        if isinstance(exc, gexc.Forbidden):
            return DestinationError(Problem.PERMISSION, f"the service account may not write to {bucket!r}")
        if isinstance(exc, DataCorruption):
            return DestinationError(Problem.WRITE, "the upload was corrupted on its way", retryable=True)
        if isinstance(exc, gexc.ServerError):
            return DestinationError(Problem.WRITE, f"Google Cloud Storage answered HTTP {exc.code}", retryable=True)
        if isinstance(exc, InvalidResponse):
            status = getattr(exc.response, "status_code", None)
            problem = _http_problem(status)
            return DestinationError(
                problem, f"Google Cloud Storage answered HTTP {status}", retryable=(status or 0) >= 500
            )
        return super().classify(exc)


# Azure Blob Storage ------------------------------------------------------------


def _blob_endpoint(connection_string: str) -> str:
    """The blob endpoint an Azure connection string points the SDK at, read as the SDK
    reads it: keys in any case, the last of a repeated key winning, development storage."""
    fields: dict[str, str] = {}
    for part in connection_string.strip().split(";"):
        name, separator, value = part.partition("=")
        if separator:
            fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return "http://127.0.0.1:10000/devstoreaccount1"
    if fields.get("blobendpoint"):
        return fields["blobendpoint"]
    protocol = fields.get("defaultendpointsprotocol", "https")
    suffix = fields.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{fields.get('accountname', '')}.blob.{suffix}"


class AzureDestination(StorageDestination):
    kind = Connector.Kind.AZURE_BLOB
    storage: AzureStorage

    def __init__(self, connector: Connector):
        super().__init__(connector)
        from azure.storage.blob import BlobServiceClient
        from storages.backends.azure_storage import AzureStorage

        client_options: dict[str, Any] = {
            # Uploads go in 4 MB blocks: bounded memory, whatever the file size.
            "max_single_put_size": 4 * 1024 * 1024,
            "max_block_size": 4 * 1024 * 1024,
            "retry_total": 0,  # its first retry waits 15 s; delivery retries with its own backoff
            "permit_redirects": False,  # a redirect could lead past the outbound policy
            "connection_timeout": settings.DESTINATION_CONNECT_TIMEOUT,
        }
        connection_string = connector.secret("connection_string")
        account_name = self.options.get("account_name", "")
        account_key = connector.secret("account_key")
        sas_token = connector.secret("sas_token")
        endpoint = self.options.get("endpoint_url") or f"https://{account_name}.blob.core.windows.net"
        self.endpoint = _blob_endpoint(connection_string) if connection_string else endpoint

        class _Storage(AzureStorage):
            def _get_service_client(self):
                # The backend drops client options with a connection string; keep them.
                if connection_string:
                    return BlobServiceClient.from_connection_string(connection_string, **client_options)
                credential = {"account_name": account_name, "account_key": account_key} if account_key else sas_token
                return BlobServiceClient(endpoint, credential=credential, **client_options)

            def get_object_parameters(self, name):
                return {"content_type": content_type_for(name), "content_encoding": None}

        self.storage = _Storage(
            azure_container=self.options["container"],
            location=self.root,
            overwrite_files=True,
            upload_max_conn=2,
            timeout=120,
        )

    def hosts(self) -> list[str]:
        return [_endpoint_host(self.endpoint, "the blob endpoint")]

    def check(self) -> None:
        self.storage.client.get_container_properties()

    def open_read(self, name: str):
        # The backend's own files download the whole blob into a temporary file first.
        return self.storage.client.download_blob(self.storage._get_valid_path(name), timeout=120)

    def listdir(self, folder: str) -> list[str]:
        # This backend lists recursively with full names (docs/libraries.md): keep the direct children.
        full = posixpath.join(self.root, folder.strip("/")) if self.root else folder.strip("/")
        prefix = full.rstrip("/") + "/" if full else ""
        names = self.storage.listdir(folder)[1]
        direct = [name[len(prefix) :] if name.startswith(prefix) else name for name in names]
        return [name for name in direct if "/" not in name]

    def close(self) -> None:
        if self.storage._service_client is not None:
            self.storage._service_client.close()

    def classify(self, exc: Exception) -> DestinationError:
        from azure.core import exceptions as aexc

        container = self.options.get("container")
        if isinstance(exc, aexc.ServiceRequestError | aexc.ServiceResponseError):
            return DestinationError(Problem.UNREACHABLE, "can't reach Azure Blob Storage, or it did not answer")
        if isinstance(exc, ValueError) and "connection string" in str(exc).lower():
            return DestinationError(Problem.AUTH, "the connection string is not valid")
        if isinstance(exc, aexc.HttpResponseError):
            code = getattr(exc, "error_code", None) or ""
            code = str(getattr(code, "value", code))  # a StorageErrorCode enum, or a plain string
            status = getattr(exc, "status_code", None)
            problem = _http_problem(status, code)
            messages = {
                Problem.AUTH: "Azure refused the credentials (account key, SAS token or connection string)",
                Problem.NOT_FOUND: f"the container {container!r} does not exist",
                Problem.PERMISSION: f"the credentials may not write to {container!r} ({_answer(status, code)})",
            }
            message = messages.get(problem, f"Azure answered {_answer(status, code)}")
            return DestinationError(problem, message, retryable=(status or 0) >= 500)
        return super().classify(exc)


# SFTP servers --------------------------------------------------------------------


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _load_private_key(text: str, passphrase: str):
    import paramiko

    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise DestinationError(Problem.CONFIG, "the private key is encrypted: give its passphrase") from None
        except (paramiko.SSHException, ValueError):
            continue  # not this key type: try the next
    raise DestinationError(Problem.CONFIG, "the private key can't be read (wrong passphrase, or not an SSH key)")


class SFTPDestination(StorageDestination):
    kind = Connector.Kind.SFTP
    storage: SFTPStorage

    def __init__(self, connector: Connector):
        super().__init__(connector)
        import paramiko
        from storages.backends.sftpstorage import SFTPStorage

        self.pinned = self.options.get("host_key_fingerprint", "")
        self.seen_fingerprint = ""
        destination = self

        class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
            # No known_hosts is loaded, so paramiko asks this policy about every key.
            def missing_host_key(self, client, hostname, key):
                seen = fingerprint_of_blob(key.asbytes())
                destination.seen_fingerprint = seen
                if not destination.pinned:
                    raise HostKeyNotTrusted(seen)
                if seen != destination.pinned:
                    raise DestinationError(
                        Problem.HOST_KEY,
                        f"the server presented host key {seen}, but {destination.pinned} is pinned: "
                        "someone may be intercepting the connection, or the server's key changed",
                    )

        params = {
            "port": int(self.options.get("port") or 22),
            "username": self.options.get("username", ""),
            "timeout": settings.DESTINATION_CONNECT_TIMEOUT,
            "banner_timeout": settings.DESTINATION_CONNECT_TIMEOUT,
            "auth_timeout": settings.DESTINATION_CONNECT_TIMEOUT,
            "look_for_keys": False,
            "allow_agent": False,
        }
        if connector.secret("private_key"):
            params["pkey"] = _load_private_key(connector.secret("private_key"), connector.secret("passphrase"))
        else:
            params["password"] = connector.secret("password")

        class _Storage(SFTPStorage):
            _ssh: paramiko.SSHClient | None
            _sftp: paramiko.SFTPClient | None

            def _connect(self):
                ssh = self._ssh = paramiko.SSHClient()
                ssh.set_missing_host_key_policy(_PinnedHostKey())
                try:
                    ssh.connect(self.host, **self.params)
                except BaseException:
                    ssh.close()
                    self._ssh = self._sftp = None
                    raise
                self._sftp = ssh.open_sftp()

        self.storage = _Storage(host=self.options.get("host", ""), params=params, root_path=connector.base_path)

    def hosts(self) -> list[str]:
        return [self.options.get("host", "")]

    def check(self) -> None:
        folder = self.connector.base_path or "."
        try:
            attributes = self.storage.sftp.stat(folder)
        except FileNotFoundError:
            raise DestinationError(Problem.NOT_FOUND, f"the folder {folder!r} does not exist on the server") from None
        if not stat.S_ISDIR(attributes.st_mode or 0):
            raise DestinationError(Problem.NOT_FOUND, f"{folder!r} on the server is not a folder")

    def open_read(self, name: str):
        # The backend's own files read the whole file into memory first. No prefetch
        # either: it buffers as fast as the server sends, however slow the reader.
        return self.storage._read(name)

    def close(self) -> None:
        self.storage.close()

    def classify(self, exc: Exception) -> DestinationError:
        import paramiko

        host = self.options.get("host")
        if isinstance(exc, paramiko.AuthenticationException):
            return DestinationError(Problem.AUTH, f"{host} refused the user name, password or key")
        if isinstance(exc, PermissionError):
            return DestinationError(Problem.PERMISSION, "the server refused the write (permission denied)")
        if isinstance(exc, FileNotFoundError):
            return DestinationError(Problem.NOT_FOUND, "a folder or file is missing on the server")
        # Refused, silent, closed, or not speaking SSH: one answer, so that Test connection
        # can't tell a scanner which ports of a host are open.
        if isinstance(
            exc,
            paramiko.ssh_exception.NoValidConnectionsError
            | socket.timeout
            | socket.gaierror
            | paramiko.SSHException
            | EOFError
            | ConnectionError,
        ):
            port = self.options.get("port", 22)
            return DestinationError(Problem.UNREACHABLE, f"can't reach {host}:{port} as an SSH server")
        if isinstance(exc, OSError):
            return DestinationError(Problem.WRITE, f"the server failed ({_errno_name(exc)})", retryable=True)
        return super().classify(exc)


class HostedSFTPDestination(StorageDestination):
    """Our own SFTP server: files go straight into the owner's zone on local disk."""

    kind = Connector.Kind.HOSTED_SFTP

    def __init__(self, connector: Connector):
        super().__init__(connector)
        self.location = connector.zone() / self.root if self.root else connector.zone()
        self.storage = FileSystemStorage(
            location=self.location, file_permissions_mode=0o600, directory_permissions_mode=0o700
        )
        # Bytes in the zone, counted again whenever another delivery wrote to it since.
        self.used = 0
        self.generation: str | None = None

    def check(self) -> None:
        self.location.mkdir(parents=True, exist_ok=True)

    def upload(self, local_path: str, name: str) -> None:
        with self._counted():
            self._make_room(os.path.getsize(local_path))
            super().upload(local_path, name)

    def write_bytes(self, name: str, data: bytes) -> None:
        with self._counted():
            self._make_room(len(data))
            super().write_bytes(name, data)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """One delivery write into the zone at a time, across processes, with the zone's
        bytes counted again whenever someone else wrote to it since our last write."""
        with zone_lock(self.connector.sftp_login) as lock:
            if read_generation(lock) != self.generation:
                self.used = zone_usage(self.connector.zone())
            yield
            self.generation = write_generation(lock)

    def _make_room(self, size: int) -> None:
        """Refuse a write that would take the zone over its quota, or the disk below its
        free-space floor: the zones share the disk with the app's own data."""
        zone = self.connector.zone()
        quota = settings.SFTP_ZONE_QUOTA_BYTES
        if quota and self.used + size > quota:
            raise DestinationError(
                Problem.WRITE,
                f"the SFTP zone {self.connector.sftp_login!r} is full: {self.used:,} of its {quota:,} bytes are "
                f"used and the next file needs {size:,}; delete files from it, or ask an admin for a larger quota",
                retryable=False,
            )
        zone.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(zone).free
        if free - size < settings.SFTP_MIN_FREE_BYTES:
            raise DestinationError(
                Problem.WRITE,
                f"the disk of the hosted SFTP zones is almost full ({free:,} bytes free, and the next file needs "
                f"{size:,}): ask an admin to free space",
                retryable=False,
            )
        self.used += size

    def classify(self, exc: Exception) -> DestinationError:
        if isinstance(exc, FileNotFoundError):
            return DestinationError(Problem.NOT_FOUND, "a file or folder is missing in the SFTP zone")
        if isinstance(exc, PermissionError):
            return DestinationError(Problem.PERMISSION, "the SFTP zone is not writable")
        if isinstance(exc, OSError):
            return DestinationError(Problem.WRITE, f"writing to the SFTP zone failed ({_errno_name(exc)})")
        return super().classify(exc)


# Writes into a zone take a lock file per zone, which also holds a generation: a new value
# after every write by a delivery or an SFTP upload. A writer whose last count of the zone
# was made at another generation counts again.


@contextmanager
def zone_lock(login: str) -> Iterator[IO[str]]:
    locks = settings.SFTP_ROOT / ".locks"  # not a zone: logins start with a letter
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(locks / zone_path(login).name, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_generation(lock: IO[str]) -> str:
    lock.seek(0)
    return lock.read()


def write_generation(lock: IO[str]) -> str:
    generation = str(uuid.uuid4())
    lock.truncate(0)
    lock.write(generation)
    lock.flush()
    return generation


def zone_generation(login: str) -> str:
    """The zone's generation now, read without waiting for the lock."""
    try:
        return (settings.SFTP_ROOT / ".locks" / zone_path(login).name).read_text()
    except FileNotFoundError:
        return ""


def bump_zone_generation(login: str) -> None:
    with zone_lock(login) as lock:
        write_generation(lock)


def zone_usage(zone) -> int:
    """Bytes of the files in a hosted SFTP zone (symbolic links are not followed)."""
    total = 0
    for folder, _, names in os.walk(zone):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass  # removed while we counted
    return total


DESTINATIONS: dict[str, type[Destination]] = {
    cls.kind: cls for cls in (S3Destination, GCSDestination, AzureDestination, SFTPDestination, HostedSFTPDestination)
}


def open_destination(connector: Connector) -> Destination:
    try:
        destination_class = DESTINATIONS[connector.kind]
    except KeyError:
        raise DestinationError(Problem.CONFIG, f"{connector.get_kind_display()} is not a store") from None
    # Its hosts are checked by the outbound address policy when it is entered (`with`).
    try:
        return destination_class(connector)
    except DestinationError as exc:
        exc.message = connector.redact(exc.message)
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise DestinationError(Problem.CONFIG, connector.redact(f"the connector's settings are incomplete: {exc}"))
