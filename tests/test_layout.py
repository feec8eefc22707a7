"""The house of docs/architecture.md: former module paths are aliases of the same module objects, nothing
stands at an old path, and the old ``python -m`` commands still run."""

import contextlib
import importlib
import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import simulate  # noqa: F401  (installs the simulate aliases)
import theory  # noqa: F401  (installs the theory aliases)
from theory.core.aliases import MOVED

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_name_is_the_new_module(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])
    assert not (ROOT / (old.replace(".", "/") + ".py")).exists(), f"a file stands at the old path of {old}"


def test_family_packages_reexport_their_module():
    import simulate.committee
    import simulate.committee.ode
    import simulate.structured
    import simulate.structured.ode
    import simulate.sweep
    import simulate.sweep.driver
    import theory.committee
    import theory.committee.ode
    import theory.structured
    import theory.structured.ode

    for pkg, mod in [(theory.committee, theory.committee.ode), (theory.structured, theory.structured.ode),
                     (simulate.committee, simulate.committee.ode), (simulate.structured, simulate.structured.ode),
                     (simulate.sweep, simulate.sweep.driver)]:
        for name in mod.__all__:
            assert getattr(pkg, name) is getattr(mod, name), (pkg.__name__, name)


# runpy warns when the module it runs as __main__ is imported already (here by the tests above); a fresh
# process, as ``python -m`` starts, has no such module
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")
@pytest.mark.parametrize("command", ["simulate.ode", "simulate.mc", "simulate.compare", "simulate.committee",
                                     "simulate.mc_committee", "simulate.structured", "simulate.sweep",
                                     "simulate.tradeoff", "simulate.protocol", "simulate.scenarios"])
def test_old_commands_run(command, monkeypatch):
    """``python -m <command> --help`` through runpy, as ``python -m`` does in a fresh process (where the old
    name is not imported yet): the usage names the command."""
    monkeypatch.setattr(sys, "argv", [command, "--help"])
    monkeypatch.delitem(sys.modules, command, raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        runpy.run_module(command, run_name="__main__", alter_sys=True)
    assert exc.value.code == 0 and f"python -m {command}" in out.getvalue(), out.getvalue()[:200]


def test_old_command_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "simulate.mc", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "python -m simulate.mc" in out.stdout, out.stderr


def test_structured_theory_tests_run_without_numba():
    """Without numba only the Monte Carlo tests of tests/test_structured.py are skipped, not its theory tests."""
    code = ("import sys\nsys.modules['numba'] = None\nimport pytest\n"
            "raise SystemExit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/test_structured.py', '-k',"
            " 'linf_training_closure or centred_moment or linf_norm_law']))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0 and "7 passed, 1 skipped" in last, out.stdout[-2000:] + out.stderr[-2000:]
