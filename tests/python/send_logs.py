"""Ships a few log records to an OTLP/gRPC endpoint with the OpenTelemetry Python SDK.

Used by `python_otel_sdk_logs_are_searchable_by_resource`: it proves that a stock
OpenTelemetry SDK, not only Epitaph's agent, can feed the server, and that the resource
attributes it sets become Epitaph's identity fields.

usage: send_logs.py ENDPOINT SERVICE IMAGE_VERSION GENERATION HOST_ID MARKER

Emits one INFO record and one ERROR record whose bodies contain MARKER, flushes, and
exits 0 only if every export the SDK attempted succeeded (the SDK itself only logs a
failed export, so the exporter is wrapped to count them).
"""

import sys
import time

import grpc
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource


class RecordingExporter(LogRecordExporter):
    """Delegates to the OTLP exporter and remembers how each export went."""

    def __init__(self, inner):
        self.inner = inner
        self.exported_records = 0
        self.failed_exports = 0

    def export(self, batch):
        result = self.inner.export(batch)
        if result == LogRecordExportResult.SUCCESS:
            self.exported_records += len(batch)
        else:
            self.failed_exports += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, service, image_version, generation, host_id, marker = sys.argv[1:]

    resource = Resource.create(
        {
            "service.name": service,
            "host.image.version": image_version,
            "deployment.generation": generation,
            "host.id": host_id,
        }
    )
    exporter = RecordingExporter(
        OTLPLogExporter(
            endpoint=endpoint,
            insecure=True,
            # gzip is the compression every OTLP receiver must accept.
            compression=grpc.Compression.Gzip,
            timeout=10,
        )
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("epitaph-tests.send_logs")

    logger.emit(
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body=f"python sdk says hello {marker}",
        attributes={"test.kind": "python-sdk"},
    )
    logger.emit(
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body=f"python sdk reports a failure {marker}",
        attributes={"test.kind": "python-sdk"},
    )

    provider.force_flush()
    provider.shutdown()

    print(
        f"exported_records={exporter.exported_records} failed_exports={exporter.failed_exports}"
    )
    if exporter.failed_exports or exporter.exported_records != 2:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
