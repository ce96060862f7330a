//! Metrics from a foreign client: the OpenTelemetry Python SDK exports a counter, a gauge
//! and a histogram, in two lives of one instance (the second restarts its counters), and
//! `/api/v1/aggregate` answers what the test computes from what the script recorded.

use std::process::Stdio;
use std::time::Duration;

use epitaph_tests::otlp::unix_millis_now;
use epitaph_tests::process::{ManagedChild, clean_command};
use epitaph_tests::python::{script, venv_python};
use epitaph_tests::{Server, eventually, unique_token};
use serde_json::Value;

const BOUNDS: [f64; 3] = [10.0, 50.0, 100.0];

#[test]
fn python_sdk_metrics_answer_what_was_recorded() {
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let service = unique_token("pym");
    let image_version = "2026.12.02-77aa";
    let host_id = unique_token("i");
    let started_millis = unix_millis_now() - 1_000;

    let stdout_path = dir.path().join("send_metrics.stdout");
    let mut command = clean_command(&python);
    command
        .arg(script("send_metrics.py"))
        .args([
            server.grpc_url().as_str(),
            &service,
            image_version,
            "4",
            &host_id,
        ])
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()));
    let stderr_path = dir.path().join("send_metrics.stderr");
    let mut sender = ManagedChild::spawn("send_metrics.py", &mut command, &stderr_path);
    let status = sender
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("send_metrics.py did not finish\n{}", sender.stderr_report()));
    assert!(
        status.success(),
        "send_metrics.py failed with {status}\n{}",
        sender.stderr_report()
    );
    let printed = std::fs::read_to_string(&stdout_path).unwrap();
    let recorded: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("send_metrics.py printed no JSON ({e})"));
    let lives = recorded["lives"].as_array().expect("lives");

    // What the script recorded, added up the way the queries must answer.
    let mut increase_by_route = std::collections::BTreeMap::<String, f64>::new();
    let mut gauge_values = Vec::new();
    let mut latencies = Vec::new();
    for life in lives {
        for add in life["counter_adds"].as_array().unwrap() {
            *increase_by_route
                .entry(add[0].as_str().unwrap().to_string())
                .or_default() += add[1].as_f64().unwrap();
        }
        gauge_values.extend(
            life["gauge_sets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap()),
        );
        latencies.extend(
            life["latencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap()),
        );
    }
    let ended_millis = unix_millis_now() + 1_000;
    let start = started_millis.to_string();
    let end = ended_millis.to_string();
    let aggregate = |query: &str| -> Value {
        let answer = server.get(
            "/api/v1/aggregate",
            &[("q", query), ("start", &start), ("end", &end)],
        );
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        answer.json()
    };
    let identity = format!("service:{service} version:{image_version} instance:{host_id}");

    // The counter: its increase across the restart is everything added, per route.
    let counter_query = format!(
        "metric:epitaph.test.requests {identity} | stats increase(), rate() by attrs.route"
    );
    let table = eventually(Duration::from_secs(10), || {
        let table = aggregate(&counter_query);
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        let total: f64 = rows.iter().map(|row| row[1].as_f64().unwrap_or(0.0)).sum();
        let expected: f64 = increase_by_route.values().sum();
        (rows.len() == increase_by_route.len() && total == expected).then_some(table)
    })
    .unwrap_or_else(|| {
        panic!(
            "counter increases never matched {increase_by_route:?}; last answer {}",
            aggregate(&counter_query)
        )
    });
    assert_eq!(
        table["columns"],
        serde_json::json!(["attrs.route", "increase", "rate"])
    );
    let range_seconds = (ended_millis - started_millis) as f64 / 1000.0;
    for row in table["rows"].as_array().unwrap() {
        let route = row[0].as_str().unwrap();
        let expected = increase_by_route[route];
        assert_eq!(
            row[1].as_f64().unwrap(),
            expected,
            "increase of {route}: {table}"
        );
        let rate = row[2].as_f64().unwrap();
        assert!(
            (rate - expected / range_seconds).abs() < 1e-9,
            "rate of {route} is {rate}, expected {} over {range_seconds} s",
            expected / range_seconds
        );
    }

    // The gauge: the extremes of the values set.
    let gauge = aggregate(&format!(
        "metric:epitaph.test.temperature {identity} | stats max(value), min(value)"
    ));
    let expected_max = gauge_values.iter().copied().fold(f64::MIN, f64::max);
    let expected_min = gauge_values.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(gauge["rows"][0][0].as_f64(), Some(expected_max), "{gauge}");
    assert_eq!(gauge["rows"][0][1].as_f64(), Some(expected_min), "{gauge}");

    // The histogram: observations, their mean, and quantiles from the buckets.
    let histogram = aggregate(&format!(
        "metric:epitaph.test.latency {identity} | stats increase(), avg(value), p50(value), p99(value)"
    ));
    let row = &histogram["rows"][0];
    assert_eq!(row[0].as_f64(), Some(latencies.len() as f64), "{histogram}");
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    assert!(
        (row[1].as_f64().unwrap() - mean).abs() < 1e-9,
        "{histogram}, mean {mean}"
    );
    for (column, q) in [(2, 0.5), (3, 0.99)] {
        let expected = bucket_quantile(q, &latencies);
        let got = row[column].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-9,
            "p{} = {got}, expected {expected}: {histogram}",
            q * 100.0
        );
    }

    // A timechart of the counter covers every point in buckets of one minute.
    let chart = aggregate(&format!(
        "metric:epitaph.test.requests {identity} | timechart span=1m increase()"
    ));
    let total: f64 = chart["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[1].as_f64().unwrap())
        .sum();
    assert_eq!(total, increase_by_route.values().sum::<f64>(), "{chart}");
    assert_eq!(chart["span_seconds"], 60, "{chart}");

    // Functions that do not fit a kind say so.
    let answer = server.get(
        "/api/v1/aggregate",
        &[(
            "q",
            &format!("metric:epitaph.test.temperature {identity} | stats rate()"),
        )],
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("gauge"), "{}", answer.body);
}

/// `histogram_quantile` over the script's bucket bounds, computed from the raw values.
fn bucket_quantile(q: f64, values: &[f64]) -> f64 {
    let mut counts = vec![0.0; BOUNDS.len() + 1];
    for value in values {
        let index = BOUNDS
            .iter()
            .position(|bound| value <= bound)
            .unwrap_or(BOUNDS.len());
        counts[index] += 1.0;
    }
    let rank = q * values.len() as f64;
    let mut below = 0.0;
    for (index, count) in counts.iter().enumerate() {
        if below + count >= rank && *count > 0.0 {
            if index == BOUNDS.len() {
                return BOUNDS[BOUNDS.len() - 1];
            }
            let lower = if index == 0 { 0.0 } else { BOUNDS[index - 1] };
            return lower + (BOUNDS[index] - lower) * (rank - below) / count;
        }
        below += count;
    }
    BOUNDS[BOUNDS.len() - 1]
}
