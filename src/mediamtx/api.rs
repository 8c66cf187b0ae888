//! A small client for MediaMTX's control API v3 (docs/mediamtx.md §a).
//!
//! Only what the supervisor needs: `/v3/info` (liveness), one
//! `/v3/paths/list` call for every camera, and the config-path calls used by
//! the recovery ladder and the convergence check. Every call has the probe
//! timeout. Errors are values: the caller decides what a failure means.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::supervisor::cameras::PathObs;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("MediaMTX API unreachable: {0}")]
    Transport(String),
    #[error("MediaMTX API answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("MediaMTX API sent an unexpected body: {0}")]
    Body(String),
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct PathList {
    #[serde(rename = "pageCount")]
    page_count: u64,
    items: Vec<PathItem>,
}

#[derive(Deserialize)]
struct PathItem {
    name: String,
    /// `ready` is a deprecated alias (docs/mediamtx.md §0.6); never `online`.
    available: bool,
    #[serde(rename = "inboundBytes", default)]
    inbound_bytes: u64,
    /// `{type, id}` of each reader (never null in v1.20.1).
    #[serde(default)]
    readers: Vec<Reader>,
}

#[derive(Deserialize)]
struct Reader {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct ConfPathList {
    #[serde(rename = "pageCount")]
    page_count: u64,
    items: Vec<serde_json::Value>,
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .build()
            .expect("building an HTTP client with no TLS settings cannot fail");
        Client {
            http,
            base: format!("http://{addr}"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let resp = req
            .bearer_auth(super::credential())
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(ApiError::Status {
            status: status.as_u16(),
            message,
        })
    }

    async fn json<T: for<'de> Deserialize<'de>>(&self, url: String) -> Result<T, ApiError> {
        let resp = self.send(self.http.get(url)).await?;
        resp.json::<T>()
            .await
            .map_err(|e| ApiError::Body(e.without_url().to_string()))
    }

    /// `GET /v3/info`: is MediaMTX alive and answering?
    pub async fn info(&self) -> Result<(), ApiError> {
        self.send(self.http.get(format!("{}/v3/info", self.base)))
            .await
            .map(|_| ())
    }

    /// Every path, in as few calls as paging allows (one for up to 1000).
    pub async fn paths(&self) -> Result<Vec<PathObs>, ApiError> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let list: PathList = self
                .json(format!(
                    "{}/v3/paths/list?itemsPerPage=1000&page={page}",
                    self.base
                ))
                .await?;
            out.extend(list.items.into_iter().map(|p| PathObs {
                name: p.name,
                available: p.available,
                inbound_bytes: p.inbound_bytes,
                readers: p.readers.into_iter().map(|r| r.id).collect(),
            }));
            page += 1;
            if page >= list.page_count {
                return Ok(out);
            }
        }
    }

    /// Names of the configured paths (`/v3/config/paths/list`).
    pub async fn configured_paths(&self) -> Result<Vec<(String, serde_json::Value)>, ApiError> {
        let mut out = Vec::new();
        let mut page = 0;
        loop {
            let list: ConfPathList = self
                .json(format!(
                    "{}/v3/config/paths/list?itemsPerPage=1000&page={page}",
                    self.base
                ))
                .await?;
            for item in list.items {
                let name = item
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                out.push((name, item));
            }
            page += 1;
            if page >= list.page_count {
                return Ok(out);
            }
        }
    }

    /// `DELETE /v3/config/paths/delete/{name}`; a missing path is fine.
    pub async fn delete_path(&self, name: &str) -> Result<(), ApiError> {
        match self
            .send(
                self.http
                    .delete(format!("{}/v3/config/paths/delete/{name}", self.base)),
            )
            .await
        {
            Err(ApiError::Status { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// `POST /v3/config/paths/replace/{name}`: an upsert (docs/mediamtx.md §a), so
    /// it re-creates a removed path and never fails with "already exists".
    pub async fn replace_path(&self, name: &str, conf: &serde_json::Value) -> Result<(), ApiError> {
        self.send(
            self.http
                .post(format!("{}/v3/config/paths/replace/{name}", self.base))
                .json(conf),
        )
        .await
        .map(|_| ())
    }
}
