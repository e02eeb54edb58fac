from __future__ import annotations

from sqlalchemy import delete, update

from shipyard.app import Shipyard
from shipyard.stores.metadata.schema import audit_log


def _record(project: Shipyard, n: int) -> None:
    for i in range(n):
        with project.metadata.write() as conn:
            project.audit.record(
                conn,
                actor="alice",
                action="model.promote",
                entity_kind="model_version",
                entity_id=f"churn@{i + 1}",
                before={"stage": None},
                after={"stage": "production", "n": i},
            )


def test_entries_chain_and_read_back_in_order(project: Shipyard) -> None:
    _record(project, 5)
    entries = project.audit.list()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[4].after == {"stage": "production", "n": 4}
    assert entries[0].at.tzinfo is not None
    assert project.audit.list(after=3) == entries[3:]
    check = project.audit.verify()
    assert check.ok and check.entries == 5


def test_verify_detects_an_edited_entry(project: Shipyard) -> None:
    _record(project, 4)
    with project.metadata.write() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"))
    check = project.audit.verify()
    assert not check.ok
    assert check.broken_at == 2
    assert "changed" in (check.reason or "")


def test_verify_detects_a_deleted_entry(project: Shipyard) -> None:
    _record(project, 4)
    with project.metadata.write() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 3))
    check = project.audit.verify()
    assert check.broken_at == 3
    assert "missing" in (check.reason or "")


def test_an_entry_rolls_back_with_the_change_it_describes(project: Shipyard) -> None:
    try:
        with project.metadata.write() as conn:
            project.audit.record(
                conn, actor="a", action="x", entity_kind="run", entity_id="1", after={"a": 1}
            )
            raise ValueError("the change failed")
    except ValueError:
        pass
    assert project.audit.list() == []
    assert project.audit.verify().ok


def test_verify_detects_entries_cut_from_the_end(project: Shipyard) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    model = LinearRegression().fit(X, [0.0, 1.0, 2.0])
    for _ in range(2):
        project.models.log_model(model, "cut", input_example=X[:1], onnx=False)
    assert project.audit.verify().ok
    last = project.audit.list(limit=1000)[-1]
    assert last.action == "model.register" and last.entity_id == "cut@2"
    with project.metadata.write() as conn:  # the newest entry goes: the chain still chains
        conn.execute(delete(audit_log).where(audit_log.c.seq == last.seq))
    check = project.audit.verify()
    assert not check.ok
    assert check.broken_at == last.seq
    assert "cut@2" in (check.reason or "") and "missing" in (check.reason or "")


def test_verify_detects_a_promotion_request_whose_entry_was_cut(project: Shipyard) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    model = LinearRegression().fit(X, [0.0, 1.0, 2.0])
    project.models.log_model(model, "cut", input_example=X[:1], onnx=False)
    request = project.registry.request("cut@1", "staging", "try it")
    last = project.audit.list(limit=1000)[-1]
    assert last.action == "model.request"
    with project.metadata.write() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == last.seq))
    check = project.audit.verify()
    assert check.broken_at == last.seq
    assert request.id in (check.reason or "")
