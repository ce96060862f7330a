//! What a structured or multiline log looks like once it reaches the server.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use epitaph_agent::config::Config;
use epitaph_proto::common::v1::any_value;
use epitaph_proto::logs::v1::LogRecord;

fn stored_records(server: &FakeServer) -> Vec<LogRecord> {
    server.recorded(|recorded| {
        recorded
            .stored
            .iter()
            .flat_map(|batch| batch.records.clone())
            .collect()
    })
}

fn body(record: &LogRecord) -> String {
    string_value(&record.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logfmt_and_plain_lines_become_fields_with_event_and_observed_time() {
    let server = FakeServer::new(0);
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_for_first_scan(&state_dir).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    append(
        &app_log,
        concat!(
            r#"{"ts":"2026-01-02T03:04:05.123Z","level":"error","msg":"payment failed","order":{"id":42},"retry":true}"#,
            "\n",
            r#"time=2026-01-02T03:04:06Z level=warn msg="slow query" table=users"#,
            "\n",
            "2026-01-02T03:04:07Z INFO plain line with a leading timestamp\n",
            "[WARN] disk almost full\n",
            r#"{"level":30,"time":1767323048000,"message":"pino style"}"#,
            "\n",
        ),
    );
    wait_until("five records", || server.stored_line_count() >= 5).await;
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();

    let records = stored_records(&server);
    assert_eq!(records.len(), 5);
    for record in &records {
        assert!(
            record.observed_time_unix_nano >= before,
            "observed when read"
        );
        assert_ne!(record.time_unix_nano, 0, "every record has an event time");
    }
    let json = &records[0];
    assert_eq!(body(json), "payment failed");
    assert_eq!(json.severity_text, "ERROR");
    assert_eq!(json.severity_number, 17);
    assert_eq!(json.time_unix_nano, 1_767_323_045_123_000_000);
    assert_eq!(
        attribute(json, "order.id"),
        Some(any_value::Value::IntValue(42))
    );
    assert_eq!(
        attribute(json, "retry"),
        Some(any_value::Value::BoolValue(true))
    );
    assert_eq!(
        attribute(json, "log.file.name"),
        Some(any_value::Value::StringValue("app.log".into()))
    );
    assert_eq!(attribute(json, "msg"), None, "the message became the body");

    let logfmt = &records[1];
    assert_eq!(body(logfmt), "slow query");
    assert_eq!(logfmt.severity_text, "WARN");
    assert_eq!(logfmt.time_unix_nano, 1_767_323_046_000_000_000);
    assert_eq!(
        attribute(logfmt, "table"),
        Some(any_value::Value::StringValue("users".into()))
    );

    let plain = &records[2];
    assert_eq!(
        body(plain),
        "2026-01-02T03:04:07Z INFO plain line with a leading timestamp"
    );
    assert_eq!(plain.severity_text, "INFO");
    assert_eq!(plain.time_unix_nano, 1_767_323_047_000_000_000);

    let prefixed = &records[3];
    assert_eq!(body(prefixed), "[WARN] disk almost full");
    assert_eq!(prefixed.severity_text, "WARN");
    assert_eq!(
        prefixed.time_unix_nano, prefixed.observed_time_unix_nano,
        "no time in the line: the event time is when it was read"
    );

    let pino = &records[4];
    assert_eq!(body(pino), "pino style");
    assert_eq!(pino.severity_text, "INFO");
    assert_eq!(pino.time_unix_nano, 1_767_323_048_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiline_events_are_joined_and_capped_by_size_and_time() {
    let server = FakeServer::new(0);
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let config = Config {
        multiline_start: Some(r"^\d{4}-\d{2}-\d{2} ".to_string()),
        multiline_max_bytes: 1024,
        multiline_timeout: Duration::from_millis(300),
        ..test_config(address, &state_dir, &logs_dir)
    };
    let (stop, agent) = start_agent(config);
    wait_for_first_scan(&state_dir).await;

    let java = [
        "2026-01-02 10:00:00,001 ERROR [main] c.e.Handler - request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.Handler.handle(Handler.java:42)",
        "\tat com.example.Server.run(Server.java:7)",
        "Caused by: java.io.IOException: disk full",
        "\tat com.example.Disk.write(Disk.java:3)",
        "\t... 2 more",
    ];
    let python = [
        "2026-01-02 10:00:01,002 ERROR worker crashed",
        "Traceback (most recent call last):",
        "  File \"/srv/app/worker.py\", line 12, in <module>",
        "    main()",
        "  File \"/srv/app/worker.py\", line 9, in main",
        "    raise ValueError(\"bad input\")",
        "ValueError: bad input",
    ];
    let mut text = String::new();
    for line in java.iter().chain(&python) {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("2026-01-02 10:00:02,003 INFO next request\n");
    append(&app_log, &text);
    // The INFO line is followed by nothing: only the time cap sends it, while the agent
    // keeps running.
    wait_until("three events", || server.stored_line_count() >= 3).await;
    let records = stored_records(&server);
    assert_eq!(body(&records[0]), java.join("\n"));
    assert_eq!(records[0].severity_text, "ERROR");
    assert_eq!(body(&records[1]), python.join("\n"));
    assert_eq!(
        body(&records[2]),
        "2026-01-02 10:00:02,003 INFO next request"
    );

    // Size cap: an event of about 2.5 KiB is split into records of at most 1 KiB, with
    // nothing lost.
    let mut big = vec!["2026-01-02 10:00:03,004 ERROR huge dump".to_string()];
    for n in 0..50 {
        big.push(format!("  frame {n:02} {}", "x".repeat(38)));
    }
    append(&app_log, &(big.join("\n") + "\n"));
    append(&app_log, "2026-01-02 10:00:04,005 INFO after the dump\n");
    wait_until("the dump and the line after it", || {
        stored_records(&server)
            .iter()
            .any(|record| body(record).contains("after the dump"))
    })
    .await;
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();

    let records = stored_records(&server);
    let dump: Vec<String> = records[3..records.len() - 1].iter().map(body).collect();
    assert!(dump.len() >= 3, "split into {} records", dump.len());
    assert!(dump.iter().all(|part| part.len() <= 1024));
    assert_eq!(dump.join("\n"), big.join("\n"), "split, never dropped");
    assert_eq!(
        body(records.last().unwrap()),
        "2026-01-02 10:00:04,005 INFO after the dump"
    );
}
