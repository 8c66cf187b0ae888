//! `vms-supervisor backup status|retry|restore`, straight on the segment
//! catalog (the backup queue lives in it), so they work whether the daemon
//! runs or not; `restore` also talks to the bucket with `[backup]`'s keys.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};

use super::storage::catalog_path;
use crate::config::Config;
use crate::storage::backup::{self, machine, queue, s3::S3Client};
use crate::storage::catalog;

fn open(config: &Config) -> anyhow::Result<rusqlite::Connection> {
    let path = catalog_path(config);
    anyhow::ensure!(
        path.exists(),
        "no segment catalog at {} yet (the daemon creates it at its first start)",
        path.display()
    );
    Ok(catalog::open(&path)?)
}

/// `backup status`: whether it is on, the queue, the lag, the last success
/// and error, and a configuration error that stops uploads.
pub fn status(config: &Config) -> anyhow::Result<String> {
    let conn = open(config)?;
    let backlog = queue::backlog(&conn)?;
    let st = queue::status(&conn)?;
    let tz = config.timezone();
    let t = |us: Option<i64>| {
        us.and_then(|us| Utc.timestamp_micros(us).single())
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "never".into())
    };
    let b = &config.backup;
    let mut out = String::new();
    if b.enabled {
        let _ = writeln!(
            out,
            "backup: on, to {} bucket {} (prefix {:?}, class {})",
            b.endpoint, b.bucket, b.prefix, b.storage_class
        );
    } else {
        out.push_str("backup: off ([backup] enabled = false); nothing is uploaded\n");
    }
    let lag = machine::lag_seconds(backup::now_us(), &backlog);
    let _ = writeln!(
        out,
        "queue: {} segments, {:.1} MB not yet off-site; lag {:.1} h",
        backlog.segments,
        backlog.bytes as f64 / 1e6,
        lag / 3600.0
    );
    let _ = writeln!(
        out,
        "uploaded: {} segments, {:.1} MB; last success {}",
        st.uploaded_segments,
        st.uploaded_bytes as f64 / 1e6,
        t(st.last_success_us)
    );
    if let Some(e) = &st.last_error {
        let _ = writeln!(out, "last error ({}): {e}", t(st.last_error_us));
    }
    if let Some(e) = &st.config_error {
        let _ = writeln!(
            out,
            "STOPPED: the S3 service refuses the configuration: {e}\n  fix [backup] and run `vms-supervisor backup retry`"
        );
    }
    Ok(out)
}

/// `backup retry`: clears the configuration error and the attempt counts;
/// a running daemon resumes at its next poll.
pub fn retry(config: &Config) -> anyhow::Result<String> {
    let conn = open(config)?;
    queue::retry(&conn)?;
    Ok("backup: retrying every pending segment (the daemon resumes within seconds)\n".into())
}

/// `backup restore ID --from --to --dir DIR`: fetches the camera's segments
/// of the range from the bucket, checking each against the SHA-256 taken at
/// upload. Fails (after fetching the rest) when any file does not match.
pub async fn restore(
    config: &Config,
    camera: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
) -> anyhow::Result<String> {
    anyhow::ensure!(from < to, "--from must be before --to");
    let settings = backup::Settings::from_config(config).ok_or_else(|| {
        anyhow::anyhow!("backup is off or its keys are missing ([backup] in vms.toml)")
    })?;
    let conn = open(config)?;
    let client = S3Client::new(settings.s3, None);
    let restored = backup::restore(
        &client,
        &conn,
        camera,
        from.timestamp_micros(),
        to.timestamp_micros(),
        dir,
    )
    .await?;
    let mut out = String::new();
    let mut bad = 0;
    for r in &restored {
        if !r.verified {
            bad += 1;
        }
        let _ = writeln!(
            out,
            "{}  {}  sha256 {}",
            if r.verified { "ok      " } else { "MISMATCH" },
            r.path.display(),
            r.sha256
        );
    }
    if restored.is_empty() {
        out.push_str("no backed-up segment of this camera in this range\n");
    }
    anyhow::ensure!(
        bad == 0,
        "{out}{bad} of {} files do not match the SHA-256 recorded at upload (kept as *.mismatch)",
        restored.len()
    );
    Ok(out)
}
