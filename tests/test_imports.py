"""The import graph of `emojax`: no cycles, and the layers import downwards only.

Every `import` / `from ... import` of an emojax module counts, at module level or inside a function: an import
deferred into a function is still a dependency, and a deferred cycle is a circle a reader has to untangle.
"""

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "emojax"
# Tools that prepare data on disk (TFDS builders, landmark extraction in mediapipe's own venv): run once, by
# hand; the readers a training run uses must not need them.
PREPARATION_TOOLS = ("emojax.data.tfds_builders", "emojax.data.extract_landmarks")


def _module_name(path: Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
  """{module: the emojax modules it imports}, resolving `from package import submodule` to the submodule."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

  def resolve(name: str) -> str | None:
    while name and name not in modules:
      name = name.rpartition(".")[0]
    return name or None

  graph = {}
  for module, path in modules.items():
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          parts = package.split(".")[: len(package.split(".")) - node.level + 1]
          base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{alias.name}" for alias in node.names]
      else:
        continue
      targets |= {resolve(name) for name in names if name.startswith("emojax")}
    graph[module] = {t for t in targets if t and t != module}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan), each sorted."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in graph[node]:
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_the_cycle_finder_finds_a_cycle():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


def test_emojax_imports_in_no_circle():
  graph = import_graph()
  assert len(graph) > 50 and "emojax.data.fer2013" in graph
  found = cycles(graph)
  assert not found, "import cycles: " + "; ".join(
    " <-> ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found
  )


def test_layers_import_downwards():
  graph = import_graph()
  models_on_data = {
    m: sorted(t for t in targets if t == "emojax.data" or t.startswith("emojax.data."))
    for m, targets in graph.items()
    if m.startswith("emojax.models")
  }
  assert not {m: t for m, t in models_on_data.items() if t}, "models import the data layer"
  readers_on_tools = {
    m: sorted(t for t in targets if t in PREPARATION_TOOLS)
    for m, targets in graph.items()
    if m.startswith("emojax.data") and m not in PREPARATION_TOOLS
  }
  assert not {m: t for m, t in readers_on_tools.items() if t}, "readers import preparation tools"
