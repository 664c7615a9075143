#!/usr/bin/python3
"""check-includes.py — the include graph of the C sources keeps the architecture: no
cycle between modules, and arrows run one way, from the programs down to the base.

A module is a .c/.h pair (common/<subsystem>/<name>, worker/<name>, cli/<name>). The
subsystems of common/ are layered, lowest first (docs/architecture.md says why each
line is where it is):

    core < net < redis < config < kie < store < pool < ops < programs (worker/, cli/)

A module may include modules of its own layer or below, never above; inside common/ a
header is named with its folder ("core/util.h"); worker/ and cli/ may include their own
headers by name, and never each other's. build/gen/lua_scripts.h (the embedded Redis
scripts of pool/ and ops/) counts as a pool module.

usage: scripts/check-includes.py [ROOT]   exit 0 when clean, 1 with one line per problem
"""
import os
import re
import sys

LAYERS = ["core", "net", "redis", "config", "kie", "store", "pool", "ops"]
PROGRAMS = ["worker", "cli"]
GENERATED = {"lua_scripts": ("pool", "lua_scripts")}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def rank(layer):
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


def sources(root):
    """(folder, path) of every C source and header the graph covers."""
    out = []
    common = os.path.join(root, "common")
    for sub in sorted(os.listdir(common)):
        d = os.path.join(common, sub)
        if os.path.isdir(d):
            out += [(sub, os.path.join(d, f)) for f in sorted(os.listdir(d))
                    if f.endswith((".c", ".h"))]
    for prog in PROGRAMS:
        d = os.path.join(root, prog)
        out += [(prog, os.path.join(d, f)) for f in sorted(os.listdir(d))
                if f.endswith((".c", ".h"))]
    return out


def check(root):
    problems, graph = [], {}
    for folder, path in sources(root):
        name = os.path.splitext(os.path.basename(path))[0]
        mod = (folder, name)
        if folder not in LAYERS and folder not in PROGRAMS:
            problems.append(f"{path}: common/{folder}/ is not a layer this check knows "
                            f"(add it to LAYERS in scripts/check-includes.py, and to "
                            f"docs/architecture.md)")
            continue
        graph.setdefault(mod, set())
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            base = os.path.splitext(os.path.basename(inc))[0]
            if "/" in inc:
                tfolder = inc.split("/")[0]
                if tfolder not in LAYERS:
                    problems.append(f"{path}: includes \"{inc}\", not a module of common/")
                    continue
                target = (tfolder, base)
            elif base in GENERATED:
                target = GENERATED[base]
            elif folder in PROGRAMS:
                target = (folder, base)
                if not os.path.exists(os.path.join(root, folder, inc)):
                    problems.append(f"{path}: includes \"{inc}\", which {folder}/ does "
                                    f"not have (a common/ header is named with its folder)")
                    continue
            else:
                problems.append(f"{path}: includes \"{inc}\" without its folder (write "
                                f"\"<subsystem>/{inc}\")")
                continue
            if target == mod:
                continue
            tl = target[0]
            if folder in PROGRAMS and tl in PROGRAMS and tl != folder:
                problems.append(f"{path}: {folder}/ includes {inc} of {tl}/: programs share "
                                f"only common/")
            elif folder in LAYERS and rank(tl) > rank(folder):
                problems.append(f"{path}: {folder}/ includes {inc} of {tl}/, a higher layer "
                                f"({' < '.join(LAYERS)})")
            graph[mod].add(target)
    problems += cycles(graph)
    return problems


def cycles(graph):
    """One line per cycle found (each reported once, from its smallest module)."""
    out, seen = [], set()
    state = {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cyc = stack[stack.index(t):]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    names = [f"{a}/{b}" for a, b in cyc + [t]]
                    out.append("include cycle: " + " -> ".join(names))
            elif t in graph and state.get(t) is None:
                visit(t, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            visit(m, [])
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check-includes: {len(problems)} problem(s)")
        return 1
    n = len(sources(root))
    print(f"check-includes: {n} files, no include cycle, every arrow points down "
          f"({' < '.join(LAYERS)} < programs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
