//! A small S3 client: AWS Signature V4 over the daemon's own `reqwest`.
//!
//! Only what the backup needs: PutObject, multipart upload, HeadObject and
//! GetObject. Every body is signed with its SHA-256 (`x-amz-content-sha256`)
//! and carries `Content-MD5`, so the service itself rejects a corrupted
//! upload (`BadDigest`). Bytes sent go through the shared [`RateLimit`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Secret;

/// Where and how to talk to the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    /// `http://127.0.0.1:9000` or `https://s3.sa-east-1.amazonaws.com`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// `https://host/bucket/key` instead of `https://bucket.host/key`.
    pub path_style: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

/// Why a request failed, sorted by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// Retrying cannot fix it: the configuration must change
    /// (credentials, bucket, storage class, permissions).
    #[error("{code}: {message}")]
    Config { code: String, message: String },
    /// The service says the bytes it received do not match their checksum.
    #[error("checksum mismatch ({0})")]
    Digest(String),
    /// Network, 5xx, throttling: retry later.
    #[error("{0}")]
    Transient(String),
    /// The object is not there (HEAD/GET).
    #[error("not found")]
    NotFound,
}

impl S3Error {
    /// A short label for metrics (`failures by reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            S3Error::Config { .. } => "config",
            S3Error::Digest(_) => "digest",
            S3Error::Transient(_) => "transient",
            S3Error::NotFound => "not_found",
        }
    }
}

/// Error codes no retry can fix.
const CONFIG_CODES: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "InvalidStorageClass",
    "AuthorizationHeaderMalformed",
    "PermanentRedirect",
    "AccountProblem",
    "InvalidArgument",
];

/// Classifies a failed answer from its status and XML body.
pub fn classify(status: u16, body: &str) -> S3Error {
    let code = xml_value(body, "Code").unwrap_or_default();
    let message = xml_value(body, "Message").unwrap_or_default();
    if code == "BadDigest" || code == "InvalidDigest" || code == "XAmzContentSHA256Mismatch" {
        return S3Error::Digest(code);
    }
    if CONFIG_CODES.contains(&code.as_str()) || (status == 403 && code.is_empty()) {
        return S3Error::Config {
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            },
            message,
        };
    }
    if status == 404 && (code == "NoSuchKey" || code.is_empty()) {
        return S3Error::NotFound;
    }
    S3Error::Transient(format!("HTTP {status} {code} {message}").trim().to_string())
}

/// The text of the first `<tag>` in `xml`.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

/// A token bucket on the bytes sent, shared by every upload. Pure: the
/// caller passes the time and sleeps for the answer.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    /// `rate` bytes per second, at most `burst` bytes at once.
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: None,
        }
    }

    /// Takes `n` bytes at `now` (the balance may go negative) and returns
    /// how long the caller must wait before sending them.
    pub fn take(&mut self, now: Instant, n: u64) -> Duration {
        if let Some(at) = self.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
        }
        self.at = Some(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The limit on bytes sent: `None` for no limit.
#[derive(Debug, Clone, Default)]
pub struct RateLimit(Option<Arc<Mutex<TokenBucket>>>);

/// Chunk of body handed to the network at once (and taken from the bucket).
const CHUNK: usize = 16 * 1024;

impl RateLimit {
    pub fn new(bytes_per_second: Option<u64>) -> RateLimit {
        RateLimit(bytes_per_second.filter(|r| *r > 0).map(|r| {
            // A quarter second of burst, at least one chunk.
            Arc::new(Mutex::new(TokenBucket::new(r, (r / 4).max(CHUNK as u64))))
        }))
    }

    async fn acquire(&self, n: usize) {
        let Some(bucket) = &self.0 else { return };
        let wait = bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now(), n as u64);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn body(&self, data: Vec<u8>, sent: Arc<std::sync::atomic::AtomicU64>) -> reqwest::Body {
        let limit = self.clone();
        let data = Arc::new(data);
        let stream = futures_util::stream::unfold(0usize, move |pos| {
            let limit = limit.clone();
            let data = data.clone();
            let sent = sent.clone();
            async move {
                if pos >= data.len() {
                    return None;
                }
                let end = (pos + CHUNK).min(data.len());
                limit.acquire(end - pos).await;
                sent.fetch_add((end - pos) as u64, std::sync::atomic::Ordering::Relaxed);
                Some((Ok::<Vec<u8>, std::io::Error>(data[pos..end].to_vec()), end))
            }
        });
        reqwest::Body::wrap_stream(stream)
    }
}

/// What a HEAD returns that the backup checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: String,
    pub storage_class: Option<String>,
    /// `x-amz-meta-*` without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// An S3 bucket client.
#[derive(Clone)]
pub struct S3Client {
    settings: S3Settings,
    http: reqwest::Client,
    limit: RateLimit,
    /// Body bytes handed to the network, for metrics and the benchmark.
    pub sent: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.settings.endpoint)
            .field("bucket", &self.settings.bucket)
            .finish_non_exhaustive()
    }
}

/// Characters left alone by URI encoding.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// AWS URI encoding; `/` is kept when `slash` is false.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// One request before signing.
struct Req<'a> {
    method: reqwest::Method,
    key: &'a str,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl S3Client {
    pub fn new(settings: S3Settings, max_bytes_per_second: Option<u64>) -> S3Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        S3Client {
            settings,
            http,
            limit: RateLimit::new(max_bytes_per_second),
            sent: Arc::default(),
        }
    }

    fn url_and_host(&self, key: &str) -> Result<(String, String, String), S3Error> {
        let base = reqwest::Url::parse(&self.settings.endpoint).map_err(|e| S3Error::Config {
            code: "endpoint".into(),
            message: e.to_string(),
        })?;
        let host = base.host_str().unwrap_or_default().to_string();
        let host = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let encoded_key = uri_encode(key, false);
        let (host, path) = if self.settings.path_style {
            (host, format!("/{}/{}", self.settings.bucket, encoded_key))
        } else {
            (
                format!("{}.{host}", self.settings.bucket),
                format!("/{encoded_key}"),
            )
        };
        let url = format!("{}://{host}{path}", base.scheme());
        Ok((url, host, path))
    }

    async fn send(&self, req: Req<'_>) -> Result<reqwest::Response, S3Error> {
        let (url, host, path) = self.url_and_host(req.key)?;
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let payload_hash = sha256_hex(req.body.as_deref().unwrap_or_default());
        let mut headers: BTreeMap<String, String> = req
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        headers.insert("host".into(), host);
        headers.insert("x-amz-date".into(), amz_date.clone());
        headers.insert("x-amz-content-sha256".into(), payload_hash.clone());
        let mut query = req.query;
        query.sort();
        let canonical_query = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect::<Vec<_>>()
            .join("&");
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed = headers.keys().cloned().collect::<Vec<_>>().join(";");
        let canonical = format!(
            "{}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}",
            req.method
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.settings.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut k = hmac(
            format!("AWS4{}", self.settings.secret_access_key.expose()).as_bytes(),
            day.as_bytes(),
        );
        k = hmac(&k, self.settings.region.as_bytes());
        k = hmac(&k, b"s3");
        k = hmac(&k, b"aws4_request");
        let signature = hex(&hmac(&k, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.settings.access_key_id.expose()
        );
        let full = if canonical_query.is_empty() {
            url
        } else {
            format!("{url}?{canonical_query}")
        };
        let mut rb = self.http.request(req.method, full);
        for (k, v) in &headers {
            if k != "host" {
                rb = rb.header(k.as_str(), v.as_str());
            }
        }
        rb = rb.header("authorization", auth);
        if let Some(body) = req.body {
            rb = rb
                .header("content-length", body.len())
                .body(self.limit.body(body, self.sent.clone()));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| S3Error::Transient(format!("network: {e}")))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(classify(status, &text))
    }

    fn upload_headers(body: &[u8], extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut h = vec![("content-md5".to_string(), base64(&md5::compute(body).0))];
        h.extend(extra.iter().cloned());
        h
    }

    /// Object headers for PUT and CreateMultipartUpload: storage class and
    /// metadata (values percent-encoded so any camera name fits a header).
    pub fn object_headers(
        storage_class: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut h = vec![
            ("content-type".to_string(), "video/mp4".to_string()),
            ("x-amz-storage-class".to_string(), storage_class.to_string()),
        ];
        for (k, v) in metadata {
            h.push((format!("x-amz-meta-{k}"), uri_encode(v, true)));
        }
        h
    }

    /// PutObject; returns the ETag.
    pub async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        object_headers: &[(String, String)],
    ) -> Result<String, S3Error> {
        let headers = Self::upload_headers(&body, object_headers);
        let resp = self
            .send(Req {
                method: reqwest::Method::PUT,
                key,
                query: vec![],
                headers,
                body: Some(body),
            })
            .await?;
        Ok(etag(&resp))
    }

    pub async fn create_multipart(
        &self,
        key: &str,
        object_headers: &[(String, String)],
    ) -> Result<String, S3Error> {
        let resp = self
            .send(Req {
                method: reqwest::Method::POST,
                key,
                query: vec![("uploads".into(), String::new())],
                headers: object_headers.to_vec(),
                body: None,
            })
            .await?;
        let text = resp
            .text()
            .await
            .map_err(|e| S3Error::Transient(e.to_string()))?;
        xml_value(&text, "UploadId")
            .ok_or_else(|| S3Error::Transient("no UploadId in the answer".into()))
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Vec<u8>,
    ) -> Result<String, S3Error> {
        let headers = Self::upload_headers(&body, &[]);
        let resp = self
            .send(Req {
                method: reqwest::Method::PUT,
                key,
                query: vec![
                    ("partNumber".into(), number.to_string()),
                    ("uploadId".into(), upload_id.to_string()),
                ],
                headers,
                body: Some(body),
            })
            .await?;
        Ok(etag(&resp))
    }

    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
    ) -> Result<String, S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e) in parts.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let resp = self
            .send(Req {
                method: reqwest::Method::POST,
                key,
                query: vec![("uploadId".into(), upload_id.to_string())],
                headers: vec![],
                body: Some(xml.into_bytes()),
            })
            .await?;
        let text = resp
            .text()
            .await
            .map_err(|e| S3Error::Transient(e.to_string()))?;
        // A 200 can still carry an error.
        if text.contains("<Error>") {
            return Err(classify(500, &text));
        }
        Ok(xml_value(&text, "ETag").unwrap_or_default())
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.send(Req {
            method: reqwest::Method::DELETE,
            key,
            query: vec![("uploadId".into(), upload_id.to_string())],
            headers: vec![],
            body: None,
        })
        .await
        .map(|_| ())
    }

    pub async fn head_object(&self, key: &str) -> Result<ObjectInfo, S3Error> {
        let resp = self
            .send(Req {
                method: reqwest::Method::HEAD,
                key,
                query: vec![],
                headers: vec![],
                body: None,
            })
            .await?;
        let h = resp.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut metadata = BTreeMap::new();
        for (k, v) in h {
            if let Some(name) = k.as_str().strip_prefix("x-amz-meta-") {
                let v = v.to_str().unwrap_or_default();
                metadata.insert(name.to_string(), percent_decode(v));
            }
        }
        Ok(ObjectInfo {
            size: get("content-length")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            etag: get("etag").unwrap_or_default(),
            storage_class: get("x-amz-storage-class"),
            metadata,
        })
    }

    pub async fn get_object(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let resp = self
            .send(Req {
                method: reqwest::Method::GET,
                key,
                query: vec![],
                headers: vec![],
                body: None,
            })
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| S3Error::Transient(format!("network: {e}")))
    }
}

fn etag(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Undoes [`uri_encode`].
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_paces_to_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100);
        assert_eq!(b.take(t0, 100), Duration::ZERO);
        // 500 more bytes at once: half a second of debt.
        assert_eq!(b.take(t0, 500), Duration::from_millis(500));
        // After the wait the debt is paid; the next 100 wait 100 ms.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(t1, 100), Duration::from_millis(100));
        // Idle time refills at most the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(t2, 100), Duration::ZERO);
        assert_eq!(b.take(t2, 100), Duration::from_millis(100));
    }

    #[test]
    fn errors_are_sorted_by_what_fixes_them() {
        let xml = |c: &str| format!("<Error><Code>{c}</Code><Message>m</Message></Error>");
        assert_eq!(
            classify(400, &xml("InvalidStorageClass")).reason(),
            "config"
        );
        assert_eq!(
            classify(403, &xml("SignatureDoesNotMatch")).reason(),
            "config"
        );
        assert_eq!(classify(404, &xml("NoSuchBucket")).reason(), "config");
        assert_eq!(classify(403, "").reason(), "config");
        assert_eq!(classify(400, &xml("BadDigest")).reason(), "digest");
        assert_eq!(classify(503, &xml("SlowDown")).reason(), "transient");
        assert_eq!(classify(500, "").reason(), "transient");
        assert_eq!(classify(404, &xml("NoSuchKey")), S3Error::NotFound);
    }

    #[test]
    fn encodings() {
        assert_eq!(uri_encode("a b/ç", false), "a%20b/%C3%A7");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(percent_decode("Port%C3%A3o%201"), "Portão 1");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
