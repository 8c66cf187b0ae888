//! HTTPS for the dashboard and API with the operator's own certificate and
//! key (`[api] tls_cert`, `tls_key`: PEM files), served by rustls on ring.
//!
//! * [`load`] reads and checks a pair. Config validation calls it, so a bad
//!   pair is a config error naming its key: the daemon refuses to start, a
//!   reload keeps the previous configuration.
//! * [`Resolver`] gives each handshake the current pair, and picks up a
//!   renewed certificate by itself: when either file changes (size,
//!   modification time or inode, checked at each handshake, two `stat`
//!   calls) the pair is read again; a new pair that cannot be used (half
//!   copied, key of another certificate) is logged and the previous pair is
//!   kept until the files change again. No restart, no signal.
//! * [`server_config`]: the rustls configuration of the HTTPS listener.
//! * [`not_after`]: when a certificate expires. The daemon logs a warning
//!   when the served one has less than [`EXPIRY_WARNING_DAYS`] left (at
//!   start, when it is read again, and once a day at a handshake) and an
//!   error once it has expired; an expired certificate is still served
//!   (and never stops the daemon): the browser's warning says the rest.
//!
//! The key is a secret: its bytes never reach a log or an error message, and
//! a key file that every user of the box may read or change is refused.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The config key of the certificate chain.
pub const CERT_KEY: &str = "api.tls_cert";
/// The config key of the private key.
pub const KEY_KEY: &str = "api.tls_key";

/// Why a pair cannot be used, naming the config key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

fn fail(key: &'static str, message: String) -> TlsError {
    TlsError { key, message }
}

/// The one crypto provider of the tree (ring), not a process-wide default.
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Reads the certificate chain (leaf first, then any intermediates) and its
/// private key, and checks that the key is the certificate's.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(cert)?;
    let der = read_key(key)?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => fail(
            KEY_KEY,
            format!(
                "{} is not the private key of the certificate in {} (api.tls_cert)",
                key.display(),
                cert.display()
            ),
        ),
        // rustls's messages name the kind of problem, never the key's bytes.
        e => fail(
            KEY_KEY,
            format!("{}: not a usable private key ({e})", key.display()),
        ),
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| fail(CERT_KEY, format!("cannot read {}: {e}", path.display())))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            fail(
                CERT_KEY,
                format!("{}: not a PEM certificate file ({e})", path.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(fail(
            CERT_KEY,
            format!(
                "{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                path.display()
            ),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| fail(KEY_KEY, format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    // The mode of the file that is read, not of a name that may be swapped.
    let mode = file.metadata().map_err(cannot)?.mode();
    if mode & 0o006 != 0 {
        return Err(fail(
            KEY_KEY,
            format!(
                "{} may be read or changed by every user of this box (mode {:04o}); a private key is a secret: make it the daemon's only (chown root:vms, chmod 0640)",
                path.display(),
                mode & 0o7777
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(cannot)?;
    // The parser's error is not repeated: it may quote the file's content.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        fail(
            KEY_KEY,
            format!(
                "{} holds no unencrypted PEM private key (PKCS#8, RSA or EC); a key protected by a passphrase must be decrypted first",
                path.display()
            ),
        )
    })
}

/// What identifies a version of a file on disk.
type Stamp = (u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// The certificate each handshake is given; re-read when its files change.
pub struct Resolver {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

struct Current {
    /// The files' stamps at the last read, good or bad.
    seen: (Option<Stamp>, Option<Stamp>),
    pair: Arc<CertifiedKey>,
    /// When the expiry was last looked at.
    expiry_checked: std::time::Instant,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(cert: &Path, key: &Path) -> Result<Resolver, TlsError> {
        // Stamped before the read: a change during it is read again.
        let seen = (stamp(cert), stamp(key));
        let pair = Arc::new(load(cert, key)?);
        metrics::describe_gauge!(
            EXPIRY_METRIC,
            "When the dashboard's TLS certificate (api.tls_cert) expires, as a Unix time"
        );
        publish_expiry(&pair);
        warn_on_expiry(&pair, chrono::Utc::now());
        Ok(Resolver {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new(Current {
                seen,
                pair,
                expiry_checked: std::time::Instant::now(),
            }),
        })
    }

    /// The pair to serve now, read again first if a file changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let seen = (stamp(&self.cert), stamp(&self.key));
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        // A file missing for a moment (replaced by a rename) is not a change.
        if seen != cur.seen && seen.0.is_some() && seen.1.is_some() {
            cur.seen = seen;
            match load(&self.cert, &self.key) {
                Ok(pair) => {
                    cur.pair = Arc::new(pair);
                    publish_expiry(&cur.pair);
                    cur.expiry_checked = std::time::Instant::now();
                    tracing::info!(cert = %self.cert.display(), "the TLS certificate was read again after a change");
                    warn_on_expiry(&cur.pair, chrono::Utc::now());
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "the changed TLS certificate or key cannot be used; the previous pair is still served"
                ),
            }
        }
        if cur.expiry_checked.elapsed() >= std::time::Duration::from_secs(24 * 3600) {
            cur.expiry_checked = std::time::Instant::now();
            warn_on_expiry(&cur.pair, chrono::Utc::now());
        }
        cur.pair.clone()
    }
}

/// A served certificate with less than this left is logged as a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How long the certificate has left at `now`, as a log line if it is
/// short: `Some((expired, message))`.
pub fn expiry_note(
    pair: &CertifiedKey,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<(bool, String)> {
    let end = not_after(pair.cert.first()?.as_ref())?;
    let left = end - now;
    let when = end.format("%Y-%m-%d %H:%M UTC");
    if left <= chrono::TimeDelta::zero() {
        Some((
            true,
            format!("the TLS certificate (api.tls_cert) expired on {when}: browsers refuse the dashboard until it is renewed"),
        ))
    } else if left < chrono::TimeDelta::days(EXPIRY_WARNING_DAYS) {
        Some((
            false,
            format!(
                "the TLS certificate (api.tls_cert) expires on {when}, in {} days: renew it (new files over the old ones; no restart needed)",
                left.num_days()
            ),
        ))
    } else {
        None
    }
}

/// `vms_tls_certificate_expiry_timestamp_seconds`: the shipped rule
/// `TlsCertificateExpiring` pages two weeks ahead, whether or not anyone
/// opened the dashboard (the log line needs a handshake).
pub const EXPIRY_METRIC: &str = "vms_tls_certificate_expiry_timestamp_seconds";

fn publish_expiry(pair: &CertifiedKey) {
    if let Some(end) = pair.cert.first().and_then(|c| not_after(c.as_ref())) {
        metrics::gauge!(EXPIRY_METRIC).set(end.timestamp() as f64);
    }
}

fn warn_on_expiry(pair: &CertifiedKey, now: chrono::DateTime<chrono::Utc>) {
    match expiry_note(pair, now) {
        Some((true, m)) => tracing::error!("{m}"),
        Some((false, m)) => tracing::warn!("{m}"),
        None => {}
    }
}

/// One DER element: (tag, content, what follows).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The end of a certificate's validity (`tbsCertificate.validity.notAfter`,
/// RFC 5280 §4.1.2.5), from its DER.
pub fn not_after(cert: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = der(cert)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = der(cert)? else {
        return None;
    };
    // [0] version (optional), serialNumber, signature, issuer.
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = der(tbs)?.2;
    }
    let (SEQUENCE, validity, _) = der(tbs)? else {
        return None;
    };
    let (_, _, rest) = der(validity)?;
    let (tag, time, _) = der(rest)?;
    let time = std::str::from_utf8(time).ok()?;
    let full = match tag {
        // UTCTime: YYMMDDHHMMSSZ, years 1950-2049.
        0x17 => {
            let yy: u32 = time.get(..2)?.parse().ok()?;
            let century = if yy < 50 { "20" } else { "19" };
            format!("{century}{time}")
        }
        // GeneralizedTime: YYYYMMDDHHMMSSZ.
        0x18 => time.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The HTTPS listener's configuration: TLS 1.2 and 1.3 with rustls's safe
/// defaults, no client certificates, HTTP/1.1 (what the server speaks).
pub fn server_config(resolver: Arc<Resolver>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A certificate for `name` and its key, as PEM.
    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    fn write(dir: &Path, file: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_good_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("nvr.test");
        let c = write(dir.path(), "cert.pem", &cert, 0o644);
        let k = write(dir.path(), "key.pem", &key, 0o640);
        let loaded = load(&c, &k).unwrap();
        assert_eq!(loaded.cert.len(), 1);
    }

    #[test]
    fn every_bad_pair_names_its_key_and_never_the_key_s_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("nvr.test");
        let (_, other_key) = pair("other.test");
        let c = write(dir.path(), "cert.pem", &cert, 0o644);
        let k = write(dir.path(), "key.pem", &key, 0o600);
        let other = write(dir.path(), "other.pem", &other_key, 0o600);
        let open = write(dir.path(), "open.pem", &key, 0o644);
        let garbage = write(dir.path(), "garbage.pem", "not a key\n", 0o600);
        let encrypted = write(
            dir.path(),
            "enc.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            0o600,
        );
        let missing = dir.path().join("missing.pem");
        let cases: [(&Path, &Path, &str, &str); 7] = [
            (&missing, &k, CERT_KEY, "cannot read"),
            (&garbage, &k, CERT_KEY, "no PEM certificate"),
            (&c, &missing, KEY_KEY, "cannot read"),
            (&c, &other, KEY_KEY, "is not the private key"),
            (&c, &open, KEY_KEY, "every user"),
            (&c, &garbage, KEY_KEY, "no unencrypted PEM private key"),
            (&c, &encrypted, KEY_KEY, "passphrase"),
        ];
        let secret = key.lines().nth(1).unwrap().to_string();
        for (cert, key, want_key, want) in cases {
            let e = load(cert, key).unwrap_err();
            assert_eq!(e.key, want_key, "{e}");
            assert!(e.message.contains(want), "{e}");
            assert!(!e.to_string().contains(&secret), "{e}");
        }
    }

    #[test]
    fn the_expiry_is_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["nvr.test".to_string()]).unwrap();
        p.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let c = p.clone().self_signed(&key).unwrap();
        let end = not_after(c.der()).unwrap();
        assert_eq!(end.to_rfc3339(), "2030-01-02T00:00:00+00:00");
        // GeneralizedTime (from 2050 on).
        p.not_after = rcgen::date_time_ymd(2051, 6, 30);
        let c2 = p.self_signed(&key).unwrap();
        assert_eq!(
            not_after(c2.der()).unwrap().to_rfc3339(),
            "2051-06-30T00:00:00+00:00"
        );
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);

        let pair = CertifiedKey::new(
            vec![c.der().clone()],
            provider()
                .key_provider
                .load_private_key(
                    PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
                )
                .unwrap(),
        );
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        assert_eq!(expiry_note(&pair, at("2029-11-01T00:00:00Z")), None);
        let (expired, m) = expiry_note(&pair, at("2029-12-23T00:00:00Z")).unwrap();
        assert!(!expired && m.contains("in 10 days"), "{m}");
        let (expired, m) = expiry_note(&pair, at("2030-01-03T00:00:00Z")).unwrap();
        assert!(expired && m.contains("expired on 2030-01-02"), "{m}");
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("nvr.test");
        let c = write(dir.path(), "cert.pem", &cert, 0o644);
        let k = write(dir.path(), "key.pem", &key, 0o600);
        let r = Resolver::new(&c, &k).unwrap();
        let first = r.current();
        assert!(Arc::ptr_eq(&first, &r.current()), "unchanged files");

        // Half a renewal: the new certificate, the old key. Kept the old.
        let (cert2, key2) = pair("nvr.test");
        let tmp = write(dir.path(), "cert.new", &cert2, 0o644);
        std::fs::rename(&tmp, &c).unwrap();
        assert_eq!(r.current().cert, first.cert);
        // The key follows: the new pair.
        let tmp = write(dir.path(), "key.new", &key2, 0o600);
        std::fs::rename(&tmp, &k).unwrap();
        let renewed = r.current();
        assert_ne!(renewed.cert, first.cert);
        assert_eq!(
            renewed.cert[0].as_ref(),
            CertificateDer::from_pem_slice(cert2.as_bytes())
                .unwrap()
                .as_ref()
        );
    }
}
