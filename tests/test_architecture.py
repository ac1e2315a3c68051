"""docs/architecture.md against the code: every module of cronjobs/ is named there, imports run
the way it says, reporting/ only reads, and its diagram (bin/architecture-diagram) is current."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SCRIPT = ROOT / "bin" / "architecture-diagram"
APP = ROOT / "cronjobs"


def _load_diagram_script():
    loader = importlib.machinery.SourceFileLoader("architecture_diagram", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


diagram = _load_diagram_script()


def modules_under(*parts: str) -> list[Path]:
    return [path for path in diagram.python_files(ROOT.joinpath(*parts)) if path.suffix == ".py"]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported_modules(path: Path) -> set[str]:
    return diagram.imports_of(path, ROOT)


def reaches(module: str, target: str) -> bool:
    return module == target or module.startswith(target + ".")


def offences(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{relative(path)} imports {module}"
        for path in files
        for module in imported_modules(path)
        if any(reaches(module, target) for target in forbidden)
    )


# (a) every module is named -------------------------------------------------------------------


def test_every_module_of_cronjobs_is_named_in_the_architecture_doc():
    text = DOC.read_text(encoding="utf-8")
    modules = [path for path in modules_under("cronjobs") if path.name != "__init__.py"]
    missing = [relative(path) for path in modules if f"`{relative(path)}`" not in text]
    assert modules, "no modules found under cronjobs/"
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


# (b) imports run one way ---------------------------------------------------------------------


def test_engine_reporting_and_models_never_import_the_web_layer_or_actions():
    files = [*modules_under("cronjobs", "supervisor"), *modules_under("cronjobs", "reporting")]
    files += [APP / "models.py", APP / "history.py"]
    forbidden = ("cronjobs.views", "cronjobs.admin", "cronjobs.actions")
    assert not offences(files, forbidden)


def test_reporting_imports_only_models_and_schedules():
    """Numbers never depend on the engine: no runner, process or lease, nor any of supervisor/."""
    allowed = ("cronjobs.models", "cronjobs.schedules", "cronjobs.reporting")
    found = sorted(
        f"{relative(path)} imports {module}"
        for path in modules_under("cronjobs", "reporting")
        for module in imported_modules(path)
        if module.startswith("cronjobs.") and not any(reaches(module, ok) for ok in allowed)
    )
    assert not found


def test_task_settings_import_only_schedules():
    """The admin and the API read the declarations without pulling in models or the engine."""
    found = [
        module
        for module in imported_modules(APP / "tasksettings.py")
        if module.startswith("cronjobs.") and not reaches(module, "cronjobs.schedules")
    ]
    assert not found


def test_the_history_write_path_imports_only_models_and_the_rollups_shape():
    """The engine, the history import and /metrics all write through it: it needs nothing of
    theirs, only the tables and the rollups' bins and local hours (reporting/rollups.py)."""
    allowed = ("cronjobs.models", "cronjobs.reporting.rollups")
    found = sorted(
        module
        for module in imported_modules(APP / "history.py")
        if module.startswith("cronjobs.") and not any(reaches(module, ok) for ok in allowed)
    )
    assert not found


def test_the_web_layer_reaches_the_engine_only_through_actions_and_reporting():
    """Admin pages and views call cronjobs.actions (operator actions, and the live memory,
    redacted URLs and log tail they show) and cronjobs.reporting, never the supervisor."""
    files = [*modules_under("cronjobs", "admin"), *modules_under("cronjobs", "views")]
    assert len(files) > 10
    assert not offences(files, ("cronjobs.supervisor",))


def test_only_the_web_layer_urls_and_templatetags_import_views_or_admin():
    allowed_dirs = [APP / "views", APP / "admin", APP / "templatetags"]
    allowed_files = [ROOT / "flagged_cron_project" / "urls.py"]
    packages = ["cronjobs", *diagram.NEIGHBOURS]
    files = [
        path
        for package in packages
        if (ROOT / package).is_dir()
        for path in modules_under(package)
        if path not in allowed_files and not any(path.is_relative_to(d) for d in allowed_dirs)
    ]
    assert len(files) > 20
    assert not offences(files, ("cronjobs.views", "cronjobs.admin"))


def test_runtime_code_never_imports_a_migration():
    """A migration may take what it needs from runtime code (0003 its SQL from
    cronjobs/legacy/sql_views.py), never the reverse: migrations are history, and one can only
    be imported by a string (importlib), which no import rule above would see."""
    packages = ["cronjobs", *diagram.NEIGHBOURS]
    files = [
        path for package in packages if (ROOT / package).is_dir() for path in modules_under(package)
    ]
    found = [relative(path) for path in files if ".migrations" in path.read_text(encoding="utf-8")]
    assert len(files) > 20
    assert not found


# (c) reporting/ only reads ------------------------------------------------------------------

ORM_WRITES = {
    "save",
    "update",
    "create",
    "bulk_create",
    "bulk_update",
    "delete",
    "get_or_create",
    "update_or_create",
    "select_for_update",
}
SQL_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b")
DICT_MAKERS = {"dict", "asdict"}


def writes_in(source: str) -> list[str]:
    """Where a module's source writes: a call of an ORM method that writes (or locks a row to
    write it), or SQL that does, even in a comment. `d.update(...)` on a name the module
    assigns a dict (a literal, `dict(...)`, `dataclasses.asdict(...)`) is not a write."""
    tree = ast.parse(source)
    dicts = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value and _makes_dict(node.value)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    found = [
        (node.lineno, f".{node.func.attr}(")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ORM_WRITES
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in dicts)
    ]
    for match in SQL_WRITES.finditer(source):
        found.append((source.count("\n", 0, match.start()) + 1, match.group()))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def _makes_dict(value: ast.expr) -> bool:
    if isinstance(value, ast.Dict | ast.DictComp):
        return True
    func = value.func if isinstance(value, ast.Call) else None
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in DICT_MAKERS


def test_no_module_of_reporting_writes():
    """reporting/ reads the history; cronjobs/history.py is where it is written."""
    found = {
        relative(path): writes
        for path in modules_under("cronjobs", "reporting")
        if (writes := writes_in(path.read_text(encoding="utf-8")))
    }
    assert not found


def test_the_write_check_tells_a_query_write_from_a_dict_update():
    source = (
        "import dataclasses\n"
        "def figures(row):\n"
        "    data = dataclasses.asdict(row)\n"
        "    data.update(rate=1)\n"
        "    Rollup.objects.filter(pk=1).update(n=2)\n"
        "    row.save()\n"
        "    cursor.execute('DELETE FROM cronjobs_rollup')\n"
    )
    assert writes_in(source) == ["line 5: .update(", "line 6: .save(", "line 7: DELETE"]


# (d) the diagram -----------------------------------------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True
    )


def test_embedded_diagram_is_current():
    result = run_script("--check", "docs/architecture.md")
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_diagram_and_write_repairs_it(tmp_path):
    copy = tmp_path / "architecture.md"
    stale = DOC.read_text(encoding="utf-8").replace("  supervisor_ --> models_\n", "", 1)
    copy.write_text(stale, encoding="utf-8")

    assert run_script("--check", str(copy)).returncode == 1
    assert run_script("--write", str(copy)).returncode == 0
    assert run_script("--check", str(copy)).returncode == 0
    assert copy.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def test_check_fails_without_markers(tmp_path):
    copy = tmp_path / "architecture.md"
    copy.write_text("# no diagram here\n", encoding="utf-8")
    result = run_script("--check", str(copy))
    assert result.returncode == 2
    assert "no diagram between the markers" in result.stderr


def test_diagram_draws_one_arrow_per_pair_of_rooms(tmp_path):
    """A tiny project: two modules of one room importing the same model give one arrow, a
    function-level import counts, and django is not a room."""
    files = {
        "cronjobs/models.py": "from django.db import models\n",
        "cronjobs/supervisor/runner.py": "from cronjobs.models import Task\n",
        "cronjobs/supervisor/lease.py": "from cronjobs import models\n",
        "cronjobs/views/api.py": "def view():\n    from cronjobs.supervisor import runner\n",
        "flagged_products/jobs.py": "from cronjobs.supervisor.registry import cronjob\n",
    }
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")

    chart = diagram.mermaid(tmp_path)

    arrows = [line.strip() for line in chart.splitlines() if "-->" in line]
    assert arrows == [
        "flagged_products_ --> supervisor_",
        "supervisor_ --> models_",
        "views_ --> supervisor_",
    ]
    assert 'supervisor_["supervisor/"]' in chart
    assert 'models_["models.py"]' in chart
