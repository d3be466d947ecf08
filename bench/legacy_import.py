"""Time `kjdms import-legacy` on a generated file of the old system's records (default 100,000 rows).

Run by hand, not by the test suite:

    .venv/bin/python bench/legacy_import.py [--n 100000] [--runs 3] [--format csv|xlsx] [--encoding utf-8-sig|gb18030]
        [--database-url URL] [--keep DIR] [--generate-only PATH]

Each run starts from an empty instance (`kjdms init` in a fresh storage folder, or a fresh schema on
the PostgreSQL server given by --database-url), then times the `kjdms import-legacy` command as a
child process, wall-clock and CPU, start to exit: reading, checking every row, writing (with the
outbox rows; the worker indexes them later), the error report. A second import of the same file
(nothing to change) is timed too. Prints each run, the load average, and the medians.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kjdms.services.demo import demo_uscc  # noqa: E402
from kjdms.services.legacy_import import OPTIONAL_COLUMNS, REQUIRED_COLUMNS  # noqa: E402
from kjdms.validators import id_number_check_digit  # noqa: E402

KJDMS = ROOT / ".venv" / "bin" / "kjdms"
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS[1:]  # 组织机构代码 left out: the USCC carries it
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红玲建国志文辉宇浩然欣怡子涵梓轩晨雨佳琪思远博"
# Leaf regions of kjdms/data/regions.yaml (Dalian, collected elsewhere, left out).
REGIONS = ("211302", "211303", "211300-BJ", "211321", "211322", "211324", "211381", "211382",
           "210100", "210300", "210400", "210500", "210600", "210700", "210800", "210900",
           "211000", "211100", "211200", "211400", "210000-ZZ", "210000-SF")
ID_PREFIXES = ("211302", "211303", "211321", "211322", "211324", "211381", "211382", "210102", "210302", "210402")
EDUCATION = ("大学本科", "大学专科", "中专", "硕士研究生", "高中及以下", "本科", "大专")
QUALIFICATION = ("", "无", "初级", "初级", "中级", "高级", "会计师")
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
KINDS = ("商贸有限公司", "会计服务有限公司", "建筑工程有限公司", "农业发展有限公司", "医院", "中学", "财政所", "信用合作社")


def rows(n: int, seed: int):
    """Yield n distinct valid rows as the old system would export them."""
    rng, used = random.Random(seed), set()
    employers = []
    for index in range(2000):
        org_body = "".join(rng.choice(USCC_CHARS[:10] + "ABCDEFGH") for _ in range(8))
        employers.append((f"朝阳{rng.choice(GIVEN)}{rng.choice(GIVEN)}{rng.choice(KINDS)}",
                          demo_uscc("91" + rng.choice(ID_PREFIXES), org_body), rng.choice(REGIONS)))
    while len(used) < n:
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
        body = f"{rng.choice(ID_PREFIXES)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        id_number = body + id_number_check_digit(body)
        if id_number in used:
            continue
        used.add(id_number)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        employer, uscc, region = rng.choice(employers)
        unemployed = rng.random() < 0.05
        started = birth + timedelta(days=rng.randrange(18 * 365, 30 * 365))
        yield {
            "姓名": name, "身份证号": id_number, "性别": "男" if int(body[16]) % 2 else "女",
            "出生日期": birth.isoformat(), "工作单位": "" if unemployed else employer,
            "统一社会信用代码": "" if unemployed else uscc, "所在地区代码": region,
            "学历": rng.choice(EDUCATION), "会计专业技术资格": rng.choice(QUALIFICATION),
            "原会计从业资格证号": f"21{rng.randrange(10 ** 12):012d}",
            "联系电话": f"13{rng.randrange(10 ** 9):09d}", "资格证书编号": "",
            "从事会计工作日期": min(started, date(2019, 1, 1)).isoformat(),
        }


def generate(path: Path, n: int, seed: int = 1, encoding: str = "utf-8-sig") -> Path:
    """Write n rows to path: CSV in encoding, or XLSX when path ends in .xlsx."""
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("人员信息")
        sheet.append(COLUMNS)
        for row in rows(n, seed):
            sheet.append([row[column] for column in COLUMNS])
        workbook.save(path)
        return path
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows(n, seed))
    return path


def fresh_instance(folder: Path, database_url: str | None) -> dict:
    """Create an empty instance under folder (or a new schema on database_url); return its environment."""
    env = {**os.environ, "KJDMS_STORAGE_DIR": str(folder), "FLASK_APP": "kjdms"}
    env.pop("KJDMS_DATABASE_URL", None)
    if database_url:
        import sqlalchemy as sa

        schema = f"kjdms_bench_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(database_url).begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in database_url else "?"
        env["KJDMS_DATABASE_URL"] = f"{database_url}{separator}options=-csearch_path%3D{schema}"
        env["BENCH_SCHEMA"] = schema
    subprocess.run([str(KJDMS), "init"], env=env, check=True, capture_output=True)
    return env


def drop_schema(database_url: str, schema: str) -> None:
    """Remove a run's schema from the PostgreSQL server."""
    import sqlalchemy as sa

    with sa.create_engine(database_url).begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def timed_import(env: dict, path: Path) -> tuple[float, float, str]:
    """Run `kjdms import-legacy path`; return its wall-clock and CPU (user + system) seconds and its summary line."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([str(KJDMS), "import-legacy", str(path)], env=env, check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, cpu, next(line for line in done.stdout.splitlines() if line.startswith("共 "))


def main() -> None:
    """Generate the file, run the import on fresh instances, print the times and the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--encoding", default="utf-8-sig")
    parser.add_argument("--database-url", help="A PostgreSQL URL; each run gets a schema of its own.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it.")
    parser.add_argument("--generate-only", type=Path, help="Only write the file to this path.")
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.n, args.seed, args.encoding)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="kjdms-bench-legacy-"))
    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    source = generate(work / f"legacy.{args.format}", args.n, args.seed, args.encoding)
    print(f"generated {args.n} rows ({source.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - began:.1f} s")
    first, first_cpu, again = [], [], []
    for run in range(args.runs):
        env = fresh_instance(work / f"run{run}", args.database_url)
        seconds, cpu, summary = timed_import(env, source)
        first.append(seconds)
        first_cpu.append(cpu)
        seconds_again, _, summary_again = timed_import(env, source)
        again.append(seconds_again)
        # The load average says how much of the wall-clock time other processes on the machine took.
        if "BENCH_SCHEMA" in env:
            drop_schema(args.database_url, env["BENCH_SCHEMA"])
        print(f"run {run + 1}: {seconds:.1f} s wall, {cpu:.1f} s CPU ({summary}) | again: {seconds_again:.1f} s "
              f"({summary_again}) | load {os.getloadavg()[0]:.1f}", flush=True)
    backend = "PostgreSQL" if args.database_url else "SQLite (embedded default)"
    print(f"{backend}, {args.n} rows, {args.format}: median {statistics.median(first):.1f} s wall "
          f"({statistics.median(first_cpu):.1f} s CPU), re-import median {statistics.median(again):.1f} s")


if __name__ == "__main__":
    main()
