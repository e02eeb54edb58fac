"""The cyclic GC pause around bulk reads: nests, and restores what it found."""

from __future__ import annotations

import gc
import threading

import pytest

from shipyard.services.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def _collector_back_on() -> object:
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_back_on_after_nested_pauses() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_still_turns_the_collector_back_on() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_threads_share_one_pause_the_last_to_leave_turns_it_back_on() -> None:
    gc.enable()
    inside = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            leave.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(10)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread is still inside
    leave.set()
    other.join(10)
    assert gc.isenabled()
