"""The layering the design holds to, checked on the source: each rule here is one a reader relies on.

- ``trisails/protocol/`` is sans-I/O: it imports no trio, no socket, no I/O framework, and reads no clock
  (time comes in as ``now``), so every rule in it is testable as a byte transcript.
- Only ``trisails/realtime/_serving.py`` imports hypercorn: the knowledge of its private internals stays in
  one module, guarded by ``tests/app/test_serving.py``.
- No lower layer imports a higher one: the protocol imports nothing of trisails but its errors; the
  realtime layer (Socket.IO) knows nothing of the Sails layer (``web/``, ``orm/``, ``sockets.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trisails"

# What a sans-I/O module may not use: I/O frameworks, sockets, threads, and clocks.
IO_MODULES = {"trio", "anyio", "asyncio", "socket", "selectors", "ssl", "threading", "hypercorn", "quart", "h11", "wsproto"}
CLOCK_CALLS = {("time", name) for name in ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "sleep")}


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imports(path: Path, *, typing_too: bool = True) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against the package); with
    ``typing_too=False``, only those imported at run time (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in (ast.walk(tree) if typing_too else _runtime_nodes(tree)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that runs: imports under ``if TYPE_CHECKING:`` are only for the type checker."""
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_protocol_is_sans_io_it_imports_no_io_and_reads_no_clock() -> None:
    for path in _modules(PACKAGE / "protocol"):
        imports = _imports(path)
        assert not {_top(name) for name in imports} & IO_MODULES, f"{path.name} imports I/O: {sorted(imports)}"
        assert {name for name in imports if name.startswith("trisails.") and not name.startswith("trisails.protocol")} <= {
            "trisails._errors",
            *{name for name in imports if name.startswith("trisails._errors.")},
        }, f"{path.name} reaches above the protocol layer"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) not in CLOCK_CALLS, f"{path.name} reads the clock: {node.value.id}.{node.attr}"
        assert "time" not in {_top(name) for name in imports}, f"{path.name} imports time"


def test_only_the_serving_module_imports_hypercorn() -> None:
    for path in _modules(PACKAGE):
        if path == PACKAGE / "realtime" / "_serving.py":
            continue
        assert "hypercorn" not in {_top(name) for name in _imports(path)}, f"{path.relative_to(PACKAGE)} imports hypercorn"


def test_the_realtime_layer_knows_nothing_of_the_sails_layer() -> None:
    sails_layer = ("trisails.web", "trisails.orm", "trisails.sockets", "trisails._app", "trisails._loader", "trisails._cli")
    for path in _modules(PACKAGE / "realtime"):
        reaching = {name for name in _imports(path) if name.startswith(sails_layer)}
        assert not reaching, f"realtime/{path.name} imports the Sails layer: {sorted(reaching)}"


def test_the_guard_sees_what_it_guards() -> None:
    """The import reader resolves relative imports: a check that read nothing would pass vacuously."""
    assert "trisails.protocol.engineio" in _imports(PACKAGE / "protocol" / "engine_session.py")
    assert "hypercorn" in {_top(name) for name in _imports(PACKAGE / "realtime" / "_serving.py")}
    assert "trio" in {_top(name) for name in _imports(PACKAGE / "realtime" / "connection.py")}


def test_on_the_server_side_only_the_realtime_layer_touches_the_network() -> None:
    """Sockets, listeners and TLS belong to ``realtime/`` (the Python client in ``client/`` aside, and
    ``testing.py``, whose in-memory connections carry a stand-in socket)."""
    network_calls = ("open_tcp_stream", "open_tcp_listeners", "serve_listeners", "serve_tcp", "open_ssl_over_tcp")
    for path in _modules(PACKAGE):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("realtime", "client") or relative.name == "testing.py":
            continue
        imports = {_top(name) for name in _imports(path, typing_too=False)}
        assert not imports & {"socket", "ssl", "selectors"}, f"{relative} touches sockets: {sorted(imports)}"
        source = path.read_text(encoding="utf-8")
        assert not [call for call in network_calls if call in source], f"{relative} opens connections itself"
