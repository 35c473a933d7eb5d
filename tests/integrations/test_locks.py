"""One poller per channel: the second holder is refused until the first lets go (or dies)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import Engine

from leadhub.integrations.locks import poller_lock


def test_a_second_poller_is_refused_while_the_first_runs(engine: Engine) -> None:
    with poller_lock(engine, "knowlarity") as first:
        assert first
        with poller_lock(engine, "knowlarity") as second:
            assert not second
        with poller_lock(engine, "meta") as other_channel:
            assert other_channel
    with poller_lock(engine, "knowlarity") as after:
        assert after


def test_a_killed_poller_does_not_keep_the_lock(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    script = textwrap.dedent(
        f"""
        import sys, time
        from leadhub.db.session import make_engine
        from leadhub.integrations.locks import poller_lock
        with poller_lock(make_engine({url!r}), "knowlarity") as held:
            print(held, flush=True)
            time.sleep(120)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"True"
        with poller_lock(engine, "knowlarity") as while_child_holds:
            assert not while_child_holds
    finally:
        child.kill()  # SIGKILL: no cleanup code runs in the poller
        child.communicate()
    with poller_lock(engine, "knowlarity") as after_kill:
        assert after_kill
