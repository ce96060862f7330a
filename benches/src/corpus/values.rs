//! The variable parts of log lines: ids, addresses, durations, paths, SQL, stack traces.
//!
//! Real logs repeat themselves: the same users, client addresses, SKUs and cache keys
//! come back again and again, with a few of them very hot. Values drawn from a
//! population are therefore picked with a Zipf-like law (`zipf_index`) from a pool that
//! is derived from the corpus seed by hashing the pool index, so the pool costs no memory
//! and is the same for every run of a seed. Trace ids are reused across the lines of one
//! request through a small ring of recent traces. Only the values that are unique in real
//! logs too (request ids, uuids, offsets, payment ids) are fresh random draws; they are
//! what makes a realistic share of the terms occur only once.

use std::fmt::Write as _;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a placeholder `{key:kind}` of a template draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Uuid,
    TraceId,
    SpanId,
    RequestId,
    UserId,
    Email,
    ClientIp,
    InternalIp,
    Port,
    Pid,
    Count10,
    Count100,
    Count1k,
    Count10k,
    Count1m,
    Offset,
    Bytes,
    Megabytes,
    Millis,
    Seconds,
    Percent,
    Amount,
    Currency,
    HttpMethod,
    HttpPath,
    HttpStatus,
    Table,
    Sql,
    FilePath,
    Peer,
    DbHost,
    Domain,
    Url,
    Error,
    UserAgent,
    SearchQuery,
    Word,
    Hex8,
    Hex16,
    Hex32,
    Sha1,
    Topic,
    CacheKey,
    CacheResult,
    Pool,
    AuthMethod,
    SpanName,
    Job,
    Flag,
    Bool,
    Bucket,
    ObjectKey,
    ConfigKey,
    EmailTemplate,
    WsCloseCode,
    Mount,
    TlsVersion,
    Cipher,
    Rpc,
    ShipmentId,
    Carrier,
    Tracking,
    Country,
    LockName,
    Hostname,
    PanicMessage,
    GoStack,
    JavaClass,
    JavaException,
    JavaStack,
    HugeJavaStack,
    JsonPayload,
    Headers,
    ProfileFields,
    Event,
    AuditAction,
    ResourceName,
    DeclineCode,
    DeclineReason,
    Warehouse,
    OAuthScope,
    Migration,
    LoadBalancer,
    Sink,
    ApiKey,
    ClientId,
    Session,
    OrderId,
    PaymentId,
    Sku,
    Thread,
    Tenant,
    Caller,
    ClientVersion,
    Locale,
    ContentType,
    Plan,
    Sentence,
    Build,
}

impl ValueKind {
    /// The kind a template names, e.g. `ms` in `{duration:ms}`.
    pub(crate) fn from_name(name: &str) -> Option<ValueKind> {
        use ValueKind::*;
        let kind = match name {
            "uuid" => Uuid,
            "trace" => TraceId,
            "span" => SpanId,
            "reqid" => RequestId,
            "user" => UserId,
            "email" => Email,
            "ip" => ClientIp,
            "iip" => InternalIp,
            "port" => Port,
            "pid" => Pid,
            "n10" => Count10,
            "n100" => Count100,
            "n1k" => Count1k,
            "n10k" => Count10k,
            "n1m" => Count1m,
            "offset" => Offset,
            "bytes" => Bytes,
            "mb" => Megabytes,
            "ms" => Millis,
            "sec" => Seconds,
            "pct" => Percent,
            "amount" => Amount,
            "currency" => Currency,
            "method" => HttpMethod,
            "path" => HttpPath,
            "status" => HttpStatus,
            "table" => Table,
            "sql" => Sql,
            "file" => FilePath,
            "peer" => Peer,
            "dbhost" => DbHost,
            "domain" => Domain,
            "url" => Url,
            "err" => Error,
            "ua" => UserAgent,
            "searchq" => SearchQuery,
            "word" => Word,
            "hex8" => Hex8,
            "hex16" => Hex16,
            "hex32" => Hex32,
            "sha" => Sha1,
            "topic" => Topic,
            "key" => CacheKey,
            "cachehit" => CacheResult,
            "pool" => Pool,
            "authmethod" => AuthMethod,
            "spanname" => SpanName,
            "job" => Job,
            "flag" => Flag,
            "bool" => Bool,
            "bucket" => Bucket,
            "objkey" => ObjectKey,
            "configkey" => ConfigKey,
            "emailtpl" => EmailTemplate,
            "wscode" => WsCloseCode,
            "mount" => Mount,
            "tlsver" => TlsVersion,
            "cipher" => Cipher,
            "rpc" => Rpc,
            "shipid" => ShipmentId,
            "carrier" => Carrier,
            "tracking" => Tracking,
            "country" => Country,
            "lock" => LockName,
            "hostname" => Hostname,
            "panic" => PanicMessage,
            "gostack" => GoStack,
            "class" => JavaClass,
            "javaex" => JavaException,
            "javastack" => JavaStack,
            "hugestack" => HugeJavaStack,
            "jsonpayload" => JsonPayload,
            "headers" => Headers,
            "fields" => ProfileFields,
            "event" => Event,
            "audit" => AuditAction,
            "resource" => ResourceName,
            "declinecode" => DeclineCode,
            "declinereason" => DeclineReason,
            "warehouse" => Warehouse,
            "scope" => OAuthScope,
            "migration" => Migration,
            "lb" => LoadBalancer,
            "sink" => Sink,
            "apikey" => ApiKey,
            "clientid" => ClientId,
            "session" => Session,
            "order" => OrderId,
            "payid" => PaymentId,
            "sku" => Sku,
            "thread" => Thread,
            "tenant" => Tenant,
            "caller" => Caller,
            "clientver" => ClientVersion,
            "locale" => Locale,
            "ctype" => ContentType,
            "plan" => Plan,
            "sentence" => Sentence,
            "build" => Build,
            _ => return None,
        };
        Some(kind)
    }

    /// Whether a JSON rendering writes the value as a bare number.
    pub(crate) fn is_number(self) -> bool {
        use ValueKind::*;
        matches!(
            self,
            UserId
                | Port
                | Pid
                | Count10
                | Count100
                | Count1k
                | Count10k
                | Count1m
                | Offset
                | Bytes
                | Megabytes
                | Percent
                | Amount
                | HttpStatus
                | WsCloseCode
        )
    }
}

/// Context fields that structured loggers add to a line; the corpus appends them to
/// reach a line's drawn length, as a real service logs more context on some lines.
pub(crate) const CONTEXT_FIELDS: [(&str, ValueKind); 26] = [
    ("thread", ValueKind::Thread),
    ("tenant", ValueKind::Tenant),
    ("trace_id", ValueKind::TraceId),
    ("span_id", ValueKind::SpanId),
    ("request_id", ValueKind::RequestId),
    ("caller", ValueKind::Caller),
    ("user_agent", ValueKind::UserAgent),
    ("remote_addr", ValueKind::ClientIp),
    ("bytes_in", ValueKind::Bytes),
    ("bytes_out", ValueKind::Bytes),
    ("attempt", ValueKind::Count10),
    ("cache", ValueKind::CacheResult),
    ("db_rows", ValueKind::Count1k),
    ("client_version", ValueKind::ClientVersion),
    ("session", ValueKind::Session),
    ("locale", ValueKind::Locale),
    ("upstream", ValueKind::Peer),
    ("upstream_latency", ValueKind::Millis),
    ("queue_depth", ValueKind::Count100),
    ("pid", ValueKind::Pid),
    ("build", ValueKind::Build),
    ("content_type", ValueKind::ContentType),
    ("plan", ValueKind::Plan),
    ("referer", ValueKind::Url),
    ("user_id", ValueKind::UserId),
    ("flag", ValueKind::Flag),
];

/// How many recent traces lines may refer to again (a request logs several lines).
const RECENT_TRACES: usize = 48;

/// Draws values, with the pools and the per-line trace state they need.
pub(crate) struct ValueSource {
    salt: u64,
    recent_traces: Vec<[u8; 16]>,
    line_trace: Option<[u8; 16]>,
    line_span: Option<[u8; 8]>,
}

impl ValueSource {
    pub(crate) fn new(salt: u64, rng: &mut ChaCha8Rng) -> ValueSource {
        let recent_traces = (0..RECENT_TRACES).map(|_| rng.random()).collect();
        ValueSource {
            salt,
            recent_traces,
            line_trace: None,
            line_span: None,
        }
    }

    /// Forgets the trace of the previous line.
    pub(crate) fn start_line(&mut self) {
        self.line_trace = None;
        self.line_span = None;
    }

    /// The trace id this line printed, or one it belongs to without printing it.
    pub(crate) fn line_trace(
        &mut self,
        rng: &mut ChaCha8Rng,
        probability_if_unprinted: f64,
    ) -> Option<([u8; 16], [u8; 8])> {
        if self.line_trace.is_none() && rng.random_bool(probability_if_unprinted) {
            self.trace_id(rng);
        }
        let trace = self.line_trace?;
        let span = match self.line_span {
            Some(span) => span,
            None => self.span_id(rng),
        };
        Some((trace, span))
    }

    fn trace_id(&mut self, rng: &mut ChaCha8Rng) -> [u8; 16] {
        if let Some(trace) = self.line_trace {
            return trace;
        }
        let slot = rng.random_range(0..self.recent_traces.len());
        // Most trace ids a line prints belong to a request that already logged a line.
        if rng.random_bool(0.4) {
            self.recent_traces[slot] = rng.random();
        }
        let trace = self.recent_traces[slot];
        self.line_trace = Some(trace);
        trace
    }

    fn span_id(&mut self, rng: &mut ChaCha8Rng) -> [u8; 8] {
        if let Some(span) = self.line_span {
            return span;
        }
        let span: [u8; 8] = rng.random();
        self.line_span = Some(span);
        span
    }

    /// Hash of a pool index: the pool's member at that index, the same for every run.
    fn pooled(&self, pool: u64, index: usize) -> u64 {
        splitmix64(self.salt ^ pool.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64)
    }

    /// Appends one value of `kind` to `out`.
    pub(crate) fn write(&mut self, kind: ValueKind, rng: &mut ChaCha8Rng, out: &mut String) {
        use ValueKind::*;
        match kind {
            Uuid => write_uuid(rng, out),
            TraceId => {
                let trace = self.trace_id(rng);
                write_hex(&trace, out);
            }
            SpanId => {
                let span = self.span_id(rng);
                write_hex(&span, out);
            }
            RequestId => {
                if rng.random_bool(0.5) {
                    write_uuid(rng, out);
                } else {
                    out.push_str("req_");
                    write_base62(rng, 20, out);
                }
            }
            UserId => {
                let user = zipf_index(rng, 200_000);
                let _ = write!(out, "{}", 1_000_000 + self.pooled(1, user) % 9_000_000);
            }
            Email => {
                let user = zipf_index(rng, 200_000);
                let hash = self.pooled(2, user);
                let first = FIRST_NAMES[(hash % FIRST_NAMES.len() as u64) as usize];
                let last = LAST_NAMES[((hash >> 16) % LAST_NAMES.len() as u64) as usize];
                let domain = MAIL_DOMAINS[((hash >> 32) % MAIL_DOMAINS.len() as u64) as usize];
                let _ = write!(out, "{first}.{last}{}@{domain}", (hash >> 40) % 100);
            }
            ClientIp => {
                let hash = self.pooled(3, zipf_index(rng, 30_000));
                let first =
                    [23u64, 34, 52, 66, 73, 81, 98, 104, 151, 176, 185, 203][(hash % 12) as usize];
                let _ = write!(
                    out,
                    "{first}.{}.{}.{}",
                    (hash >> 8) & 0xff,
                    (hash >> 16) & 0xff,
                    1 + (hash >> 24) % 254
                );
            }
            InternalIp => {
                let hash = self.pooled(4, zipf_index(rng, 400));
                let _ = write!(out, "10.0.{}.{}", (hash >> 8) % 64, 1 + (hash >> 16) % 254);
            }
            Port => {
                let _ = write!(out, "{}", rng.random_range(32768..61000));
            }
            Pid => {
                let _ = write!(
                    out,
                    "{}",
                    1000 + self.pooled(5, rng.random_range(0..40)) % 60000
                );
            }
            Count10 => {
                let _ = write!(out, "{}", rng.random_range(1..=10));
            }
            Count100 => {
                let _ = write!(out, "{}", skewed(rng, 100));
            }
            Count1k => {
                let _ = write!(out, "{}", skewed(rng, 1_000));
            }
            Count10k => {
                let _ = write!(out, "{}", skewed(rng, 10_000));
            }
            Count1m => {
                let _ = write!(out, "{}", skewed(rng, 1_000_000));
            }
            Offset => {
                let _ = write!(out, "{}", rng.random_range(1_000_000u64..9_000_000_000));
            }
            Bytes => {
                let _ = write!(out, "{}", log_normal(rng, 2_000.0, 1.4).round() as u64);
            }
            Megabytes => {
                let _ = write!(out, "{}", rng.random_range(64..4096));
            }
            Millis => {
                let millis = log_normal(rng, 12.0, 1.1);
                if millis < 10.0 {
                    let _ = write!(out, "{millis:.2}ms");
                } else {
                    let _ = write!(out, "{millis:.1}ms");
                }
            }
            Seconds => {
                let _ = write!(out, "{:.3}s", 1.0 + log_normal(rng, 1.5, 0.9));
            }
            Percent => {
                let _ = write!(out, "{:.1}", rng.random_range(85.0..99.9));
            }
            Amount => {
                let _ = write!(out, "{:.2}", log_normal(rng, 45.0, 1.0));
            }
            Currency => out.push_str(pick_weighted(rng, CURRENCIES)),
            HttpMethod => out.push_str(pick_weighted(rng, HTTP_METHODS)),
            HttpPath => self.write_path(rng, out),
            HttpStatus => out.push_str(pick_weighted(rng, HTTP_STATUSES)),
            Table => out.push_str(pick_zipf(rng, TABLES)),
            Sql => self.write_sql(rng, out),
            FilePath => self.write_file_path(rng, out),
            Peer => out.push_str(pick_zipf(rng, PEERS)),
            DbHost => {
                let cluster = rng.random_range(0..3);
                let _ = write!(
                    out,
                    "{}-db-{}.cluster-c{:06x}.us-east-1.rds.amazonaws.com:5432",
                    pick(rng, DB_NAMES),
                    cluster + 1,
                    self.pooled(6, cluster) & 0xff_ffff
                );
            }
            Domain => out.push_str(pick_zipf(rng, DOMAINS)),
            Url => {
                let _ = write!(out, "https://{}", pick_zipf(rng, DOMAINS));
                self.write_path(rng, out);
            }
            Error => self.write_error(rng, out),
            UserAgent => out.push_str(pick_zipf(rng, USER_AGENTS)),
            SearchQuery => {
                let words = rng.random_range(1..=4);
                for index in 0..words {
                    if index > 0 {
                        out.push(' ');
                    }
                    out.push_str(pick_zipf(rng, WORDS));
                }
            }
            Word => out.push_str(pick_zipf(rng, WORDS)),
            Sentence => {
                let words = rng.random_range(6..16);
                self.write_sentence(rng, words, out);
            }
            Hex8 => {
                let _ = write!(out, "{:08x}", rng.random::<u32>());
            }
            Hex16 => {
                let _ = write!(out, "{:016x}", rng.random::<u64>());
            }
            Hex32 => {
                let _ = write!(
                    out,
                    "{:016x}{:016x}",
                    rng.random::<u64>(),
                    rng.random::<u64>()
                );
            }
            Sha1 => {
                let _ = write!(
                    out,
                    "{:016x}{:016x}{:08x}",
                    rng.random::<u64>(),
                    rng.random::<u64>(),
                    rng.random::<u32>()
                );
            }
            Topic => out.push_str(pick_zipf(rng, TOPICS)),
            CacheKey => match rng.random_range(0..4) {
                0 => {
                    out.push_str("user:");
                    self.write(UserId, rng, out);
                    out.push_str(":profile");
                }
                1 => {
                    out.push_str("product:");
                    self.write(Sku, rng, out);
                }
                2 => {
                    out.push_str("session:");
                    self.write(Session, rng, out);
                }
                _ => {
                    out.push_str("rate:");
                    self.write(ClientIp, rng, out);
                }
            },
            CacheResult => out.push_str(if rng.random_bool(0.82) { "hit" } else { "miss" }),
            Pool => out.push_str(pick_zipf(
                rng,
                &["primary", "replica", "analytics", "sessions"],
            )),
            AuthMethod => out.push_str(pick_zipf(
                rng,
                &[
                    "password",
                    "oauth2",
                    "saml",
                    "api_key",
                    "webauthn",
                    "magic_link",
                ],
            )),
            SpanName => out.push_str(pick_zipf(rng, SPAN_NAMES)),
            Job => out.push_str(pick_zipf(rng, JOBS)),
            Flag => out.push_str(pick_zipf(rng, FLAGS)),
            Bool => out.push_str(if rng.random_bool(0.7) {
                "true"
            } else {
                "false"
            }),
            Bucket => out.push_str(pick_zipf(rng, BUCKETS)),
            ObjectKey => {
                let _ = write!(
                    out,
                    "{}/2026/11/{:02}/",
                    pick(rng, &["uploads", "exports", "avatars", "invoices"]),
                    rng.random_range(1..29)
                );
                write_uuid(rng, out);
                out.push_str(pick(rng, &[".jpg", ".png", ".pdf", ".csv.gz", ".json"]));
            }
            ConfigKey => out.push_str(pick(rng, CONFIG_KEYS)),
            EmailTemplate => out.push_str(pick_zipf(rng, EMAIL_TEMPLATES)),
            WsCloseCode => out.push_str(pick_weighted(
                rng,
                &[("1000", 70), ("1001", 20), ("1006", 8), ("1011", 2)],
            )),
            Mount => out.push_str(pick(rng, &["/", "/var/lib/data", "/var/log", "/tmp"])),
            TlsVersion => out.push_str(if rng.random_bool(0.9) {
                "TLSv1.3"
            } else {
                "TLSv1.2"
            }),
            Cipher => out.push_str(pick_zipf(rng, CIPHERS)),
            Rpc => out.push_str(pick_zipf(rng, RPCS)),
            ShipmentId => {
                out.push_str("shp_");
                write_base62(rng, 14, out);
            }
            Carrier => out.push_str(pick_zipf(
                rng,
                &["ups", "fedex", "dhl", "usps", "colissimo", "royalmail"],
            )),
            Tracking => {
                let _ = write!(
                    out,
                    "1Z{:06X}{:010}",
                    rng.random_range(0..0xff_ffffu32),
                    rng.random_range(0..10_000_000_000u64)
                );
            }
            Country => out.push_str(pick_zipf(rng, COUNTRIES)),
            LockName => {
                out.push_str(pick(
                    rng,
                    &["leader-election/", "migrations/", "job/", "reindex/"],
                ));
                out.push_str(pick_zipf(rng, JOBS));
            }
            Hostname => {
                let hash = self.pooled(7, zipf_index(rng, 300));
                let _ = write!(
                    out,
                    "ip-10-0-{}-{}.ec2.internal",
                    (hash >> 8) % 64,
                    1 + (hash >> 16) % 254
                );
            }
            PanicMessage => out.push_str(pick(rng, PANICS)),
            GoStack => self.write_go_stack(rng, out),
            JavaClass => out.push_str(pick_zipf(rng, JAVA_CLASSES)),
            JavaException => out.push_str(pick_zipf(rng, JAVA_EXCEPTIONS)),
            JavaStack => {
                let frames = rng.random_range(6..22);
                self.write_java_stack(rng, frames, out);
            }
            HugeJavaStack => {
                // Multi-kilobyte: a deep framework stack with causes, 3–14 KB.
                let frames = rng.random_range(40..180);
                self.write_java_stack(rng, frames, out);
            }
            JsonPayload => {
                let target = out.len() + rng.random_range(2_000..12_000);
                self.write_json_payload(rng, target, out);
            }
            Headers => self.write_headers(rng, out),
            ProfileFields => {
                let count = rng.random_range(1..5);
                for index in 0..count {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(pick(rng, PROFILE_FIELDS));
                }
            }
            Event => out.push_str(pick_zipf(rng, EVENTS)),
            AuditAction => out.push_str(pick_zipf(
                rng,
                &[
                    "update",
                    "create",
                    "delete",
                    "grant_role",
                    "revoke_role",
                    "export",
                    "rotate_key",
                ],
            )),
            ResourceName => out.push_str(pick_zipf(
                rng,
                &[
                    "project",
                    "api_key",
                    "user",
                    "billing_account",
                    "webhook",
                    "team",
                    "invoice",
                ],
            )),
            DeclineCode => {
                out.push_str(pick_zipf(rng, &["05", "51", "54", "14", "61", "65", "91"]))
            }
            DeclineReason => out.push_str(pick_zipf(rng, DECLINE_REASONS)),
            Warehouse => out.push_str(pick_zipf(
                rng,
                &["iad-1", "iad-2", "sfo-1", "ams-1", "fra-2", "nrt-1"],
            )),
            OAuthScope => out.push_str(pick_zipf(rng, SCOPES)),
            Migration => {
                let index = rng.random_range(0..MIGRATIONS.len());
                let _ = write!(
                    out,
                    "2026{:04}_{:06x}_{}",
                    1100 + index,
                    self.pooled(8, index) & 0xff_ffff,
                    MIGRATIONS[index]
                );
            }
            LoadBalancer => {
                out.push_str(pick(rng, &["web-public", "api-internal", "grpc-internal"]))
            }
            Sink => out.push_str(pick_zipf(
                rng,
                &["s3", "kafka", "clickhouse", "bigquery", "elasticsearch"],
            )),
            ApiKey => {
                let _ = write!(out, "ak_live_{:016x}", self.pooled(9, zipf_index(rng, 600)));
            }
            ClientId => {
                let index = zipf_index(rng, 250);
                let hash = self.pooled(10, index);
                let _ = write!(
                    out,
                    "{}-{}",
                    WORDS[(hash % WORDS.len() as u64) as usize],
                    index
                );
            }
            Session => {
                let _ = write!(
                    out,
                    "sess_{:016x}",
                    self.pooled(11, zipf_index(rng, 80_000))
                );
            }
            OrderId => {
                out.push_str("ord_");
                write_base62(rng, 16, out);
            }
            PaymentId => {
                out.push_str("pay_");
                write_base62(rng, 24, out);
            }
            Sku => {
                let _ = write!(
                    out,
                    "SKU-{:06}",
                    self.pooled(12, zipf_index(rng, 25_000)) % 1_000_000
                );
            }
            Thread => {
                if rng.random_bool(0.6) {
                    let _ = write!(out, "http-nio-8080-exec-{}", rng.random_range(1..=200));
                } else {
                    let _ = write!(
                        out,
                        "{}-{}",
                        pick(
                            rng,
                            &["worker", "scheduler", "kafka-consumer", "pool-2-thread"]
                        ),
                        rng.random_range(1..=16)
                    );
                }
            }
            Tenant => {
                let index = zipf_index(rng, 3_000);
                let hash = self.pooled(13, index);
                let _ = write!(
                    out,
                    "{}-{}",
                    WORDS[(hash % WORDS.len() as u64) as usize],
                    hash >> 40
                );
            }
            Caller => {
                let _ = write!(
                    out,
                    "{}.go:{}",
                    pick(rng, GO_FILES),
                    rng.random_range(20..900)
                );
            }
            ClientVersion => {
                let _ = write!(
                    out,
                    "{}-{}.{}.{}",
                    pick(rng, &["ios", "android", "web"]),
                    5,
                    rng.random_range(8..14),
                    rng.random_range(0..6)
                );
            }
            Locale => out.push_str(pick_zipf(
                rng,
                &[
                    "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR", "nl-NL",
                ],
            )),
            ContentType => out.push_str(pick_zipf(
                rng,
                &[
                    "application/json",
                    "text/html; charset=utf-8",
                    "application/grpc",
                    "image/jpeg",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ],
            )),
            Plan => out.push_str(pick_zipf(rng, &["free", "pro", "team", "enterprise"])),
            Build => {
                // A handful of builds are deployed at once; a build id is not per line.
                let _ = write!(out, "{:08x}", self.pooled(16, zipf_index(rng, 12)) as u32);
            }
        }
    }

    fn write_path(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        let route = pick_zipf(rng, ROUTES);
        // Routes name their variable parts with the same `{kind}` names as templates.
        let mut rest = route;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open
                + rest[open..]
                    .find('}')
                    .expect("route placeholders are closed (static data)");
            let kind = ValueKind::from_name(&rest[open + 1..close])
                .expect("route placeholders name known kinds (static data)");
            self.write(kind, rng, out);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
    }

    fn write_sql(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        match rng.random_range(0..7) {
            0 => {
                out.push_str("SELECT id, status, total_cents, created_at FROM orders WHERE customer_id = ");
                self.write(ValueKind::UserId, rng, out);
                let _ = write!(out, " AND created_at > now() - interval '{} days' ORDER BY created_at DESC LIMIT 50", rng.random_range(1..90));
            }
            1 => {
                let _ = write!(out, "UPDATE inventory SET reserved = reserved + {} WHERE sku = '", rng.random_range(1..5));
                self.write(ValueKind::Sku, rng, out);
                out.push_str("' AND warehouse_id = $2");
            }
            2 => out.push_str("INSERT INTO events (id, aggregate_id, type, payload, created_at) VALUES ($1, $2, $3, $4, now())"),
            3 => {
                out.push_str("SELECT u.id, u.email, p.plan FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.id = ");
                self.write(ValueKind::UserId, rng, out);
            }
            4 => {
                let _ = write!(out, "DELETE FROM sessions WHERE expires_at < now() - interval '{} hours'", rng.random_range(1..48));
            }
            5 => {
                out.push_str("SELECT sku, name, price_cents FROM products WHERE sku IN (");
                let count = rng.random_range(2..12);
                for index in 0..count {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    out.push('\'');
                    self.write(ValueKind::Sku, rng, out);
                    out.push('\'');
                }
                out.push(')');
            }
            _ => {
                let _ = write!(out, "SELECT count(*) FROM {} WHERE tenant_id = $1 AND deleted_at IS NULL", pick_zipf(rng, TABLES));
            }
        }
    }

    fn write_file_path(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        match rng.random_range(0..5) {
            0 => {
                let _ = write!(
                    out,
                    "/var/lib/app/cache/{:02x}/{:08x}.bin",
                    rng.random::<u8>(),
                    rng.random::<u32>()
                );
            }
            1 => out.push_str(pick(
                rng,
                &[
                    "/etc/app/config.yaml",
                    "/etc/app/features.json",
                    "/etc/ssl/certs/ca-bundle.crt",
                    "/opt/app/conf/logback.xml",
                ],
            )),
            2 => {
                let _ = write!(out, "/var/log/app/app.log.{}.gz", rng.random_range(1..10));
            }
            3 => {
                out.push_str("/tmp/upload-");
                write_uuid(rng, out);
                out.push_str(".part");
            }
            _ => {
                let _ = write!(
                    out,
                    "/data/exports/{}/part-{:05}.parquet",
                    pick_zipf(rng, TABLES),
                    rng.random_range(0..200)
                );
            }
        }
    }

    fn write_error(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        match rng.random_range(0..14) {
            0 => {
                out.push_str("dial tcp ");
                self.write(ValueKind::InternalIp, rng, out);
                out.push_str(":5432: connect: connection refused");
            }
            1 => {
                out.push_str("read tcp ");
                self.write(ValueKind::InternalIp, rng, out);
                let _ = write!(out, ":{}->", rng.random_range(32768..61000));
                self.write(ValueKind::InternalIp, rng, out);
                out.push_str(":443: read: connection reset by peer");
            }
            2 | 3 => out.push_str("context deadline exceeded"),
            4 => out.push_str("rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing\""),
            5 => out.push_str("upstream request timeout"),
            6 => {
                out.push_str("pq: duplicate key value violates unique constraint \"");
                out.push_str(pick_zipf(rng, TABLES));
                out.push_str("_pkey\"");
            }
            7 => out.push_str("redis: connection pool timeout"),
            8 => out.push_str("x509: certificate has expired or is not yet valid"),
            9 => {
                let _ = write!(out, "invalid character '{}' looking for beginning of value", pick(rng, &["<", "}", "x", "N"]));
            }
            10 => out.push_str("EOF"),
            11 => {
                out.push_str("lookup ");
                out.push_str(pick_zipf(rng, PEERS));
                out.push_str(": no such host");
            }
            12 => out.push_str("accept4: too many open files"),
            _ => {
                let _ = write!(out, "http2: server sent GOAWAY and closed the connection; LastStreamID={}, ErrCode=NO_ERROR", rng.random_range(1..20_000) * 2 + 1);
            }
        }
    }

    fn write_sentence(&mut self, rng: &mut ChaCha8Rng, words: usize, out: &mut String) {
        for index in 0..words {
            if index > 0 {
                out.push(' ');
            }
            out.push_str(pick_zipf(rng, WORDS));
        }
    }

    fn write_go_stack(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        let frames = rng.random_range(4..12);
        let start = rng.random_range(0..GO_FRAMES.len());
        for index in 0..frames {
            let frame_index = (start + index) % GO_FRAMES.len();
            let (function, file) = GO_FRAMES[frame_index];
            let line = 20 + self.pooled(14, frame_index) % 800;
            let _ = write!(
                out,
                "\n{function}(0xc000{:06x}, 0x{:x})\n\t{file}:{line} +0x{:x}",
                rng.random::<u32>() & 0xff_ffff,
                rng.random::<u16>(),
                rng.random_range(0x20..0x400)
            );
        }
    }

    fn write_java_stack(&mut self, rng: &mut ChaCha8Rng, frames: usize, out: &mut String) {
        // Stacks repeat: the same frames with the same line numbers, from a few entry points.
        let entry_point = zipf_index(rng, JAVA_FRAMES.len());
        for index in 0..frames {
            if index > 0 && index % 25 == 0 {
                out.push_str("\nCaused by: ");
                out.push_str(pick_zipf(rng, JAVA_EXCEPTIONS));
            }
            let frame_index = (entry_point + index) % JAVA_FRAMES.len();
            let (method, file) = JAVA_FRAMES[frame_index];
            let line = 20 + self.pooled(15, frame_index) % 1500;
            let _ = write!(out, "\n\tat {method}({file}:{line})");
        }
        let _ = write!(out, "\n\t... {} more", rng.random_range(5..90));
    }

    fn write_json_payload(&mut self, rng: &mut ChaCha8Rng, target_len: usize, out: &mut String) {
        out.push_str("{\"customer\":{\"id\":");
        self.write(ValueKind::UserId, rng, out);
        out.push_str(",\"email\":\"");
        self.write(ValueKind::Email, rng, out);
        out.push_str("\",\"locale\":\"");
        self.write(ValueKind::Locale, rng, out);
        out.push_str("\"},\"items\":[");
        let mut first = true;
        while out.len() < target_len {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("{\"sku\":\"");
            self.write(ValueKind::Sku, rng, out);
            let _ = write!(out, "\",\"qty\":{},\"price\":", rng.random_range(1..4));
            self.write(ValueKind::Amount, rng, out);
            out.push_str(",\"title\":\"");
            let words = rng.random_range(2..6);
            self.write_sentence(rng, words, out);
            out.push_str("\",\"tags\":[\"");
            out.push_str(pick_zipf(rng, WORDS));
            out.push_str("\",\"");
            out.push_str(pick_zipf(rng, WORDS));
            out.push_str("\"]}");
        }
        out.push_str("],\"currency\":\"");
        self.write(ValueKind::Currency, rng, out);
        out.push_str("\"}");
    }

    fn write_headers(&mut self, rng: &mut ChaCha8Rng, out: &mut String) {
        out.push_str("Host: api.");
        out.push_str(pick_zipf(rng, DOMAINS));
        out.push_str(", User-Agent: ");
        self.write(ValueKind::UserAgent, rng, out);
        out.push_str(
            ", Accept: application/json, Accept-Encoding: gzip, deflate, br, X-Request-Id: ",
        );
        write_uuid(rng, out);
        out.push_str(", X-Forwarded-For: ");
        self.write(ValueKind::ClientIp, rng, out);
        out.push_str(", ");
        self.write(ValueKind::InternalIp, rng, out);
        out.push_str(", Authorization: Bearer [redacted], Cookie: session=");
        self.write(ValueKind::Session, rng, out);
        let _ = write!(
            out,
            "; _ga=GA1.2.{}.{}, Content-Length: ",
            rng.random_range(100_000_000u64..999_999_999),
            1_760_000_000 + rng.random_range(0..10_000_000u64)
        );
        self.write(ValueKind::Bytes, rng, out);
    }
}

/// An index in `0..n` with density ∝ 1/(index + 1): a Zipf law of exponent 1, sampled
/// by inverting the continuous CDF (`n^u` for uniform `u`), which needs no table.
pub(crate) fn zipf_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    debug_assert!(n > 0);
    let x = (n as f64).powf(rng.random::<f64>());
    (x as usize).saturating_sub(1).min(n - 1)
}

/// A count in `0..max` skewed towards small values, as counts in logs are.
fn skewed(rng: &mut ChaCha8Rng, max: u64) -> u64 {
    let x = (max as f64).powf(rng.random::<f64>());
    (x as u64).saturating_sub(1).min(max - 1)
}

/// A log-normal draw with the given median and shape (standard deviation of the log).
pub(crate) fn log_normal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

/// Box–Muller: one standard normal draw from two uniforms.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1], so ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn pick<'a>(rng: &mut ChaCha8Rng, pool: &[&'a str]) -> &'a str {
    pool[rng.random_range(0..pool.len())]
}

fn pick_zipf<'a>(rng: &mut ChaCha8Rng, pool: &[&'a str]) -> &'a str {
    pool[zipf_index(rng, pool.len())]
}

fn pick_weighted<'a>(rng: &mut ChaCha8Rng, pool: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = pool.iter().map(|(_, weight)| weight).sum();
    let mut draw = rng.random_range(0..total);
    for (value, weight) in pool {
        if draw < *weight {
            return value;
        }
        draw -= weight;
    }
    pool[pool.len() - 1].0
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) fn write_hex(bytes: &[u8], out: &mut String) {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
}

fn write_uuid(rng: &mut ChaCha8Rng, out: &mut String) {
    let bytes: [u8; 16] = rng.random();
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let _ = write!(out, "{}", id.hyphenated());
}

fn write_base62(rng: &mut ChaCha8Rng, len: usize, out: &mut String) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..len {
        out.push(ALPHABET[rng.random_range(0..62)] as char);
    }
}

const HTTP_METHODS: &[(&str, u32)] = &[
    ("GET", 70),
    ("POST", 18),
    ("PUT", 5),
    ("DELETE", 3),
    ("PATCH", 3),
    ("OPTIONS", 1),
];
const HTTP_STATUSES: &[(&str, u32)] = &[
    ("200", 820),
    ("201", 40),
    ("204", 30),
    ("301", 5),
    ("304", 30),
    ("400", 15),
    ("401", 12),
    ("403", 6),
    ("404", 25),
    ("409", 3),
    ("429", 5),
    ("500", 5),
    ("502", 2),
    ("503", 2),
];
const CURRENCIES: &[(&str, u32)] = &[
    ("USD", 60),
    ("EUR", 20),
    ("GBP", 8),
    ("JPY", 4),
    ("CAD", 4),
    ("AUD", 3),
    ("BRL", 1),
];

const ROUTES: &[&str] = &[
    "/api/v1/orders/{n1m}",
    "/api/v1/products/{sku}",
    "/api/v1/users/{user}/cart",
    "/api/v1/search?q={word}&page={n10}",
    "/api/v2/recommendations?user_id={user}",
    "/graphql",
    "/api/v1/sessions",
    "/api/v1/users/{user}",
    "/static/js/main.{hex8}.js",
    "/api/v1/orders",
    "/api/v1/payments/{payid}/capture",
    "/api/v1/inventory/{sku}/availability",
    "/static/css/app.{hex8}.css",
    "/api/v1/auth/token",
    "/api/v1/users/{user}/addresses",
    "/api/v1/shipments/{shipid}",
    "/favicon.ico",
    "/api/v1/notifications/unread",
    "/api/v1/reviews?product={sku}",
    "/api/v1/webhooks/stripe",
    "/api/internal/metrics",
    "/api/v1/export/{uuid}/download",
    "/images/products/{sku}/{n10}.jpg",
    "/api/v1/coupons/validate",
    "/api/v1/users/{user}/preferences",
    "/admin/tenants/{tenant}/billing",
    "/api/v1/orders/{n1m}/refund",
    "/robots.txt",
];

const TABLES: &[&str] = &[
    "orders",
    "order_items",
    "users",
    "sessions",
    "products",
    "inventory",
    "payments",
    "shipments",
    "events",
    "carts",
    "addresses",
    "reviews",
    "coupons",
    "invoices",
    "audit_log",
    "webhooks",
    "api_keys",
    "feature_flags",
    "notifications",
    "refunds",
    "tenants",
    "plans",
    "warehouses",
    "price_rules",
    "search_index_queue",
];

const PEERS: &[&str] = &[
    "payments.internal:8443",
    "inventory.internal:8080",
    "auth.internal:8443",
    "redis-sessions.internal:6379",
    "search.internal:9200",
    "catalog.internal:8080",
    "kafka-1.internal:9092",
    "kafka-2.internal:9092",
    "kafka-3.internal:9092",
    "shipping.internal:8080",
    "notifications.internal:8080",
    "api.stripe.com:443",
    "pricing.internal:8080",
    "geo.internal:50051",
    "recommendations.internal:50051",
    "ledger.internal:50051",
    "smtp.sendgrid.net:587",
    "billing.internal:8080",
];

const DB_NAMES: &[&str] = &["orders", "users", "catalog", "ledger"];

const DOMAINS: &[&str] = &[
    "shop.example.com",
    "www.example.com",
    "api.example.com",
    "partner.acme.io",
    "hooks.slack.com",
    "checkout.example.com",
    "m.example.com",
    "cdn.example-static.net",
    "accounts.google.com",
    "login.microsoftonline.com",
    "example.de",
    "example.co.uk",
    "status.example.com",
    "events.segment.io",
    "app.hubspot.com",
    "admin.example.com",
];

const MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "proton.me",
    "example.org",
    "gmx.de",
    "hotmail.co.uk",
];

const FIRST_NAMES: &[&str] = &[
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "chris",
    "karen",
    "lena",
    "yuki",
    "ahmed",
    "priya",
    "lucas",
    "sofia",
    "mateo",
    "emma",
    "noah",
    "olivia",
];

const LAST_NAMES: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sato",
    "mueller",
    "dubois",
    "rossi",
    "kowalski",
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "okhttp/4.12.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36",
    "ExampleShop/5.12.1 (iOS 18.1; iPhone15,2)",
    "Go-http-client/2.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "ELB-HealthChecker/2.0",
    "python-requests/2.32.3",
    "curl/8.10.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
];

/// Common words for search queries, titles, tenants and free text (Zipf-ranked).
const WORDS: &[&str] = &[
    "the",
    "shoes",
    "black",
    "new",
    "sale",
    "women",
    "men",
    "dress",
    "jacket",
    "running",
    "blue",
    "white",
    "leather",
    "bag",
    "winter",
    "summer",
    "kids",
    "shirt",
    "cotton",
    "red",
    "size",
    "large",
    "small",
    "gift",
    "set",
    "wireless",
    "headphones",
    "phone",
    "case",
    "charger",
    "coffee",
    "mug",
    "table",
    "chair",
    "lamp",
    "desk",
    "garden",
    "tool",
    "kit",
    "organic",
    "tea",
    "green",
    "wool",
    "socks",
    "boots",
    "sneakers",
    "watch",
    "ring",
    "silver",
    "gold",
    "vintage",
    "classic",
    "pro",
    "max",
    "mini",
    "ultra",
    "pack",
    "bundle",
    "premium",
    "basic",
    "home",
    "office",
    "travel",
    "sport",
    "yoga",
    "mat",
    "bottle",
    "water",
    "steel",
    "glass",
    "wood",
    "oak",
    "pine",
    "linen",
    "silk",
    "soft",
    "warm",
    "light",
    "dark",
    "grey",
    "navy",
    "pink",
    "beige",
    "brown",
    "orange",
    "yellow",
    "purple",
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "aperture",
    "soylent",
    "vandelay",
    "pied",
    "piper",
    "massive",
    "dynamic",
    "north",
    "south",
];

const TOPICS: &[&str] = &[
    "orders.created",
    "payments.authorized",
    "inventory.reserved",
    "users.signed_up",
    "shipments.dispatched",
    "notifications.email",
    "search.reindex",
    "orders.cancelled",
    "payments.refunded",
    "audit.events",
    "carts.abandoned",
    "prices.updated",
];

const SPAN_NAMES: &[&str] = &[
    "GET /api/v1/orders",
    "SELECT orders",
    "redis GET",
    "POST /api/v1/orders",
    "publish orders.created",
    "http.client GET",
    "inventory.v1.InventoryService/Reserve",
    "render template",
    "INSERT events",
    "redis SETEX",
    "s3.PutObject",
    "auth.v1.AuthService/Verify",
];

const JOBS: &[&str] = &[
    "expire-sessions",
    "sync-inventory",
    "send-digest-emails",
    "rebuild-search-index",
    "reconcile-payments",
    "cleanup-uploads",
    "refresh-exchange-rates",
    "compute-recommendations",
    "rotate-api-keys",
    "export-analytics",
    "retry-webhooks",
    "archive-orders",
];

const FLAGS: &[&str] = &[
    "new-checkout-flow",
    "one-click-buy",
    "dark-mode",
    "search-v2",
    "free-shipping-banner",
    "recommendations-carousel",
    "apple-pay",
    "paypal-express",
    "guest-checkout",
    "loyalty-points",
    "ai-search-suggestions",
    "reviews-photos",
    "split-payments",
    "address-autocomplete",
    "inventory-realtime",
    "multi-currency",
];

const BUCKETS: &[&str] = &[
    "example-user-uploads",
    "example-exports",
    "example-invoices",
    "example-media-prod",
    "example-backups",
];

const CONFIG_KEYS: &[&str] = &[
    "server.http.read_timeout",
    "server.http.write_timeout",
    "db.pool.max_connections",
    "db.pool.idle_timeout",
    "cache.redis.ttl_seconds",
    "kafka.consumer.max_poll_records",
    "feature_flags.refresh_interval",
    "payments.retry.max_attempts",
    "search.page_size",
    "log.level",
    "rate_limit.per_minute",
    "tls.min_version",
];

const EMAIL_TEMPLATES: &[&str] = &[
    "order-confirmation",
    "shipping-update",
    "password-reset",
    "welcome",
    "weekly-digest",
    "cart-reminder",
    "invoice",
    "review-request",
];

const CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
];

const RPCS: &[&str] = &[
    "/inventory.v1.InventoryService/Reserve",
    "/auth.v1.AuthService/Verify",
    "/pricing.v1.PricingService/Quote",
    "/geo.v1.GeoService/Locate",
    "/recommendations.v1.Recommender/ForUser",
    "/ledger.v1.Ledger/Post",
    "/catalog.v1.Catalog/GetProduct",
    "/shipping.v1.Shipping/Rates",
    "/inventory.v1.InventoryService/Release",
    "/grpc.health.v1.Health/Check",
];

const COUNTRIES: &[&str] = &[
    "US", "DE", "GB", "FR", "CA", "NL", "JP", "AU", "ES", "IT", "BR", "SE", "PL", "IE", "BE", "AT",
    "CH", "DK", "NO", "MX",
];

const PANICS: &[&str] = &[
    "runtime error: invalid memory address or nil pointer dereference",
    "runtime error: index out of range [3] with length 3",
    "assignment to entry in nil map",
    "runtime error: slice bounds out of range [:12] with capacity 8",
];

const GO_FILES: &[&str] = &[
    "handler",
    "server",
    "client",
    "repository",
    "consumer",
    "worker",
    "middleware",
    "cache",
    "router",
    "service",
];

const GO_FRAMES: &[(&str, &str)] = &[
    (
        "main.(*Handler).ServeHTTP",
        "/build/internal/http/handler.go",
    ),
    (
        "net/http.HandlerFunc.ServeHTTP",
        "/usr/local/go/src/net/http/server.go",
    ),
    (
        "github.com/example/shop/internal/middleware.Recover.func1",
        "/build/internal/middleware/recover.go",
    ),
    (
        "github.com/example/shop/internal/middleware.Logging.func1",
        "/build/internal/middleware/logging.go",
    ),
    (
        "github.com/example/shop/internal/orders.(*Service).Create",
        "/build/internal/orders/service.go",
    ),
    (
        "github.com/example/shop/internal/orders.(*Repository).Insert",
        "/build/internal/orders/repository.go",
    ),
    (
        "github.com/jackc/pgx/v5.(*Conn).Exec",
        "/go/pkg/mod/github.com/jackc/pgx/v5@v5.7.1/conn.go",
    ),
    (
        "github.com/example/shop/internal/cart.(*Cart).Total",
        "/build/internal/cart/cart.go",
    ),
    (
        "github.com/go-chi/chi/v5.(*Mux).routeHTTP",
        "/go/pkg/mod/github.com/go-chi/chi/v5@v5.1.0/mux.go",
    ),
    (
        "net/http.serverHandler.ServeHTTP",
        "/usr/local/go/src/net/http/server.go",
    ),
    (
        "net/http.(*conn).serve",
        "/usr/local/go/src/net/http/server.go",
    ),
    (
        "created by net/http.(*Server).Serve in goroutine 1",
        "/usr/local/go/src/net/http/server.go",
    ),
];

const JAVA_CLASSES: &[&str] = &[
    "com.example.orders.OrderController",
    "com.example.orders.OrderService",
    "com.example.payments.PaymentGateway",
    "com.example.inventory.ReservationService",
    "com.example.search.QueryExecutor",
    "com.example.notifications.EmailSender",
    "com.example.auth.TokenVerifier",
    "com.example.common.web.ErrorHandler",
];

const JAVA_EXCEPTIONS: &[&str] = &[
    "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null",
    "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    "java.util.concurrent.TimeoutException: Did not observe any item or terminal signal within 5000ms",
    "org.springframework.dao.DataIntegrityViolationException: could not execute statement",
    "com.fasterxml.jackson.core.JsonParseException: Unexpected character ('}' (code 125)): was expecting double-quote to start field name",
    "java.net.SocketTimeoutException: Read timed out",
    "java.lang.IllegalStateException: Order is already captured",
    "java.lang.OutOfMemoryError: Java heap space",
];

const JAVA_FRAMES: &[(&str, &str)] = &[
    (
        "com.example.orders.OrderService.create",
        "OrderService.java",
    ),
    (
        "com.example.orders.OrderController.post",
        "OrderController.java",
    ),
    (
        "jdk.internal.reflect.DirectMethodHandleAccessor.invoke",
        "DirectMethodHandleAccessor.java",
    ),
    ("java.base/java.lang.reflect.Method.invoke", "Method.java"),
    (
        "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke",
        "InvocableHandlerMethod.java",
    ),
    (
        "org.springframework.web.method.support.InvocableHandlerMethod.invokeForRequest",
        "InvocableHandlerMethod.java",
    ),
    (
        "org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle",
        "ServletInvocableHandlerMethod.java",
    ),
    (
        "org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.invokeHandlerMethod",
        "RequestMappingHandlerAdapter.java",
    ),
    (
        "org.springframework.web.servlet.DispatcherServlet.doDispatch",
        "DispatcherServlet.java",
    ),
    (
        "org.springframework.web.servlet.DispatcherServlet.doService",
        "DispatcherServlet.java",
    ),
    (
        "org.springframework.web.servlet.FrameworkServlet.processRequest",
        "FrameworkServlet.java",
    ),
    (
        "jakarta.servlet.http.HttpServlet.service",
        "HttpServlet.java",
    ),
    (
        "org.apache.catalina.core.ApplicationFilterChain.internalDoFilter",
        "ApplicationFilterChain.java",
    ),
    (
        "org.apache.catalina.core.ApplicationFilterChain.doFilter",
        "ApplicationFilterChain.java",
    ),
    (
        "org.springframework.web.filter.OncePerRequestFilter.doFilter",
        "OncePerRequestFilter.java",
    ),
    (
        "org.springframework.security.web.FilterChainProxy.doFilterInternal",
        "FilterChainProxy.java",
    ),
    (
        "org.apache.catalina.core.StandardWrapperValve.invoke",
        "StandardWrapperValve.java",
    ),
    (
        "org.apache.catalina.core.StandardContextValve.invoke",
        "StandardContextValve.java",
    ),
    (
        "org.apache.catalina.connector.CoyoteAdapter.service",
        "CoyoteAdapter.java",
    ),
    (
        "org.apache.coyote.http11.Http11Processor.service",
        "Http11Processor.java",
    ),
    (
        "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
        "NioEndpoint.java",
    ),
    (
        "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker",
        "ThreadPoolExecutor.java",
    ),
    ("java.base/java.lang.Thread.run", "Thread.java"),
    (
        "com.zaxxer.hikari.pool.HikariPool.getConnection",
        "HikariPool.java",
    ),
    (
        "com.zaxxer.hikari.HikariDataSource.getConnection",
        "HikariDataSource.java",
    ),
    (
        "org.hibernate.engine.jdbc.connections.internal.DatasourceConnectionProviderImpl.getConnection",
        "DatasourceConnectionProviderImpl.java",
    ),
    (
        "org.hibernate.resource.jdbc.internal.LogicalConnectionManagedImpl.acquireConnectionIfNeeded",
        "LogicalConnectionManagedImpl.java",
    ),
    (
        "com.example.payments.PaymentGateway.authorize",
        "PaymentGateway.java",
    ),
    (
        "com.example.payments.StripeClient.post",
        "StripeClient.java",
    ),
    (
        "okhttp3.internal.connection.RealCall.execute",
        "RealCall.kt",
    ),
    (
        "com.example.inventory.ReservationService.reserve",
        "ReservationService.java",
    ),
    (
        "io.lettuce.core.RedisPublisher$RedisSubscription.request",
        "RedisPublisher.java",
    ),
];

const PROFILE_FIELDS: &[&str] = &[
    "display_name",
    "avatar",
    "phone",
    "locale",
    "timezone",
    "newsletter",
    "address",
    "birthday",
    "password",
];

const EVENTS: &[&str] = &[
    "order.created",
    "order.paid",
    "order.shipped",
    "payment.refunded",
    "user.created",
    "subscription.renewed",
    "invoice.finalized",
];

const DECLINE_REASONS: &[&str] = &[
    "do not honor",
    "insufficient funds",
    "expired card",
    "invalid card number",
    "exceeds withdrawal limit",
    "suspected fraud",
    "issuer unavailable",
];

const SCOPES: &[&str] = &[
    "read:orders",
    "read:orders write:orders",
    "read:catalog",
    "admin",
    "read:users write:users",
    "payments:charge",
];

const MIGRATIONS: &[&str] = &[
    "add_index_orders_created_at",
    "create_table_refunds",
    "add_column_users_locale",
    "backfill_order_totals",
    "drop_legacy_sessions",
    "add_fk_shipments_orders",
];
