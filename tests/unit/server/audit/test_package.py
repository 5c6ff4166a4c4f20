import vaultgate.server.audit as audit


def test_public_names_are_sorted_and_importable() -> None:
    assert audit.__all__ == sorted(audit.__all__, key=lambda name: (not name.isupper(), name))
    for name in audit.__all__:
        assert getattr(audit, name) is not None


def test_the_writer_and_sink_are_public() -> None:
    assert {"AuditWriter", "AuditSink", "AuditEvent", "verify_chain", "list_events"} <= set(
        audit.__all__
    )
