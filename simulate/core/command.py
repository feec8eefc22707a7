"""How every command ends: a failed write, Ctrl-C / SIGTERM and a closed pipe each give one line and an exit status,
never a traceback (:func:`command`); a loop that stops at its safe points on Ctrl-C / SIGTERM
(:func:`deferred_stop`, :class:`Interrupted`).  The exit statuses are the project's, the same in every command.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import signal
import sys

__all__ = ["command", "Interrupted", "StopRequest", "deferred_stop", "sigterm_as_interrupt", "UNFINISHED",
           "INTERRUPTED", "WRITE_FAILED", "BROKEN_PIPE", "PROG", "RUN_STACK"]

#: exit status of a run that stopped early on request with its checkpoint written: run the same command
#: again to continue (EX_TEMPFAIL of sysexits.h; the same in every command of the project)
UNFINISHED = 75

#: exit status of a run stopped by Ctrl-C or SIGTERM before it could write a checkpoint (128 + SIGINT)
INTERRUPTED = 130
#: exit status after the reader of stdout went away (``... | head``): 128 + SIGPIPE
BROKEN_PIPE = 141
#: exit status of a run whose result could not be written (disk full, no permission): EX_IOERR of sysexits.h
WRITE_FAILED = 74


class Interrupted(KeyboardInterrupt):
    """Raised by a command that caught Ctrl-C / SIGTERM and saved its state: ``checkpoint`` names what to run
    again (None: nothing was saved)."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, signum: int = signal.SIGINT):
        super().__init__(checkpoint)
        self.checkpoint = checkpoint
        self.signum = signum


#: the program name of the running command (its top-level parser's ``prog``)
PROG: contextvars.ContextVar[str | None] = contextvars.ContextVar("prog", default=None)
#: the resources a running command holds until it ends (output locks), closed by :func:`command`
RUN_STACK: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar("run_stack", default=None)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an exception so that ``finally`` blocks (locks, temporaries, workers) run."""

    signum = signal.SIGTERM


def _on_sigterm(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises an exception (a KeyboardInterrupt) instead of killing the process
    at once, so that cleanup runs; outside the main thread, nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """What :func:`deferred_stop` has seen: ``signum`` of the first Ctrl-C / SIGTERM, else None."""

    signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_stop():
    """Within the block, Ctrl-C and SIGTERM only set the yielded :class:`StopRequest`; the loop inside checks
    it at its safe points (a chunk boundary, a training step), saves its checkpoint and raises
    :class:`Interrupted`. A second Ctrl-C interrupts at once. Outside the main thread nothing changes."""
    import threading

    req = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return

    def handler(signum, frame):
        if req.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        req.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield req
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def command(main):
    """Decorate a command's ``main(argv=None) -> int`` with the endings every command shares:

    * a result that cannot be written (:class:`simulate.provenance.WriteError`: disk full, no permission):
      ``prog: error: cannot write 'PATH': reason``, exit :data:`WRITE_FAILED` (74); the previous file stays;
    * Ctrl-C or SIGTERM: one line, exit :data:`UNFINISHED` (75) when the command saved a checkpoint
      (it raised :class:`Interrupted` naming it: "run the same command again to resume") else
      :data:`INTERRUPTED` (130); no traceback;
    * a closed pipe on stdout (``... | head``): the rest of the output is dropped silently, exit 141
      (128 + SIGPIPE, what a program killed by the closed pipe reports), no ``BrokenPipeError`` message.
    """
    from .provenance import WriteError

    fallback = "python -m " + main.__module__.replace("__main__", "").rstrip(".")

    @functools.wraps(main)
    def wrapper(argv=None) -> int:
        PROG.set(None)
        try:
            with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
                token = RUN_STACK.set(stack)
                try:
                    return main(argv)
                finally:
                    RUN_STACK.reset(token)
        except WriteError as err:
            prog = PROG.get() or fallback
            print(f"{prog}: error: {err}", file=sys.stderr)
            return WRITE_FAILED
        except KeyboardInterrupt as exc:
            prog = PROG.get() or fallback
            name = "SIGTERM" if getattr(exc, "signum", signal.SIGINT) == signal.SIGTERM else "Ctrl-C"
            ckpt = getattr(exc, "checkpoint", None)
            if ckpt is not None:
                print(f"{prog}: stopped by {name}; checkpoint written to {str(ckpt)!r}: run the same command "
                      f"again to resume", file=sys.stderr)
                return UNFINISHED
            print(f"{prog}: stopped by {name} before the end (no checkpoint to resume from)", file=sys.stderr)
            return INTERRUPTED
        except BrokenPipeError:
            _silence_stdout()
            return BROKEN_PIPE

    return wrapper


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the interpreter's final flush stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
