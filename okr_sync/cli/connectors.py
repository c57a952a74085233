"""``okr-sync connectors``: list the installed connectors, scaffold a new one.

Listing goes through the same entry-point discovery the sync uses, so what it shows is
exactly what a sync can name in ``sources:``. Scaffolding renders Jinja2 templates
(package data under ``okr_sync/templates/connector``) into a new package directory.
"""

from __future__ import annotations

import json
import keyword
import re
import shlex
import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
from jinja2 import Environment, StrictUndefined
from rich import box
from rich.table import Table
from rich.text import Text

from connectors.base import discover
from okr_sync.cli.console import fail, out

connectors_app = typer.Typer(help="Installed connectors, and scaffolding for a new one.")

NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
TEMPLATES = "templates/connector"


def connector_listing() -> list[dict[str, Any]]:
    """Every entry point of the group: name, package, streams, or why it does not load."""
    listing = []
    for item in discover():
        connector = item.connector
        listing.append(
            {
                "name": item.name,
                "package": item.distribution,
                "description": connector.description if connector else "",
                "streams": [
                    {"name": s.name, "entity": s.entity, "cursor_field": s.cursor_field}
                    for s in (connector.streams if connector else ())
                ],
                "sandbox": bool(connector and connector.sandbox),
                "error": item.error,
            }
        )
    return listing


@connectors_app.command("list")
def list_connectors(
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Every installed connector, built-in or third-party, with its streams.

    Exits 1 when a package's connector cannot be loaded (listed with the error).
    """
    if output not in ("table", "json"):
        raise fail(f"--format {output!r}: use table or json")
    listing = connector_listing()
    if output == "json":
        out.print_json(json.dumps(listing))
    else:
        out.print(_listing_table(listing))
    if any(item["error"] for item in listing):  # a broken package is a failure to fix
        raise typer.Exit(1)


def _listing_table(listing: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("connector", "package", "streams (stream → entity, cursor)", "description"):
        table.add_column(column, overflow="fold")
    for item in listing:
        streams = "\n".join(
            f"{s['name']} → {s['entity']}, {s['cursor_field']}" for s in item["streams"]
        )
        broken = Text(f"cannot be loaded: {item['error']}", style="red") if item["error"] else ""
        table.add_row(item["name"], item["package"], streams, broken or item["description"])
    return table


def scaffold(name: str, directory: Path) -> list[Path]:
    """Render the connector templates for ``name`` into ``directory``; returns the files."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} is not a connector name: use 2-31 lower-case letters, digits and '_', "
            "starting with a letter"
        )
    if directory.exists() and any(directory.iterdir()):
        raise ValueError(f"{directory} already exists and is not empty; pick another --directory")
    context = {
        "name": name,
        "package": f"okr_sync_{name}",
        "distribution": f"okr-sync-{name.replace('_', '-')}",
        "title": name.replace("_", " ").title(),
        "class_prefix": name.replace("_", " ").title().replace(" ", ""),
        "env_prefix": f"OKR_SYNC_{name.upper()}_",
        # okr-sync's interpreter, by absolute path (not resolved: that would leave its venv)
        "python": shlex.quote(str(Path(sys.executable).absolute())),
    }
    environment = Environment(  # noqa: S701 - renders Python and Markdown, not HTML
        undefined=StrictUndefined, keep_trailing_newline=True
    )
    root = files("okr_sync").joinpath(TEMPLATES)
    written = []
    for template_path, text in _templates(root):
        relative = environment.from_string(template_path.removesuffix(".j2")).render(context)
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(environment.from_string(text).render(context), encoding="utf-8")
        written.append(target)
    return written


def _templates(root: Any, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            found += _templates(entry, f"{path}/")
        else:
            found.append((path, entry.read_text(encoding="utf-8")))
    return found


@connectors_app.command("new")
def new_connector(
    name: Annotated[str, typer.Argument(help="the connector's name, e.g. billing")],
    directory: Annotated[
        Path | None,
        typer.Option(help="where to create the package [default: ./okr-sync-NAME]"),
    ] = None,
) -> None:
    """Scaffold a connector package: pyproject, streams, mapping, emulator, tests, README."""
    target = directory or Path(f"okr-sync-{name.replace('_', '-')}")
    try:
        written = scaffold(name, target)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    out.print(f"created {len(written)} files in {target}:", highlight=False)
    for path in written:
        out.print(f"  {path.relative_to(target)}", highlight=False)
    python = shlex.quote(str(Path(sys.executable).absolute()))
    out.print(
        f"next, in {target}: {python} -m pip install -e '.[dev]' && {python} -m pytest"
        "   (its README.md, docs/connectors.md)",
        highlight=False,
        soft_wrap=True,
    )
