"""Structure of the empirical package: no import cycle (imports anywhere in a module, not only at its top),
registries that hold their members, seed streams, and the README's table of commands and flags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "empirical"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PKG) -> dict[str, set[str]]:
    """module -> the package modules it imports, wherever the import statement stands."""
    modules = {_module_name(p): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg
                for _ in range(max(0, node.level - 1)):
                    base = base.rpartition(".")[0]
                mod = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search (one representative per back edge)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_import_cycle_outside_the_attacks():
    graph = {k: {d for d in v if not d.startswith("empirical.attacks")} for k, v in import_graph().items()
             if not k.startswith("empirical.attacks")}
    assert "empirical.schemes" in graph["empirical.train"]  # an import inside a function is seen
    assert not cycles(graph), cycles(graph)


def test_the_cycle_search_finds_a_cycle():
    """The former mng <-> schemes cycle (each imported the other) is found by the same search."""
    graph = import_graph()
    graph["empirical.schemes"] = graph["empirical.schemes"] | {"empirical.mng"}
    graph["empirical.mng"] = graph["empirical.mng"] | {"empirical.schemes"}
    assert any({"empirical.mng", "empirical.schemes"} <= set(c) for c in cycles(graph))


def test_registries_hold_their_members():
    from empirical.schemes import SCHEMES
    from empirical.threats import DEFAULT_BUDGETS, THREAT_MODELS, get_threat

    assert list(SCHEMES) == ["natural", "adv", "avg", "max", "msd", "sat", "mng_ac"]
    assert all(cls.name == name for name, cls in SCHEMES.items())
    for name, cls in THREAT_MODELS.items():
        t = get_threat(name, "mnist")
        assert isinstance(t, cls) and t.name == name
        assert t.eps == pytest.approx(DEFAULT_BUDGETS["mnist"][name])
        half = t.scaled(0.5)
        if cls.gradient_based:
            assert half.eps == pytest.approx(0.5 * t.eps)
        else:
            assert half == t  # budget warm-up leaves search threats as they are
    with pytest.raises(ValueError, match="threat name"):
        get_threat("l7")


def test_seed_streams_are_deterministic_and_distinct():
    from empirical.utils import STREAMS, stream_generator, stream_seed

    seeds = {(s, k): stream_seed(3, s, k) for s in STREAMS for k in range(3)}
    assert len(set(seeds.values())) == len(seeds)  # every stream and key its own seed
    assert stream_seed(3, "data_order", 1) == seeds[("data_order", 1)]
    assert stream_seed(4, "data_order", 1) != seeds[("data_order", 1)]
    a = torch.rand(5, generator=stream_generator(3, "attack", 0))
    assert torch.equal(a, torch.rand(5, generator=stream_generator(3, "attack", 0)))
    assert not torch.equal(a, torch.rand(5, generator=stream_generator(3, "attack", 1)))


def test_readme_table_of_commands_is_current():
    from empirical.cli import flag_table

    assert flag_table() in (ROOT / "README.md").read_text(), "regenerate the README table: empirical.cli.flag_table()"
