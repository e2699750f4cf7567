//! `ServerContext`: the handles every per-session and per-account actor on
//! the Server needs (settings, the session handler, the link, the database),
//! and the one way they send a player text.

use std::sync::Arc;

use actix::Addr;

use super::handler::ServerSessionHandler;
use super::link::{PortalLink, ToPortal};
use crate::actors::db::DbExecutor;
use crate::protocols::link::{Output, ServerToPortal};
use crate::session::SessionId;
use crate::settings::Settings;

#[derive(Clone)]
pub struct ServerContext {
    pub settings: Arc<Settings>,
    pub handler: Addr<ServerSessionHandler>,
    pub link: Addr<PortalLink>,
    pub db: Addr<DbExecutor>,
}

impl ServerContext {
    /// Sends `text` to one session.
    pub fn say(&self, sessid: SessionId, text: impl Into<String>) {
        self.link.do_send(ToPortal(ServerToPortal::DataOut {
            sessid,
            output: Output::Text(text.into()),
        }));
    }
}
