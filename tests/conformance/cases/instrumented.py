"""Instrumented storages (websession.telemetry) must keep every promise of the store they wrap:
the memory and Redis stores again, behind the OpenTelemetry proxy, with an SDK recording every
span and metric."""

from __future__ import annotations

from typing import Any

import pytest

from ..harness import Options
from . import StoreCase
from .embedded import make_memory
from .redis import make_string


def _instrumented(make: Any) -> Any:
    def build(request: pytest.FixtureRequest, options: Options) -> Any:
        otel = pytest.importorskip("opentelemetry.sdk.trace")
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        from websession.telemetry import instrument, uninstrument

        class Dropped(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracing = otel.TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(Dropped()))
        metering = MeterProvider(metric_readers=[InMemoryMetricReader()])
        storage = instrument(make(request, options), tracer_provider=tracing, meter_provider=metering)
        request.addfinalizer(lambda: uninstrument(storage))
        return storage

    return build


CASES = [
    StoreCase("memory, instrumented", _instrumented(make_memory)),
    StoreCase("redis, instrumented", _instrumented(make_string), fake_clock=False),
]
