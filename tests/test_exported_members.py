"""The public names are a contract: adding or removing one is a deliberate change."""

import logfire_io


def test_exported_members() -> None:
    assert logfire_io.__all__ == [
        "MAX_LIMIT",
        "AsyncLogfireQueryClient",
        "AuthenticationError",
        "ConfigurationError",
        "ExportResult",
        "IncompleteResponseError",
        "JSONDecodeWarning",
        "LogfireIOError",
        "LogfireQueryClient",
        "QueryExecutionError",
        "QueryHTTPError",
        "QueryRequestError",
        "RateLimitError",
        "ReadPlan",
        "Retry",
        "RowCapError",
        "Slice",
        "SliceError",
        "TooDenseError",
        "TransportError",
        "UnexpectedResponseError",
        "export",
        "plan",
        "plan_slices",
        "read_logfire",
        "read_logfire_arrow",
        "read_logfire_pandas",
        "scan_logfire",
    ]
    for name in logfire_io.__all__:
        assert hasattr(logfire_io, name)
    assert not hasattr(logfire_io, "ReadStats")  # issue 13: nothing public took it; it stays internal
    errors = [getattr(logfire_io, n) for n in logfire_io.__all__ if n.endswith("Error")]
    assert all(issubclass(e, logfire_io.LogfireIOError) for e in errors)
