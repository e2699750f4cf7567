//! `ServerContext`: the handles every per-session and per-account actor on
//! the Server needs (settings, the session handler, the Portals, the database,
//! the world),
//! and the one way they send a player text.

use std::sync::Arc;

use actix::Addr;

use super::handler::ServerSessionHandler;
use super::metrics::ServerMetrics;
use super::portals::Portals;
use super::world::World;
use crate::actors::db::DbExecutor;
use crate::protocols::link::{Output, ServerToPortal};
use crate::session::SessionId;
use crate::settings::Settings;

#[derive(Clone)]
pub struct ServerContext {
    pub settings: Arc<Settings>,
    pub handler: Addr<ServerSessionHandler>,
    pub portals: Portals,
    pub db: Addr<DbExecutor>,
    pub world: Addr<World>,
    pub metrics: Arc<ServerMetrics>,
}

impl ServerContext {
    /// Sends `text` to one session.
    pub fn say(&self, sessid: SessionId, text: impl Into<String>) {
        self.portals.send(ServerToPortal::DataOut {
            sessid,
            output: Output::Text(text.into()),
        });
    }

    /// Sends `text` to several sessions at once.
    pub fn say_many(&self, sessids: Vec<SessionId>, text: impl Into<String>) {
        match sessids.as_slice() {
            [] => {}
            [one] => self.say(*one, text),
            _ => self.portals.send(ServerToPortal::DataOutMany {
                sessids,
                output: Output::Text(text.into()),
            }),
        }
    }
}
