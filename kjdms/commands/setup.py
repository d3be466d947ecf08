"""Set up and run an instance: init, demo, serve, worker."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..backends import get_blob_store, get_config, get_search_index, get_workflow
from ..extensions import db
from ..schema import upgrade_schema


def command_name() -> str:
    """Return how to type the kjdms command here: `kjdms` when the shell finds this one, else its path."""
    import os
    import shutil
    import sys
    from pathlib import Path

    installed = Path(sys.executable).parent / "kjdms"
    found = shutil.which("kjdms")
    if found and installed.exists() and os.path.samefile(found, installed):
        return "kjdms"
    if not installed.exists():
        return "kjdms"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


@click.command("init")
@with_appcontext
def init_command():
    """创建或升级数据库结构并载入地区表（可重复运行）。"""
    from ..services.reference import load_regions

    was_new = upgrade_schema()
    added, changed = load_regions(db.session)
    click.echo(f"数据库{'已创建' if was_new else '已是最新结构'}：{get_config().DATABASE_URL.split('?')[0]}")
    click.echo(f"地区：新增 {added}，更新 {changed}")
    index = get_search_index()
    if hasattr(index, "ensure_tables"):  # KJDMS_SEARCH=postgres: the index's table lives in the database
        click.echo(f"检索索引表：{'已创建' if index.ensure_tables() else '已存在'}")
    store = get_blob_store()
    if hasattr(store, "ensure_bucket"):  # S3: the bucket is part of the instance, as the database is
        click.echo(f"S3 存储桶 {store.bucket}：{'已创建' if store.ensure_bucket() else '已存在'}")
        if store.versioning_enabled():
            click.echo("警告：存储桶开启了版本控制，删除的文件仍作为旧版本保留，逾期清除后个人信息并未真正删除；"
                       "请关闭版本控制，或设置生命周期规则立即删除旧版本。")


@click.command("demo")
@click.option("--reset-passwords", is_flag=True, help="给演示工作人员设置新密码并显示。")
@with_appcontext
def demo_command(reset_passwords):
    """载入各角色的演示账号和各状态的演示档案，显示登录信息。"""
    from ..services.demo import demo_loaded, load_demo, reset_demo_passwords

    if demo_loaded(db.session):
        if not reset_passwords:
            click.echo(f"演示数据已存在。需要新的登录密码请运行：{command_name()} demo --reset-passwords")
            return
        credentials = reset_demo_passwords(db.session)
    else:
        with click.progressbar(length=1, label="载入演示数据") as bar:
            credentials = load_demo(db.session, get_workflow(), get_blob_store(),
                                    get_config().ID_HASH_KEY)
            bar.update(1)
    click.echo("演示账号（密码只显示这一次）：")
    for credential in credentials:
        password = credential.password or "（未设置，首次登录时设置）"
        click.echo(f"  {credential.role:<15} {credential.sign_in:<34} {password:<12} {credential.note}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="监听的地址。")
@click.option("--port", default=8000, show_default=True, type=int, help="监听的端口。")
# Four, as waitress's own default: a process's threads take turns on Python's lock, and unpinned on 2 CPUs eight
# of them handed it over ~170 times a review page against ~80 for four (bench/README.md, "Request threads").
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="每个进程处理请求的线程数（线程轮流持有 Python 的全局锁，多了反而更慢）。")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="服务进程数；多于 1 时须另外运行一个 kjdms worker。")
@click.option("--pin-cpus/--no-pin-cpus", default=None,
              help="每个服务进程固定在一个 CPU 上（同一进程的线程在多个 CPU 之间交接较慢）。不指定时仅在进程数等于可用 CPU 数时固定；"
                   "--pin-cpus 在进程数少于 CPU 数时也固定（本机只运行本服务时）；--no-pin-cpus 从不固定。")
@with_appcontext
def serve_command(host, port, threads, workers, pin_cpus):
    """用 waitress 提供网站服务，后台线程同时提取文字、更新索引。"""
    import logging

    from ..request_log import RequestLog
    from ..serving import pin_single_process, pinning_remark, serve, serve_in_processes
    from ..worker import start_thread

    app, config = current_app._get_current_object(), get_config()
    # One line a request (and the worker's reports) on the terminal; waitress itself logs only its errors.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if workers > 1:
        # The search index takes one writer: the processes leave indexing and extraction to one `kjdms worker`.
        if config.WORKER == "thread" or config.INDEX_AFTER_COMMIT:
            raise click.ClickException("多个服务进程时，请设置 KJDMS_WORKER=external（KJDMS_INDEX_AFTER_COMMIT=0，即默认值），"
                                       "并另外运行一个 kjdms worker")
        serve_in_processes(RequestLog(app), host, port, workers=workers, threads=threads, settings=config.server_settings(),
                           pin_cpus=pin_cpus, announce=click.echo)
        return
    if config.WORKER == "thread":
        # Text extraction and the index outbox (a thread of its own) run beside the site;
        # KJDMS_WORKER=external leaves them to a `kjdms worker` process.
        start_thread(app)
    # After the background thread started: it keeps every CPU (so does the OCR it runs); waitress's threads,
    # started from this one, share its CPU.
    cpus = pin_single_process(pin_cpus)
    click.echo(f"kjdms 正在 http://{host}:{port}/ 提供服务{pinning_remark(cpus)}（Ctrl+C 停止）")
    # waitress would otherwise buffer up to 1 GiB of any request before Flask's cap could refuse it.
    serve(RequestLog(app), host=host, port=port, threads=threads, **config.server_settings())


@click.command("worker")
@click.option("--once", is_flag=True, help="处理完当前等待的工作后退出。")
@click.option("--interval", default=5.0, show_default=True, help="空闲时等待的秒数。")
@with_appcontext
def worker_command(once, interval):
    """提取新上传材料的文字、更新检索索引并发送通知（多进程部署时单独运行）。"""
    import threading

    from ..worker import run, work_once

    app = current_app._get_current_object()
    if once:
        total_extracted = total_indexed = total_notified = 0
        while (done := work_once(app)).anything:
            total_extracted, total_indexed = total_extracted + done.extracted, total_indexed + done.indexed
            total_notified += done.notified
        click.echo(f"提取文字 {total_extracted} 份，更新索引 {total_indexed} 条，发送通知 {total_notified} 条")
        return
    click.echo("kjdms worker 已启动（Ctrl+C 停止）")
    report = lambda done: done.anything and click.echo(  # noqa: E731
        f"提取文字 {done.extracted} 份，更新索引 {done.indexed} 条，发送通知 {done.notified} 条")
    try:
        run(app, threading.Event(), poll_seconds=interval, on_round=report)
    except KeyboardInterrupt:
        click.echo("已停止")


COMMANDS = (init_command, demo_command, serve_command, worker_command)
