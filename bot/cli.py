"""The `gridbot` command: serve, stats, audit, grids, users. Every command brings the schema up to date first."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from bot.config import ConfigError, Settings, load_settings
from bot.database import engine_from_settings
from handlers.audit import verify_chains
from handlers.deliveries import failed_ids, list_deliveries, retry_deliveries
from handlers.errors import DomainError
from handlers.grids import GridImportError, GridIndex, import_grids
from handlers.people import create_person, get_person_by_login, issue_token
from handlers.stats import collect_stats
from models import utcnow
from models.db import session_scope, upgrade_schema

app = typer.Typer(help="Gridbot 网格通: WeChat intake and case handling for grid governance.", no_args_is_help=True)
grids_app = typer.Typer(help="Import and query grid polygons.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident case history.", no_args_is_help=True)
users_app = typer.Typer(help="Staff accounts and API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
menu_app = typer.Typer(help="The official account's menu.", no_args_is_help=True)
outbox_app = typer.Typer(help="Messages owed to groups and people: list them, retry failed ones.", no_args_is_help=True)
app.add_typer(grids_app, name="grids")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(menu_app, name="menu")
app.add_typer(outbox_app, name="outbox")

out = Console()
err = Console(stderr=True)

EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
IMPORT_STEP_LABELS = {"read": "checking each grid", "check": "checking overlaps", "write": "writing grids"}


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG) from None


def _engine(settings: Settings) -> Engine:
    engine = engine_from_settings(settings)
    upgrade_schema(engine)
    return engine


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the web service (WeChat callback, API, console) on the configured database."""
    import uvicorn

    from bot.app import create_app
    from bot.database import prepare_database

    settings = _settings()
    logging.basicConfig(level=settings.app.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = engine_from_settings(settings)
    prepare_database(settings, engine)
    out.print(f"Gridbot on http://{host}:{port}  (API docs: /docs, health: /healthz)")
    uvicorn.run(
        create_app(settings, engine=engine, prepare=False), host=host, port=port, log_level=settings.app.log_level
    )


@app.command()
def scheduler() -> None:
    """Run the timers (outbox, media downloads, drafts) as their own process; set app.timers: off for the web."""
    from bot.scheduler import Timers

    settings = _settings()
    logging.basicConfig(level=settings.app.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = _engine(settings)
    Timers(settings, engine, utcnow).start(blocking=True)


@menu_app.command("push")
def menu_push() -> None:
    """Create the official account's menu from config (wechat.menu) through the WeChat API."""
    from bot.gateway import Gateway, GatewayError

    settings = _settings()
    try:
        Gateway(settings, _engine(settings)).create_menu({"button": settings.wechat.menu})
    except GatewayError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(f"menu created with {len(settings.wechat.menu)} buttons")


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Counts of messages, reports, cases by status, outbox, activities, sign-ups and points."""
    engine = _engine(_settings())
    with session_scope(engine) as session:
        figures = collect_stats(session)
    if as_json:
        sys.stdout.write(json.dumps(figures, ensure_ascii=False) + "\n")
        return
    for key, value in figures.items():
        out.print(f"{key}: {value}")


@app.command()
def classify(
    rules: Annotated[Path | None, typer.Option(help="a rules folder to try instead of the configured one")] = None,
    eval_file: Annotated[Path | None, typer.Option("--eval", help="score a labelled JSONL file instead")] = None,
    split: Annotated[str, typer.Option(help="with --eval: all, train or heldout lines")] = "all",
    errors: Annotated[int, typer.Option(help="with --eval: list this many misclassified lines")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="with --eval: print the figures as JSON")] = False,
    details: Annotated[bool, typer.Option(help="add place_hint and reason to each output line")] = False,
) -> None:
    """Classify messages from stdin (one per line, or JSON objects with "text"); print one JSON object per line."""
    from classifier.engine import Classifier
    from classifier.evaluate import evaluate, format_report, read_examples
    from classifier.rules import RuleValidationError

    settings = _settings()
    rules_dir = rules or (Path(settings.classifier.rules_dir) if settings.classifier.rules_dir else None)
    try:
        model = Classifier.load(
            cache_dir=Path(settings.classifier.cache_dir), **({"rules_dir": rules_dir} if rules_dir else {})
        )
    except RuleValidationError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(1) from None
    if eval_file is not None:
        if split not in ("all", "train", "heldout"):
            err.print("--split must be all, train or heldout")
            raise typer.Exit(EXIT_CONFIG)
        try:
            examples = read_examples(eval_file)
        except (OSError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        chosen = [e for e in examples if split == "all" or e.split == split]
        report = evaluate(chosen, lambda text: model.classify(text).subcategory, keep_errors=errors)
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        else:
            names = {code: sub.name for code, sub in model.taxonomy.subcategories.items()}
            sys.stdout.write(format_report(report, names) + "\n")
        return
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        text = line
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
                text = str(obj.get("text", "")) if isinstance(obj, dict) else line
            except json.JSONDecodeError:
                text = line
        result = model.classify(text)
        sys.stdout.write(json.dumps(result.to_dict(details=details), ensure_ascii=False) + "\n")
        sys.stdout.flush()


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every case's hash chain; name the first broken link of each damaged case."""
    engine = _engine(_settings())
    with session_scope(engine) as session:
        checked, breaks = verify_chains(session)
    if not breaks:
        out.print(f"ok: {checked} case histories verified, no broken link")
        return
    for brk in breaks:
        err.print(f"BROKEN case {brk.case_no} at event {brk.seq} (id {brk.event_id}): {brk.reason}")
    err.print(f"{len(breaks)} of {checked} case histories are broken")
    raise typer.Exit(1)


@grids_app.command("import")
def grids_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a GeoJSON FeatureCollection")],
    crs: Annotated[str, typer.Option(help="coordinates of the file: wgs84 (RFC 7946) or gcj02")] = "wgs84",
) -> None:
    """Load grid polygons; the whole file is validated first and nothing is written if anything is wrong."""
    if crs not in ("wgs84", "gcj02"):
        err.print("--crs must be wgs84 or gcj02")
        raise typer.Exit(EXIT_CONFIG)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        err.print(f"[red]{file}: not a JSON file:[/red] {exc}")
        raise typer.Exit(1) from None
    engine = _engine(_settings())
    columns = (*Progress.get_default_columns()[:2], MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with session_scope(engine) as session, Progress(*columns, console=err, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def show(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(IMPORT_STEP_LABELS.get(step, step), total=total)
                # drawn now, not only by the bar's timer: each step shows its counts however fast it runs
                bar.update(tasks[step], completed=done, total=total, refresh=True)

            created, updated = import_grids(session, document, crs=crs, progress=show)
    except GridImportError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        err.print(f"{len(exc.problems)} problem(s); nothing was imported")
        raise typer.Exit(1) from None
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    out.print(f"imported {created + updated} grids ({created} new, {updated} updated)")


@grids_app.command("locate")
def grids_locate(
    lng: Annotated[float, typer.Argument(help="longitude")],
    lat: Annotated[float, typer.Argument(help="latitude")],
    crs: Annotated[str, typer.Option(help="gcj02 (WeChat, mini-program) or wgs84 (GPS)")] = "gcj02",
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Print the grids holding a point, smallest first, one code per line."""
    if crs not in ("wgs84", "gcj02"):
        err.print("--crs must be wgs84 or gcj02")
        raise typer.Exit(EXIT_CONFIG)
    engine = _engine(_settings())
    with session_scope(engine) as session:
        chain = GridIndex.from_session(session).locate(lng, lat, crs)
    if not chain:
        err.print(f"no grid holds the point {lng}, {lat} ({crs})")
        raise typer.Exit(EXIT_NOT_FOUND)
    codes = [entry.code for entry in chain]
    sys.stdout.write((json.dumps(codes) if as_json else "\n".join(codes)) + "\n")


@users_app.command("add")
def users_add(
    login: Annotated[str, typer.Argument(help="login name")],
    name: Annotated[str, typer.Option(help="full name")],
    role: Annotated[list[str], typer.Option(help="role; repeat for several")],
    grid: Annotated[list[str] | None, typer.Option(help="grid code served; repeat for several")] = None,
    phone: Annotated[str | None, typer.Option(help="11-digit mobile number")] = None,
    password: Annotated[str | None, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = None,
) -> None:
    """Create a staff account."""
    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            create_person(
                session, name=name, roles=role, login=login, phone=phone, password=password, grid_codes=grid or []
            )
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    out.print(f"created {login}")


@users_app.command("token")
def users_token(
    login: Annotated[str, typer.Argument(help="login name")],
    hours: Annotated[int | None, typer.Option(help="validity; default from config auth.token_ttl_hours")] = None,
) -> None:
    """Issue a new API token for an account (shown once)."""
    settings = _settings()
    engine = _engine(settings)
    try:
        with session_scope(engine) as session:
            person = get_person_by_login(session, login)
            token, expires_at = issue_token(
                session, person, utcnow(), timedelta(hours=hours or settings.auth.token_ttl_hours), label="cli"
            )
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    sys.stdout.write(token + "\n")
    err.print(f"expires {expires_at.astimezone(settings.zone):%Y-%m-%d %H:%M} ({settings.app.timezone})")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations."""
    _engine(_settings())
    out.print("schema is up to date")


def main() -> None:
    app()


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(help="pending, sent or failed")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Owed messages with their state, attempts and last error."""
    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            rows = list_deliveries(session, status, limit)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        for d in rows:
            sys.stdout.write(json.dumps(d.__dict__, ensure_ascii=False, default=str) + "\n")
        return
    table = Table("id", "status", "channel", "target", "case", "attempts", "last error", "preview")
    for d in rows:
        colour = {"failed": "red", "pending": "yellow"}.get(d.status, "green")
        table.add_row(
            str(d.id), f"[{colour}]{d.status}[/{colour}]", d.channel, d.target, d.case_no or "-",
            str(d.attempts), d.last_error or "", d.preview,
        )
    out.print(table)


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="outbox message ids")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed message")] = False,
) -> None:
    """Send failed messages again: they go back to the queue for the outbox worker."""
    engine = _engine(_settings())
    try:
        with session_scope(engine) as session:
            chosen = failed_ids(session) if all_failed else list(ids or [])
            if all_failed and not chosen:
                out.print("no failed messages")
                return
            retried = retry_deliveries(session, chosen, utcnow())
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    out.print(f"{len(retried)} message(s) queued again: {', '.join(str(d.id) for d in retried)}")
