//! Blocking HTTP for the tests that drive Prometheus and Alertmanager:
//! `(status, body)`, or why no answer came. Each request runs on its own
//! thread, so it may be called from async tests too (a blocking client
//! cannot run inside a tokio runtime).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn answer(r: reqwest::Result<reqwest::blocking::Response>) -> Result<(u16, String), String> {
    let r = r.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().map_err(|e| e.to_string())?))
}

fn on_thread(
    f: impl FnOnce() -> Result<(u16, String), String> + Send + 'static,
) -> Result<(u16, String), String> {
    std::thread::spawn(f)
        .join()
        .unwrap_or_else(|_| Err("the HTTP thread panicked".into()))
}

pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let url = format!("http://{addr}{path}");
    on_thread(move || answer(client().get(url).send()))
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Result<(u16, String), String> {
    let url = format!("http://{addr}{path}");
    let body = body.clone();
    on_thread(move || answer(client().post(url).json(&body).send()))
}
