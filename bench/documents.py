"""PDF making and previewing per document: the basic-information form and a preview, against an earlier tree.

Run by hand, not by the test suite:

    .venv/bin/python bench/documents.py [--forms 20] [--previews 20] [--rounds 3] [--before /tmp/base-docs]

Each round runs one fresh process per tree (this tree, and --before if given, interleaved) that makes
--forms basic-information forms and --previews previews of such a form, one after another. The first of
each is shown apart (it parses the font, starts the renderer); the rest as medians of wall time and CPU
time. CPU is this process's own plus its reaped children's: the one-shot renderer of the old code is a
child of this process, the zygote's children are reaped by the kernel and their CPU is not seen here.
Nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(forms: int, previews: int) -> dict:
    """Measure in this process, whichever kjdms tree PYTHONPATH points at."""
    from datetime import date, datetime

    from kjdms.documents.basic_info_form import basic_information_form_pdf
    from kjdms.documents.images import pdf_first_page_png
    from kjdms.models import Dossier, Person, Region

    province = Region(name="辽宁省")
    county = Region(name="双塔区", parent=Region(name="朝阳市", parent=province))
    dossier = Dossier(person=Person(name="张晓明", id_number="211302199001011239", sex="male",
                                    birth_date=date(1990, 1, 1)),
                      id=42, state="draft", phone="13800000000", education="bachelor",
                      scope_category="in_accounting_work", job_types=["cashier"], employer_name="朝阳市恒信商贸有限公司",
                      employer_region=county, household_region=county, is_student=False, region=county)

    def form():
        return basic_information_form_pdf(dossier, generated_at=datetime(2019, 5, 6, 10, 30))

    pdf = form()
    return {"form": measure(form, forms), "preview": measure(lambda: pdf_first_page_png(pdf), previews)}


def measure(operation, count: int) -> dict:
    """Return the first call's and the median later call's wall and CPU time, in milliseconds."""
    walls, cpus = [], []
    for _ in range(count + 1):
        cpu, wall = _cpu(), time.perf_counter()
        operation()
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (_cpu() - cpu))
    return {"first_wall": walls[0], "first_cpu": cpus[0],
            "wall": statistics.median(walls[1:]), "cpu": statistics.median(cpus[1:])}


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", type=int, default=20)
    parser.add_argument("--previews", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="an earlier kjdms tree (git archive) measured in the same rounds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(worker(arguments.forms, arguments.previews)))
        return
    trees = {"kjdms": ROOT} | ({"before": Path(arguments.before)} if arguments.before else {})
    results = {name: [] for name in trees}
    for _ in range(arguments.rounds):
        for name, tree in trees.items():
            child = subprocess.run([sys.executable, __file__, "--worker", "--forms", str(arguments.forms),
                                    "--previews", str(arguments.previews)], capture_output=True, text=True,
                                   cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
            results[name].append(json.loads(child.stdout.splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.1f}; medians over {arguments.rounds} rounds (ms)")
    for kind in ("form", "preview"):
        for name, rounds in results.items():
            figures = {key: statistics.median(run[kind][key] for run in rounds) for key in rounds[0][kind]}
            print(f"{kind:8} {name:7} " + "  ".join(f"{key} {value:8.1f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
