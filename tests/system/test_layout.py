"""test_layout.py — the include check of `make test` (scripts/check-includes.py) passes on
this tree and fails on a tree that breaks the architecture: a cycle between modules, a
lower layer including a higher one, a common/ header named without its folder, one
program including the other's header."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "scripts", "check-includes.py")


def run(root):
    return subprocess.run(["/usr/bin/python3", CHECK, root], capture_output=True, text=True)


def tree(tmp, files):
    for d in ("common/core", "common/kie", "worker", "cli"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    for path, text in files.items():
        with open(os.path.join(tmp, path), "w") as f:
            f.write(text)
    return tmp


def test_this_tree_is_clean():
    p = run(ROOT)
    assert p.returncode == 0, p.stdout
    assert "no include cycle" in p.stdout


def test_a_cycle_is_found(tmp_path):
    t = tree(str(tmp_path), {
        "common/kie/a.h": '#include "kie/b.h"\n', "common/kie/b.h": '#include "kie/a.h"\n',
        "common/core/util.h": ""})
    p = run(t)
    assert p.returncode == 1
    assert "include cycle: kie/a -> kie/b -> kie/a" in p.stdout


def test_an_arrow_up_the_layers_is_refused(tmp_path):
    t = tree(str(tmp_path), {"common/core/metrics.c": '#include "kie/job.h"\n',
                             "common/kie/job.h": '#include "core/metrics.h"\n',
                             "common/core/metrics.h": ""})
    p = run(t)
    assert p.returncode == 1
    assert "core/ includes kie/job.h of kie/, a higher layer" in p.stdout
    assert "include cycle: core/metrics -> kie/job -> core/metrics" in p.stdout


def test_folderless_names_and_programs_sharing_headers_are_refused(tmp_path):
    t = tree(str(tmp_path), {"common/kie/job.c": '#include "util.h"\n',
                             "worker/worker.h": "", "cli/main.c": '#include "worker.h"\n',
                             "cli/cli.c": '#include "../worker/worker.h"\n'})
    p = run(t)
    assert p.returncode == 1
    assert 'includes "util.h" without its folder' in p.stdout
    assert "which cli/ does not have" in p.stdout
    assert 'includes "../worker/worker.h", not a module of common/' in p.stdout
