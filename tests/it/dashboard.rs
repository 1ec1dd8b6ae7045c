//! The Grafana dashboard (`grafana/dashboards/chatterbox.json`) against the metric contract.
//!
//! * `dashboard_queries_use_datasource_variable_and_contract_metrics` (always runs): every panel and
//!   target uses the `${datasource}` variable, every PromQL expression references only metrics,
//!   labels and functions that exist, every contract metric is shown somewhere, units are Grafana
//!   unit ids, rates use `$__rate_interval`.
//! * `dashboard_schema` (with `GRAFANA_SCHEMA_CHECK=1`, after `npm ci` in tests/grafana): the node
//!   script `tests/grafana/validate.mjs`, which validates the JSON against schemas generated from
//!   the `@grafana/schema` npm package.
//!
//! `tests/it/prometheus.rs` evaluates the same expressions against a real Prometheus; the contract
//! and the expression helpers it uses live here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Dashboard JSON, relative to the crate root.
pub const DASHBOARD_PATH: &str = "grafana/dashboards/chatterbox.json";

/// Counters of the metric contract (issue #4), with the labels each one carries.
pub const CONTRACT_COUNTERS: &[(&str, &[&str])] = &[
    ("chatterbox_connections_opened_total", &[]),
    ("chatterbox_connections_closed_total", &["reason"]),
    ("chatterbox_room_joins_total", &[]),
    ("chatterbox_room_leaves_total", &[]),
    ("chatterbox_messages_received_total", &["type"]),
    ("chatterbox_deliveries_total", &[]),
    ("chatterbox_lagged_receivers_total", &[]),
    ("chatterbox_lag_lost_frames_total", &[]),
    ("chatterbox_slow_clients_disconnected_total", &[]),
    ("chatterbox_error_frames_total", &["kind"]),
    ("chatterbox_error_frames_dropped_total", &[]),
    ("chatterbox_history_rows_written_total", &[]),
    ("chatterbox_history_write_errors_total", &[]),
    ("chatterbox_http_requests_total", &["route", "status"]),
    ("chatterbox_http_write_timeouts_total", &[]),
    ("chatterbox_fd_limit_refusals_total", &[]),
    ("process_cpu_seconds_total", &[]),
];

/// Gauges of the metric contract.
pub const CONTRACT_GAUGES: &[(&str, &[&str])] = &[
    ("chatterbox_connections_open", &[]),
    ("chatterbox_rooms", &[]),
    ("chatterbox_history_queue_depth", &[]),
    ("process_resident_memory_bytes", &[]),
    ("process_virtual_memory_bytes", &[]),
    ("process_open_fds", &[]),
    ("process_max_fds", &[]),
    ("process_threads", &[]),
    ("process_start_time_seconds", &[]),
];

/// Histograms of the metric contract (exposed as `_bucket{le}`, `_sum`, `_count`).
pub const CONTRACT_HISTOGRAMS: &[(&str, &[&str])] = &[
    ("chatterbox_fanout_latency_seconds", &[]),
    ("chatterbox_fanout_size", &[]),
    ("chatterbox_history_batch_size", &[]),
    ("chatterbox_history_flush_duration_seconds", &[]),
    ("chatterbox_http_request_duration_seconds", &["route"]),
];

/// Allowed values of the enumerated labels: the close reasons, from the code's one list.
pub fn close_reasons() -> Vec<&'static str> {
    chatterbox::telemetry::CloseReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect()
}
pub const MESSAGE_TYPES: &[&str] = &["join", "chat", "leave", "invalid"];

/// Labels a query may use: the contract's, plus what Prometheus adds (`job`, `instance`) and `le`.
#[rustfmt::skip]
const ALLOWED_LABELS: &[&str] = &[
    "reason", "type", "kind", "route", "status", "le", "instance", "job",
];

/// PromQL functions and aggregation operators (Prometheus 2.x).
#[rustfmt::skip]
const PROMQL_FUNCTIONS: &[&str] = &[
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "group",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "max", "max_over_time", "min",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "stddev", "stddev_over_time", "stdvar", "stdvar_over_time", "sum", "sum_over_time", "time",
    "timestamp", "topk", "vector", "year",
];
#[rustfmt::skip]
const AGGREGATIONS: &[&str] = &[
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile",
];
#[rustfmt::skip]
const GROUPING_KEYWORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right",
];
const OTHER_KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// Grafana unit ids the dashboard may use.
#[rustfmt::skip]
const GRAFANA_UNITS: &[&str] = &[
    "none", "short", "percent", "percentunit", "s", "ms", "µs", "ns", "dtdurations", "dtdurationms",
    "bytes", "decbytes", "Bps", "ops", "reqps", "rps", "wps", "iops", "eps", "mps", "recps",
    "rowsps", "cps",
];

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn load_dashboard() -> Value {
    let path: PathBuf = manifest_dir().join(DASHBOARD_PATH);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, with the panels of collapsed rows.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

/// One PromQL expression of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every target expression of every panel.
pub fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    for p in all_panels(dashboard) {
        for t in p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            out.push(DashboardQuery {
                panel: p["title"].as_str().unwrap_or("?").to_string(),
                ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                expr: t["expr"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    out
}

/// Replaces Grafana's variables the way Grafana would before sending `expr` to Prometheus:
/// `$__rate_interval`/`$__interval`/`$__range` by `rate_interval`, and each templating variable
/// by its "All" value (`allValue`, else `.*`).
pub fn substitute_variables(dashboard: &Value, expr: &str, rate_interval: &str) -> String {
    let mut s = expr.to_string();
    for builtin in ["__rate_interval", "__interval", "__range"] {
        for form in [format!("${{{builtin}}}"), format!("${builtin}")] {
            s = s.replace(&form, rate_interval);
        }
    }
    // Longest names first, so `$instance` never eats the start of `$instance_group`.
    let mut vars: Vec<(String, String)> = dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?.to_string();
            let all = v["allValue"].as_str().unwrap_or(".*").to_string();
            Some((name, all))
        })
        .collect();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, all) in vars {
        for form in [
            format!("${{{name}}}"),
            format!("[[{name}]]"),
            format!("${name}"),
        ] {
            s = s.replace(&form, &all);
        }
    }
    s
}

/// What a PromQL expression references.
#[derive(Debug, Default, PartialEq)]
pub struct PromqlRefs {
    pub metrics: Vec<String>,
    pub labels: Vec<String>,
    pub functions: Vec<String>,
    /// The contents of every `[...]` (range or subquery).
    pub ranges: Vec<String>,
}

/// A small PromQL scanner: enough to tell metric names from functions, keywords, label names,
/// strings, numbers, durations and Grafana variables. Not a parser.
pub fn promql_refs(expr: &str) -> PromqlRefs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = PromqlRefs::default();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && quote != '`' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // Reads `( a, b, ... )` starting at the `(` and records the label names.
    let read_label_list = |i: &mut usize, labels: &mut Vec<String>| {
        *i += 1;
        while *i < chars.len() && chars[*i] != ')' {
            if ident_start(chars[*i]) {
                let start = *i;
                while *i < chars.len() && ident_char(chars[*i]) {
                    *i += 1;
                }
                labels.push(chars[start..*i].iter().collect());
            } else {
                *i += 1;
            }
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            skip_string(&mut i);
        } else if c == '$' {
            // Grafana variable: ${name} or $name.
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c == '[' {
            let start = i + 1;
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            refs.ranges
                .push(chars[start..i.min(chars.len())].iter().collect());
            i += 1;
        } else if c == '{' {
            // Label matchers: name op "value", ...
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                    skip_string(&mut i);
                } else if ident_start(chars[i]) {
                    let start = i;
                    while i < chars.len() && ident_char(chars[i]) {
                        i += 1;
                    }
                    refs.labels.push(chars[start..i].iter().collect());
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // Numbers (1e-9, 0.99) and durations (5m).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = skip_ws(i);
            if GROUPING_KEYWORDS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = next;
                    read_label_list(&mut i, &mut refs.labels);
                }
            } else if OTHER_KEYWORDS.contains(&lower.as_str()) {
                // operator or literal
            } else if chars.get(next) == Some(&'(') || AGGREGATIONS.contains(&word.as_str()) {
                refs.functions.push(word);
            } else {
                refs.metrics.push(word);
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// The contract metric (and its kind) a series name in a query belongs to.
fn contract_metric(series: &str) -> Option<(&'static str, &'static [&'static str], &'static str)> {
    for (name, labels) in CONTRACT_COUNTERS {
        if series == *name {
            return Some((name, labels, "counter"));
        }
    }
    for (name, labels) in CONTRACT_GAUGES {
        if series == *name {
            return Some((name, labels, "gauge"));
        }
    }
    for (name, labels) in CONTRACT_HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            if series.strip_suffix(suffix) == Some(*name) {
                return Some((name, labels, "histogram"));
            }
        }
    }
    None
}

fn ds_uid(v: &Value) -> Option<&str> {
    v["datasource"]["uid"].as_str()
}

#[test]
fn promql_scanner_tells_metrics_from_the_rest() {
    let r = promql_refs(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(chatterbox_http_request_duration_seconds_bucket{instance=~"$instance",status!~"5.."}[$__rate_interval]))) or label_replace(vector(0), "kind", "none", "", "") / ignoring(x) time() - 1e-9 > bool 5m_x"#,
    );
    assert_eq!(
        r.metrics,
        vec!["chatterbox_http_request_duration_seconds_bucket"]
    );
    assert_eq!(r.labels, vec!["le", "route", "instance", "status", "x"]);
    assert_eq!(
        r.functions,
        vec![
            "histogram_quantile",
            "sum",
            "rate",
            "label_replace",
            "vector",
            "time"
        ]
    );
    assert_eq!(r.ranges, vec!["$__rate_interval"]);
    let r = promql_refs(
        "sum without(instance) (up) and on() vector(1) unless chatterbox_rooms offset 5m",
    );
    assert_eq!(r.metrics, vec!["up", "chatterbox_rooms"]);
}

#[test]
fn dashboard_queries_use_datasource_variable_and_contract_metrics() {
    let dash = load_dashboard();
    let mut errors: Vec<String> = Vec::new();

    if dash["title"] != "chatterbox" {
        errors.push(format!(
            "title is {}, expected \"chatterbox\"",
            dash["title"]
        ));
    }
    if !dash["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    {
        errors.push(format!("uid {} must be 1-40 characters", dash["uid"]));
    }
    if dash["schemaVersion"].as_u64().is_none_or(|v| v < 39) {
        errors.push(format!(
            "schemaVersion {} is not a current one",
            dash["schemaVersion"]
        ));
    }

    let vars = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ds_var = vars.iter().find(|v| v["name"] == "datasource");
    match ds_var {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => errors.push(format!(
            "templating needs a variable named datasource of type datasource, query prometheus; got {other:?}"
        )),
    }

    let mut used: BTreeSet<&'static str> = BTreeSet::new();
    let mut check_expr = |place: &str, expr: &str, errors: &mut Vec<String>| {
        let refs = promql_refs(expr);
        if refs.metrics.is_empty() {
            errors.push(format!("{place}: expression references no metric: {expr}"));
        }
        for m in &refs.metrics {
            match contract_metric(m) {
                Some((base, _, _)) => {
                    used.insert(base);
                }
                None => errors.push(format!("{place}: {m} is not in the metric contract")),
            }
        }
        for l in &refs.labels {
            if !ALLOWED_LABELS.contains(&l.as_str()) {
                errors.push(format!("{place}: label {l} is not in the contract"));
            }
        }
        for f in &refs.functions {
            if !PROMQL_FUNCTIONS.contains(&f.as_str()) {
                errors.push(format!("{place}: {f}() is not a PromQL function"));
            }
        }
        for r in &refs.ranges {
            if r != "$__rate_interval" {
                errors.push(format!("{place}: range [{r}] should be [$__rate_interval]"));
            }
        }
        // A histogram's buckets only make sense through rate()/increase() and, except in the
        // heatmap, histogram_quantile().
        if refs.metrics.iter().any(|m| m.ends_with("_bucket"))
            && !refs.labels.iter().any(|l| l == "le")
        {
            errors.push(format!("{place}: _bucket series must be aggregated by le"));
        }
    };

    // Variables that query Prometheus: label_values(metric, label).
    for v in &vars {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        if ds_uid(v) != Some("${datasource}") {
            errors.push(format!(
                "variable {name}: datasource must be ${{datasource}}, got {}",
                v["datasource"]
            ));
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        match q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        {
            Some(args) => {
                let (metric, label) = args.split_once(',').unwrap_or((args, ""));
                check_expr(&format!("variable {name}"), metric.trim(), &mut errors);
                if !ALLOWED_LABELS.contains(&label.trim()) {
                    errors.push(format!(
                        "variable {name}: label {} is not in the contract",
                        label.trim()
                    ));
                }
            }
            None => errors.push(format!(
                "variable {name}: expected label_values(metric, label), got {q:?}"
            )),
        }
    }

    let panels = all_panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("?");
        if !ids.insert(p["id"].as_u64()) {
            errors.push(format!("panel {title}: duplicate id {}", p["id"]));
        }
        if p["type"] == "row" {
            continue;
        }
        if ds_uid(p) != Some("${datasource}") || p["datasource"]["type"] != "prometheus" {
            errors.push(format!(
                "panel {title}: datasource must be {{type: prometheus, uid: ${{datasource}}}}, got {}",
                p["datasource"]
            ));
        }
        let unit = if p["type"] == "heatmap" {
            p["options"]["yAxis"]["unit"].as_str()
        } else {
            p["fieldConfig"]["defaults"]["unit"].as_str()
        };
        match unit {
            Some(u) if GRAFANA_UNITS.contains(&u) => {}
            other => errors.push(format!(
                "panel {title}: unit {other:?} is not set to a known Grafana unit"
            )),
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            errors.push(format!("panel {title}: no targets"));
        }
        for t in &targets {
            let place = format!(
                "panel {title} target {}",
                t["refId"].as_str().unwrap_or("?")
            );
            if ds_uid(t) != Some("${datasource}") {
                errors.push(format!(
                    "{place}: datasource must be ${{datasource}}, got {}",
                    t["datasource"]
                ));
            }
            match t["expr"].as_str() {
                Some(e) if !e.trim().is_empty() => check_expr(&place, e, &mut errors),
                _ => errors.push(format!("{place}: no expr")),
            }
        }
    }

    for (name, _) in CONTRACT_COUNTERS
        .iter()
        .chain(CONTRACT_GAUGES)
        .chain(CONTRACT_HISTOGRAMS)
    {
        if !used.contains(name) {
            errors.push(format!("no panel shows {name}"));
        }
    }

    assert!(
        errors.is_empty(),
        "{DASHBOARD_PATH}: {} problem(s):\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
    println!(
        "{DASHBOARD_PATH}: {} panels, {} queries, all {} contract metrics shown",
        panels.iter().filter(|p| p["type"] != "row").count(),
        dashboard_queries(&dash).len(),
        used.len()
    );
}

#[tokio::test]
async fn dashboard_schema() {
    if std::env::var("GRAFANA_SCHEMA_CHECK").as_deref() != Ok("1") {
        crate::support::skip(
            "dashboard_schema",
            "GRAFANA_SCHEMA_CHECK is not set (see .ci/run)",
        );
        return;
    }
    let root = manifest_dir();
    let node_modules = root.join("tests/grafana/node_modules");
    assert!(
        node_modules.is_dir(),
        "{} is missing: run `npm ci` in tests/grafana (GRAFANA_SCHEMA_CHECK=1 requires it)",
        node_modules.display()
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("tests/grafana/validate.mjs")
            .current_dir(root)
            .output()
    })
    .await
    .expect("validate task panicked")
    .expect("cannot run node (is Node.js 20+ installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node tests/grafana/validate.mjs failed ({}):\n{stdout}{stderr}",
        output.status
    );
    print!("{stdout}");
}
