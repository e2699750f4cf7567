//! Typed settings: `settings.toml` in the game dir, then `GATEHOUSE__SECTION__KEY`
//! environment overrides, layered with the `config` crate.
//!
//! Owns every key of the product contract and its default. It never reads a
//! setting anywhere else: the rest of the crate receives a validated [`Settings`].
//! A bad file or value is a [`SettingsError`] that names the key, never a panic.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::protocols::proxy::TrustedProxies;

/// The environment prefix; `GATEHOUSE__PORTAL__WEB_PORT=0` sets `portal.web_port`.
pub const ENV_PREFIX: &str = "GATEHOUSE";
/// Separates the prefix, the section and the key in an override's name.
pub const ENV_SEPARATOR: &str = "__";

/// Everything that can go wrong while loading settings; each variant names its key.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("settings file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
}

/// The smallest `portal.socket_send_buffer` taken: below it the kernel would round
/// up anyway, and a send buffer smaller than one segment makes every write crawl.
pub const MIN_SOCKET_SEND_BUFFER: usize = 4096;
/// The largest `portal.socket_send_buffer` taken (the kernel receives an `int`,
/// doubled).
pub const MAX_SOCKET_SEND_BUFFER: usize = 1 << 30;

/// All settings, one struct per `[section]` of `settings.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub portal: PortalSettings,
    pub database: DatabaseSettings,
    pub throttle: ThrottleSettings,
    pub client: ClientSettings,
}

/// `[server]`: the game itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Shown on the connection screen, in `who` and to MUD crawlers.
    pub name: String,
    /// Evennia's MULTISESSION_MODE, 0 to 3.
    pub multisession_mode: u8,
    pub auto_create_character_with_account: bool,
    pub auto_puppet_on_login: bool,
    /// 0 means no limit.
    pub max_nr_characters: u32,
    /// 0 means no limit.
    pub max_nr_simultaneous_puppets: u32,
    /// Seconds without input before a session is disconnected; `<= 0` turns it off.
    pub idle_timeout: i64,
    /// A line that only refreshes the idle timer and is never answered.
    pub idle_command: String,
    /// Shortest password `create` and `password` accept.
    pub password_min_length: usize,
    /// The Portals this Server serves, as `host:port` of each one's link (its
    /// `portal.link_addr`); empty: the one Portal at `portal.link_addr`.
    pub portal_addrs: Vec<String>,
    /// Speak TLS to every Portal, trusting the certificates in this PEM file (a
    /// CA, or the Portals' own certificates); relative to the game dir.
    pub link_tls_ca: Option<PathBuf>,
    /// Seconds a Portal may stay unreachable before its sessions are dropped
    /// (its players are gone with it); a Portal back sooner is resynced.
    pub portal_grace: u64,
    /// Where the Server answers `/metrics` and `/healthz` over HTTP (port `0`: any
    /// free port, written to `run/server-http.txt`; empty: not at all).
    pub http_addr: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            name: "gatehouse".to_owned(),
            multisession_mode: 0,
            auto_create_character_with_account: true,
            auto_puppet_on_login: true,
            max_nr_characters: 1,
            max_nr_simultaneous_puppets: 1,
            idle_timeout: -1,
            idle_command: "idle".to_owned(),
            password_min_length: 8,
            portal_addrs: Vec::new(),
            link_tls_ca: None,
            portal_grace: 60,
            http_addr: "127.0.0.1:4005".to_owned(),
        }
    }
}

/// `[portal]`: listeners, the link, and the per-connection limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PortalSettings {
    pub telnet_ports: Vec<u16>,
    pub telnet_interfaces: Vec<String>,
    pub web_port: u16,
    pub websocket_port: u16,
    pub ssl_ports: Vec<u16>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where the Portal listens for its Server (Evennia's AMP port).
    pub link_addr: String,
    /// Required when `link_addr` is not a loopback address.
    pub link_secret: String,
    /// The link is TLS, with `tls_cert` and `tls_key`; the Server must then trust
    /// that certificate (`server.link_tls_ca`).
    pub link_tls: bool,
    /// New connections released to the Server per second from one address (IPv4, or
    /// IPv6 /64); the excess waits in that address's queue.
    pub max_connection_rate: f64,
    /// Input lines per session per second; excess is dropped with a warning. `<= 0` turns it off.
    pub max_command_rate: f64,
    /// Longest accepted input line in characters; longer lines are refused. `0` turns it off.
    pub max_char_limit: usize,
    /// Bytes per second one connection may send after a burst of four seconds'
    /// worth: telnet input beyond it is read later (TCP makes the client wait), never
    /// dropped; a web tab beyond it is closed. `0` turns it off.
    pub max_input_rate: usize,
    /// Bytes of output a client may leave unread before it is disconnected: what
    /// the Portal has queued plus what the kernel holds unacknowledged.
    pub output_buffer_limit: usize,
    /// Seconds a client may accept no byte of the output waiting for it before it
    /// is disconnected. `0` turns it off.
    pub output_stall_timeout: u64,
    /// Bytes of kernel send buffer each client socket may use (`SO_SNDBUF`; Linux
    /// doubles the value for its bookkeeping, and caps it at `net.core.wmem_max`).
    /// `0` leaves the kernel's autotuning, several MB per socket, alone.
    pub socket_send_buffer: usize,
    /// Input lines kept per session while the Server is away (reload, crash).
    pub input_queue_limit: usize,
    /// Seconds a web client may leave pings unanswered before it is closed.
    pub websocket_timeout: u64,
    /// Seconds a web session whose connection dropped waits for the page to
    /// come back with its token.
    pub websocket_resume_window: u64,
    /// Bytes of output kept for a web session while it waits to be resumed: the
    /// newest output, replayed to the page when it comes back. `0` keeps nothing;
    /// at most `output_buffer_limit`, since the replay counts toward it.
    pub websocket_resume_backlog: usize,
    /// Seconds a connection may stay without logging in (counted from when it
    /// was let through to the login screen) before it is closed. `0` turns it off.
    pub login_timeout: u64,
    /// Connections from one source (IPv4 address or IPv6 /64) that may be
    /// connected and not yet logged in at once; more are refused. `0` turns it
    /// off, and `throttle.exempt_loopback` exempts this machine.
    pub max_unauthenticated_per_source: usize,
    /// This Portal's number among the Portals serving one Server (0 to 9999): its
    /// session ids are its own range, so they never collide.
    pub id: u16,
    /// Addresses of reverse proxies and load balancers whose word on a client's
    /// address is taken (PROXY protocol, `X-Forwarded-For`).
    pub trusted_proxies: Vec<String>,
    /// Telnet ports: a trusted proxy starts each connection with a PROXY protocol
    /// (v1 or v2) header.
    pub telnet_proxy_protocol: bool,
    /// The same for the telnet-over-TLS ports (the header comes before TLS).
    pub ssl_proxy_protocol: bool,
    /// The websocket takes the client's address from a trusted proxy's
    /// `X-Forwarded-For`.
    pub websocket_forwarded_for: bool,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            telnet_ports: vec![4000],
            telnet_interfaces: vec!["0.0.0.0".to_owned()],
            web_port: 4001,
            websocket_port: 4002,
            ssl_ports: vec![4003],
            tls_cert: None,
            tls_key: None,
            link_addr: "127.0.0.1:4006".to_owned(),
            link_secret: String::new(),
            link_tls: false,
            max_connection_rate: 2.0,
            max_command_rate: 80.0,
            max_char_limit: 6000,
            max_input_rate: 16_384,
            output_buffer_limit: 1_048_576,
            output_stall_timeout: 60,
            socket_send_buffer: 65_536,
            input_queue_limit: 100,
            websocket_timeout: 30,
            websocket_resume_window: 60,
            websocket_resume_backlog: 65_536,
            login_timeout: 300,
            max_unauthenticated_per_source: 10,
            id: 0,
            trusted_proxies: Vec::new(),
            telnet_proxy_protocol: false,
            ssl_proxy_protocol: false,
            websocket_forwarded_for: false,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://relative/or/absolute/path.db` (relative paths are under the game
    /// dir) or `postgres://user:password@host:port/database`.
    pub url: String,
    /// Database connections, and threads of the blocking executor.
    pub pool_size: u32,
    /// Seconds a write a player waits for (a login, a new account or
    /// character, a password change) is tried again while it fails for a
    /// transient reason (a busy SQLite file, a lost PostgreSQL connection)
    /// before the player is told it failed. Writes nobody waits for (where
    /// characters stand) are tried until they commit.
    pub write_timeout: f64,
    /// Seconds between two writes of the characters' rooms: every move in
    /// between is kept in memory and the newest room of each character is
    /// written in one transaction. A crash loses at most this much walking.
    pub save_interval: f64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://server/gatehouse.db".to_owned(),
            pool_size: 8,
            write_timeout: 10.0,
            save_interval: 0.2,
        }
    }
}

impl DatabaseSettings {
    /// `write_timeout` as a duration.
    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.write_timeout)
    }

    /// `save_interval` as a duration.
    pub fn save_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.save_interval)
    }
}

/// `[throttle]`: per-address login and account-creation limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    pub login_limit: u32,
    pub login_timeout: u64,
    pub creation_limit: u32,
    pub creation_timeout: u64,
    /// Connections from this machine (the operator, or a local proxy that
    /// does not pass on client addresses) are never throttled.
    pub exempt_loopback: bool,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            login_limit: 5,
            login_timeout: 300,
            creation_limit: 2,
            creation_timeout: 600,
            exempt_loopback: true,
        }
    }
}

/// `[client]`: what is assumed of a client that does not say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    pub default_width: u16,
    pub default_height: u16,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            default_width: 78,
            default_height: 45,
        }
    }
}

impl Settings {
    /// Loads `file` (if it exists; a missing default file means "all defaults") and
    /// the environment overrides, then validates the result.
    ///
    /// `file_required` is true when the operator named the file explicitly: then a
    /// missing file is an error rather than a silent fall-back to defaults.
    pub fn load(file: &Path, file_required: bool) -> Result<Self, SettingsError> {
        Self::load_from(file, file_required, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_from(
        file: &Path,
        file_required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        if file_required && !file.exists() {
            return Err(SettingsError::File {
                path: file.to_owned(),
                message: "no such file".to_owned(),
            });
        }
        let mut builder = config::Config::builder().add_source(
            config::File::from(file)
                .format(config::FileFormat::Toml)
                .required(false),
        );
        for (var, key, value) in env_overrides(env)? {
            builder =
                builder
                    .set_override(key.as_str(), value)
                    .map_err(|e| SettingsError::Env {
                        var,
                        message: e.to_string(),
                    })?;
        }
        let layered = builder.build().map_err(|e| SettingsError::File {
            path: file.to_owned(),
            message: e.to_string(),
        })?;
        let settings: Settings = layered.try_deserialize().map_err(|e| match &e {
            config::ConfigError::Type { key: Some(key), .. } => SettingsError::Invalid {
                key: key.clone(),
                message: e.to_string(),
            },
            _ => SettingsError::File {
                path: file.to_owned(),
                message: e.to_string(),
            },
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules that types alone cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &str, message: String| SettingsError::Invalid {
            key: key.to_owned(),
            message,
        };
        if self.server.multisession_mode > 3 {
            return Err(invalid(
                "server.multisession_mode",
                format!(
                    "must be 0, 1, 2 or 3, not {}",
                    self.server.multisession_mode
                ),
            ));
        }
        if self.server.idle_command.trim().is_empty() {
            return Err(invalid("server.idle_command", "must not be empty".into()));
        }
        self.server_http_addr()?;
        let link = self.link_socket_addr()?;
        if !link.ip().is_loopback() && self.portal.link_secret.is_empty() {
            return Err(invalid(
                "portal.link_secret",
                format!("is required because portal.link_addr {link} is not a loopback address"),
            ));
        }
        self.telnet_interface_addrs()?;
        if self.portal.id > crate::session::MAX_PORTAL_ID {
            return Err(invalid(
                "portal.id",
                format!("must be 0 to {}", crate::session::MAX_PORTAL_ID),
            ));
        }
        let proxies = self.trusted_proxies()?;
        let proxied = self.portal.telnet_proxy_protocol
            || self.portal.ssl_proxy_protocol
            || self.portal.websocket_forwarded_for;
        if proxied && proxies == TrustedProxies::default() {
            return Err(invalid(
                "portal.trusted_proxies",
                "must list the proxies' addresses when a PROXY protocol or X-Forwarded-For \
                 setting is on"
                    .into(),
            ));
        }
        if self.portal.telnet_ports.is_empty() {
            return Err(invalid(
                "portal.telnet_ports",
                "needs at least one port".into(),
            ));
        }
        if self.portal.max_connection_rate.is_nan() || self.portal.max_connection_rate <= 0.0 {
            return Err(invalid(
                "portal.max_connection_rate",
                "must be greater than 0 (connections are queued, never refused)".into(),
            ));
        }
        if self.portal.output_buffer_limit < 1024 {
            return Err(invalid(
                "portal.output_buffer_limit",
                "must be at least 1024 bytes".into(),
            ));
        }
        if self.portal.websocket_resume_backlog > self.portal.output_buffer_limit {
            return Err(invalid(
                "portal.websocket_resume_backlog",
                format!(
                    "must be at most portal.output_buffer_limit ({} bytes): the replay \
                     counts toward it",
                    self.portal.output_buffer_limit
                ),
            ));
        }
        if self.portal.socket_send_buffer != 0
            && !(MIN_SOCKET_SEND_BUFFER..=MAX_SOCKET_SEND_BUFFER)
                .contains(&self.portal.socket_send_buffer)
        {
            return Err(invalid(
                "portal.socket_send_buffer",
                format!(
                    "must be 0 (the kernel's autotuning) or {MIN_SOCKET_SEND_BUFFER} to \
                     {MAX_SOCKET_SEND_BUFFER} bytes, not {}",
                    self.portal.socket_send_buffer
                ),
            ));
        }
        if self.portal.websocket_timeout == 0 {
            return Err(invalid(
                "portal.websocket_timeout",
                "must be at least 1 second".into(),
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1".into()));
        }
        if !(self.database.write_timeout > 0.0 && self.database.write_timeout <= 300.0) {
            return Err(invalid(
                "database.write_timeout",
                "must be more than 0 and at most 300 seconds".into(),
            ));
        }
        if !(self.database.save_interval > 0.0 && self.database.save_interval <= 60.0) {
            return Err(invalid(
                "database.save_interval",
                "must be more than 0 and at most 60 seconds".into(),
            ));
        }
        if self.client.default_width == 0 || self.client.default_height == 0 {
            return Err(invalid(
                "client",
                "default_width and default_height must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// `portal.output_stall_timeout` as a duration; `None` when it is `0` (off).
    pub fn output_stall_timeout(&self) -> Option<std::time::Duration> {
        let secs = self.portal.output_stall_timeout;
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
    }

    /// `server.http_addr` parsed; `None` when it is empty (off).
    pub fn server_http_addr(&self) -> Result<Option<SocketAddr>, SettingsError> {
        let text = self.server.http_addr.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|e| SettingsError::Invalid {
            key: "server.http_addr".to_owned(),
            message: format!("{text:?} is not an address:port ({e})"),
        })
    }

    /// The links this Server connects to: `server.portal_addrs`, or the one
    /// Portal at `portal.link_addr`. Names are resolved when each connects.
    pub fn portal_link_addrs(&self) -> Result<Vec<String>, SettingsError> {
        if self.server.portal_addrs.is_empty() {
            return Ok(vec![self.link_socket_addr()?.to_string()]);
        }
        for addr in &self.server.portal_addrs {
            if !addr.contains(':') {
                return Err(SettingsError::Invalid {
                    key: "server.portal_addrs".to_owned(),
                    message: format!("{addr:?} is not host:port"),
                });
            }
        }
        Ok(self.server.portal_addrs.clone())
    }

    /// `portal.link_addr` parsed.
    pub fn link_socket_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.portal
            .link_addr
            .parse()
            .map_err(|e| SettingsError::Invalid {
                key: "portal.link_addr".to_owned(),
                message: format!("{:?} is not an address:port ({e})", self.portal.link_addr),
            })
    }

    /// `portal.trusted_proxies` parsed.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, SettingsError> {
        self.portal
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse().map_err(|e| SettingsError::Invalid {
                    key: "portal.trusted_proxies".to_owned(),
                    message: format!("{s:?} is not an IP address ({e})"),
                })
            })
            .collect::<Result<Vec<IpAddr>, _>>()
            .map(TrustedProxies::new)
    }

    /// `portal.telnet_interfaces` parsed.
    pub fn telnet_interface_addrs(&self) -> Result<Vec<IpAddr>, SettingsError> {
        self.portal
            .telnet_interfaces
            .iter()
            .map(|s| {
                s.parse().map_err(|e| SettingsError::Invalid {
                    key: "portal.telnet_interfaces".to_owned(),
                    message: format!("{s:?} is not an IP address ({e})"),
                })
            })
            .collect()
    }

    /// The database `database.url` names: a SQLite file, resolved against the game
    /// dir, or a PostgreSQL server.
    pub fn database_target(&self, game_dir: &Path) -> Result<DatabaseTarget, SettingsError> {
        let url = self.database.url.trim();
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = Path::new(rest);
            return Ok(DatabaseTarget::Sqlite(if path.is_absolute() {
                path.to_owned()
            } else {
                game_dir.join(path)
            }));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres(url.to_owned()));
        }
        Err(SettingsError::Invalid {
            key: "database.url".to_owned(),
            message: format!(
                "{:?} is not supported: use sqlite://path/to/file.db or \
                 postgres://user:password@host/database",
                DatabaseTarget::Postgres(url.to_owned()).to_string()
            ),
        })
    }
}

/// Where the database is, from `database.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// The SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DatabaseTarget {
    /// The URL with any password replaced by `***`, for logs and errors.
    fn redacted(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        match rest.split_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

/// Shown in logs and errors: never the password.
impl std::fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseTarget::Sqlite(path) => write!(f, "{}", path.display()),
            DatabaseTarget::Postgres(url) => f.write_str(&Self::redacted(url)),
        }
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseTarget({self})")
    }
}

/// Turns `GATEHOUSE__SECTION__KEY=value` variables into `(var, "section.key", value)`.
///
/// Values are read as TOML (`[0]`, `true`, `2.5`, `"text"`), and anything that is
/// not valid TOML is taken as a plain string, so `GATEHOUSE__SERVER__NAME=My Game`
/// works without quotes.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String, config::Value)>, SettingsError> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let mut out = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split(ENV_SEPARATOR).collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(SettingsError::Env {
                var,
                message: "expected GATEHOUSE__SECTION__KEY".to_owned(),
            });
        }
        let key = format!("{}.{}", parts[0].to_lowercase(), parts[1].to_lowercase());
        let value = toml_value(&raw);
        out.push((var, key, value));
    }
    Ok(out)
}

fn toml_value(raw: &str) -> config::Value {
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {raw}")) {
        Ok(w) => toml_to_config(w.v),
        Err(_) => config::Value::from(raw.to_owned()),
    }
}

fn toml_to_config(v: toml::Value) -> config::Value {
    match v {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => f.into(),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a.into_iter().map(toml_to_config).collect::<Vec<_>>().into(),
        toml::Value::Table(t) => t
            .into_iter()
            .map(|(k, v)| (k, toml_to_config(v)))
            .collect::<std::collections::HashMap<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn missing_default_file_gives_the_contract_defaults() {
        let s =
            Settings::load_from(Path::new("/nonexistent/settings.toml"), false, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.portal.telnet_ports, vec![4000]);
        assert_eq!(s.portal.web_port, 4001);
        assert_eq!(s.portal.websocket_port, 4002);
        assert_eq!(s.portal.ssl_ports, vec![4003]);
        assert_eq!(s.portal.link_addr, "127.0.0.1:4006");
        assert_eq!(s.portal.max_connection_rate, 2.0);
        assert_eq!(s.portal.max_command_rate, 80.0);
        assert_eq!(s.portal.max_char_limit, 6000);
        assert_eq!(s.portal.output_buffer_limit, 1_048_576);
        assert_eq!(s.portal.websocket_resume_window, 60);
        assert_eq!(s.portal.websocket_resume_backlog, 65_536);
        assert_eq!(s.portal.output_stall_timeout, 60);
        assert_eq!(s.portal.socket_send_buffer, 65_536);
        assert_eq!(s.server.multisession_mode, 0);
        assert_eq!(s.server.idle_timeout, -1);
        assert_eq!(s.server.idle_command, "idle");
        assert_eq!(s.database.url, "sqlite://server/gatehouse.db");
        assert_eq!(s.database.pool_size, 8);
        assert_eq!(s.database.write_timeout, 10.0);
        assert_eq!(s.database.save_interval, 0.2);
        assert_eq!(s.throttle.login_limit, 5);
        assert_eq!(s.throttle.login_timeout, 300);
        assert_eq!(s.throttle.creation_limit, 2);
        assert_eq!(s.throttle.creation_timeout, 600);
        assert_eq!(s.client.default_width, 78);
        assert_eq!(s.client.default_height, 45);
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let err =
            Settings::load_from(Path::new("/nonexistent/x.toml"), true, env(&[])).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    #[test]
    fn the_shipped_settings_file_matches_the_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
        let s = Settings::load_from(&shipped, true, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn file_values_apply_and_env_overrides_win() {
        let f = write_file("[portal]\ntelnet_ports = [5000, 5001]\nweb_port = 5005\n[server]\nname = \"Filegame\"\n");
        let s = Settings::load_from(
            f.path(),
            true,
            env(&[
                ("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]"),
                ("GATEHOUSE__SERVER__NAME", "My Game"),
                ("GATEHOUSE__SERVER__MULTISESSION_MODE", "2"),
                ("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "100"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.portal.telnet_ports, vec![0]);
        assert_eq!(s.portal.web_port, 5005);
        assert_eq!(s.server.name, "My Game");
        assert_eq!(s.server.multisession_mode, 2);
        assert_eq!(s.portal.max_connection_rate, 100.0);
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let f = write_file("[portal]\nweb_port = \"not a port\"\n");
        let err = Settings::load_from(f.path(), true, env(&[])).unwrap_err();
        assert!(err.to_string().contains("web_port"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let f = write_file("[server]\nmultisesion_mode = 1\n");
        let err = Settings::load_from(f.path(), true, env(&[])).unwrap_err();
        assert!(err.to_string().contains("multisesion_mode"), "{err}");
    }

    #[test]
    fn broken_toml_is_an_error_not_a_panic() {
        let f = write_file("[server\nname = ");
        assert!(Settings::load_from(f.path(), true, env(&[])).is_err());
    }

    #[test]
    fn out_of_range_mode_is_refused_with_its_key() {
        let err = Settings::load_from(
            Path::new("/nonexistent"),
            false,
            env(&[("GATEHOUSE__SERVER__MULTISESSION_MODE", "7")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("server.multisession_mode"),
            "{err}"
        );
    }

    #[test]
    fn a_resume_backlog_beyond_the_output_limit_is_refused() {
        let err = Settings::load_from(
            Path::new("/nonexistent"),
            false,
            env(&[
                ("GATEHOUSE__PORTAL__OUTPUT_BUFFER_LIMIT", "65536"),
                ("GATEHOUSE__PORTAL__WEBSOCKET_RESUME_BACKLOG", "65537"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("portal.websocket_resume_backlog"),
            "{err}"
        );
    }

    #[test]
    fn a_socket_send_buffer_is_off_or_in_range() {
        for (value, ok) in [
            ("0", true),
            ("4096", true),
            ("100", false),
            ("4294967296", false),
        ] {
            let result = Settings::load_from(
                Path::new("/nonexistent"),
                false,
                env(&[("GATEHOUSE__PORTAL__SOCKET_SEND_BUFFER", value)]),
            );
            match result {
                Ok(s) => assert!(ok, "{value} was taken: {}", s.portal.socket_send_buffer),
                Err(e) => {
                    assert!(!ok, "{value} was refused: {e}");
                    assert!(e.to_string().contains("portal.socket_send_buffer"), "{e}");
                }
            }
        }
    }

    #[test]
    fn database_timings_out_of_range_are_refused_with_their_keys() {
        for (var, value, key) in [
            (
                "GATEHOUSE__DATABASE__WRITE_TIMEOUT",
                "0",
                "database.write_timeout",
            ),
            (
                "GATEHOUSE__DATABASE__WRITE_TIMEOUT",
                "nan",
                "database.write_timeout",
            ),
            (
                "GATEHOUSE__DATABASE__SAVE_INTERVAL",
                "-1",
                "database.save_interval",
            ),
            (
                "GATEHOUSE__DATABASE__SAVE_INTERVAL",
                "61",
                "database.save_interval",
            ),
        ] {
            let err = Settings::load_from(Path::new("/nonexistent"), false, env(&[(var, value)]))
                .unwrap_err();
            assert!(err.to_string().contains(key), "{var}={value}: {err}");
        }
        let ok = Settings::load_from(
            Path::new("/nonexistent"),
            false,
            env(&[("GATEHOUSE__DATABASE__SAVE_INTERVAL", "0.05")]),
        )
        .unwrap();
        assert_eq!(ok.database.save_interval(), Duration::from_millis(50));
    }

    #[test]
    fn a_public_link_needs_a_secret() {
        let err = Settings::load_from(
            Path::new("/nonexistent"),
            false,
            env(&[("GATEHOUSE__PORTAL__LINK_ADDR", "0.0.0.0:4006")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("portal.link_secret"), "{err}");
    }

    #[test]
    fn a_malformed_override_name_is_refused() {
        let err = Settings::load_from(
            Path::new("/nonexistent"),
            false,
            env(&[("GATEHOUSE__PORTAL", "1")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GATEHOUSE__PORTAL"), "{err}");
    }

    #[test]
    fn sqlite_paths_resolve_against_the_game_dir() {
        let s = Settings::default();
        assert_eq!(
            s.database_target(Path::new("/games/mygame")).unwrap(),
            DatabaseTarget::Sqlite(PathBuf::from("/games/mygame/server/gatehouse.db"))
        );
    }

    #[test]
    fn postgres_urls_are_taken_and_never_shown_with_their_password() {
        let mut s = Settings::default();
        s.database.url = "postgres://mud:s3cret@db.example:5432/game".into();
        let target = s.database_target(Path::new("/g")).unwrap();
        assert_eq!(
            target,
            DatabaseTarget::Postgres("postgres://mud:s3cret@db.example:5432/game".into())
        );
        assert_eq!(
            target.to_string(),
            "postgres://mud:***@db.example:5432/game"
        );
        assert!(!format!("{target:?}").contains("s3cret"));
        s.database.url = "mysql://root:pw@host/db".into();
        let err = s.database_target(Path::new("/g")).unwrap_err().to_string();
        assert!(
            err.contains("database.url") && !err.contains("pw@"),
            "{err}"
        );
    }
}
