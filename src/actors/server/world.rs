//! `World`: the rooms, their exits, and which characters stand where and which
//! sessions see through their eyes.
//!
//! The spatial state lives in [`WorldState`], a plain struct tested without a
//! `System`; the actor loads the rooms from the database, routes room output
//! (each session hears a room message once), and persists moves. Who may
//! puppet what is decided by the `Account` actors, which tell the world the
//! result.
//!
//! Moves are not written one by one: [`SaveQueue`] keeps each character's
//! newest room (and who last started playing it) until the next save, every
//! `database.save_interval`, writes them all in one transaction. One save is
//! under way at a time, so a character's rooms reach the database in the order
//! it walked them; a save that fails is merged back under anything newer and
//! tried again, so nothing is dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::handler::Settle;
use super::portals::Portals;
use crate::actors::db::{
    Backoff, CharacterSave, DbExecutor, ExitRecord, LoadWorld, RoomRecord, SaveCharacters,
};
use crate::commands::character as text;
use crate::models::world::LIMBO;
use crate::protocols::link::{Output, ServerToPortal};
use crate::session::{now_millis, AccountId, CharacterId, RoomId, SessionId};

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

/// What the database does not know yet about the characters: the newest room
/// of each one that moved, and who last started playing it, kept until a save
/// commits them. Plain state, tested without a `System`.
#[derive(Debug, Default)]
pub struct SaveQueue {
    /// The newest state per character, in id order, so every save takes its
    /// rows' locks in the same order.
    unsaved: BTreeMap<CharacterId, CharacterSave>,
    /// The save under way, if any: what goes back to `unsaved` if it fails.
    writing: Option<Vec<CharacterSave>>,
}

impl SaveQueue {
    fn entry(&mut self, character: CharacterId) -> &mut CharacterSave {
        self.unsaved.entry(character).or_insert(CharacterSave {
            character,
            location: None,
            puppeted: None,
        })
    }

    /// `character` now stands in `room`; an older unsaved room is replaced.
    pub fn moved(&mut self, character: CharacterId, room: RoomId) {
        self.entry(character).location = Some(room);
    }

    /// `account` started playing `character` at `at` (unix milliseconds).
    pub fn puppeted(&mut self, character: CharacterId, account: AccountId, at: i64) {
        self.entry(character).puppeted = Some((account, at));
    }

    /// The character was deleted: nothing of it is left to save.
    pub fn forget(&mut self, character: CharacterId) {
        self.unsaved.remove(&character);
    }

    /// Everything unsaved, as the next save, unless a save is under way or
    /// there is nothing to save.
    pub fn take(&mut self) -> Option<Vec<CharacterSave>> {
        if self.writing.is_some() || self.unsaved.is_empty() {
            return None;
        }
        let batch: Vec<CharacterSave> = std::mem::take(&mut self.unsaved).into_values().collect();
        self.writing = Some(batch.clone());
        Some(batch)
    }

    /// The save under way committed.
    pub fn committed(&mut self) {
        self.writing = None;
    }

    /// The save under way failed: its rows are unsaved again, except where a
    /// newer room or puppet came in meanwhile.
    pub fn failed(&mut self) {
        for older in self.writing.take().unwrap_or_default() {
            let newer = self.entry(older.character);
            newer.location = newer.location.or(older.location);
            newer.puppeted = newer.puppeted.or(older.puppeted);
        }
    }

    /// A save is under way.
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Characters with something unsaved, not counting the save under way.
    pub fn unsaved(&self) -> usize {
        self.unsaved.len()
    }

    /// Everything is in the database.
    pub fn is_settled(&self) -> bool {
        self.writing.is_none() && self.unsaved.is_empty()
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

/// `account` has just started playing `character`: stored (with the time)
/// by the next save, like a move.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Puppeted {
    pub character: CharacterId,
    pub account: AccountId,
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

/// The first pause before a failed save is tried again.
const SAVE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two attempts of a save.
const SAVE_RETRY_MAX: Duration = Duration::from_secs(5);

pub struct World {
    state: WorldState,
    portals: Portals,
    db: Addr<DbExecutor>,
    /// What the database does not have yet.
    saves: SaveQueue,
    /// `database.save_interval`: how long moves gather before they are saved.
    save_interval: Duration,
    /// The next save (or retry), once one is planned.
    save_timer: Option<SpawnHandle>,
    /// Pauses between attempts of a save that keeps failing.
    save_backoff: Backoff,
    /// `Settle`s waiting for everything to be saved.
    settle_waiters: Vec<oneshot::Sender<()>>,
}

impl World {
    pub fn new(portals: Portals, db: Addr<DbExecutor>) -> Self {
        Self {
            state: WorldState::default(),
            portals,
            db,
            saves: SaveQueue::default(),
            save_interval: crate::settings::DatabaseSettings::default().save_interval(),
            save_timer: None,
            save_backoff: Backoff::new(SAVE_RETRY_FIRST, SAVE_RETRY_MAX),
            settle_waiters: Vec::new(),
        }
    }

    /// Saves gathered moves every `interval` (`database.save_interval`).
    pub fn save_every(mut self, interval: Duration) -> Self {
        self.save_interval = interval;
        self
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

    /// Plans a save in `save_interval` unless one is planned or under way
    /// (that one's end plans the next).
    fn plan_save(&mut self, ctx: &mut Context<Self>) {
        if self.save_timer.is_none() && !self.saves.is_writing() && self.saves.unsaved() > 0 {
            self.plan_save_in(self.save_interval, ctx);
        }
    }

    fn plan_save_in(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(old) = self.save_timer.take() {
            ctx.cancel_future(old);
        }
        self.save_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.save_timer = None;
            act.save(ctx);
        }));
    }

    /// Writes everything unsaved in one transaction, unless a save is under
    /// way. A failure puts it back and tries again after a growing pause;
    /// `Settle` waits for all of it either way.
    fn save(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.save_timer.take() {
            ctx.cancel_future(old);
        }
        let Some(batch) = self.saves.take() else {
            self.after_save(ctx);
            return;
        };
        let rows = batch.len();
        ctx.spawn(
            self.db
                .send(SaveCharacters { saves: batch })
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let failure = match result {
                        Ok(Ok(written)) => {
                            log::debug!("saved {rows} characters ({written} rows)");
                            act.saves.committed();
                            act.save_backoff.reset();
                            None
                        }
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(format!("the database executor is unavailable: {e}")),
                    };
                    match failure {
                        None => act.after_save(ctx),
                        Some(why) => {
                            act.saves.failed();
                            let pause = act.save_backoff.pause();
                            log::error!(
                                "{} characters' rooms not saved yet ({why}); trying again in {pause:?}",
                                act.saves.unsaved()
                            );
                            act.plan_save_in(pause, ctx);
                        }
                    }
                }),
        );
    }

    /// After a save: answers the `Settle`s once everything is saved; moves
    /// that came in meanwhile are saved at once if someone waits for them,
    /// else at the next interval.
    fn after_save(&mut self, ctx: &mut Context<Self>) {
        if self.saves.is_settled() {
            for w in self.settle_waiters.drain(..) {
                let _ = w.send(());
            }
        } else if !self.settle_waiters.is_empty() && !self.saves.is_writing() {
            self.save(ctx);
        } else {
            self.plan_save(ctx);
        }
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
        self.saves.forget(msg.character);
    }
}

impl Handler<Puppeted> for World {
    type Result = ();

    fn handle(&mut self, msg: Puppeted, ctx: &mut Context<Self>) {
        let at = i64::try_from(now_millis()).unwrap_or(i64::MAX);
        self.saves.puppeted(msg.character, msg.account, at);
        self.plan_save(ctx);
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
        self.saves.moved(msg.character, destination);
        self.plan_save(ctx);
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

    fn handle(&mut self, _: Settle, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.saves.is_settled() {
            let _ = tx.send(());
        } else {
            self.settle_waiters.push(tx);
            // Nobody waits for the interval (or a retry's pause) now.
            if !self.saves.is_writing() {
                self.save(ctx);
            }
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
    fn the_save_queue_keeps_only_the_newest_state_per_character() {
        let mut q = SaveQueue::default();
        assert!(q.is_settled());
        assert_eq!(q.take(), None);
        for room in [2, 3, 1, 2] {
            q.moved(ANN, RoomId(room));
        }
        q.moved(BOB, RoomId(3));
        q.puppeted(ANN, AccountId(7), 1_000);
        assert!(!q.is_settled());
        let batch = q.take().unwrap();
        assert_eq!(
            batch,
            vec![
                CharacterSave {
                    character: ANN,
                    location: Some(RoomId(2)),
                    puppeted: Some((AccountId(7), 1_000)),
                },
                CharacterSave {
                    character: BOB,
                    location: Some(RoomId(3)),
                    puppeted: None,
                },
            ]
        );
        // One save at a time: later moves wait for the next.
        q.moved(CAT, RoomId(2));
        assert_eq!(q.take(), None);
        assert!(q.is_writing());
        q.committed();
        assert_eq!(q.take().unwrap().len(), 1);
        q.committed();
        assert!(q.is_settled());
    }

    #[test]
    fn a_failed_save_comes_back_under_what_is_newer() {
        let mut q = SaveQueue::default();
        q.moved(ANN, RoomId(2));
        q.puppeted(ANN, AccountId(7), 1_000);
        q.moved(BOB, RoomId(3));
        q.take().unwrap();
        // Ann walked on while her save was under way.
        q.moved(ANN, RoomId(1));
        q.failed();
        assert!(!q.is_writing());
        let again = q.take().unwrap();
        assert_eq!(
            again,
            vec![
                CharacterSave {
                    character: ANN,
                    location: Some(RoomId(1)),
                    puppeted: Some((AccountId(7), 1_000)),
                },
                CharacterSave {
                    character: BOB,
                    location: Some(RoomId(3)),
                    puppeted: None,
                },
            ]
        );
        q.failed();
        q.forget(BOB);
        assert_eq!(q.unsaved(), 1);
    }

    #[test]
    fn an_unknown_room_means_limbo() {
        let mut w = world();
        assert_eq!(w.enter(ANN, "Ann", "", RoomId(77), vec![]), LIMBO);
    }

    /// A crowd walking as fast as the world answers while others log in, as
    /// `gatehouse bench --saturate` drives a game: after a settle every
    /// character is stored in the room it last walked to, and every login
    /// succeeded. Before moves were saved in batches, this lost writes to
    /// "database is locked" on SQLite (and stored some characters a room
    /// behind, when two of their writes ran out of order).
    #[actix::test]
    async fn a_crowd_walking_flat_out_is_stored_where_it_stood() {
        use crate::actors::db::{
            self, Authenticate, CreateAccount, CreateCharacter, DbPools, LoadCharacters,
        };
        use crate::actors::server::metrics::ServerMetrics;
        use crate::models::open_write_pool;
        use crate::models::testing::databases_sized;

        const WALKERS: usize = 50;
        const MOVES: usize = 200;
        const LOGINS: usize = 24;
        /// Many database threads, as a busy game configures them: on SQLite
        /// each used to write on its own connection.
        const THREADS: u32 = 32;
        const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
        const PATIENCE: Duration = Duration::from_secs(120);
        for test_db in databases_sized(THREADS, 8) {
            let backend = test_db.backend;
            let write = open_write_pool(&test_db.target, &test_db.pool, WRITE_TIMEOUT).unwrap();
            let pools = DbPools {
                read: test_db.pool.clone(),
                write,
            };
            let threads = test_db.pool.max_size() as usize;
            let db = db::start(pools, threads, WRITE_TIMEOUT, ServerMetrics::new());
            let (rooms, exits) = db.send(LoadWorld).await.unwrap().unwrap();
            assert!(rooms.len() > 1);
            let world = World::new(Portals::default(), db.clone()).start();

            let mut walkers = Vec::new();
            for n in 0..WALKERS {
                let name = format!("Walker{n}");
                let account = db
                    .send(CreateAccount {
                        name: name.clone(),
                        password: "correct horse".to_owned(),
                        superuser: false,
                        min_password_length: 8,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                let character = db
                    .send(CreateCharacter {
                        account: account.id,
                        name,
                        description: String::new(),
                        max_characters: 0,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                world
                    .send(EnterWorld {
                        character: character.id,
                        name: character.name.clone(),
                        description: String::new(),
                        location: character.location,
                        sessions: vec![SessionId(n as u64 + 1)],
                        announce: false,
                        look_to: Vec::new(),
                    })
                    .await
                    .unwrap();
                walkers.push((account.id, character.id, character.location));
            }

            let mut walking = tokio::task::JoinSet::new();
            for (n, &(account, character, start)) in walkers.iter().enumerate() {
                let world = world.clone();
                let exits = exits.clone();
                walking.spawn(async move {
                    let mut here = start;
                    for step in 0..MOVES {
                        let ways: Vec<&ExitRecord> =
                            exits.iter().filter(|e| e.room == here).collect();
                        let way = ways[(n + step) % ways.len()];
                        let walked = world
                            .send(Go {
                                character,
                                word: way.name.clone(),
                            })
                            .await
                            .unwrap();
                        assert!(walked, "{} from {here}", way.name);
                        here = way.destination;
                    }
                    (account, character, here)
                });
            }
            let mut logins = tokio::task::JoinSet::new();
            for n in 0..LOGINS {
                let db = db.clone();
                logins.spawn(async move {
                    db.send(Authenticate {
                        name: format!("Walker{}", n % WALKERS),
                        password: "correct horse".to_owned(),
                    })
                    .await
                });
            }
            let mut stood = Vec::new();
            while let Some(done) = walking.join_next().await {
                stood.push(done.unwrap());
            }
            let mut answered = 0;
            while let Some(done) = logins.join_next().await {
                let login = done.unwrap().unwrap();
                assert!(
                    matches!(login, Ok(Some(_))),
                    "{backend}: a login failed: {login:?}"
                );
                answered += 1;
            }
            assert_eq!(answered, LOGINS);

            tokio::time::timeout(PATIENCE, world.send(Settle))
                .await
                .expect("the world settled in time")
                .unwrap();
            let mut misplaced = Vec::new();
            for (account, character, here) in stood {
                let stored = db.send(LoadCharacters { account }).await.unwrap().unwrap();
                let stored = stored.iter().find(|c| c.id == character).unwrap().location;
                if stored != here {
                    misplaced.push((character, here, stored));
                }
            }
            assert!(
                misplaced.is_empty(),
                "{backend}: {} of {WALKERS} characters stored elsewhere \
                 (character, stood, stored): {misplaced:?}",
                misplaced.len()
            );
        }
    }
}
