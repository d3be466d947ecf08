"""Time the reminders to legacy persons yet to confirm: queuing them in batches, and delivering them by SMS.

Run by hand, not by the test suite:

    .venv/bin/python bench/reminders.py [--n 20000] [--deliver 2000] [--database-url URL]

Imports n generated legacy records (bench/legacy_import.py's generator, `kjdms import-legacy`) into a fresh
instance, then, on a clock frozen 30 days before the confirmation deadline, times queue_reminders batch by
batch until nothing is left (one notice per person), a second pass (nothing to queue: the week rule and the
dedupe keys), and the worker's dispatch and delivery of the first --deliver notices through the logging SMS
gateway (its log silenced). Prints wall and CPU seconds and the load average.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from legacy_import import drop_schema, fresh_instance, generate, timed_import

from kjdms import create_app
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.messaging import LoggingSmsGateway
from kjdms.services.notice_delivery import Channels, deliver_due, dispatch_new
from kjdms.services.notice_schedule import Schedule, queue_reminders


def timed(label: str, work):
    """Run work(), print its wall and CPU seconds under label, and return its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    print(f"{label}: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU -> {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--deliver", type=int, default=2_000)
    parser.add_argument("--database-url", help="A PostgreSQL URL; the run gets a schema of its own.")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = fresh_instance(Path(folder), arguments.database_url)
        source = generate(Path(folder) / "legacy.csv", arguments.n)
        wall, _, summary = timed_import(env, source)
        print(f"import of {arguments.n} legacy records: {wall:.1f} s ({summary})")
        app = create_app(Config(environ={key: value for key, value in env.items() if key.startswith("KJDMS_")}))
        logging.getLogger("kjdms.messaging").setLevel(logging.WARNING)
        with app.app_context():
            deadline = app.extensions["kjdms"].config.CONFIRMATION_DEADLINE
            schedule = Schedule(deadline)
            now = datetime(deadline.year, deadline.month, deadline.day, 2, tzinfo=timezone.utc) - timedelta(days=30)

            def queue_all():
                total = 0
                while (batch := queue_reminders(db.session, schedule, now=now)):
                    total += batch
                return total

            timed("queue reminders (batches of 500)", queue_all)
            timed("queue again (nothing due)", queue_all)
            channels = Channels(None, LoggingSmsGateway())

            def deliver():
                dispatched = 0
                while dispatched < arguments.deliver and (batch := dispatch_new(db.session, channels)):
                    dispatched += batch
                sent = 0
                while sent < arguments.deliver and (batch := deliver_due(db.session, channels, limit=100)):
                    sent += batch
                return f"{dispatched} dispatched, {sent} delivered"

            timed(f"dispatch and deliver {arguments.deliver} by SMS", deliver)
            db.session.remove()
        if arguments.database_url:
            drop_schema(arguments.database_url, env["BENCH_SCHEMA"])
    print("load average:", " ".join(f"{value:.2f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main()
