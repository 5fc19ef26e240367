"""The house rules of the package, checked on its real import graph (lazy imports included)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "snapwatch"
PURE = ("ingest", "detect", "diagnose", "report")
IMPURE_MODULES = {"sqlite3", "subprocess", "httpx", "asyncio", "watchfiles", "apprise"}
# What each subpackage offers the others: change it on purpose, here and in docs/architecture.md.
PUBLIC_FACES = {
    "alert": {
        "AlertPolicy",
        "AlertmanagerTarget",
        "Notifier",
        "ResendSchedule",
        "Target",
        "mask_url",
        "render",
        "send_test",
        "targets_for",
        "targets_from_urls",
    },
    "cli": {"main"},
    "config": {
        "AlertsConfig",
        "Config",
        "DEFAULT_INHIBIT_RULES",
        "Duration",
        "ErrorRateRule",
        "FieldError",
        "HistoryConfig",
        "InhibitRule",
        "JsonlFields",
        "MetricsConfig",
        "Places",
        "ProbeConfig",
        "RulesConfig",
        "SilenceRule",
        "SourceConfig",
        "StreakRule",
        "TokenConfig",
        "WindowCountRule",
        "format_duration",
        "load_config",
        "load_config_places",
        "parse_config",
        "parse_duration",
        "plain",
        "validated",
    },
    "detect": {
        "AcceptedRun",
        "Batch",
        "Detector",
        "History",
        "SourcePipeline",
        "SourceView",
        "incident_id",
        "status_key",
    },
    "diagnose": {
        "BUSINESS_MANAGER_PATH",
        "Evidence",
        "Section",
        "diagnose",
        "diagnosis_sections",
        "invalid_reasons",
        "sections_text",
    },
    "ingest": {
        "Assembler",
        "ConfiguredToken",
        "CutCounts",
        "DEFECT_FINDINGS",
        "Defect",
        "LineSplitter",
        "Pairing",
        "Secret",
        "Stamps",
        "TokenReport",
        "body_fields",
        "fingerprint",
        "inspect",
        "zone_of",
    },
    "report": {
        "Bucket",
        "CLASSES",
        "EnvChange",
        "LogGap",
        "Marker",
        "ReportData",
        "ReportDiagnosis",
        "ReportFinding",
        "ReportIncident",
        "ReportToken",
        "Restart",
        "TokenChange",
        "minute_buckets",
        "render_report",
        "sample_report",
        "status_class",
    },
    "run": {
        "Daemon",
        "Prober",
        "diagnose_now",
        "load_configured",
        "render_now",
        "render_text",
        "run",
        "scan_with_diagnosis",
        "setup_logging",
    },
    "store": {
        "IncidentRow",
        "Outbox",
        "OutboxRow",
        "SCHEMA_VERSION",
        "StateError",
        "Store",
        "joined_transaction",
        "migrate",
    },
    "tail": {"Chunk", "Follower", "Notice", "NoticeKind", "Quiet"},
}


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("snapwatch", include_external_packages=True)


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    internal = grimp.build_graph("snapwatch")
    assert _cycles(internal) == []


def test_pure_stages_import_no_io_library(graph: grimp.ImportGraph) -> None:
    for sub in PURE:
        for module in graph.find_descendants(f"snapwatch.{sub}") | {f"snapwatch.{sub}"}:
            imported = {m.split(".")[0] for m in graph.find_modules_directly_imported_by(module)}
            assert not imported & IMPURE_MODULES, (module, imported & IMPURE_MODULES)


def test_subpackages_own_one_stage_each_with_a_pinned_public_face() -> None:
    found = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert found == sorted(PUBLIC_FACES)
    for sub in found:
        package = importlib.import_module(f"snapwatch.{sub}")
        doc = (package.__doc__ or "").strip()
        assert doc and "\n" not in doc, f"snapwatch.{sub} needs a one-line docstring"
        assert set(package.__all__) == PUBLIC_FACES[sub], sub
        for name in package.__all__:
            value = getattr(package, name)
            assert not isinstance(value, type(package)), f"snapwatch.{sub}.{name} names a module"


def test_at_most_eight_modules_at_the_top_and_none_over_400_lines() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= 400, f"{path.relative_to(PACKAGE.parent)} has {lines} lines"


def test_every_module_says_what_it_owns_in_one_line() -> None:
    for path in PACKAGE.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{path.relative_to(PACKAGE.parent)} has no docstring"
