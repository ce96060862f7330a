//! The message templates, most frequent first.
//!
//! A template's rank in [`TEMPLATES`] is its rank in the Zipf law the corpus draws from,
//! so the order of this list *is* the frequency model: access and health-check lines on
//! top, then the everyday debug and business lines, and rare warnings, errors, stack
//! traces and multi-kilobyte dumps in the long tail. With the default exponent the
//! levels come out at roughly info 72 %, debug 18 %, warn 7 %, error 3 %.
//!
//! A pattern's `{key:kind}` placeholders name the structured field (`key`, used when a
//! line is rendered as JSON or logfmt) and what to draw (`kind`, see `values.rs`);
//! `message` is the constant text structured loggers put in `msg`.

use super::Level;

/// Whether a template renders in every format or only as plain multi-line text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One line; rendered plain, JSON or logfmt; context fields may be appended.
    Line,
    /// A multi-line text (stack trace, dump): always plain and never padded.
    Multiline,
}

pub(crate) struct Template {
    pub level: Level,
    pub component: &'static str,
    pub message: &'static str,
    pub pattern: &'static str,
    pub shape: Shape,
}

const fn line(
    level: Level,
    component: &'static str,
    message: &'static str,
    pattern: &'static str,
) -> Template {
    Template {
        level,
        component,
        message,
        pattern,
        shape: Shape::Line,
    }
}

const fn multiline(
    level: Level,
    component: &'static str,
    message: &'static str,
    pattern: &'static str,
) -> Template {
    Template {
        level,
        component,
        message,
        pattern,
        shape: Shape::Multiline,
    }
}

use Level::{Debug, Error, Info, Warn};

pub(crate) const TEMPLATES: &[Template] = &[
    line(
        Info,
        "http.access",
        "request served",
        "{method:method} {path:path} {status:status} {duration:ms} {bytes:bytes}B client={client_ip:ip} req_id={request_id:reqid}",
    ),
    line(
        Info,
        "health",
        "health check ok",
        "GET /healthz 200 {duration:ms} from {lb_ip:iip} ua=ELB-HealthChecker/2.0",
    ),
    line(
        Debug,
        "cache",
        "cache lookup",
        "cache {result:cachehit} key={key:key} ttl={ttl:n10k}s",
    ),
    line(
        Info,
        "http.server",
        "request completed",
        "request completed trace_id={trace_id:trace} span_id={span_id:span} user={user_id:user} duration={duration:ms}",
    ),
    line(
        Info,
        "db",
        "query ok",
        "db query ok table={table:table} rows={rows:n1k} elapsed={duration:ms}",
    ),
    line(
        Debug,
        "db.pool",
        "connection acquired",
        "acquired connection from pool {pool:pool} active={active:n100} idle={idle:n10} wait={wait:ms}",
    ),
    line(
        Info,
        "auth",
        "user authenticated",
        "user {user_id:user} authenticated via {auth_method:authmethod} from {client_ip:ip}",
    ),
    line(
        Info,
        "kafka.producer",
        "message published",
        "published message to topic {topic:topic} partition={partition:n100} offset={offset:offset}",
    ),
    line(
        Info,
        "kafka.consumer",
        "messages consumed",
        "consumed {count:n1k} messages from {topic:topic} lag={lag:n10k}",
    ),
    line(
        Debug,
        "tracing",
        "span finished",
        "span {span_id:span} finished name=\"{name:spanname}\" duration={duration:ms} trace_id={trace_id:trace}",
    ),
    line(
        Info,
        "orders",
        "order created",
        "order {order_id:order} created for user {user_id:user} total={amount:amount} {currency:currency} items={items:n10}",
    ),
    line(
        Warn,
        "http.server",
        "slow request",
        "slow request {method:method} {path:path} took {duration:sec} (threshold 1s) trace_id={trace_id:trace}",
    ),
    line(
        Info,
        "scheduler",
        "job started",
        "scheduled job {job:job} started run_id={run_id:uuid}",
    ),
    line(
        Info,
        "scheduler",
        "job finished",
        "scheduled job {job:job} finished run_id={run_id:uuid} processed={count:n10k} elapsed={duration:sec}",
    ),
    line(
        Debug,
        "flags",
        "flag evaluated",
        "feature flag {flag:flag} evaluated to {value:bool} for user {user_id:user}",
    ),
    line(
        Info,
        "search",
        "search executed",
        "search query=\"{query:searchq}\" results={count:n1k} took={duration:ms} page={page:n10}",
    ),
    line(
        Debug,
        "db.sql",
        "executing statement",
        "executing SQL: {sql:sql}",
    ),
    line(
        Info,
        "payments",
        "payment authorized",
        "payment {payment_id:payid} authorized amount={amount:amount} {currency:currency} card=****{last4:n10k} customer={user_id:user}",
    ),
    line(
        Warn,
        "http.client",
        "retrying request",
        "retrying request to {peer:peer} attempt={attempt:n10} after error: {error:err}",
    ),
    line(
        Info,
        "sessions",
        "session refreshed",
        "session {session_id:session} refreshed for user {user_id:user} expires_in={ttl:n10k}s",
    ),
    line(
        Info,
        "storage",
        "object uploaded",
        "uploaded object s3://{bucket:bucket}/{object_key:objkey} size={bytes:bytes} etag={etag:hex32}",
    ),
    line(
        Debug,
        "http.client",
        "upstream call",
        "http client {method:method} https://{peer:peer}{path:path} -> {status:status} in {duration:ms}",
    ),
    line(
        Info,
        "runtime",
        "gc pause",
        "gc pause {duration:ms} heap_before={heap_before:mb}MB heap_after={heap_after:mb}MB",
    ),
    line(
        Error,
        "http.server",
        "request failed",
        "request failed {method:method} {path:path} status=500 error=\"{error:err}\" trace_id={trace_id:trace}",
    ),
    line(
        Info,
        "inventory",
        "inventory reserved",
        "inventory reserved sku={sku:sku} qty={qty:n10} warehouse={warehouse:warehouse} reservation={reservation_id:uuid}",
    ),
    line(
        Debug,
        "config",
        "config value loaded",
        "loaded config key={config_key:configkey} value={value:word} source={source:file}",
    ),
    line(
        Warn,
        "ratelimit",
        "rate limit exceeded",
        "rate limit exceeded for client {client_ip:ip} api_key={api_key:apikey} limit={limit:n1k}/min",
    ),
    line(
        Info,
        "mailer",
        "email sent",
        "email sent to {email:email} template={template:emailtpl} message_id=<{message_id:uuid}@mail.example.com>",
    ),
    line(
        Info,
        "ws",
        "websocket opened",
        "websocket connection opened conn_id={conn_id:hex16} user={user_id:user} remote={client_ip:ip}:{port:port}",
    ),
    line(
        Info,
        "ws",
        "websocket closed",
        "websocket connection closed conn_id={conn_id:hex16} code={code:wscode} duration={duration:sec}",
    ),
    line(
        Warn,
        "cache",
        "cache miss storm",
        "cache miss storm on key prefix {prefix:word}: {misses:n1k} misses in last {window:n100}s",
    ),
    line(
        Info,
        "logrotate",
        "file rotated",
        "file {file:file} rotated, new size {bytes:bytes} bytes",
    ),
    line(
        Debug,
        "grpc.client",
        "grpc call",
        "grpc call {rpc:rpc} peer={peer:peer} status=OK duration={duration:ms}",
    ),
    line(
        Error,
        "db",
        "database connection lost",
        "database connection lost to {db_host:dbhost}: {error:err}",
    ),
    line(
        Info,
        "shipping",
        "shipment dispatched",
        "shipment {shipment_id:shipid} dispatched carrier={carrier:carrier} tracking={tracking:tracking} to {country:country}",
    ),
    line(
        Warn,
        "system",
        "disk usage high",
        "disk usage on {mount:mount} at {used_pct:pct}% (threshold 85%)",
    ),
    line(
        Info,
        "tls",
        "handshake completed",
        "tls handshake completed with {client_ip:ip} version={tls_version:tlsver} cipher={cipher:cipher}",
    ),
    line(
        Debug,
        "dns",
        "dns resolved",
        "dns lookup {host:domain} resolved to {address:iip} in {duration:ms}",
    ),
    line(
        Error,
        "kafka.consumer",
        "message processing failed",
        "failed to process message offset={offset:offset} topic={topic:topic}: {error:err}",
    ),
    line(
        Warn,
        "auth",
        "login failed",
        "login failed for user {email:email} from {client_ip:ip}: invalid credentials attempt={attempt:n10}",
    ),
    line(
        Info,
        "oauth",
        "token issued",
        "token issued for client {client_id:clientid} scope=\"{scope:scope}\" expires_in=3600 jti={jti:uuid}",
    ),
    line(
        Warn,
        "http.server",
        "deprecated api called",
        "deprecated API {path:path} called by client {client_id:clientid} user_agent=\"{user_agent:ua}\"",
    ),
    line(
        Info,
        "media",
        "thumbnail generated",
        "thumbnail generated for {media_id:hex16} {width:n1k}x{height:n1k} in {duration:ms}",
    ),
    line(
        Debug,
        "locks",
        "lock acquired",
        "lock acquired name={lock:lock} holder={holder:hostname} wait={wait:ms}",
    ),
    multiline(
        Error,
        "http.server",
        "panic recovered",
        "panic recovered in handler {path:path}: {panic:panic}\n\ngoroutine {goroutine:n10k} [running]:{stack:gostack}",
    ),
    line(
        Info,
        "config",
        "config reloaded",
        "config reloaded from {file:file} checksum={checksum:sha} changed_keys={changed:n10}",
    ),
    line(
        Warn,
        "resilience",
        "circuit breaker opened",
        "circuit breaker {breaker:peer} opened after {failures:n100} failures in {window:n100}s",
    ),
    line(
        Info,
        "resilience",
        "circuit breaker closed",
        "circuit breaker {breaker:peer} closed after {duration:sec} half_open_successes={successes:n10}",
    ),
    line(
        Debug,
        "http.server",
        "request headers",
        "raw request headers: {headers:headers}",
    ),
    line(
        Info,
        "pipeline",
        "batch flushed",
        "batch {batch_id:uuid} flushed {count:n10k} records to {sink:sink} in {duration:ms}",
    ),
    multiline(
        Error,
        "app",
        "unhandled exception",
        "unhandled exception in {class:class}: {exception:javaex}{stack:javastack}",
    ),
    line(
        Warn,
        "db.pool",
        "connection pool exhausted",
        "connection pool {pool:pool} exhausted, waited {wait:ms}, active={active:n100} pending={pending:n100}",
    ),
    line(
        Info,
        "users",
        "profile updated",
        "user {user_id:user} updated profile fields={fields:fields}",
    ),
    line(
        Info,
        "exports",
        "export completed",
        "export {export_id:uuid} completed rows={rows:n1m} file={file:file} size={bytes:bytes}",
    ),
    line(
        Error,
        "payments",
        "payment declined",
        "payment {payment_id:payid} declined by processor code={code:declinecode} reason=\"{reason:declinereason}\"",
    ),
    line(
        Warn,
        "tls",
        "certificate expiring",
        "certificate for {host:domain} expires in {days:n100} days serial={serial:hex16}",
    ),
    line(
        Info,
        "lb",
        "target registered",
        "instance {host:hostname} registered with load balancer {lb:lb} target_group={target_group:hex16}",
    ),
    line(
        Debug,
        "metrics",
        "metrics flushed",
        "metrics flushed series={series:n10k} points={points:n1m} in {duration:ms}",
    ),
    line(
        Error,
        "http.server",
        "out of memory",
        "out of memory while processing request {request_id:reqid}: requested {requested:bytes} bytes, limit {limit:bytes}",
    ),
    line(
        Warn,
        "ntp",
        "clock skew",
        "clock skew detected: {skew:ms} against {peer:peer}",
    ),
    line(
        Info,
        "migrations",
        "migration applied",
        "migration {migration:migration} applied in {duration:ms}",
    ),
    line(
        Error,
        "server",
        "bind failed",
        "fatal: cannot bind to 0.0.0.0:{port:port}: address already in use, retrying in {delay:n10}s",
    ),
    multiline(
        Info,
        "http.client",
        "response body dump",
        "response body dump for {request_id:reqid} from {peer:peer}:\n{payload:jsonpayload}",
    ),
    multiline(
        Error,
        "app",
        "fatal exception",
        "fatal exception in thread \"{thread:thread}\" {exception:javaex}{stack:hugestack}",
    ),
    line(
        Info,
        "webhooks",
        "webhook delivered",
        "webhook delivered to {url:url} event={event:event} status={status:status} attempt={attempt:n10}",
    ),
    line(
        Warn,
        "kernel",
        "syn flood",
        "kernel: TCP: request_sock_TCP: Possible SYN flooding on port {port:port}. Sending cookies. Check SNMP counters.",
    ),
    line(
        Info,
        "audit",
        "audit event",
        "audit: user {user_id:user} performed {action:audit} on {resource:resource} id={resource_id:uuid} from {client_ip:ip}",
    ),
    line(
        Warn,
        "db",
        "slow query",
        "slow query ({duration:sec}): {sql:sql}",
    ),
];
