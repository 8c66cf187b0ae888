//! Delivery: one worker per channel reads due rows from the outbox, sends
//! them, and records the outcome. Because the rows are in SQLite, a killed
//! daemon delivers them after its restart and an outage only delays them.
//!
//! * A row is acknowledged (`delivered_at`) only after the channel confirmed
//!   it (Telegram: 2xx with `"ok": true`; SMTP: the server accepted the
//!   message). An acknowledged row is never sent again. A crash between the
//!   send and the acknowledgement can repeat one message (at-least-once).
//! * Transient failures (network, timeout, 5xx, SMTP 4xx) retry with
//!   exponential backoff ([`RetryPolicy`]); Telegram's 429 waits its
//!   `retry_after` for the whole channel.
//! * Messages leave each channel in the order they were raised: the oldest
//!   undelivered row goes first, and a failed one holds the rest back (the
//!   channel backs off, not the row), so "RESOLVIDO" never overtakes the
//!   alert it resolves, and a channel that comes back drains at once.
//! * A refused message (Telegram 400 for its text) is a permanent failure
//!   of that row: logged, kept with its error and `failed_at`.
//! * A broken channel (Telegram 401/403/404 or "chat not found", an SMTP
//!   login or address refused) keeps every row queued, raises one Critical
//!   "alert channel failed" alert (which e-mail delivers when Telegram is
//!   the broken one), sets `vms_alert_channel_up{channel}` to 0, and waits
//!   for a config reload (or [`BROKEN_RETRY`]); the first delivery after
//!   it resolves the alert and sends what waited, in order.
//! * An outcome that cannot be written (the database is locked) is kept in
//!   memory and written before anything else is sent: a delivered message
//!   is never sent again because its acknowledgement was late.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::store::Pending;
use super::{AlertSettings, AlertsHandle, Channel, EmailSettings, TelegramSettings};
use crate::config::SmtpSecurity;

/// How deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles with each further failure.
    pub initial: Duration,
    /// The cap of the delay.
    pub max: Duration,
    /// Timeout of one delivery attempt (one HTTP request, one SMTP session).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `failures` failed attempts
    /// (1 for the first failure).
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again after the backoff.
    Retry(String),
    /// Try again after this long (Telegram 429 `retry_after`), for the whole
    /// channel.
    RetryAfter(Duration, String),
    /// Never try this row again (the message itself is refused).
    Permanent(String),
    /// The channel's configuration is wrong (a bad bot token or chat id, a
    /// refused SMTP login or address): no message can get through until it
    /// is fixed. The row stays queued, in order, and the channel waits.
    ChannelBroken(String),
}

/// What is written to the outbox row after an attempt.
#[derive(Debug, Clone)]
enum Mark {
    Delivered(chrono::DateTime<Utc>),
    Retry(chrono::DateTime<Utc>, String),
    Failed(chrono::DateTime<Utc>, String),
}

/// How long a broken channel waits before trying its oldest message again
/// when its configuration did not change (someone may have fixed the other
/// side: added the bot to the group, unlocked the mailbox).
pub const BROKEN_RETRY: Duration = Duration::from_secs(600);

const BATCH: usize = 32;

/// The longest Telegram `retry_after` honoured.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// The worker of one channel; runs until `shutdown`.
pub(crate) async fn worker(
    handle: AlertsHandle,
    channel: Channel,
    policy: RetryPolicy,
    shutdown: CancellationToken,
) {
    let wake = handle.wake_of(channel);
    let client = match reqwest::Client::builder()
        .connect_timeout(policy.request_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; Telegram delivery disabled");
            return;
        }
    };
    // A failure or a 429 pauses the whole channel: messages keep their order.
    let mut paused_until: Option<Instant> = None;
    let mut disabled_logged = false;
    // Outcomes sent but not yet written (the database was locked), by row.
    let mut unrecorded: Vec<(i64, Mark)> = Vec::new();
    // The settings a broken channel failed with: a reload that changes them
    // ends the pause at once.
    let mut broken_with: Option<Arc<AlertSettings>> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let settings = handle.settings();
        if broken_with
            .as_ref()
            .is_some_and(|b| !Arc::ptr_eq(b, &settings))
        {
            tracing::info!(
                channel = channel.as_str(),
                "configuration reloaded; trying the broken channel again"
            );
            broken_with = None;
            paused_until = None;
        }
        let enabled = settings.channels.contains(&channel);
        let mut more = false;
        let mut worked = false;
        // Bookkeeping first: what was sent is never sent again.
        let mut still = Vec::new();
        for (id, mark) in std::mem::take(&mut unrecorded) {
            if !still.is_empty() || write_mark(&handle, id, mark.clone()).await.is_err() {
                still.push((id, mark));
            }
        }
        unrecorded = still;
        if enabled && unrecorded.is_empty() && paused_until.is_none_or(|p| Instant::now() >= p) {
            paused_until = None;
            disabled_logged = false;
            let due = match handle
                .call(move |st| st.due(channel, Utc::now(), BATCH))
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(channel = channel.as_str(), error = %e, "cannot read the alert outbox");
                    if matches!(e, super::AlertsError::Stopped) {
                        return;
                    }
                    Vec::new()
                }
            };
            more = due.len() == BATCH;
            worked = !due.is_empty();
            for row in due {
                if shutdown.is_cancelled() {
                    return;
                }
                // A send in flight when the daemon stops is abandoned: the
                // row stays due and goes out after the restart.
                let outcome = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    o = deliver(&client, &settings, &row, &policy) => o,
                };
                let delivered = outcome == Outcome::Delivered;
                if delivered {
                    broken_with = None;
                    if handle.channel_error(channel).is_some() {
                        handle.channel_repaired(channel).await;
                    }
                }
                let (mark, pause) = match outcome {
                    Outcome::ChannelBroken(error) => {
                        tracing::error!(channel = channel.as_str(), outbox_id = row.id, error = %error, "alert channel refuses every message: its configuration must be fixed; messages wait in order");
                        record_delivery(row.channel, "broken");
                        handle.channel_broken(channel, &error).await;
                        broken_with = Some(settings.clone());
                        paused_until = Some(Instant::now() + BROKEN_RETRY);
                        more = false;
                        break;
                    }
                    outcome => outcome_mark(&row, outcome, &policy),
                };
                if let Err(e) = write_mark(&handle, row.id, mark.clone()).await {
                    tracing::error!(channel = channel.as_str(), outbox_id = row.id, error = %e, "cannot record the delivery outcome yet; kept until it can be written");
                    unrecorded.push((row.id, mark));
                    more = false;
                    break;
                }
                if let Some(pause) = pause {
                    paused_until = Some(Instant::now() + pause);
                    more = false;
                    break;
                }
            }
        } else if !enabled && !disabled_logged {
            disabled_logged = true;
            // Rows queued while it was enabled wait for it to be enabled again.
            tracing::debug!(channel = channel.as_str(), "channel disabled");
        }
        handle.publish_outbox_stats().await;
        if more {
            continue;
        }
        let next = if enabled && unrecorded.is_empty() {
            handle
                .call(move |st| st.next_due_at(channel))
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let mut deadline: Option<Instant> = next.map(|at| {
            let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Instant::now() + wait
        });
        if let Some(p) = paused_until {
            deadline = Some(deadline.map_or(p, |d| d.max(p)));
        }
        if !unrecorded.is_empty() {
            deadline = Some(Instant::now() + Duration::from_millis(500));
        }
        // A row that is due but was not returned (clock step, database
        // trouble) must not turn this loop into a busy loop.
        if let Some(d) = deadline {
            if !worked && d <= Instant::now() {
                deadline = Some(Instant::now() + Duration::from_millis(100));
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = sleep => {}
        }
    }
}

/// The row's new state after an attempt, and a pause for the channel
/// (after a failure: the backoff; after a 429: its `retry_after`).
fn outcome_mark(row: &Pending, outcome: Outcome, policy: &RetryPolicy) -> (Mark, Option<Duration>) {
    let channel = row.channel.as_str();
    let id = row.id;
    let attempt = row.attempts + 1;
    let now = Utc::now();
    let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
    match outcome {
        Outcome::Delivered => {
            tracing::info!(
                channel,
                outbox_id = id,
                attempt,
                kind = row.kind.as_str(),
                "alert delivered"
            );
            record_delivery(row.channel, "delivered");
            (Mark::Delivered(now), None)
        }
        Outcome::Retry(error) => {
            let delay = policy.backoff(attempt);
            tracing::warn!(channel, outbox_id = id, attempt, retry_in_ms = delay.as_millis() as u64, error = %error, "alert delivery failed; the channel retries");
            record_delivery(row.channel, "retry");
            (Mark::Retry(later(delay), error), Some(delay))
        }
        Outcome::RetryAfter(delay, error) => {
            tracing::warn!(channel, outbox_id = id, attempt, retry_in_ms = delay.as_millis() as u64, error = %error, "alert delivery rate-limited; will retry");
            record_delivery(row.channel, "retry");
            (Mark::Retry(later(delay), error), Some(delay))
        }
        Outcome::Permanent(error) | Outcome::ChannelBroken(error) => {
            tracing::error!(channel, outbox_id = id, attempt, error = %error, "alert message refused; not retrying it");
            record_delivery(row.channel, "failed");
            (Mark::Failed(now, error), None)
        }
    }
}

async fn write_mark(handle: &AlertsHandle, id: i64, mark: Mark) -> Result<(), super::AlertsError> {
    handle
        .call(move |st| match mark {
            Mark::Delivered(at) => st.mark_delivered(id, at),
            Mark::Retry(next, error) => st.mark_retry(id, next, &error),
            Mark::Failed(at, error) => st.mark_failed(id, at, &error),
        })
        .await
}

/// Counts one attempt in `vms_alert_deliveries_total{channel,result}`
/// (`result`: delivered, retry, failed).
pub fn record_delivery(channel: Channel, result: &'static str) {
    metrics::counter!("vms_alert_deliveries_total", "channel" => channel.as_str(), "result" => result)
        .increment(1);
}

/// Delivers one message that is not in the outbox (the database failed),
/// retrying in memory until it is delivered, fails permanently, or the
/// pipeline shuts down.
pub(crate) async fn deliver_unstored(
    handle: AlertsHandle,
    mut row: Pending,
    policy: RetryPolicy,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(policy.request_timeout)
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let channel = row.channel;
    loop {
        let settings = handle.settings();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            o = deliver(&client, &settings, &row, &policy) => o,
        };
        row.attempts += 1;
        let wait = match outcome {
            Outcome::Delivered => {
                tracing::info!(
                    channel = channel.as_str(),
                    attempt = row.attempts,
                    "unstored alert delivered"
                );
                record_delivery(channel, "delivered");
                return;
            }
            Outcome::Permanent(error) | Outcome::ChannelBroken(error) => {
                tracing::error!(channel = channel.as_str(), error = %error, "unstored alert failed permanently");
                record_delivery(channel, "failed");
                return;
            }
            Outcome::Retry(error) => {
                tracing::warn!(channel = channel.as_str(), error = %error, "unstored alert delivery failed; will retry");
                policy.backoff(row.attempts)
            }
            Outcome::RetryAfter(d, error) => {
                tracing::warn!(channel = channel.as_str(), error = %error, "unstored alert delivery rate-limited; will retry");
                d
            }
        };
        record_delivery(channel, "retry");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    settings: &AlertSettings,
    row: &Pending,
    policy: &RetryPolicy,
) -> Outcome {
    match row.channel {
        Channel::Telegram => match &settings.telegram {
            Some(t) => send_telegram(client, t, &row.body, policy.request_timeout).await,
            None => Outcome::Retry("telegram is not configured".into()),
        },
        Channel::Email => match &settings.email {
            Some(e) => {
                let subject = row.subject.as_deref().unwrap_or("VMS");
                send_email(e, subject, &row.body, policy.request_timeout).await
            }
            None => Outcome::Retry("e-mail is not configured".into()),
        },
    }
}

/// `POST {api_base}/bot{token}/sendMessage` with `{chat_id, text}`. The URL
/// holds the token: it is never logged and stripped from errors.
pub async fn send_telegram(
    client: &reqwest::Client,
    t: &TelegramSettings,
    text: &str,
    timeout: Duration,
) -> Outcome {
    let url = format!("{}/bot{}/sendMessage", t.api_base, t.token.expose());
    let body = serde_json::json!({ "chat_id": t.chat_id, "text": text });
    let response = tokio::time::timeout(
        timeout,
        client.post(url).timeout(timeout).json(&body).send(),
    )
    .await;
    let response = match response {
        Err(_) => return Outcome::Retry(format!("timed out after {timeout:?}")),
        Ok(Err(e)) => {
            return Outcome::Retry(format!("request failed: {}", error_chain(&e.without_url())))
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let reply: serde_json::Value =
        match tokio::time::timeout(timeout, response.json::<serde_json::Value>()).await {
            Ok(Ok(v)) => v,
            _ => serde_json::Value::Null,
        };
    let description = reply
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if status.is_success() {
        if reply.get("ok").and_then(|o| o.as_bool()) == Some(true) {
            Outcome::Delivered
        } else {
            Outcome::Retry(format!("HTTP {status} without \"ok\": true {description}"))
        }
    } else if status.as_u16() == 429 {
        let secs = reply
            .pointer("/parameters/retry_after")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            // A broken server must not park the channel for years.
            .min(MAX_RETRY_AFTER_SECS);
        Outcome::RetryAfter(
            Duration::from_secs(secs),
            format!("HTTP 429 retry_after={secs}: {description}"),
        )
    } else if status.is_client_error() {
        let error = format!("HTTP {status}: {description}");
        // 401: bad token; 403: the bot was blocked or removed from the
        // chat; 404: no such bot; 400 "chat not found": a wrong chat_id.
        // Anything else in 4xx is about this message.
        let about_the_chat = description.to_ascii_lowercase().contains("chat not found");
        if matches!(status.as_u16(), 401 | 403 | 404) || about_the_chat {
            Outcome::ChannelBroken(error)
        } else {
            Outcome::Permanent(error)
        }
    } else {
        Outcome::Retry(format!("HTTP {status}: {description}"))
    }
}

/// One message to every recipient through SMTP.
pub async fn send_email(
    e: &EmailSettings,
    subject: &str,
    body: &str,
    timeout: Duration,
) -> Outcome {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let mut builder = Message::builder().subject(subject);
    match e.from.parse() {
        Ok(from) => builder = builder.from(from),
        Err(err) => {
            return Outcome::ChannelBroken(format!("invalid from address {:?}: {err}", e.from))
        }
    }
    for to in &e.to {
        match to.parse() {
            Ok(addr) => builder = builder.to(addr),
            Err(err) => return Outcome::ChannelBroken(format!("invalid recipient {to:?}: {err}")),
        }
    }
    let message = match builder
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
    {
        Ok(m) => m,
        Err(err) => return Outcome::Permanent(format!("cannot build the message: {err}")),
    };
    let builder = match e.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            e.host.as_str(),
        )),
    };
    let mut builder = match builder {
        Ok(b) => b.port(e.port).timeout(Some(timeout)),
        Err(err) => return Outcome::ChannelBroken(format!("invalid SMTP settings: {err}")),
    };
    if !e.username.is_empty() {
        let password = e
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(e.username.clone(), password));
    }
    let transport = builder.build();
    match tokio::time::timeout(timeout * 2, transport.send(message)).await {
        Err(_) => Outcome::Retry(format!("SMTP timed out after {:?}", timeout * 2)),
        Ok(Ok(_)) => Outcome::Delivered,
        // A permanent SMTP refusal is about the login, the sender or the
        // recipients: the configuration, not this message.
        Ok(Err(err)) if err.is_permanent() => {
            Outcome::ChannelBroken(format!("SMTP: {}", error_chain(&err)))
        }
        Ok(Err(err)) => Outcome::Retry(format!("SMTP: {}", error_chain(&err))),
    }
}

/// An error with its causes: "error sending request: connection refused"
/// says what to fix; the first line alone does not.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(1),
        };
        let got: Vec<u64> = (1..=9).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(got, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(p.backoff(0).as_secs(), 5);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn default_cap_is_five_minutes() {
        assert_eq!(RetryPolicy::default().max, Duration::from_secs(300));
        assert_eq!(
            RetryPolicy::default().backoff(100),
            Duration::from_secs(300)
        );
    }
}
