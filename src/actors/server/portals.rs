//! `Portals`: the links to every Portal this Server serves, and the routing of what
//! the Server sends to the Portal that holds each session.
//!
//! A session id names its Portal ([`SessionId::portal`], from `portal.id`), so output
//! for one session goes to one link, output for many is split by Portal, and what
//! concerns every session (announcements to all, shutdown) goes to every link. The
//! handler registers a link when its Portal's `Welcome` names the Portal's id.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use actix::Addr;

use super::link::{PortalLink, ToPortal};
use crate::protocols::link::ServerToPortal;
use crate::session::{SessionId, SessionSyncData};

/// Cheap to clone: every actor that talks to players holds one.
#[derive(Clone, Default)]
pub struct Portals {
    links: Arc<RwLock<HashMap<u16, Addr<PortalLink>>>>,
}

impl Portals {
    /// `link` now carries Portal `portal_id`'s sessions.
    pub fn register(&self, portal_id: u16, link: Addr<PortalLink>) {
        self.write().insert(portal_id, link);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u16, Addr<PortalLink>>> {
        self.links.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u16, Addr<PortalLink>>> {
        self.links.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn to(&self, portal_id: u16, message: ServerToPortal) {
        match self.read().get(&portal_id) {
            Some(link) => link.do_send(ToPortal(message)),
            None => log::debug!("no link to Portal {portal_id}; a message was dropped"),
        }
    }

    fn to_all(&self, message: &ServerToPortal) {
        for link in self.read().values() {
            link.do_send(ToPortal(message.clone()));
        }
    }

    /// Sends `message` to the Portal (or Portals) it concerns.
    pub fn send(&self, message: ServerToPortal) {
        match message {
            ServerToPortal::DataOut { sessid, .. }
            | ServerToPortal::Disconnect { sessid, .. }
            | ServerToPortal::InputDone { sessid, .. } => self.to(sessid.portal(), message),
            ServerToPortal::LoggedIn { ref session } => self.to(session.sessid.portal(), message),
            ServerToPortal::DataOutMany { sessids, output } => {
                for (portal, sessids) in by_portal(sessids, |s| *s) {
                    self.to(
                        portal,
                        ServerToPortal::DataOutMany {
                            sessids,
                            output: output.clone(),
                        },
                    );
                }
            }
            ServerToPortal::SessionsSync { sessions } => {
                for (portal, sessions) in by_portal(sessions, |s: &SessionSyncData| s.sessid) {
                    self.to(portal, ServerToPortal::SessionsSync { sessions });
                }
            }
            ServerToPortal::Hello { .. }
            | ServerToPortal::DisconnectAll { .. }
            | ServerToPortal::RequestReload { .. }
            | ServerToPortal::RequestShutdown { .. }
            | ServerToPortal::Stopping => self.to_all(&message),
        }
    }
}

/// `items` grouped by the Portal of their session, in Portal order.
fn by_portal<T>(items: Vec<T>, sessid: impl Fn(&T) -> SessionId) -> BTreeMap<u16, Vec<T>> {
    let mut groups: BTreeMap<u16, Vec<T>> = BTreeMap::new();
    for item in items {
        groups.entry(sessid(&item).portal()).or_default().push(item);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::PORTAL_ID_STRIDE;

    #[test]
    fn sessions_are_grouped_by_their_portal() {
        let ids = vec![
            SessionId(1),
            SessionId(2 * PORTAL_ID_STRIDE + 5),
            SessionId(7),
        ];
        let groups = by_portal(ids, |s| *s);
        assert_eq!(
            groups.into_iter().collect::<Vec<_>>(),
            vec![
                (0, vec![SessionId(1), SessionId(7)]),
                (2, vec![SessionId(2 * PORTAL_ID_STRIDE + 5)])
            ]
        );
    }
}
