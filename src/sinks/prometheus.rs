//! The operators' HTTP endpoint (`[observability] listen`, off by default): `/metrics` in the
//! Prometheus/OpenMetrics text format, `/healthz` (the process is alive) and `/readyz` (every
//! readiness check passes: config loaded, input and state store reachable; 503 with the failing
//! checks otherwise). It serves on its own thread, so a busy or stuck driver cannot silence it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::events::telemetry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Binds `listen` now (so a taken port stops start-up) and serves in the background; returns the
/// bound address (port 0 picks a free one).
pub fn spawn(listen: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("driftd-http".into())
        .spawn(move || runtime.block_on(serve(listener)))?;
    Ok(bound)
}

async fn serve(listener: std::net::TcpListener) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("a bound non-blocking listener");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!(%error, "observability endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(respond))
                .await;
        });
    }
}

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, OPENMETRICS, telemetry().render()),
        (&Method::GET, "/healthz") => (StatusCode::OK, TEXT, "ok\n".to_string()),
        (&Method::GET, "/readyz") => match telemetry().readiness() {
            Ok(()) => (StatusCode::OK, TEXT, "ready\n".to_string()),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        (_, "/metrics" | "/healthz" | "/readyz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET only\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /metrics, /healthz, /readyz\n".to_string(),
        ),
    };
    let response = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a response from valid parts");
    Ok(response)
}
