"""The README is one screen and docs/ stays true: links resolve, every `manage.py` command and option
shown exists, every URL listed is served, every setting named is read by the code."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")


def text(path: Path) -> str:
    return path.read_text()


def test_the_readme_is_one_screen_with_the_two_commands():
    readme = text(ROOT / "README.md")
    assert len(readme.splitlines()) <= 40
    assert "make run" in readme and "make test" in readme
    assert "docs/README.md" in readme
    # The README's test command is the one CI runs.
    assert re.search(r"^\S.*\bmake test\b", text(ROOT / ".ci" / "run"), re.M)


def test_the_docs_index_lists_every_file_in_docs():
    index = text(ROOT / "docs" / "README.md")
    listed = set(LINK.findall(index))
    present = {p.name for p in (ROOT / "docs").iterdir() if p.is_file() and p.name != "README.md"}
    assert present <= listed, present - listed


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    for target in LINK.findall(text(page)):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#", 1)[0]).exists(), f"{page.name}: {target}"


def _manage_lines(page: Path) -> list[list[str]]:
    """Each `manage.py …` invocation written in the page, as words (code blocks and inline code)."""
    found = []
    for line in text(page).splitlines():
        for match in re.finditer(r"manage\.py ([^`#|\n]+)", line):
            command = match.group(1).strip().rstrip(".,;:)")
            try:
                found.append(shlex.split(command))
            except ValueError:
                found.append(command.split())
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_manage_py_command_and_option_shown_exists(page):
    commands = get_commands()
    for words in _manage_lines(page):
        name = words[0]
        if not re.fullmatch(r"[a-z_]+", name):
            continue
        assert name in commands, f"{page.name}: manage.py {name} does not exist"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        known = _options(parser)
        for word in words[1:]:
            if word.startswith("--"):
                option = word.split("=", 1)[0]
                assert option in known, f"{page.name}: manage.py {name} has no option {option}"


def _options(parser) -> set[str]:
    """Every option of a parser and of its subcommands, at any depth."""
    known: set[str] = set()
    for action in parser._actions:
        known.update(action.option_strings)
        if isinstance(action.choices, dict):
            for sub in action.choices.values():
                if hasattr(sub, "_actions"):
                    known |= _options(sub)
    return known


URL_TABLE = re.compile(r"^\| (`/[^|]+) \|", re.M)


def test_every_url_listed_is_served(db):
    listed = URL_TABLE.findall(text(ROOT / "docs" / "api-and-feeds.md"))
    assert len(listed) > 10
    for cell in listed:
        for url in CODE.findall(cell):
            if not url.startswith("/"):
                continue  # "…/upcoming.json": shorthand for the URL before it
            path = re.sub(r"<[^>]+>", "abc", re.sub(r"<YYYY-MM>", "2026-01", url.split("?", 1)[0]))
            try:
                resolve(path)
            except Resolver404:
                pytest.fail(f"docs/api-and-feeds.md lists {url}, which no URL serves")


def test_every_setting_named_in_the_docs_is_read_by_the_code():
    code = "\n".join(p.read_text() for folder in ("vigie", "oncall", "notifications", "statuspage", "detection", "probes", "platforms", "sandbox", "bench", "tests")
                     for p in (ROOT / folder).rglob("*.py"))
    code += (ROOT / "manage.py").read_text()
    for page in PAGES:
        for name in set(re.findall(r"\b(VIGIE_[A-Z0-9_]+|SANDBOX_[A-Z_]+)\b", text(page))):
            assert name in code, f"{page.name} names {name}, which no code reads"


def test_the_nginx_example_sends_the_live_sites_content_security_policy():
    from statuspage.security import content_security_policy

    conf = text(ROOT / "docs" / "nginx.conf")
    policies = set(re.findall(r'add_header Content-Security-Policy "(default-src \'none\'; style-src \'self\'[^"]+)"', conf))
    assert policies == {content_security_policy("/")}, "copy the live site's header into docs/nginx.conf"
