//! The one client of the running daemon's API, for the CLI (`status`,
//! `alerts`, `camera reset`): one way to turn `api.listen` into an address
//! to connect to, one read of the token file, one HTTP stack, typed answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::alerts::AlertRow;
use crate::config::{connect_addr, Config};
use crate::http::types::{HealthDoc, ResetReply, StatusDoc};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered (not running, wrong address): callers may fall back
    /// to the database.
    #[error("{0}")]
    Unreachable(String),
    /// The daemon answered with an error.
    #[error("HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// The daemon answered something we cannot read.
    #[error("unexpected reply: {0}")]
    Reply(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct AlertList {
    alerts: Vec<AlertRow>,
}

pub struct DaemonClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl DaemonClient {
    pub fn new(config: &Config) -> DaemonClient {
        DaemonClient {
            base: format!("http://{}", connect_addr(config.api.listen)),
            token: crate::token::read(&config.api.token_file),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client"),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            ClientError::Unreachable(if e.is_connect() {
                "not running (connection refused)".to_string()
            } else {
                e.without_url().to_string()
            })
        })?;
        let status = resp.status();
        if !status.is_success() {
            let message = resp
                .json::<ErrorBody>()
                .await
                .map(|b| b.error)
                .unwrap_or_else(|_| "request failed".into());
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        resp.json::<T>()
            .await
            .map_err(|e| ClientError::Reply(e.without_url().to_string()))
    }

    pub async fn health(&self) -> Result<HealthDoc, ClientError> {
        self.send(reqwest::Method::GET, "/api/cameras/health", None)
            .await
    }

    pub async fn status(&self) -> Result<StatusDoc, ClientError> {
        self.send(reqwest::Method::GET, "/api/status", None).await
    }

    pub async fn alerts(&self, limit: usize) -> Result<Vec<AlertRow>, ClientError> {
        let list: AlertList = self
            .send(
                reqwest::Method::GET,
                &format!("/api/alerts?limit={limit}"),
                None,
            )
            .await?;
        Ok(list.alerts)
    }

    pub async fn reset(&self, camera: u32) -> Result<ResetReply, ClientError> {
        self.send(
            reqwest::Method::POST,
            &format!("/api/cameras/{camera}/reset"),
            None,
        )
        .await
    }

    pub async fn silence(
        &self,
        camera: u32,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({ "camera_id": camera, "until": until, "reason": reason });
        self.send::<serde_json::Value>(reqwest::Method::POST, "/api/alerts/silences", Some(body))
            .await
            .map(|_| ())
    }

    /// Whether the camera was silenced.
    pub async fn unsilence(&self, camera: u32) -> Result<bool, ClientError> {
        match self
            .send::<serde_json::Value>(
                reqwest::Method::DELETE,
                &format!("/api/alerts/silences/{camera}"),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Refused { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
