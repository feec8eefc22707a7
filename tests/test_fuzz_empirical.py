"""Bad input to every ``python -m empirical.*`` command, in-process through ``main(argv)``.

Every case must end with exit status 2 and exactly one line on stderr, ``prog: error: ...`` naming the
parameter, no traceback, and nothing written.  The cases:

* every numeric flag of every command (found by reading its argparse parser) with non-numbers, the empty
  string, 0, -1, nan, +-inf, 1e308 and 10**30;
* the budget, threat, scheme, device, seed-list and --extra strings with malformed values;
* paths: an output that is a folder, lies under a regular file or is empty; missing data folders, a data
  folder that is a file; missing, empty, truncated, corrupt or wrong model and checkpoint files.

A value that a flag accepts must still not start heavy work: each command's base arguments fail on
purpose right after parsing (a missing data folder or model file, or an impossible --extra), so an
accepted value ends with that parameter's one-line error instead.  The whole file runs in seconds.
"""

from __future__ import annotations

import argparse
import importlib
import os

import pytest

torch = pytest.importorskip("torch")

from empirical.cli import COMMANDS  # noqa: E402

NUMBERS = ["abc", "", "0", "-1", "nan", "inf", "-inf", "1e308", "1" + "0" * 30]


@pytest.fixture
def env(tmp_path):
    """Files the base arguments need: a valid model, a corrupt one, a run folder, a regular file."""
    from empirical.models import MnistCNN

    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    torch.save(MnistCNN().state_dict(), good)
    runs = tmp_path / "runs" / "natural"
    runs.mkdir(parents=True)
    torch.save(MnistCNN().state_dict(), runs / "model.pt")
    raw = good.read_bytes()
    files = {"good": good, "runs": tmp_path / "runs", "missing_data": tmp_path / "no_data",
             "out": tmp_path / "out", "regular": tmp_path / "regular.txt"}
    files["regular"].write_text("a regular file\n")
    for name, data in {"truncated": raw[: len(raw) // 2], "corrupt": os.urandom(2048), "empty": b"",
                       "text": b"not a torch file\n"}.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
        files[name] = tmp_path / f"{name}.pt"
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    files["tensor"] = tmp_path / "tensor.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "model_name": "mnist_cnn"}, tmp_path / "wrong_arch.pt")
    files["wrong_arch"] = tmp_path / "wrong_arch.pt"
    return files


def base(command: str, f) -> tuple[list[str], str]:
    """Arguments under which ``command`` parses and then fails at once, and the flag that failure names."""
    data = ["--data-dir", str(f["missing_data"])]
    return {
        "train": (["--out", str(f["out"] / "run"), *data], "--data-dir"),
        "evaluate": (["--weights", str(f["good"]), "--test-limit", "2", *data], "--data-dir"),
        "reproduce": (["--out", str(f["out"] / "t.json"), "--runs", str(f["out"] / "runs"), "--extra=--epochs 0"],
                      "--extra"),
        "budget_curves": (["--runs", str(f["runs"]), "--out", str(f["out"] / "c.json"), *data], "--data-dir"),
        "check_linf train": (["train", "--out", str(f["out"] / "run"), *data], "--data-dir"),
        "check_linf eval": (["eval", "--weights", str(f["missing_data"] / "m.pt"), "--out", str(f["out"] / "e.json")],
                            "--weights"),
        "online": (["--out", str(f["out"] / "o"), *data], "--data-dir"),
    }[command]


VARIANTS = ["train", "evaluate", "reproduce", "budget_curves", "check_linf train", "check_linf eval", "online"]


def _main(command: str):
    return importlib.import_module(f"empirical.{command.split()[0]}").main


def _parser(command: str) -> argparse.ArgumentParser:
    mod = importlib.import_module(f"empirical.{command.split()[0]}")
    p = mod.build_parser()
    if " " in command:
        p = p._subparsers._group_actions[0].choices[command.split()[1]]
    return p


def _numeric_flags(command: str) -> list[str]:
    """Options whose argparse type is a number (int, float or a bounded number)."""
    out = []
    for a in _parser(command)._actions:
        name = getattr(a.type, "__name__", "")
        if a.option_strings and name in ("int", "float"):
            out.append(a.option_strings[-1])
    return out


def _run(command: str, argv: list[str], capsys) -> tuple[int, list[str], str]:
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:
            _main(command)(argv)
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    return exc.value.code, captured.err.strip().splitlines(), captured.out


def _check(command, argv, flags, capsys, out_dir):
    code, err, out = _run(command, argv, capsys)
    assert code == 2, (argv, code, err)
    assert len(err) == 1, f"{argv}: {len(err)} lines on stderr:\n" + "\n".join(err[-20:])
    assert ": error: " in err[0] and "Traceback" not in err[0], (argv, err)
    assert any(flag in err[0] for flag in flags), f"{argv}: the message does not name {flags}: {err[0]}"
    assert not out.strip(), (argv, out)
    if out_dir.exists():
        assert not any(p.is_file() for p in out_dir.rglob("*")), f"{argv} wrote {list(out_dir.rglob('*'))}"


def test_every_command_is_fuzzed():
    assert {v.split()[0] for v in VARIANTS} == set(COMMANDS)


@pytest.mark.parametrize("command", VARIANTS)
def test_numeric_flags(command, env, capsys):
    argv0, sentinel = base(command, env)
    flags = _numeric_flags(command)
    assert flags, f"{command} has no numeric flag?"
    n = 0
    for flag in flags:
        for value in NUMBERS:
            _check(command, [*argv0, f"{flag}={value}"], (flag, sentinel), capsys, env["out"])
            n += 1
    assert n >= 9


STRINGS = {
    "train": [("--eps", v) for v in ("linf", "linf=", "=1", "linf=abc", "linf=nan", "linf=-1", "linf=0", "linf=1e308",
                                      "rt=30", "rt=a/b", "rt=400/3", "l9=1", "linf=0.1,linf=0.2", "")]
             + [("--threats", v) for v in ("l7", "linf,linf", "affine:linf:l1")]
             + [("--scheme", "nonsense"), ("--optimizer", "lbfgs"), ("--device", "gpu"), ("--device", "cuda:99"),
                ("--device", ""), ("--dataset", "mnist37"), ("--model", "vgg")]
             + [("--scheme=adv --threats", "linf,l2"), ("--scheme=max --threats", "linf"),
                ("--scheme=msd --threats", "linf,rt"), ("--amp", "on")],
    "evaluate": [("--eps", "linf"), ("--eps", "l2=inf"), ("--threats", "l7"), ("--threats", ","),
                 ("--threats", "affine:l1:rt"), ("--threats", "affine:rt:l1:nan"), ("--strength", "max"),
                 ("--device", "tpu"), ("--dataset", "imagenet"), ("--model", "vgg")],
    "reproduce": [("--schemes", "XYZ"), ("--schemes", ","), ("--extra", "--nonsense 3"), ("--extra", "--lr nan"),
                  ("--preset", "huge"), ("--device", "gpu")],
    "budget_curves": [("--eps", "linf=0.1;l1=5"), ("--eps", "linf=-0.1"), ("--threats", "rt"), ("--threats", ","),
                      ("--strength", "x")],
    "check_linf train": [("--eps", "l2=1"), ("--eps", "linf=2"), ("--device", "x")],
    "check_linf eval": [("--eps", "rt=30")],
    "online": [("--seeds", v) for v in ("a,b", "", "-1", "1e308", "0,1.5")],
}


@pytest.mark.parametrize("command", VARIANTS)
def test_string_flags(command, env, capsys):
    argv0, sentinel = base(command, env)
    for flag, value in STRINGS[command]:
        extra = flag.split(" ")
        argv = [*argv0, *extra[:-1], f"{extra[-1]}={value}"]
        _check(command, argv, (extra[-1], sentinel, "--threats", "--amp", "--eps"), capsys, env["out"])


def _replace(argv, flag, value):
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
        return argv
    return [*argv, flag, value]


OUT_FLAG = {"train": "--out", "evaluate": "--out", "reproduce": "--out", "budget_curves": "--out",
            "check_linf train": "--out", "check_linf eval": "--out", "online": "--out"}


@pytest.mark.parametrize("command", VARIANTS)
def test_paths(command, env, capsys, tmp_path):
    argv0, sentinel = base(command, env)
    folder_out = command in ("train", "check_linf train")
    bad_out = [str(env["regular"] / "x"), ""] + ([str(env["regular"])] if folder_out else [str(tmp_path)])
    if command == "online":  # --out is a stem: <stem>.json and <stem>.csv must be files
        (tmp_path / "stem.json").mkdir()
        bad_out[-1] = str(tmp_path / "stem")
    for value in bad_out:
        _check(command, _replace(argv0, "--out", value), ("--out",), capsys, env["out"])
    if "--data-dir" in argv0:
        _check(command, _replace(argv0, "--data-dir", str(env["regular"])), ("--data-dir",), capsys, env["out"])
    if os.geteuid() != 0:  # root writes into read-only folders: the case cannot be made there
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            _check(command, _replace(argv0, "--out", str(ro / "x")), ("--out",), capsys, env["out"])
        finally:
            ro.chmod(0o700)


BAD_MODELS = ("truncated", "corrupt", "empty", "text", "tensor", "wrong_arch", "missing_data", "runs")


@pytest.mark.parametrize("command, flag", [("evaluate", "--weights"), ("check_linf eval", "--weights")])
def test_bad_model_files(command, flag, env, capsys):
    argv0, _ = base(command, env)
    for name in BAD_MODELS:
        _check(command, _replace(argv0, flag, str(env[name])), (flag,), capsys, env["out"])


def test_bad_run_folders_and_checkpoints(env, capsys, tmp_path, data_dir):
    """budget_curves over corrupt model files; train resuming from a corrupt or foreign checkpoint, and
    --evaluate-only on a corrupt result: one line each (these cases get past the data folder)."""
    for name in ("truncated", "corrupt", "empty", "tensor", "wrong_arch"):
        runs = tmp_path / f"runs_{name}" / "natural"
        runs.mkdir(parents=True)
        (runs / "model.pt").write_bytes(env[name].read_bytes())
        argv0, _ = base("budget_curves", env)
        _check("budget_curves", _replace(argv0, "--runs", str(runs.parent)), ("--runs",), capsys, env["out"])
    empty_runs = tmp_path / "empty_runs"
    empty_runs.mkdir()
    _check("budget_curves", _replace(base("budget_curves", env)[0], "--runs", str(empty_runs)), ("--runs",), capsys,
           env["out"])
    tiny = ["--train-limit", "32", "--batch-size", "32", "--epochs", "1", "--quiet", "--data-dir", str(data_dir)]
    for name in ("truncated", "corrupt", "empty", "tensor"):
        run = tmp_path / f"run_{name}"
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(env[name].read_bytes())
        _check("train", [*tiny, "--out", str(run)], ("--out",), capsys, tmp_path / "nothing")
        (run / "checkpoint.pt").unlink()
        (run / "result.json").write_text("{not json")
        _check("train", [*tiny, "--out", str(run), "--evaluate-only", "--test-limit", "2"], ("--out",), capsys,
               tmp_path / "nothing")


def test_help_states_each_default_once_and_whole_sentences(capsys):
    for command in VARIANTS + ["check_linf"]:
        p = importlib.import_module("empirical.check_linf").build_parser() if command == "check_linf" else _parser(command)
        text = p.format_help()
        for a in p._actions:
            assert (a.help or "").count("[default:") <= 1, (command, a.option_strings, a.help)
            assert "(default:" not in (a.help or "") or "[default:" not in (a.help or ""), (command, a.help)
        assert p.description and p.description.rstrip().endswith("."), (command, p.description)
        for a in p._actions:  # every bounded flag states its range and the reason for it
            if getattr(a.type, "allowed", None):
                assert "allowed:" in a.help and ";" in a.type.allowed, (command, a.option_strings, a.help)
        assert "%(default)" not in text


def test_the_check_catches_a_usage_dump_and_a_traceback(env, capsys, monkeypatch):
    """The same check fails for plain argparse (usage before the error) and for a model loader that lets
    torch's exception through (a traceback, not exit 2)."""
    import empirical.checkpoint as CK
    import empirical.cli as CLI

    argv0, sentinel = base("evaluate", env)
    with monkeypatch.context() as m:
        m.setattr(CLI, "ArgumentParser", argparse.ArgumentParser)
        with pytest.raises(AssertionError, match="lines on stderr"):
            _check("evaluate", [*argv0, "--test-limit=0"], ("--test-limit",), capsys, env["out"])
    with monkeypatch.context() as m:
        m.setattr(CK, "read_torch_file", lambda path, map_location="cpu", what="": torch.load(path, weights_only=False))
        with pytest.raises(Exception) as exc:
            _check("evaluate", _replace(argv0, "--weights", str(env["corrupt"])), ("--weights",), capsys, env["out"])
        assert not isinstance(exc.value, SystemExit) or exc.value.code != 2
