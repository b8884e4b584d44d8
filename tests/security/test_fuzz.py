"""Schema-driven fuzzing of the HTTP API (schemathesis over the server's own OpenAPI schema), through
real HTTP against a server with ``finassist serve``'s protections over the tiny models.

Each operation gets up to ``EXAMPLES`` generated requests, valid and invalid ones both (schemathesis
mixes bodies that follow the schema with ones that break it: wrong types, missing fields, huge and
odd strings, extra fields); about a thousand in all, a few minutes on two cores. Whatever arrives,
the answer is never a 5xx, and every 4xx is our JSON error body with no traceback.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (installed with schemathesis)

from assistant import Assistant  # noqa: E402
from assistant.server import create_app  # noqa: E402

from conftest import LiveServer, assert_healthy  # noqa: E402

#: Generated requests per operation (the operations without parameters need one).
EXAMPLES = 200
#: Seconds a generated request may take (the tiny models answer in well under one).
REQUEST_TIMEOUT_S = 60
answered: dict[str, dict[int, int]] = {}


@pytest.fixture(scope="module")
def fuzzed(engine, tmp_path_factory):
    """The API with small limits (reachable by generated bodies) and a library of its own."""
    library = tmp_path_factory.mktemp("fuzz") / "library.sqlite"
    app = create_app(Assistant(engine=engine, documents=library, audit=False), max_body_bytes=50_000,
                     max_upload_bytes=20_000, max_tokens_limit=64, body_timeout_s=5)
    server = LiveServer(app, header_timeout_s=5, max_connections=64)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")


#: The API's operations (a test below checks that the schema has exactly these). Driven with
#: Hypothesis directly, one test each: schemathesis's pytest plugin does not run under pytest 9.
OPERATIONS = ["POST /v1/chat/completions", "POST /v1/ask", "POST /v1/summarize", "POST /v1/classify",
              "GET /v1/documents", "POST /v1/documents", "DELETE /v1/documents/{document_id}", "GET /v1/models",
              "GET /healthz", "GET /metrics"]


def _operation(api_schema, label: str):
    method, path = label.split(" ", 1)
    return api_schema[path][method]


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_gets_a_server_error(api_schema, label):
    @given(case=_operation(api_schema, label).as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call(timeout=REQUEST_TIMEOUT_S)
        counts = answered.setdefault(label, {})
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        assert response.status_code < 500, (label, case.body, response.status_code, response.text[:500])
        assert "Traceback" not in response.text
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["message"], body

    fuzz()


def test_the_schema_has_exactly_the_fuzzed_operations(api_schema):
    found = {f"{method.upper()} {path}" for path, operations in api_schema.raw_schema["paths"].items()
             for method in operations}
    assert found == set(OPERATIONS)


def test_the_fuzzing_sent_about_a_thousand_requests_and_the_server_is_healthy(fuzzed):
    # Runs after the parametrized tests above (pytest keeps the file's order).
    total = sum(sum(counts.values()) for counts in answered.values())
    print({op: dict(sorted(counts.items())) for op, counts in sorted(answered.items())})
    assert set(answered) == set(OPERATIONS) and total >= 1000, answered
    assert_healthy(fuzzed.url)
