"""`check` (validate intents/ and content/) and `evaluate` (measure understanding)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from bot.cli.common import pass_settings, print_json
from bot.content.loader import load, load_catalog
from bot.content.yamldoc import ContentError
from bot.settings import Settings

DEFAULT_EVAL_FILE = Path("tests/data/labelled.yaml")
DEFAULT_CRISIS_FILE = Path("tests/data/crisis_heldout.yaml")
DEV_CRISIS_FILE = Path("tests/data/crisis_dev2.yaml")

PATH = click.Path(path_type=Path)


@click.command(help="validate intents/ and content/")
@click.option("--root", type=PATH, help="folder holding intents/ and content/")
@click.option("--quiet-warnings", is_flag=True, help="print errors only")
@pass_settings
def check(settings: Settings, root: Path | None, quiet_warnings: bool) -> int:
    return cmd_check(root or settings.content_root, quiet_warnings)


def cmd_check(root: Path, quiet_warnings: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    catalog, problems = load(root)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in errors + ([] if quiet_warnings else warnings):
        print(problem, file=out)
    if errors:
        print(f"\n{len(errors)} error(s), {len(warnings)} warning(s): content is NOT valid; the bot will not start.",
              file=out)
        return 1
    assert catalog is not None
    examples = sum(len(i.examples) for i in catalog.intents)
    desks = {d for c in catalog.cities.values() for d in c.desks}
    print(f"OK: {len(catalog.intents)} intents, {examples} examples, {len(catalog.cities)} cities "
          f"({', '.join(sorted(catalog.cities))}), {len(desks)} desks; {len(warnings)} warning(s).", file=out)
    return 0


@click.command(help="measure understanding on a labelled YAML file\n\n"
                    f"FILE: labelled file (default {DEFAULT_EVAL_FILE})")
@click.argument("file", required=False, type=PATH)
@click.option("--json", "as_json", is_flag=True, help="machine-readable report")
@click.option("--crisis-file", type=PATH, help=f"held-out crisis set (default {DEFAULT_CRISIS_FILE})")
@click.option("--no-cv", is_flag=True, help="skip the crisis cross-validation (five fits, about 30 s)")
@pass_settings
def evaluate(settings: Settings, file: Path | None, as_json: bool, crisis_file: Path | None, no_cv: bool) -> int:
    return cmd_evaluate(settings, file, as_json, crisis_file, not no_cv)


def cmd_evaluate(settings: Settings, path: Path | None, as_json: bool, crisis_path: Path | None = None,
                 cv: bool = True) -> int:
    # the matcher (scikit-learn) loads here, not when any other command starts
    from bot.understanding.crisis_eval import (
        crisis_report,
        cross_validate,
        format_crisis,
        load_crisis_items,
    )
    from bot.understanding.evaluate import evaluate as measure
    from bot.understanding.evaluate import format_report, load_items
    from bot.understanding.matcher import Matcher

    try:
        catalog = load_catalog(settings.content_root)
    except ContentError as exc:
        click.echo(exc, err=True)
        return 1
    path = path or settings.content_root / DEFAULT_EVAL_FILE
    try:
        items = load_items(path, set(catalog.by_id))
    except (OSError, ValueError) as exc:
        click.echo(f"cannot read {path}: {exc}", err=True)
        return 1
    crisis_path = crisis_path or settings.content_root / DEFAULT_CRISIS_FILE
    try:
        crisis_items = load_crisis_items(crisis_path) if crisis_path.is_file() else []
        dev_path = settings.content_root / DEV_CRISIS_FILE
        dev_items = load_crisis_items(dev_path) if crisis_items and dev_path.is_file() else []
    except (OSError, ValueError) as exc:
        click.echo(f"cannot read {crisis_path}: {exc}", err=True)
        return 1
    matcher = Matcher(catalog, settings.model_cache_dir)
    report = measure(matcher, items)
    city = catalog.city(settings.city)
    report["crisis"] = crisis_report(matcher, city, crisis_items, dev_items) if crisis_items else None
    report["crisis_cv"] = cross_validate(catalog) if cv else None
    if as_json:
        print_json(report)
    else:
        click.echo(format_report(report))
        if report["crisis"]:
            click.echo(format_crisis(report["crisis"], report["crisis_cv"]))
    return 0
