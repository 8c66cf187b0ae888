//! A local Telegram Bot API: answers `sendMessage` as scripted (ok by
//! default, or an HTTP error, or a hang) and records every request with the
//! time it arrived.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::eventually;

/// How the fake answers the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    Status(u16, Value),
    /// Answer only after this long (the client times out first).
    Hang(Duration),
}

#[derive(Clone, Debug)]
pub struct TgRequest {
    /// `/bot<token>/sendMessage`.
    pub path: String,
    pub body: Value,
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

impl TgRequest {
    /// The `bot<token>` path segment.
    pub fn bot(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }

    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct TgState {
    requests: Mutex<Vec<TgRequest>>,
    script: Mutex<VecDeque<Reply>>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    state: Arc<TgState>,
    /// `http://127.0.0.1:PORT`, the `api_base` to configure.
    pub base: String,
}

impl FakeTelegram {
    /// A Bot API that answers ok to everything.
    pub async fn ok() -> FakeTelegram {
        FakeTelegram::start(vec![]).await
    }

    /// Answers the first requests as `script` says, then ok.
    pub async fn start(script: Vec<Reply>) -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeTelegram::serve(listener, script)
    }

    pub fn serve(listener: tokio::net::TcpListener, script: Vec<Reply>) -> FakeTelegram {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TgState {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(script.into()),
        });
        let app = Router::new().fallback(handler).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTelegram {
            state,
            base: format!("http://{addr}"),
        }
    }

    pub fn requests(&self) -> Vec<TgRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn texts(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.text().to_string())
            .collect()
    }

    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<TgRequest> {
        eventually(&format!("{n} Telegram requests"), timeout, || async {
            self.state.requests.lock().unwrap().len() >= n
        })
        .await;
        self.requests()
    }

    /// The config section that sends Critical alerts here (the bot token
    /// comes from `VMS_TELEGRAM_BOT_TOKEN` or a file).
    pub fn config(&self, chat_id: &str) -> String {
        format!(
            "[alerts.telegram]\nenabled = true\nchat_id = \"{chat_id}\"\napi_base = \"{}\"\n",
            self.base
        )
    }
}

async fn handler(State(state): State<Arc<TgState>>, uri: Uri, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(TgRequest {
        path: uri.path().to_string(),
        body,
        at: Instant::now(),
        wall: Utc::now(),
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Ok);
    match reply {
        Reply::Ok => ok_reply(),
        Reply::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            ok_reply()
        }
    }
}

fn ok_reply() -> Response {
    axum::Json(json!({"ok": true, "result": {"message_id": 1, "chat": {"id": -100777}}}))
        .into_response()
}
