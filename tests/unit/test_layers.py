"""The package's layers import only downwards: a module may import its own layer and the ones
below it, never one above (issue #24: five imports ran up the layers and tied the bottom to the
top).  Function-level imports count too."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "txnstorm"
# Bottom to top; "" is the package's own modules (errors, settings, __init__).
LAYERS = ("", "host", "vm", "workload", "transactions", "oracles", "scenario", "runner")


def layer_of(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "")


def imports_of(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("txnstorm"):
            found += [(f"{node.module}.{a.name}" if node.module == "txnstorm" else node.module, node.lineno)
                      for a in node.names]  # fmt: skip
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("txnstorm")]
    return found


def test_every_subpackage_is_a_known_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {""}, "a new subpackage needs its place in LAYERS (and docs/layout.md)"


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for imported, line in imports_of(path):
            if layer_of(imported) > layer_of(module):
                upward.append(f"{module}:{line} imports {imported}")
    assert not upward, "imports up the layers " + " > ".join(LAYERS[1:]) + ":\n" + "\n".join(upward)


def test_the_layer_rule_sees_an_upward_import():
    assert layer_of("txnstorm.vm.machine") < layer_of("txnstorm.scenario.rounds")
    assert layer_of("txnstorm.runner") == layer_of("txnstorm.runner.inputs") == LAYERS.index("runner")
    assert layer_of("txnstorm.errors") == layer_of("txnstorm.settings") == 0


def test_an_upward_import_inside_a_function_is_found(tmp_path, monkeypatch):
    fake = tmp_path / "txnstorm"
    for layer in LAYERS[1:]:
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text("")
    (fake / "vm" / "probe.py").write_text("def f():\n    from txnstorm.runner.inputs import ACCEL\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    try:
        test_no_module_imports_a_layer_above_its_own()
    except AssertionError as caught:
        assert "txnstorm.vm.probe:2 imports txnstorm.runner.inputs" in str(caught)
    else:
        raise AssertionError("the upward import was not seen")


def test_no_module_below_the_scenario_layer_reads_the_environment():
    """Settings are read once (``txnstorm/settings.py``) by the entry points and handed down.  A
    child's environment passed on whole (``{**os.environ, ...}``) reads no setting."""
    below = LAYERS[: LAYERS.index("scenario")]
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if LAYERS[layer_of(module)] not in below or module == "txnstorm.settings":
            continue
        text = path.read_text()
        words = ("os.environ.get", "os.environ[", "os.getenv", "Settings.from_env", "cache_dir()")
        readers += [f"{module}: {word}" for word in words if word in text]
    assert not readers, "settings read below the scenario layer:\n" + "\n".join(readers)
