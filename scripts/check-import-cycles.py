#!/usr/bin/env python3
"""Fails if modules of one crate import each other in a cycle.

Reads `crate::` and `super::` paths outside test code, maps each to the
module it names, and looks for cycles among modules that are not parent and
child (a parent declaring its children, and children using what the parent
defines, is how Rust modules are built). A cycle is cut by moving one type or
constant to where it belongs.
"""
import os
import re
import sys

CRATES = ["edge/src", "fanout/src", "fanout/log/src", "proto/src", "bench/src"]


def modules(root):
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs") or name.endswith("_tests.rs"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)[:-3]
            rel = rel.replace("/mod", "").replace("/", "::")
            if rel in ("lib", "main"):
                rel = ""
            with open(path, encoding="utf-8") as f:
                found[rel] = f.read().split("#[cfg(test)]")[0]
    return found


def imports(found):
    graph = {module: set() for module in found}
    for module, source in found.items():
        parent = "::".join(module.split("::")[:-1])
        paths = re.findall(r"\bcrate::([a-z_]+(?:::[a-z_]+)*)", source)
        paths += [(parent + "::" + p) if parent else p for p in re.findall(r"\bsuper::([a-z_]+(?:::[a-z_]+)*)", source)]
        for path in paths:
            parts = path.split("::")
            for end in range(len(parts), 0, -1):
                target = "::".join(parts[:end])
                if target in found and target != module:
                    related = target.startswith(module + "::") or module.startswith(target + "::")
                    if not related and "" not in (module, target):
                        graph[module].add(target)
                    break
    return graph


def cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


failed = False
for root in CRATES:
    if not os.path.isdir(root):
        continue
    found = cycle(imports(modules(root)))
    if found:
        failed = True
        print(f"{root}: import cycle: {' -> '.join(found)}", file=sys.stderr)
if failed:
    sys.exit(1)
print("no import cycles in " + ", ".join(CRATES))
