"""F3 (client side): ``Client.close()`` (and the ``atexit`` close, budget 1 s) waits at most
half its budget for the registers in flight, then deregisters only what its list holds; a
register still in flight then (forwarded to a stalled owner: its server's fallback answers
at the end of its 0.7 s wait; or failed over from a silent server) is applied afterwards
and never deregistered: the instance of a client that closed stays listed (healthy for
``unhealthy_after``, 15 s; evicted after 30 s).

Where: session.py ``_list_registrations`` (the list answers at ``until`` without the
registers in flight, review55 F3's fix bounded by ``wait``), client.py ``close`` (list,
deregister the listed, ``Shutdown``: the register's answer is never read; ``abandon``
clears ``_register_tries`` and ``_undo_later``).  The session case is documented
(DISTRO.md "Sessions": "An instance whose registration was still in flight elsewhere is
evicted when the session, no longer renewed, expires"); the per-instance case is the same
outcome, not documented.

Steps (fake clock, one server a, attempt 1 s; the close as ``Client.close`` runs it with the
``atexit`` budget, ``EXIT_CLOSE_TIMEOUT`` = 1 s, so the list waits 0.5 s):
1. The provider registers instance 0 (a's owner is stalled: a forwards it and, at the end
   of its wait, 0.7 s, applies it itself and answers OK).
2. At once the process is told to stop (SIGTERM -> atexit -> close): ListRegistrations
   (closing, wait 0.5 s).
3. At 0.5 s the list is answered without instance 0 (its register is in flight); the
   close deregisters what is listed (nothing) and shuts the session down.
4. At 0.7 s a applies the register (and answers, unread).

What should happen: the close deregisters every instance a register of which may have
been applied (as ``_undo_if_last_word`` does for a deregister made while the register is
in flight), after the register's copies are void (its last attempt's deadline), within
the close's budget; or says it could not.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import r72lib  # noqa: E402, F401  (tests/client on the path)
from session_harness import Handle, Harness, registration  # noqa: E402

from meshreg.client.actions import Complete  # noqa: E402
from meshreg.client.commands import Deregister, ListRegistrations, Register  # noqa: E402

EXIT_CLOSE_TIMEOUT = 1.0  # s; client.py, the atexit close's budget


def test_r72_a_register_in_flight_at_close_is_deregistered_by_the_close() -> None:
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    (register,) = h.unanswered("register")
    listed = Handle("list")
    h.do(ListRegistrations(listed, closing=True, wait=EXIT_CLOSE_TIMEOUT / 2))
    answered_register = False
    while h.outcome(listed) is None and h.now_ms < 3000:
        h.advance(10)
        if h.now_ms >= 700 and not answered_register:
            h.reply(register)  # a's fallback: applied, OK
            answered_register = True
    done = h.outcome(listed)
    assert isinstance(done, Complete), done
    closed_at = h.now_ms
    for key, iid, fields in done.result:  # the close deregisters what is listed ...
        handle = Handle(f"d{iid}")
        h.do(Deregister(key, iid, fields, EXIT_CLOSE_TIMEOUT, handle))
        h.answer_all("deregister")
    # ... then Shutdown: nothing after this is sent or read
    deregistered = [s for s in h.sent if s.op == "deregister" and s.fields["ip"] == reg.iid.ip]
    applied_at = 700
    assert deregistered, (
        f"the close ended at {closed_at} ms with nothing deregistered; the register in flight "
        f"(sent at 0 ms, deadline {register.fields['deadline']} ms) is applied at "
        f"{applied_at} ms: the closed client's instance stays listed until evicted"
    )
