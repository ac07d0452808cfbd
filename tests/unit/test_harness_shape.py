"""The harness has no class tree (issue #37): one base class, ``TxnstormTest``, and every scenario
test class inherits it directly and nothing else of the project's; what differs (a guest, a
daemon, a guest on a daemon, a known issue's reproducer) is a value the class sets
(``NEEDS_GUEST``, ``NEEDS_DAEMON``, ``ISSUE``) or the storm a story is given."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def classes(path: Path) -> list[ast.ClassDef]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)]


def test_the_harness_has_one_class():
    assert [c.name for c in classes(REPO / "txnstorm" / "scenario" / "harness.py")] == ["TxnstormTest"]


def test_every_scenario_test_class_is_two_project_classes_from_avocados_test():
    found = {}
    for path in sorted((REPO / "tests").glob("*.py")):
        for cls in classes(path):
            found[f"{path.name}:{cls.name}"] = [ast.unparse(base) for base in cls.bases]
    assert found, "no scenario test class found"
    deeper = {name: bases for name, bases in found.items() if bases != ["TxnstormTest"]}
    assert not deeper, f"a test class must inherit TxnstormTest alone: {deeper}"


def test_no_method_is_borrowed_by_assignment():
    """``trigger = OtherTest.trigger`` hid a story in another class: a shared step is a function."""
    for path in sorted((REPO / "tests").glob("*.py")):
        for cls in classes(path):
            for node in cls.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute):
                    owner = node.value.value
                    assert not (isinstance(owner, ast.Name) and owner.id[0].isupper()), (
                        f"{path.name}:{cls.name} borrows {ast.unparse(node.value)}"
                    )
