"""README.md and docs/ against the repository: every relative link resolves to a file (and a
heading) inside it, no link leaves it, and docs/configuration.md names every environment
variable the settings read and every task setting the registry accepts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cronjobs.supervisor.registry import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
SETTINGS = ROOT / "flagged_cron_project" / "settings.py"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]*)>", re.IGNORECASE)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
ENV_HELPERS = {"envbool", "envint", "envlist", "envpath"}


def prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(doc: Path) -> list[str]:
    text = prose(doc.read_text(encoding="utf-8"))
    return [
        *INLINE_LINK.findall(text),
        *REFERENCE.findall(text),
        *AUTOLINK.findall(text),
    ]


def anchors(doc: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2... for
    repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def all_links() -> list[tuple[Path, str]]:
    return [(doc, link) for doc in DOCS for link in links(doc)]


def test_the_docs_have_links_to_check():
    assert len(DOCS) > 5
    assert len(all_links()) > 30


def test_every_relative_link_resolves_to_a_file_in_the_repository():
    broken = []
    for doc, link in all_links():
        if SCHEME.match(link) or link.startswith("//"):
            continue  # test_no_link_leaves_the_repository
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.is_relative_to(ROOT):
            continue  # test_no_link_leaves_the_repository
        if not target.exists():
            broken.append(f"{doc.name}: {link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{doc.name}: {link} (no such heading in {target.name})")
    assert not broken


def test_no_link_leaves_the_repository():
    outside = [
        f"{doc.name}: {link}"
        for doc, link in all_links()
        if SCHEME.match(link)
        or link.startswith("//")
        or not (doc.parent / link.partition("#")[0]).resolve().is_relative_to(ROOT)
    ]
    assert not outside


def test_the_docs_never_point_to_the_outside_design_file():
    mentions = [doc.name for doc in DOCS if "DESIGN.md" in doc.read_text(encoding="utf-8")]
    assert not mentions


def environment_variables_read_by_the_settings() -> set[str]:
    """Names passed to envbool/envint/envlist/envpath, os.environ.get, os.getenv and
    os.environ[...] in flagged_cron_project/settings.py."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            if func in ENV_HELPERS or func in {"os.environ.get", "os.getenv"}:
                names.add(node.args[0])
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(node.slice)
    return {n.value for n in names if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_every_environment_variable_of_the_settings_is_documented():
    names = environment_variables_read_by_the_settings()
    assert {"DEBUG", "DATABASE_URL", "CRONJOBS_LEASE_TTL", "LOG_LEVEL"} <= names
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/configuration.md does not document: {', '.join(missing)}"


def test_every_task_setting_is_documented():
    settings = {*OPTIONS, "command"}  # `command` is the tasks file's own key
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(name for name in settings if f"| `{name}` |" not in text)
    assert not missing, f"docs/configuration.md's task settings lack: {', '.join(missing)}"
