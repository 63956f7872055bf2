//! The admin API's client, used by the CLI commands (`strangler diffs`, ...). The address and
//! token come from the same config file the proxy runs on; `--admin` and `--token` override.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{self, ErrorBody};
use crate::config::model::TOKEN_ENV;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {file} to find the admin API ({why}); pass --admin http://HOST:PORT or -c FILE")]
    Config { file: String, why: String },
    #[error("cannot reach the admin API at {url} ({why}); is strangler running with this config?")]
    Unreachable { url: String, why: String },
    /// The API's own `{"error": ...}`, with the status.
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    #[error("the admin API at {url} answered {status} with a body this version cannot read ({why})")]
    Unreadable { url: String, status: u16, why: String },
}

pub struct AdminClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    /// `admin` (a URL) and `token` override what the config file says.
    pub fn new(config: &Path, admin: Option<&str>, token: Option<&str>) -> Result<Self, ClientError> {
        let file = match std::fs::read_to_string(config) {
            Ok(text) => Some(text.parse::<toml::Table>().map_err(|e| ClientError::Config {
                file: config.display().to_string(),
                why: e.message().to_string(),
            })?),
            Err(_) if admin.is_some() => None,
            Err(e) => return Err(ClientError::Config { file: config.display().to_string(), why: e.to_string() }),
        };
        let section = file.as_ref().and_then(|f| f.get("admin")).and_then(|a| a.as_table());
        let setting = |key: &str| section.and_then(|a| a.get(key)).and_then(|v| v.as_str()).map(str::to_string);
        let base = match admin {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let listen = setting("listen").unwrap_or_else(|| "127.0.0.1:9090".to_string());
                let addr: SocketAddr = listen.parse().map_err(|_| ClientError::Config {
                    file: config.display().to_string(),
                    why: format!("admin.listen = {listen:?} is not an address"),
                })?;
                format!("http://{}", connectable(addr))
            }
        };
        let token = token
            .map(str::to_string)
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .or_else(|| setting("token"))
            .filter(|t| !t.is_empty());
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(AdminClient { base, token, agent })
    }

    /// `GET` an API path (under [`api::PREFIX`], e.g. `/routes`).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let req = self.auth(self.agent.get(&url));
        let resp = req.call().map_err(|e| ClientError::Unreachable { url: url.clone(), why: e.to_string() })?;
        read(url, resp)
    }

    /// `PUT` a JSON body.
    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send_json(self.agent.put(&url), url, body)
    }

    /// `POST` a JSON body.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send_json(self.agent.post(&url), url, body)
    }

    fn send_json<T: DeserializeOwned>(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithBody>,
        url: String,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_string(body).map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            why: format!("cannot encode the request: {e}"),
        })?;
        let req = self.auth(req).header("content-type", "application/json");
        let resp = req.send(body).map_err(|e| ClientError::Unreachable { url: url.clone(), why: e.to_string() })?;
        read(url, resp)
    }

    /// `POST` without a body (declared as JSON, as every mutation is).
    pub fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let req = self.auth(self.agent.post(&url)).header("content-type", "application/json");
        let resp = req.send_empty().map_err(|e| ClientError::Unreachable { url: url.clone(), why: e.to_string() })?;
        read(url, resp)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, api::PREFIX)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        // Says which tool made a change, for the log and the notifications.
        let req = req.header(CLIENT_HEADER, "cli");
        match &self.token {
            Some(t) => req.header("authorization", &format!("Bearer {t}")),
            None => req,
        }
    }
}

/// Names the tool behind an admin API request: `cli` or `console`; absent, `api`.
pub const CLIENT_HEADER: &str = "x-strangler-client";

fn read<T: DeserializeOwned>(url: String, mut resp: http::Response<ureq::Body>) -> Result<T, ClientError> {
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let unreadable =
        |why: serde_json::Error| ClientError::Unreadable { url: url.clone(), status, why: why.to_string() };
    if status >= 400 {
        let body: ErrorBody = serde_json::from_str(&text).map_err(unreadable)?;
        return Err(ClientError::Api { status, message: body.error });
    }
    serde_json::from_str(&text).map_err(unreadable)
}

/// A wildcard listen address is reached through loopback.
/// The proxy's URL from the config file's first `server.listen` address, for commands that print
/// requests to send to it (`strangler replay --curl`).
pub fn proxy_url(config: &Path) -> Option<String> {
    let table = std::fs::read_to_string(config).ok()?.parse::<toml::Table>().ok()?;
    let listen = table.get("server")?.get("listen")?.as_array()?.first()?.as_str()?;
    Some(format!("http://{}", connectable(listen.parse().ok()?)))
}

fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
        a => a,
    }
}
