"""Exports a counter, a gauge and a histogram with the OpenTelemetry Python SDK.

Used by `tests/tests/metrics_python_sdk.rs`: it proves that a stock OpenTelemetry SDK
can feed the server metrics, and gives the test values it can check query results
against.

usage: send_metrics.py ENDPOINT SERVICE IMAGE_VERSION GENERATION HOST_ID

Runs two "lives" of the same instance (same resource), each its own MeterProvider, as
an application restarted on one instance does: the second life's counters start again
from zero, with a new start time. In each life it records, then flushes (one export),
records more, and shuts down (which exports again). Prints one JSON object with
everything it recorded, and exits 0 only if every export succeeded.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

BOUNDS = [10.0, 50.0, 100.0]


class RecordingExporter(MetricExporter):
    """Delegates to the OTLP exporter and counts failed exports."""

    def __init__(self, inner):
        super().__init__(
            preferred_temporality={
                Counter: AggregationTemporality.CUMULATIVE,
                Histogram: AggregationTemporality.CUMULATIVE,
            }
        )
        self.inner = inner
        self.failed_exports = 0
        self.exports = 0

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        self.exports += 1
        if result != MetricExportResult.SUCCESS:
            self.failed_exports += 1
        return result

    def force_flush(self, timeout_millis=10_000):
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis=30_000, **kwargs):
        self.inner.shutdown(timeout_millis=timeout_millis)


def life(endpoint, resource, counter_adds, gauge_sets, latencies):
    exporter = RecordingExporter(OTLPMetricExporter(endpoint=endpoint, insecure=True))
    # An interval far longer than the test: exports happen only on flush and shutdown.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(
                instrument_name="epitaph.test.latency",
                aggregation=ExplicitBucketHistogramAggregation(boundaries=BOUNDS),
            )
        ],
    )
    meter = provider.get_meter("epitaph-tests.send_metrics")
    requests = meter.create_counter("epitaph.test.requests", unit="1")
    temperature = meter.create_gauge("epitaph.test.temperature", unit="Cel")
    latency = meter.create_histogram("epitaph.test.latency", unit="ms")
    halves = [counter_adds[: len(counter_adds) // 2], counter_adds[len(counter_adds) // 2 :]]
    latency_halves = [latencies[: len(latencies) // 2], latencies[len(latencies) // 2 :]]
    for half in range(2):
        for route, amount in halves[half]:
            requests.add(amount, {"route": route})
        if half < len(gauge_sets):
            temperature.set(gauge_sets[half])
        for value in latency_halves[half]:
            latency.record(value)
        if half == 0:
            provider.force_flush()
    provider.shutdown()
    return exporter


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, service, image_version, generation, host_id = sys.argv[1:]
    resource = Resource.create(
        {
            "service.name": service,
            "host.image.version": image_version,
            "deployment.generation": generation,
            "host.id": host_id,
        }
    )
    lives = [
        {
            "counter_adds": [["/a", 5], ["/b", 7], ["/a", 3], ["/b", 1]],
            "gauge_sets": [42.5, 17.0],
            "latencies": [5, 20, 30, 70, 200, 8, 60],
        },
        {
            "counter_adds": [["/a", 4], ["/a", 2]],
            "gauge_sets": [21.25],
            "latencies": [45, 120],
        },
    ]
    failed = 0
    for recorded in lives:
        exporter = life(
            endpoint,
            resource,
            recorded["counter_adds"],
            recorded["gauge_sets"],
            recorded["latencies"],
        )
        failed += exporter.failed_exports
    print(json.dumps({"lives": lives, "bounds": BOUNDS}))
    if failed:
        print(f"{failed} exports failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
