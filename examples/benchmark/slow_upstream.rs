//! An upstream that answers every request after a fixed delay, for the shadow benchmark's slow
//! shadow target (nginx cannot delay without extra modules).
//!
//! Usage: `slow_upstream 127.0.0.1:21002 200ms`

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().ok_or("usage: slow_upstream HOST:PORT DELAY")?;
    let delay = humantime::parse_duration(&args.next().ok_or("usage: slow_upstream HOST:PORT DELAY")?)?;
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, delay));
    }
}

async fn serve(stream: tokio::net::TcpStream, delay: Duration) {
    let svc = service_fn(move |_req| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"legacy says hello\n"))))
    });
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
}
