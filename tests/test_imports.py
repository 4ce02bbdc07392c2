"""sae's modules import each other without cycles.

A cycle makes import order matter and hides which module owns a rule
(evaluate and cli used to import each other).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "sae"
KNOWN = set()


def _graph() -> dict:
  modules = {p.stem for p in ROOT.glob("*.py")}
  graph = {}
  for name in modules:
    deps = set()
    for node in ast.walk(ast.parse((ROOT / f"{name}.py").read_text())):
      if isinstance(node, ast.ImportFrom) and node.module == "sae":
        deps |= {a.name for a in node.names if a.name in modules}
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sae."):
        deps.add(node.module.split(".")[1])
      elif isinstance(node, ast.Import):
        deps |= {a.name.split(".")[1] for a in node.names
                 if a.name.startswith("sae.")}
    graph[name] = deps & modules - {name}
  return graph


def _cycles(graph) -> set:
  found = set()

  def visit(start, node, path):
    for dep in graph[node]:
      if dep == start:
        found.add(frozenset(path))
      elif dep not in path:
        visit(start, dep, path + [dep])

  for name in graph:
    visit(name, name, [name])
  return found


def test_no_import_cycles():
  assert _cycles(_graph()) - KNOWN == set()


def test_the_check_sees_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == {
      frozenset({"a", "b", "c"})}
