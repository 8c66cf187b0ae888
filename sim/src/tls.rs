//! HTTPS for the HLS and WebRTC servers (`hlsEncryption`, `webrtcEncryption`
//! with `hlsServerKey`/`hlsServerCert`, `webrtcServerKey`/`webrtcServerCert`:
//! PEM files, relative to the working directory). As in MediaMTX, a pair that
//! cannot be loaded stops the server from starting (the process exits), and a
//! client that speaks plain HTTP to the port gets Go's one-line 400.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Router;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::Conf;

/// The settings of server `name` that, when changed, restart it.
pub fn keys(name: &str) -> &'static [&'static str] {
    match name {
        "hls" => &["hlsEncryption", "hlsServerKey", "hlsServerCert"],
        "webrtc" => &["webrtcEncryption", "webrtcServerKey", "webrtcServerCert"],
        _ => &[],
    }
}

/// The TLS acceptor of server `name` when its encryption is on; the error
/// MediaMTX prints when the pair cannot be used.
pub fn acceptor(conf: &Conf, name: &str) -> Result<Option<TlsAcceptor>, String> {
    let [on, key, cert] = keys(name) else {
        return Ok(None);
    };
    if !conf.bool(on) {
        return Ok(None);
    }
    let (key, cert) = (conf.str(key), conf.str(cert));
    let read =
        |file: &str| std::fs::read(file).map_err(|e| format!("open {file}: {}", go_error(&e)));
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or("tls: failed to find any PEM data in certificate input")?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| "tls: failed to find any PEM data in key input".to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| "tls: private key does not match public key".to_string())?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Go's wording of a file error ("no such file or directory").
fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Serves `router` over TLS on `listener`, each request knowing its peer.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
        tokio::spawn(async move {
            if !starts_tls(&stream).await {
                return plain_http(stream, peer).await;
            }
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Whether a connection opens with a TLS handshake record, without reading it.
async fn starts_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// What Go's TLS server answers to plain HTTP.
async fn plain_http(mut stream: TcpStream, _peer: SocketAddr) {
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request).await;
    let _ = stream
        .write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )
        .await;
    let _ = stream.shutdown().await;
}
