"""The ``--faults`` grammar of the sandboxes: what one forced misbehaviour is, and how a
spec such as ``429:2x3,503,slow:40`` reads. Apart from the server so ``okr-sync --help``
can show the grammar without loading a web server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One forced misbehaviour for a request under ``path``.

    ``kind`` is ``status`` (answer ``status`` with ``headers``), ``slow`` (answer for real
    after ``seconds``), ``drop`` (close the connection without an answer), ``truncate``
    (the real answer with its body cut in half), ``expire`` (end every session the
    emulator issued, then answer: the client must log in again), ``mutate`` (change
    ``count`` records at the source now, then answer: records change while a sync pages)
    or ``tie`` (give ``count`` records one shared modification time now, then answer).
    """

    status: int = 0
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    kind: str = "status"
    seconds: float = 0.0
    count: int = 0


FAULT_SPEC_HELP = (
    "comma-separated faults, each KIND[:ARG][xN][@PATH]: an HTTP status such as 429, 500 or "
    "503 (ARG: a Retry-After in seconds), slow:SECONDS, drop, truncate, expire (sessions "
    "end), mutate:COUNT (records change) or tie:COUNT (records share one timestamp); xN "
    "repeats it N times, @PATH limits it to requests under that path. "
    "Example: 429:2x3,503,slow:40,drop,expire,mutate:5,tie:3000"
)

_FAULT = re.compile(r"([a-z]+|\d+)(?::([^x]*))?(?:x(.+))?")


def parse_faults(spec: str) -> list[Fault]:
    """Read a ``--faults`` spec (see FAULT_SPEC_HELP); raises ValueError naming the bad part."""
    faults: list[Fault] = []
    for part in filter(None, (item.strip() for item in spec.split(","))):
        body, _, path = part.partition("@")
        match = _FAULT.fullmatch(body)
        kind, arg, times_text = (g or "" for g in match.groups()) if match else (body, "", "")
        try:
            times = int(times_text) if times_text else 1
            if kind in ("drop", "truncate", "expire") and arg:
                raise ValueError(f"{kind} takes no argument")
            if kind in ("slow", "drop", "truncate", "expire"):
                seconds = float(arg) if kind == "slow" else 0.0
                fault = Fault(path=path, kind=kind, seconds=seconds)
            elif kind in ("mutate", "tie"):
                fault = Fault(path=path, kind=kind, count=int(arg or 1))
            else:
                status = int(kind)
                if not 400 <= status <= 599:
                    raise ValueError(f"{status} is not an error status")
                headers = (("Retry-After", str(float(arg)).removesuffix(".0")),) if arg else ()
                fault = Fault(status=status, path=path, headers=headers)
        except ValueError as exc:
            raise ValueError(f"fault {part!r}: {exc}; expected {FAULT_SPEC_HELP}") from None
        retry_after = [float(value) for name, value in fault.headers if name == "Retry-After"]
        if (
            times < 1
            or (kind == "slow" and not 0 < fault.seconds < math.inf)  # nan fails this too
            or (kind in ("mutate", "tie") and fault.count < 1)
            or any(not 0 <= wait < math.inf for wait in retry_after)
        ):
            raise ValueError(f"fault {part!r}: counts and delays must be positive and finite")
        faults += [fault] * times
    return faults
