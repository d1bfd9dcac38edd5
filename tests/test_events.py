"""The event bus: subscribers see every event in order, can leave, and a broken subscriber
neither stops the others nor the run that emits."""

from __future__ import annotations

from structlog.testing import capture_logs

from dagtier.events import Event, EventBus, NodeStarted, PolicyDecision


def _events() -> list[Event]:
    return [
        NodeStarted(run_id="r", node_id="a", at=1.0),
        PolicyDecision(run_id="r", node_id="a", task_key="wf/a", tier=2, reason="cascade"),
        NodeStarted(run_id="r", node_id="b", at=2.0),
    ]


def test_subscribers_get_every_event_in_emit_order() -> None:
    """Each subscriber sees each event once, in order; subscribers are called in the order
    they joined."""
    seen: list[tuple[str, Event]] = []
    bus = EventBus([lambda e: seen.append(("first", e))])
    bus.subscribe(lambda e: seen.append(("second", e)))
    for event in _events():
        bus.emit(event)
    assert seen == [(who, e) for e in _events() for who in ("first", "second")]


def test_a_subscriber_that_leaves_gets_nothing_more() -> None:
    """The function subscribe returns removes that subscriber; an empty bus is falsy (the
    executor skips building events nobody reads)."""
    seen: list[Event] = []
    bus = EventBus()
    assert not bus
    leave = bus.subscribe(seen.append)
    assert bus
    first, *rest = _events()
    bus.emit(first)
    leave()
    for event in rest:
        bus.emit(event)
    assert seen == [first]
    assert not bus


def test_a_broken_subscriber_is_logged_and_the_others_still_hear() -> None:
    """An exception in one subscriber is logged with the subscriber named, and the
    subscribers after it still get the event."""

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[Event] = []
    bus = EventBus([broken, seen.append])
    with capture_logs() as logs:
        for event in _events():
            bus.emit(event)
    assert seen == _events()
    failures = [entry for entry in logs if entry["event"] == "event subscriber failed"]
    assert len(failures) == len(_events())
    assert "broken" in failures[0]["subscriber"]
    assert failures[0]["log_level"] == "error"
