"""Pages under load: /review/<id> and /review/ served as `kjdms serve` serves them, against a Flask hello world.

Run by hand, not by the test suite (needs `wrk`: apt-get install wrk):

    .venv/bin/python bench/pages.py [--dossiers 10000] [--seconds 5] [--rounds 3] [--processes 1,2]
    .venv/bin/python bench/pages.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/pages.py --profile          # also cProfile the two pages in this process
    .venv/bin/python bench/pages.py --before /tmp/base  # also an earlier tree (git archive), in the same rounds
    .venv/bin/python bench/pages.py --pin-single       # one-process servers on one CPU (taskset -c 0)
    .venv/bin/python bench/pages.py --pin              # each server process on a CPU of its own (--pin-cpus)
    .venv/bin/python bench/pages.py --no-pin           # every server's processes free to move between CPUs

Both sites run under waitress with 4 threads a process (--threads; `kjdms serve --workers N`, whose default it is;
the hello world through the same serving.serve_in_processes), wrk keeps 8 connections open against each, the runs
interleaved. The hello world's processes are pinned to CPUs as `kjdms serve`'s are (cpu_affinity.py: by default
when the processes are as many as the CPUs; --pin also fewer, --no-pin never); a --before tree that predates the
option is never pinned.
Nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import cProfile
import contextlib
import io
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The instance, its data and the reviewer's sign-in are those of the worklist bench.
from worklist import (POSTGRES_URL, create_reviewer, database, insert_dossiers, make_app,  # noqa: E402
                      migrate_and_load, sign_in)

THREADS, CONNECTIONS = 4, 8  # THREADS: the default of --threads, as kjdms serve's
SECRET_KEY, ID_HASH_KEY = "bench-secret-key", "bench-id-hash-key"  # as worklist.make_app, so cookies agree
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUBMITTED_DEMO_PERSON = "王芳"  # the demo's submitted dossier: documents, history, in the reviewer's city


# ---------------------------------------------------------------- the servers

def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hello_app():
    """Return Flask's hello world."""
    from flask import Flask

    app = Flask("hello")
    app.add_url_rule("/", "hello", lambda: "Hello, World!")
    return app


def serve_hello(port: int, processes: int, threads: int, pin_cpus: bool | None) -> None:
    """Serve the hello world as `kjdms serve` serves kjdms: waitress, threads a process, one or more processes."""
    from flask import Flask
    from waitress import serve

    from kjdms.extensions import db
    from kjdms.serving import pin_single_process, serve_in_processes

    if processes == 1:
        pin_single_process(pin_cpus)
        serve(hello_app(), host="127.0.0.1", port=port, threads=threads)
        return
    # serve_in_processes drops the database pool before it forks: an app with one, kept apart from the served one.
    holder = Flask("holder")
    holder.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db.init_app(holder)
    with holder.app_context():
        serve_in_processes(hello_app(), "127.0.0.1", port, workers=processes, threads=threads, settings={},
                           pin_cpus=pin_cpus, announce=lambda message: None)


class Server:
    """One site in child processes on a port of its own; knows their CPU time."""

    def __init__(self, label: str, processes: int, command: list[str], env: dict, log: Path, tree: Path = ROOT):
        self.label, self.processes, self.port = label, processes, free_port()
        self.log = log.open("ab")
        self.process = subprocess.Popen([*command, "--port", str(self.port)], env=env, cwd=tree,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        """Return the address of path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path: str, cookie: str | None, timeout: float = 60) -> None:
        """Wait until path answers, and every worker process has started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.label} stopped at start (status {self.process.returncode}); "
                                 f"see {self.log.name}")
            with contextlib.suppress(OSError):
                fetch(self.url(path), cookie)
                if len(self.pids()) >= self.processes:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.label} did not answer on port {self.port} within {timeout:.0f} s")

    def pids(self) -> list[int]:
        """Return the serving processes: the parent and, with several workers, its children."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if int(_stat_fields(int(entry.name))[1]) == self.process.pid:
                        children.append(int(entry.name))
        return [self.process.pid, *children]

    def switches(self) -> int:
        """Return the context switches its threads have made so far, voluntary or not (a GIL hand-over is one)."""
        total = 0
        for pid in self.pids():
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        if "ctxt_switches:" in line:
                            total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """Return the user and system CPU time its processes have used so far."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = _stat_fields(pid)
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def stop(self) -> None:
        """Stop the site and every process of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.log.close()


def _stat_fields(pid: int) -> list[str]:
    """Return /proc/<pid>/stat after the command name: state, ppid, ..., utime is [11], stime [12]."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def fetch(url: str, cookie: str | None) -> tuple[int, str]:
    """GET url once (no redirects followed); return the status and the body."""
    request = urllib.request.Request(url, headers={"Cookie": f"session={cookie}"} if cookie else {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# ---------------------------------------------------------------- the load

def load(server: Server, path: str, seconds: float, cookie: str | None) -> dict:
    """Drive path with wrk (CONNECTIONS connections) for seconds; return requests/s and CPU ms a request."""
    status, body = fetch(server.url(path), cookie)
    if status != 200:
        raise SystemExit(f"{server.label} {path}: status {status} before the run (signed out?)")
    cpu, switches = server.cpu_seconds(), server.switches()
    headers = ["-H", f"Cookie: session={cookie}"] if cookie else []
    # A generous timeout: under load a slow page is slow, not an error.
    run = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "30s", *headers,
                          server.url(path)], capture_output=True, text=True, check=True)
    cpu, switches = server.cpu_seconds() - cpu, server.switches() - switches
    requests = int(re.search(r"(\d+) requests in", run.stdout).group(1))
    if "Non-2xx" in run.stdout or "Socket errors" in run.stdout:
        raise SystemExit(f"{server.label} {path}: wrk saw errors:\n{run.stdout}")
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", run.stdout).group(1)),
            "cpu_ms": cpu * 1000 / max(requests, 1),
            "switches": switches / max(requests, 1), "bytes": len(body.encode())}


# ---------------------------------------------------------------- the instance

def prepare(app, dossiers: int) -> int:
    """Migrate, load the demo and the reviewer, bulk-insert the submitted dossiers; return the demo dossier's id."""
    import sqlalchemy as sa

    from kjdms.backends import get_blob_store, get_config, get_workflow
    from kjdms.extensions import db
    from kjdms.models import Dossier, Person
    from kjdms.services.demo import load_demo

    migrate_and_load(app)
    with app.app_context():
        load_demo(db.session, get_workflow(), get_blob_store(), get_config().ID_HASH_KEY)
        create_reviewer()
        started = time.perf_counter()
        insert_dossiers(dossiers)
        print(f"  demo, reviewer and {dossiers} submitted dossiers loaded ({time.perf_counter() - started:.1f} s)")
        # The demo's is the first: the bulk-inserted people draw their names from a pool that makes 王芳 too.
        dossier_id = db.session.scalar(sa.select(Dossier.id).join(Person).where(
            Person.name == SUBMITTED_DEMO_PERSON, Dossier.state == "submitted").order_by(Dossier.id).limit(1))
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("ANALYZE"))
        db.session.remove()
        db.engine.dispose()
    return dossier_id


def fresh_cookie(client) -> str:
    """Return the reviewer's session cookie, its idle clock just moved (so no run rewrites it on every response)."""
    client.get("/review/")
    return client.get_cookie("session").value


def profile_pages(client, paths: list[str], requests: int, top: int = 25) -> str:
    """Return a cProfile of requests GETs of each path through the test client (no server, no network)."""
    for path in paths:
        client.get(path)
    out = io.StringIO()
    for path in paths:
        profiler = cProfile.Profile()
        started = time.process_time()
        profiler.enable()
        for _ in range(requests):
            client.get(path)
        profiler.disable()
        cpu_ms = (time.process_time() - started) * 1000 / requests
        out.write(f"\n{path}: {requests} requests, {cpu_ms:.2f} ms CPU each under the profiler\n")
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=10000, help="submitted dossiers in the queue (10000)")
    parser.add_argument("--seconds", type=float, default=5, help="length of one wrk run, under 60 (5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are over these (3)")
    parser.add_argument("--processes", default="1,2", help="serving processes to measure, comma-separated (1,2)")
    parser.add_argument("--database-url",
                        help=f"an empty database; postgresql gets a fresh schema, e.g. {POSTGRES_URL}")
    parser.add_argument("--profile", action="store_true", help="also cProfile 200 requests of each page in-process")
    parser.add_argument("--before", type=Path,
                        help="also serve the kjdms of this tree (e.g. `git archive COMMIT kjdms templates static "
                             "workflows | tar -x -C DIR`) on the same database, in the same rounds")
    parser.add_argument("--pin-single", action="store_true",
                        help="run the one-process servers on one CPU (taskset -c 0), wrk left free: a process whose "
                             "threads move between CPUs pays for each hand-over of the GIL")
    pinning = parser.add_mutually_exclusive_group()
    pinning.add_argument("--pin", action="store_true",
                         help="keep each server process on a CPU of its own, fewer processes than CPUs too "
                              "(kjdms serve --pin-cpus)")
    pinning.add_argument("--no-pin", action="store_true",
                         help="never keep a server process on a CPU of its own (kjdms serve --no-pin-cpus)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help=f"request threads a serving process, both sites ({THREADS})")
    parser.add_argument("--hello", action="store_true", help=argparse.SUPPRESS)  # run as the hello world server
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hello:
        serve_hello(args.port, args.workers, args.threads, True if args.pin else False if args.no_pin else None)
        return
    if not shutil.which("wrk"):
        raise SystemExit("bench/pages.py needs wrk (Debian: apt-get install wrk)")
    if not 0 < args.seconds < 60:
        raise SystemExit("--seconds: under 60, or the session's idle clock would rewrite the cookie mid-run")
    processes = [int(value) for value in args.processes.split(",")]
    with tempfile.TemporaryDirectory(prefix="kjdms-pages-") as tmp:
        with database(args.database_url, Path(tmp)) as (url, label):
            run(Path(tmp), url, label, processes, args)


def run(folder: Path, url: str, label: str, processes: list[int], args) -> None:
    print(f"kjdms pages bench: {label}, {args.dossiers} submitted, {args.rounds} rounds of {args.seconds:g} s, "
          f"processes {processes}, {args.threads} threads each, wrk {CONNECTIONS} connections")
    app = make_app(folder, url)
    dossier_id = prepare(app, args.dossiers)
    client = app.test_client()
    sign_in(client)
    pages = [f"/review/{dossier_id}", "/review/"]

    env = {**os.environ, "PYTHONPATH": str(ROOT), "KJDMS_STORAGE_DIR": str(folder), "KJDMS_DATABASE_URL": url,
           "KJDMS_SECRET_KEY": SECRET_KEY, "KJDMS_ID_HASH_KEY": ID_HASH_KEY,
           # Several processes need both (kjdms serve refuses otherwise); one process gets the same for a fair pair.
           "KJDMS_WORKER": "external", "KJDMS_INDEX_AFTER_COMMIT": "0"}
    pinning = ["--pin-cpus"] if args.pin else ["--no-pin-cpus"] if args.no_pin else []
    kjdms = [sys.executable, "-m", "kjdms", "serve", "--threads", str(args.threads)]
    # The sites measured against the hello world: this tree's kjdms, and an earlier tree's when asked.
    sites = ["before", "kjdms"] if args.before else ["kjdms"]
    hello = [sys.executable, str(Path(__file__).resolve()), "--hello", "--threads", str(args.threads),
             *(["--pin"] if args.pin else ["--no-pin"] if args.no_pin else [])]
    servers = {}
    try:
        for count in processes:
            pin = ["taskset", "-c", "0"] if args.pin_single and count == 1 else []
            servers["hello", count] = Server(f"hello world ×{count}", count, [*pin, *hello, "--workers", str(count)],
                                             env, folder / "hello.log")
            servers["kjdms", count] = Server(f"kjdms ×{count}", count,
                                             [*pin, *kjdms, "--workers", str(count), *pinning], env,
                                             folder / "kjdms.log")
            if args.before:
                tree = args.before.resolve()
                knows_pinning = "pin-cpus" in (tree / "kjdms/commands/setup.py").read_text(encoding="utf-8")
                servers["before", count] = Server(f"before ×{count}", count,
                                                  [*pin, *kjdms, "--workers", str(count),
                                                   *(pinning if knows_pinning else [])],
                                                  {**env, "PYTHONPATH": str(tree)}, folder / "before.log", tree)
        cookie = fresh_cookie(client)
        for (site, _count), server in servers.items():
            server.wait_ready("/" if site == "hello" else pages[1], cookie if site != "hello" else None)
            for path in (["/"] if site == "hello" else pages):  # warm up: templates compiled, connections open
                load(server, path, 1, cookie if site != "hello" else None)

        results: dict[tuple, list[dict]] = {}
        for round_number in range(1, args.rounds + 1):
            for count in processes:
                for site, path in [("hello", "/"), *((name, page) for page in pages for name in sites)]:
                    cookie = fresh_cookie(client)
                    result = load(servers[site, count], path, args.seconds, cookie if site != "hello" else None)
                    results.setdefault((site, count, path), []).append(result)
            print(f"  round {round_number}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
        report(results, processes, pages, sites)
    finally:
        for server in servers.values():
            server.stop()
    if args.profile:
        print(profile_pages(client, pages, 200))
    with app.app_context():
        from kjdms.extensions import db
        db.session.remove()
        db.engine.dispose()


def report(results: dict, processes: list[int], pages: list[str], sites: list[str]) -> None:
    """Print medians of the rounds: requests/s, CPU ms a request, the ratios to the hello world, the scaling."""
    median = lambda key, field: statistics.median(r[field] for r in results[key])  # noqa: E731
    header = (f"{'site':<7}{'page':<16}{'procs':>6}{'req/s':>8}{'CPU ms':>8}{'hello req/s':>12}{'CPU ms':>8}"
              f"{'ratio':>8}{'CPU ratio':>10}{'x1 proc':>8}{'switches':>9}{'bytes':>8}")
    print(header)
    print("-" * len(header))
    for path in pages:
        for count, site in ((count, site) for count in processes for site in sites):
            rate, hello_rate = median((site, count, path), "rate"), median(("hello", count, "/"), "rate")
            cpu, hello_cpu = median((site, count, path), "cpu_ms"), median(("hello", count, "/"), "cpu_ms")
            single = median((site, processes[0], path), "rate")
            print(f"{site:<7}{path:<16}{count:>6}{rate:>8.0f}{cpu:>8.2f}{hello_rate:>12.0f}{hello_cpu:>8.2f}"
                  f"{rate / hello_rate:>8.3f}{hello_cpu / cpu:>10.3f}{rate / single:>8.2f}"
                  f"{median((site, count, path), 'switches'):>9.1f}"
                  f"{results[site, count, path][0]['bytes']:>8}")
    print(f"  medians of {len(next(iter(results.values())))} rounds. CPU ms: the server processes' user+system CPU "
          f"over the requests served. ratio: kjdms req/s / hello req/s with the same processes; CPU ratio: "
          f"hello CPU ms / kjdms CPU ms (what the ratio becomes when the CPU, not the client or other load, is the "
          f"limit); x1 proc: req/s against {processes[0]} process(es); switches: the server threads' context "
          f"switches a request (each GIL hand-over between threads is one). Load average at the end: "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
