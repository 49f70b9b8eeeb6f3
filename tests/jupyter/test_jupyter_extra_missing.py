"""``%load_ext fusion_jupyter`` without the [jupyter] extra prints one line naming it, not a traceback.

Each case runs in a fresh interpreter whose import system refuses one third-party
package (a meta path finder that raises ModuleNotFoundError for it, exactly what
Python raises when the package is absent); Fusion's own code runs unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
"""
LOAD_IN_A_SHELL = """
from IPython.core.interactiveshell import InteractiveShell

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "fusion_jupyter")
print("fuse registered:", "fuse" in ip.magics_manager.magics["cell"])
"""
LOAD_WITHOUT_IPYTHON = """
import fusion_jupyter

fusion_jupyter.load_ipython_extension(None)
print("imported")
"""
EXPECTED = 'fusion_jupyter needs the [jupyter] extra ({blocked} is not installed): pip install -e ".[jupyter]"'


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"IPYTHONDIR": str(tmp_path / "ipython"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


@pytest.mark.parametrize("blocked", ["ipywidgets", "nh3"])
def test_load_ext_without_a_package_of_the_extra_prints_one_line(tmp_path: Path, blocked: str) -> None:
    done = run_python(BLOCKER.format(blocked=blocked) + LOAD_IN_A_SHELL, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == EXPECTED.format(blocked=blocked)
    assert "fuse registered: False" in done.stdout


def test_without_ipython_the_package_imports_and_names_the_extra(tmp_path: Path) -> None:
    done = run_python(BLOCKER.format(blocked="IPython") + LOAD_WITHOUT_IPYTHON, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == EXPECTED.format(blocked="IPython")
    assert done.stdout.strip() == "imported"


def test_with_the_extra_the_magics_load(tmp_path: Path) -> None:
    done = run_python(LOAD_IN_A_SHELL, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "fuse registered: True" in done.stdout
