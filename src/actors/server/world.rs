//! `World`: the rooms, their exits, and which characters stand where and which
//! sessions see through their eyes.
//!
//! The spatial state lives in [`WorldState`], a plain struct tested without a
//! `System`; the actor loads the rooms from the database, routes room output
//! (each session hears a room message once), and persists moves. Who may
//! puppet what is decided by the `Account` actors, which tell the world the
//! result.

use std::collections::{BTreeSet, HashMap};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::handler::Settle;
use super::portals::Portals;
use crate::actors::db::{DbExecutor, ExitRecord, LoadWorld, RoomRecord, SetCharacterLocation};
use crate::commands::character as text;
use crate::models::world::LIMBO;
use crate::protocols::link::{Output, ServerToPortal};
use crate::session::{CharacterId, RoomId, SessionId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    pub name: String,
    pub aliases: Vec<String>,
    pub destination: RoomId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub name: String,
    pub description: String,
    pub exits: Vec<ExitInfo>,
}

/// A character in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub name: String,
    pub description: String,
    pub location: RoomId,
    /// The sessions puppeting it.
    pub sessions: Vec<SessionId>,
}

/// Rooms and who is in them.
#[derive(Debug, Clone, Default)]
pub struct WorldState {
    rooms: HashMap<RoomId, RoomInfo>,
    present: HashMap<CharacterId, Presence>,
    /// Where characters were last seen, in or out of the world: newer than
    /// what the caller may remember from the database.
    last_location: HashMap<CharacterId, RoomId>,
}

impl WorldState {
    pub fn from_records(rooms: Vec<RoomRecord>, exits: Vec<ExitRecord>) -> Self {
        let mut map: HashMap<RoomId, RoomInfo> = rooms
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    RoomInfo {
                        name: r.name,
                        description: r.description,
                        exits: Vec::new(),
                    },
                )
            })
            .collect();
        for e in exits {
            if let Some(room) = map.get_mut(&e.room) {
                room.exits.push(ExitInfo {
                    name: e.name,
                    aliases: e.aliases,
                    destination: e.destination,
                });
            }
        }
        Self {
            rooms: map,
            present: HashMap::new(),
            last_location: HashMap::new(),
        }
    }

    pub fn room(&self, id: RoomId) -> Option<&RoomInfo> {
        self.rooms.get(&id)
    }

    pub fn presence(&self, character: CharacterId) -> Option<&Presence> {
        self.present.get(&character)
    }

    /// Puts a character in the world, or adds `sessions` to those already
    /// puppeting it; answers where it stands. An unknown room means Limbo.
    pub fn enter(
        &mut self,
        character: CharacterId,
        name: &str,
        description: &str,
        stored_location: RoomId,
        sessions: Vec<SessionId>,
    ) -> RoomId {
        if let Some(p) = self.present.get_mut(&character) {
            for s in sessions {
                if !p.sessions.contains(&s) {
                    p.sessions.push(s);
                }
            }
            return p.location;
        }
        let wanted = self
            .last_location
            .get(&character)
            .copied()
            .unwrap_or(stored_location);
        let location = if self.rooms.contains_key(&wanted) {
            wanted
        } else {
            LIMBO
        };
        self.present.insert(
            character,
            Presence {
                name: name.to_owned(),
                description: description.to_owned(),
                location,
                sessions,
            },
        );
        self.last_location.insert(character, location);
        location
    }

    /// Takes `sessions` off a character; when none remain it leaves the
    /// world, and its presence is answered. Removing only the named sessions
    /// means a late message about old sessions cannot take a character out
    /// from under a newer one.
    pub fn remove_sessions(
        &mut self,
        character: CharacterId,
        sessions: &[SessionId],
    ) -> Option<Presence> {
        let p = self.present.get_mut(&character)?;
        p.sessions.retain(|s| !sessions.contains(s));
        if p.sessions.is_empty() {
            self.present.remove(&character)
        } else {
            None
        }
    }

    /// Forgets a deleted character entirely.
    pub fn forget(&mut self, character: CharacterId) {
        self.present.remove(&character);
        self.last_location.remove(&character);
    }

    /// Characters in `room`, in name order.
    pub fn occupants(&self, room: RoomId) -> Vec<(CharacterId, &Presence)> {
        let mut v: Vec<(CharacterId, &Presence)> = self
            .present
            .iter()
            .filter(|(_, p)| p.location == room)
            .map(|(id, p)| (*id, p))
            .collect();
        v.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(&b.0)));
        v
    }

    /// Every session that sees `room`, each once, leaving out `except`'s.
    pub fn room_sessions(&self, room: RoomId, except: Option<CharacterId>) -> Vec<SessionId> {
        let set: BTreeSet<SessionId> = self
            .occupants(room)
            .into_iter()
            .filter(|(id, _)| Some(*id) != except)
            .flat_map(|(_, p)| p.sessions.iter().copied())
            .collect();
        set.into_iter().collect()
    }

    /// What `viewer` sees with `look`.
    pub fn look(&self, viewer: CharacterId) -> Option<String> {
        let here = self.present.get(&viewer)?.location;
        let room = self.rooms.get(&here)?;
        let exits: Vec<&str> = room.exits.iter().map(|e| e.name.as_str()).collect();
        let others: Vec<&str> = self
            .occupants(here)
            .into_iter()
            .filter(|(id, _)| *id != viewer)
            .map(|(_, p)| p.name.as_str())
            .collect();
        Some(text::room_look(
            &room.name,
            &room.description,
            &exits,
            &others,
        ))
    }

    /// What `viewer` sees with `look <what>`: a character in the room (by
    /// name, any case, itself included) or an exit (the room it leads to).
    pub fn look_at(&self, viewer: CharacterId, what: &str) -> String {
        let Some(here) = self.present.get(&viewer).map(|p| p.location) else {
            return text::not_here(what);
        };
        let wanted = what.trim().to_lowercase();
        if let Some((_, p)) = self
            .occupants(here)
            .into_iter()
            .find(|(_, p)| p.name.to_lowercase() == wanted)
        {
            return text::character_look(&p.name, &p.description);
        }
        if let Some(exit) = self.find_exit(here, what) {
            if let Some(room) = self.rooms.get(&exit.destination) {
                return format!("{} leads to {}.", exit.name, room.name);
            }
        }
        text::not_here(what)
    }

    /// The exit of `room` called `word` (its name or an alias, any case).
    pub fn find_exit(&self, room: RoomId, word: &str) -> Option<&ExitInfo> {
        let word = word.trim().to_lowercase();
        self.rooms
            .get(&room)?
            .exits
            .iter()
            .find(|e| e.name.to_lowercase() == word || e.aliases.contains(&word))
    }

    /// Moves a present character; answers (origin, destination).
    pub fn move_to(
        &mut self,
        character: CharacterId,
        destination: RoomId,
    ) -> Option<(RoomId, RoomId)> {
        let p = self.present.get_mut(&character)?;
        let origin = p.location;
        p.location = destination;
        self.last_location.insert(character, destination);
        Some((origin, destination))
    }
}

/// Put a character in the world, or add sessions to those puppeting it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct EnterWorld {
    pub character: CharacterId,
    pub name: String,
    pub description: String,
    pub location: RoomId,
    pub sessions: Vec<SessionId>,
    /// Tell the room "X has entered the game." (not after a reload).
    pub announce: bool,
    /// Show these sessions the room.
    pub look_to: Vec<SessionId>,
}

/// These sessions stopped puppeting the character; when none remain it
/// leaves the world and the room is told.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LeaveWorld {
    pub character: CharacterId,
    pub sessions: Vec<SessionId>,
}

/// The character was deleted.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ForgetCharacter {
    pub character: CharacterId,
}

/// `say`, `pose` or `look` by a present character; `reply_to` hears the
/// speaker's side.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Act {
    pub character: CharacterId,
    pub action: Action,
    pub reply_to: Vec<SessionId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Look,
    LookAt(String),
    Say(String),
    Pose(String),
}

/// Walk through the exit called `word`; answers false if there is none. The
/// walker's sessions see the new room.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct Go {
    pub character: CharacterId,
    pub word: String,
}

/// Names and room names of present characters (for `who` as a superuser).
#[derive(Message, Debug)]
#[rtype(result = "HashMap<CharacterId, (String, String)>")]
pub struct Locate {
    pub characters: Vec<CharacterId>,
}

pub struct World {
    state: WorldState,
    portals: Portals,
    db: Addr<DbExecutor>,
    /// Location writes not yet committed.
    pending_writes: usize,
    settle_waiters: Vec<oneshot::Sender<()>>,
}

impl World {
    pub fn new(portals: Portals, db: Addr<DbExecutor>) -> Self {
        Self {
            state: WorldState::default(),
            portals,
            db,
            pending_writes: 0,
            settle_waiters: Vec::new(),
        }
    }

    fn send(&self, sessids: Vec<SessionId>, line: String) {
        if sessids.is_empty() {
            return;
        }
        self.portals.send(ServerToPortal::DataOutMany {
            sessids,
            output: Output::Text(line),
        });
    }

    fn tell_room(&self, room: RoomId, except: Option<CharacterId>, line: String) {
        self.send(self.state.room_sessions(room, except), line);
    }

    fn persist_location(&mut self, character: CharacterId, room: RoomId, ctx: &mut Context<Self>) {
        self.pending_writes += 1;
        ctx.spawn(
            self.db
                .send(SetCharacterLocation { character, room })
                .into_actor(self)
                .map(move |result, act, _| {
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log::error!("character {character}: location not saved: {e}"),
                        Err(e) => log::error!("character {character}: database unreachable: {e}"),
                    }
                    act.pending_writes -= 1;
                    if act.pending_writes == 0 {
                        for w in act.settle_waiters.drain(..) {
                            let _ = w.send(());
                        }
                    }
                }),
        );
    }
}

impl Actor for World {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::actors::HUB_MAILBOX_CAPACITY);
        self.load(ctx);
    }
}

/// How long to wait before loading the rooms again after a database error.
const LOAD_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

impl World {
    /// Loads the rooms; nothing enters the world before they are known. If
    /// the database is unavailable, it is tried again until it answers.
    fn load(&mut self, ctx: &mut Context<Self>) {
        ctx.wait(
            self.db
                .send(LoadWorld)
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(Ok((rooms, exits))) => {
                        log::info!("world loaded: {} rooms, {} exits", rooms.len(), exits.len());
                        act.state = WorldState::from_records(rooms, exits);
                    }
                    Ok(Err(e)) => act.retry_load(&e.to_string(), ctx),
                    Err(e) => act.retry_load(&e.to_string(), ctx),
                }),
        );
    }

    fn retry_load(&mut self, why: &str, ctx: &mut Context<Self>) {
        log::error!("cannot load the world ({why}); retrying in {LOAD_RETRY:?}");
        ctx.run_later(LOAD_RETRY, |act, ctx| act.load(ctx));
    }
}

impl Handler<EnterWorld> for World {
    type Result = ();

    fn handle(&mut self, msg: EnterWorld, _: &mut Context<Self>) {
        let was_here = self.state.presence(msg.character).is_some();
        let room = self.state.enter(
            msg.character,
            &msg.name,
            &msg.description,
            msg.location,
            msg.sessions,
        );
        if msg.announce && !was_here {
            self.tell_room(room, Some(msg.character), text::entered_game(&msg.name));
        }
        if let Some(look) = self.state.look(msg.character) {
            self.send(msg.look_to, look);
        }
    }
}

impl Handler<LeaveWorld> for World {
    type Result = ();

    fn handle(&mut self, msg: LeaveWorld, _: &mut Context<Self>) {
        if let Some(p) = self.state.remove_sessions(msg.character, &msg.sessions) {
            self.tell_room(p.location, None, text::left_game(&p.name));
        }
    }
}

impl Handler<ForgetCharacter> for World {
    type Result = ();

    fn handle(&mut self, msg: ForgetCharacter, _: &mut Context<Self>) {
        self.state.forget(msg.character);
    }
}

impl Handler<Act> for World {
    type Result = ();

    fn handle(&mut self, msg: Act, _: &mut Context<Self>) {
        let Some(p) = self.state.presence(msg.character) else {
            return;
        };
        let (name, room) = (p.name.clone(), p.location);
        match msg.action {
            Action::Look => {
                if let Some(look) = self.state.look(msg.character) {
                    self.send(msg.reply_to, look);
                }
            }
            Action::LookAt(what) => {
                let seen = self.state.look_at(msg.character, &what);
                self.send(msg.reply_to, seen);
            }
            Action::Say(words) if words.is_empty() => {
                self.send(msg.reply_to, text::SAY_WHAT.to_owned())
            }
            Action::Say(words) => {
                // Every session of the speaker hears "You say"; every other
                // session in the room hears it once.
                let own = self
                    .state
                    .presence(msg.character)
                    .map(|p| p.sessions.clone())
                    .unwrap_or_default();
                self.send(own, text::say_self(&words));
                self.tell_room(room, Some(msg.character), text::say_others(&name, &words));
            }
            Action::Pose(words) if words.is_empty() => {
                self.send(msg.reply_to, text::POSE_WHAT.to_owned())
            }
            Action::Pose(words) => self.tell_room(room, None, text::pose(&name, &words)),
        }
    }
}

impl Handler<Go> for World {
    type Result = bool;

    fn handle(&mut self, msg: Go, ctx: &mut Context<Self>) -> bool {
        let Some(p) = self.state.presence(msg.character) else {
            return false;
        };
        let (name, origin) = (p.name.clone(), p.location);
        let Some(exit) = self.state.find_exit(origin, &msg.word) else {
            return false;
        };
        let destination = exit.destination;
        let origin_name = self
            .state
            .room(origin)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let dest_name = self
            .state
            .room(destination)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        self.tell_room(
            origin,
            Some(msg.character),
            text::departs(&name, &origin_name, &dest_name),
        );
        self.state.move_to(msg.character, destination);
        self.tell_room(
            destination,
            Some(msg.character),
            text::arrives(&name, &origin_name, &dest_name),
        );
        if let Some(look) = self.state.look(msg.character) {
            let own = self
                .state
                .presence(msg.character)
                .map(|p| p.sessions.clone())
                .unwrap_or_default();
            self.send(own, look);
        }
        self.persist_location(msg.character, destination, ctx);
        true
    }
}

impl Handler<Locate> for World {
    type Result = MessageResult<Locate>;

    fn handle(&mut self, msg: Locate, _: &mut Context<Self>) -> Self::Result {
        let mut out = HashMap::new();
        for id in msg.characters {
            if let Some(p) = self.state.presence(id) {
                let room = self
                    .state
                    .room(p.location)
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                out.insert(id, (p.name.clone(), room));
            }
        }
        MessageResult(out)
    }
}

impl Handler<Settle> for World {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Settle, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.pending_writes == 0 {
            let _ = tx.send(());
        } else {
            self.settle_waiters.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: CharacterId = CharacterId(1);
    const BOB: CharacterId = CharacterId(2);
    const CAT: CharacterId = CharacterId(3);

    fn world() -> WorldState {
        WorldState::from_records(
            vec![
                RoomRecord {
                    id: RoomId(1),
                    name: "Limbo".into(),
                    description: "Grey.".into(),
                },
                RoomRecord {
                    id: RoomId(2),
                    name: "Yard".into(),
                    description: "Green.".into(),
                },
            ],
            vec![
                ExitRecord {
                    id: 1,
                    room: RoomId(1),
                    name: "north".into(),
                    aliases: vec!["n".into()],
                    destination: RoomId(2),
                },
                ExitRecord {
                    id: 2,
                    room: RoomId(2),
                    name: "south".into(),
                    aliases: vec!["s".into()],
                    destination: RoomId(1),
                },
            ],
        )
    }

    #[test]
    fn room_sessions_lists_each_session_once_and_leaves_out_the_speaker() {
        let mut w = world();
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1), SessionId(2)]);
        w.enter(BOB, "Bob", "", RoomId(1), vec![SessionId(3)]);
        w.enter(CAT, "Cat", "", RoomId(2), vec![SessionId(4)]);
        assert_eq!(
            w.room_sessions(RoomId(1), None),
            vec![SessionId(1), SessionId(2), SessionId(3)]
        );
        assert_eq!(w.room_sessions(RoomId(1), Some(ANN)), vec![SessionId(3)]);
    }

    #[test]
    fn look_shows_the_room_its_exits_and_the_others() {
        let mut w = world();
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1)]);
        w.enter(BOB, "Bob", "", RoomId(1), vec![SessionId(2)]);
        assert_eq!(
            w.look(ANN).unwrap(),
            "Limbo\nGrey.\nExits: north\nCharacters: Bob"
        );
    }

    #[test]
    fn exits_match_names_and_aliases_in_any_case_and_moves_are_remembered() {
        let mut w = world();
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1)]);
        assert_eq!(
            w.find_exit(RoomId(1), "N").map(|e| e.destination),
            Some(RoomId(2))
        );
        assert_eq!(
            w.find_exit(RoomId(1), "North").map(|e| e.destination),
            Some(RoomId(2))
        );
        assert!(w.find_exit(RoomId(1), "up").is_none());
        w.move_to(ANN, RoomId(2));
        assert!(w.remove_sessions(ANN, &[SessionId(1)]).is_some());
        // Re-entering with a stale stored location uses the newer one.
        assert_eq!(
            w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1)]),
            RoomId(2)
        );
    }

    #[test]
    fn a_character_leaves_only_when_its_last_session_goes() {
        let mut w = world();
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1)]);
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(2)]);
        assert_eq!(
            w.presence(ANN).unwrap().sessions,
            vec![SessionId(1), SessionId(2)]
        );
        assert!(w.remove_sessions(ANN, &[SessionId(1)]).is_none());
        // A stale message about a session that is already gone changes nothing.
        assert!(w.remove_sessions(ANN, &[SessionId(9)]).is_none());
        assert!(w.remove_sessions(ANN, &[SessionId(2)]).is_some());
        assert!(w.presence(ANN).is_none());
    }

    #[test]
    fn look_at_finds_characters_and_exits() {
        let mut w = world();
        w.enter(ANN, "Ann", "", RoomId(1), vec![SessionId(1)]);
        w.enter(BOB, "Bob", "A tall man.", RoomId(1), vec![SessionId(2)]);
        assert_eq!(w.look_at(ANN, "bob"), "Bob\nA tall man.");
        assert_eq!(w.look_at(ANN, "n"), "north leads to Yard.");
        assert_eq!(w.look_at(ANN, "cat"), "Could not find 'cat'.");
    }

    #[test]
    fn an_unknown_room_means_limbo() {
        let mut w = world();
        assert_eq!(w.enter(ANN, "Ann", "", RoomId(77), vec![]), LIMBO);
    }
}
