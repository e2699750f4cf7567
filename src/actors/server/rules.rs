//! The MULTISESSION_MODE and puppet rules of one account, as a plain struct:
//! which of its sessions puppets which of its characters, who gets kicked,
//! who shares, who is taken over, and the limits.
//!
//! It decides and reports; it sends nothing. The `Account` actor turns each
//! outcome into messages, so every rule here is tested without a `System`.

use std::collections::{BTreeMap, BTreeSet};

use crate::session::{CharacterId, SessionId};

/// Why a puppet request is refused; each has the text a player sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuppetError {
    /// Not one of this account's characters (or no such character).
    NotOwned,
    /// This session already puppets it.
    AlreadyPuppeting,
    /// The account already puppets as many characters as it may.
    TooManyPuppets(u32),
    /// The session is not one of this account's.
    UnknownSession,
}

impl PuppetError {
    pub fn message(self) -> String {
        match self {
            Self::NotOwned => "That is not a valid character choice.".to_owned(),
            Self::AlreadyPuppeting => "You are already puppeting this character.".to_owned(),
            Self::TooManyPuppets(max) => {
                format!("You cannot control any more puppets (max {max}).")
            }
            Self::UnknownSession => "Session not found.".to_owned(),
        }
    }
}

/// A session let go of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub character: CharacterId,
    /// No session puppets it any more: it leaves the world.
    pub left_world: bool,
}

/// What a successful puppet request changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetChange {
    pub character: CharacterId,
    /// The session's previous puppet, released first.
    pub released: Option<Release>,
    /// Sessions of this account that lost the character to this one (modes 0 and 2).
    pub taken_from: Vec<SessionId>,
    /// Sessions that already puppeted it and now share it (modes 1 and 3).
    pub shared_with: Vec<SessionId>,
    /// No session puppeted it before: it enters the world.
    pub entered: bool,
    /// Mode 1: the account's other sessions, which switch with this one.
    pub followers: Vec<SessionId>,
}

/// What `ooc` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpuppet {
    pub release: Release,
    /// The sessions that went out of character: the caller, and in mode 1
    /// every session sharing the puppet.
    pub sessions: Vec<SessionId>,
}

/// Why a character cannot be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteError {
    NotOwned,
    Puppeted,
}

/// The puppet state and rules of one account.
#[derive(Debug, Clone)]
pub struct PuppetRules {
    mode: u8,
    max_puppets: u32,
    max_characters: u32,
    superuser: bool,
    sessions: BTreeMap<SessionId, Option<CharacterId>>,
    owned: BTreeSet<CharacterId>,
}

impl PuppetRules {
    /// `max_puppets` and `max_characters` of 0 mean no limit.
    pub fn new(mode: u8, max_puppets: u32, max_characters: u32, superuser: bool) -> Self {
        Self {
            mode,
            max_puppets,
            max_characters,
            superuser,
            sessions: BTreeMap::new(),
            owned: BTreeSet::new(),
        }
    }

    pub fn set_superuser(&mut self, superuser: bool) {
        self.superuser = superuser;
    }

    pub fn set_owned(&mut self, characters: impl IntoIterator<Item = CharacterId>) {
        self.owned = characters.into_iter().collect();
    }

    pub fn add_owned(&mut self, character: CharacterId) {
        self.owned.insert(character);
    }

    pub fn remove_owned(&mut self, character: CharacterId) {
        self.owned.remove(&character);
    }

    pub fn owns(&self, character: CharacterId) -> bool {
        self.owned.contains(&character)
    }

    /// Adds a session. A new login in mode 0 disconnects every older session
    /// (answered here); a session restored by a resync kicks nobody and gets
    /// back its puppet if the account still owns it.
    pub fn attach(
        &mut self,
        sessid: SessionId,
        restored: Option<Option<CharacterId>>,
    ) -> Vec<SessionId> {
        let kicked = match restored {
            None if self.mode == 0 => self
                .sessions
                .keys()
                .copied()
                .filter(|s| *s != sessid)
                .collect(),
            _ => Vec::new(),
        };
        // A restored puppet comes back only if it is still ours and, where a
        // character has one session at most (modes 0 and 2), still free.
        let puppet = restored
            .flatten()
            .filter(|c| self.owned.contains(c))
            .filter(|c| matches!(self.mode, 1 | 3) || self.sessions_of(*c).is_empty());
        self.sessions.insert(sessid, puppet);
        kicked
    }

    /// Removes a session; answers the puppet it let go of.
    pub fn detach(&mut self, sessid: SessionId) -> Option<Release> {
        let puppet = self.sessions.remove(&sessid).flatten()?;
        Some(Release {
            character: puppet,
            left_world: self.sessions_of(puppet).is_empty(),
        })
    }

    pub fn has_session(&self, sessid: SessionId) -> bool {
        self.sessions.contains_key(&sessid)
    }

    pub fn sessions(&self) -> Vec<SessionId> {
        self.sessions.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn puppet_of(&self, sessid: SessionId) -> Option<CharacterId> {
        self.sessions.get(&sessid).copied().flatten()
    }

    /// The sessions puppeting `character`.
    pub fn sessions_of(&self, character: CharacterId) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, p)| **p == Some(character))
            .map(|(s, _)| *s)
            .collect()
    }

    /// The distinct characters puppeted right now.
    pub fn puppeted(&self) -> BTreeSet<CharacterId> {
        self.sessions.values().flatten().copied().collect()
    }

    /// How many different characters may be puppeted at once: modes 0 and 1
    /// have one puppet by definition; in 2 and 3 the setting applies, which
    /// superusers bypass.
    fn puppet_limit(&self) -> Option<u32> {
        match self.mode {
            0 | 1 => Some(1),
            _ if self.superuser || self.max_puppets == 0 => None,
            _ => Some(self.max_puppets),
        }
    }

    /// `ic`: puppets `character` from `sessid`.
    pub fn puppet(
        &mut self,
        sessid: SessionId,
        character: CharacterId,
    ) -> Result<PuppetChange, PuppetError> {
        let current = *self
            .sessions
            .get(&sessid)
            .ok_or(PuppetError::UnknownSession)?;
        if !self.owned.contains(&character) {
            return Err(PuppetError::NotOwned);
        }
        if current == Some(character) {
            return Err(PuppetError::AlreadyPuppeting);
        }
        let holders: Vec<SessionId> = self.sessions_of(character);
        if self.mode == 1 && holders.is_empty() {
            return Ok(self.switch_all(sessid, character));
        }
        if holders.is_empty() {
            if let Some(limit) = self.puppet_limit() {
                let mut after = self.puppeted();
                if let Some(old) = current {
                    if self.sessions_of(old).len() == 1 {
                        after.remove(&old);
                    }
                }
                if after.len() >= limit as usize {
                    return Err(PuppetError::TooManyPuppets(limit));
                }
            }
        }
        let released = self.release(sessid);
        let sharing = matches!(self.mode, 1 | 3);
        let (taken_from, shared_with) = if sharing {
            (Vec::new(), holders)
        } else {
            for s in &holders {
                self.sessions.insert(*s, None);
            }
            (holders, Vec::new())
        };
        let entered = taken_from.is_empty() && shared_with.is_empty();
        self.sessions.insert(sessid, Some(character));
        Ok(PuppetChange {
            character,
            released,
            taken_from,
            shared_with,
            entered,
            followers: Vec::new(),
        })
    }

    /// Mode 1 has one puppet for the whole account: every session switches
    /// to `character` together.
    fn switch_all(&mut self, sessid: SessionId, character: CharacterId) -> PuppetChange {
        let old = self
            .puppet_of(sessid)
            .or_else(|| self.puppeted().into_iter().next());
        let followers: Vec<SessionId> = self
            .sessions
            .keys()
            .copied()
            .filter(|s| *s != sessid)
            .collect();
        for p in self.sessions.values_mut() {
            *p = Some(character);
        }
        PuppetChange {
            character,
            released: old.map(|c| Release {
                character: c,
                left_world: true,
            }),
            taken_from: Vec::new(),
            shared_with: Vec::new(),
            entered: true,
            followers,
        }
    }

    /// `ooc`: the session lets go of its puppet; in mode 1 every session
    /// sharing it goes out of character with it.
    pub fn unpuppet(&mut self, sessid: SessionId) -> Option<Unpuppet> {
        let puppet = self.puppet_of(sessid)?;
        let sessions = if self.mode == 1 {
            self.sessions_of(puppet)
        } else {
            vec![sessid]
        };
        for s in &sessions {
            self.sessions.insert(*s, None);
        }
        Some(Unpuppet {
            release: Release {
                character: puppet,
                left_world: self.sessions_of(puppet).is_empty(),
            },
            sessions,
        })
    }

    fn release(&mut self, sessid: SessionId) -> Option<Release> {
        let puppet = self.sessions.get_mut(&sessid)?.take()?;
        Some(Release {
            character: puppet,
            left_world: self.sessions_of(puppet).is_empty(),
        })
    }

    /// Who hears the reply to a command typed in `sessid`: the session itself,
    /// and in modes 1 and 3 every session sharing its puppet.
    pub fn reply_targets(&self, sessid: SessionId) -> Vec<SessionId> {
        match (self.mode, self.puppet_of(sessid)) {
            (1 | 3, Some(character)) => self.sessions_of(character),
            _ => vec![sessid],
        }
    }

    /// The character a new login of `sessid` puppets, if the pair is
    /// unambiguous: mode 0 the last puppet; mode 1 the puppet the other
    /// sessions share, else the last one; mode 2 never; mode 3 the last
    /// puppet only when no other session is logged in.
    pub fn auto_puppet_target(
        &self,
        sessid: SessionId,
        last: Option<CharacterId>,
    ) -> Option<CharacterId> {
        let others = self.sessions.keys().any(|s| *s != sessid);
        let target = match self.mode {
            0 => last,
            1 => self.puppeted().into_iter().next().or(last),
            3 if !others => last,
            _ => None,
        }?;
        self.owned.contains(&target).then_some(target)
    }

    /// May the account make one more character?
    pub fn check_new_character(&self) -> Result<(), u32> {
        if self.superuser
            || self.max_characters == 0
            || (self.owned.len() as u64) < u64::from(self.max_characters)
        {
            Ok(())
        } else {
            Err(self.max_characters)
        }
    }

    /// The limit to enforce when the database creates a character (0: none).
    pub fn character_limit(&self) -> u32 {
        if self.superuser {
            0
        } else {
            self.max_characters
        }
    }

    pub fn check_delete(&self, character: CharacterId) -> Result<(), DeleteError> {
        if !self.owned.contains(&character) {
            Err(DeleteError::NotOwned)
        } else if !self.sessions_of(character).is_empty() {
            Err(DeleteError::Puppeted)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SessionId = SessionId(1);
    const B: SessionId = SessionId(2);
    const C: SessionId = SessionId(3);
    const X: CharacterId = CharacterId(10);
    const Y: CharacterId = CharacterId(11);
    const Z: CharacterId = CharacterId(12);
    const FOREIGN: CharacterId = CharacterId(99);

    fn rules(mode: u8, max_puppets: u32) -> PuppetRules {
        let mut r = PuppetRules::new(mode, max_puppets, 3, false);
        r.set_owned([X, Y, Z]);
        r
    }

    #[test]
    fn first_login_kicks_nobody_in_any_mode() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            assert!(r.attach(A, None).is_empty());
            assert_eq!(r.puppet_of(A), None);
        }
    }

    #[test]
    fn second_login_kicks_the_first_only_in_mode_0() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            let kicked = r.attach(B, None);
            if mode == 0 {
                assert_eq!(kicked, vec![A]);
            } else {
                assert!(kicked.is_empty(), "mode {mode}");
            }
        }
    }

    #[test]
    fn ic_enters_the_world_in_every_mode() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            let change = r.puppet(A, X).unwrap();
            assert!(change.entered);
            assert_eq!(change.released, None);
            assert_eq!(r.puppet_of(A), Some(X));
            assert_eq!(r.puppet(A, X), Err(PuppetError::AlreadyPuppeting));
        }
    }

    #[test]
    fn ic_of_a_puppet_held_by_another_session_takes_over_in_0_and_2_and_shares_in_1_and_3() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            r.attach(B, Some(None)); // as if restored, so mode 0 keeps both
            let change = r.puppet(B, X).unwrap();
            assert!(!change.entered, "mode {mode}");
            match mode {
                0 | 2 => {
                    assert_eq!(change.taken_from, vec![A]);
                    assert_eq!(r.puppet_of(A), None);
                    assert_eq!(r.sessions_of(X), vec![B]);
                }
                _ => {
                    assert_eq!(change.shared_with, vec![A]);
                    assert_eq!(r.sessions_of(X), vec![A, B]);
                }
            }
        }
    }

    #[test]
    fn ooc_leaves_the_world_only_when_no_session_remains() {
        for mode in 0..=3 {
            let mut r = rules(mode, 2);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            r.attach(B, Some(None));
            r.puppet(B, X).unwrap();
            let out =
                |release: Release, sessions: Vec<SessionId>| Some(Unpuppet { release, sessions });
            match mode {
                // Mode 1: one puppet for all, so everyone goes OOC together.
                1 => {
                    assert_eq!(
                        r.unpuppet(A),
                        out(
                            Release {
                                character: X,
                                left_world: true
                            },
                            vec![A, B]
                        )
                    );
                }
                // Shared: the character stays while the other session plays it.
                3 => {
                    assert_eq!(
                        r.unpuppet(A),
                        out(
                            Release {
                                character: X,
                                left_world: false
                            },
                            vec![A]
                        )
                    );
                    assert_eq!(
                        r.unpuppet(B),
                        out(
                            Release {
                                character: X,
                                left_world: true
                            },
                            vec![B]
                        )
                    );
                }
                // Taken over: A is already OOC.
                _ => {
                    assert_eq!(r.unpuppet(A), None, "mode {mode}");
                    assert_eq!(
                        r.unpuppet(B),
                        out(
                            Release {
                                character: X,
                                left_world: true
                            },
                            vec![B]
                        )
                    );
                }
            }
            assert_eq!(r.unpuppet(B), None);
            assert!(r.puppeted().is_empty());
        }
    }

    #[test]
    fn disconnect_releases_the_puppet() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            assert_eq!(
                r.detach(A),
                Some(Release {
                    character: X,
                    left_world: true
                })
            );
            assert!(r.is_empty());
        }
        let mut r = rules(1, 1);
        r.attach(A, None);
        r.attach(B, None);
        // Mode 1: B follows A's puppet.
        assert_eq!(r.puppet(A, X).unwrap().followers, vec![B]);
        assert_eq!(r.puppet(B, X), Err(PuppetError::AlreadyPuppeting));
        assert_eq!(
            r.detach(A),
            Some(Release {
                character: X,
                left_world: false
            })
        );
        assert_eq!(r.detach(C), None);
    }

    #[test]
    fn puppet_limit_modes_0_and_1_allow_one_character() {
        // Mode 0: a second (transient) session cannot add a second puppet.
        let mut r = rules(0, 5);
        r.attach(A, None);
        r.attach(B, Some(None));
        r.puppet(A, X).unwrap();
        assert_eq!(r.puppet(B, Y), Err(PuppetError::TooManyPuppets(1)));
        assert!(r.puppet(A, Y).unwrap().released.is_some());
        // Mode 1: switching moves every session to the new puppet.
        let mut r = rules(1, 5);
        r.attach(A, None);
        r.attach(B, None);
        r.attach(C, None);
        r.puppet(A, X).unwrap();
        assert_eq!(r.sessions_of(X), vec![A, B, C]);
        let change = r.puppet(B, Y).unwrap();
        assert_eq!(change.followers, vec![A, C]);
        assert_eq!(
            change.released,
            Some(Release {
                character: X,
                left_world: true
            })
        );
        assert_eq!(r.puppeted(), [Y].into_iter().collect());
        assert_eq!(r.sessions_of(Y), vec![A, B, C]);
    }

    #[test]
    fn a_restored_puppet_already_held_stays_with_its_holder_in_modes_0_and_2() {
        for mode in 0..=3 {
            let mut r = rules(mode, 2);
            r.attach(A, Some(Some(X)));
            r.attach(B, Some(Some(X)));
            match mode {
                1 | 3 => assert_eq!(r.sessions_of(X), vec![A, B]),
                _ => assert_eq!(r.sessions_of(X), vec![A], "mode {mode}"),
            }
        }
    }

    #[test]
    fn puppet_limit_modes_2_and_3_follow_the_setting() {
        for mode in [2, 3] {
            let mut r = rules(mode, 2);
            r.attach(A, None);
            r.attach(B, None);
            r.attach(C, None);
            r.puppet(A, X).unwrap();
            r.puppet(B, Y).unwrap();
            assert_eq!(
                r.puppet(C, Z),
                Err(PuppetError::TooManyPuppets(2)),
                "mode {mode}"
            );
            // A session switching from its own puppet does not count twice.
            r.puppet(A, Z).unwrap();
            assert_eq!(r.puppeted(), [Y, Z].into_iter().collect());
            // No limit when 0, and superusers are not limited.
            let mut free = rules(mode, 0);
            let mut admin = PuppetRules::new(mode, 1, 3, true);
            admin.set_owned([X, Y]);
            for r in [&mut free, &mut admin] {
                r.attach(A, None);
                r.attach(B, None);
                r.puppet(A, X).unwrap();
                r.puppet(B, Y).unwrap();
            }
        }
    }

    #[test]
    fn foreign_characters_cannot_be_puppeted_or_deleted() {
        for mode in 0..=3 {
            let mut r = rules(mode, 0);
            r.attach(A, None);
            assert_eq!(r.puppet(A, FOREIGN), Err(PuppetError::NotOwned));
            assert_eq!(r.check_delete(FOREIGN), Err(DeleteError::NotOwned));
            assert_eq!(r.puppet(C, X), Err(PuppetError::UnknownSession));
        }
    }

    #[test]
    fn a_restored_session_only_gets_back_a_character_it_still_owns() {
        let mut r = rules(2, 2);
        r.attach(A, Some(Some(X)));
        r.attach(B, Some(Some(FOREIGN)));
        assert_eq!(r.puppet_of(A), Some(X));
        assert_eq!(r.puppet_of(B), None);
    }

    #[test]
    fn character_limit_counts_owned_characters_in_every_mode() {
        for mode in 0..=3 {
            let mut r = PuppetRules::new(mode, 1, 2, false);
            r.set_owned([X]);
            assert_eq!(r.check_new_character(), Ok(()));
            r.add_owned(Y);
            assert_eq!(r.check_new_character(), Err(2));
            assert_eq!(r.character_limit(), 2);
            r.remove_owned(Y);
            assert_eq!(r.check_new_character(), Ok(()));
            r.add_owned(Y);
            r.set_superuser(true);
            assert_eq!(r.check_new_character(), Ok(()));
            assert_eq!(r.character_limit(), 0);
            let unlimited = PuppetRules::new(mode, 1, 0, false);
            assert_eq!(unlimited.check_new_character(), Ok(()));
        }
    }

    #[test]
    fn a_puppeted_character_cannot_be_deleted() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            assert_eq!(r.check_delete(X), Err(DeleteError::Puppeted));
            assert_eq!(r.check_delete(Y), Ok(()));
            r.detach(A);
            assert_eq!(r.check_delete(X), Ok(()));
        }
    }

    #[test]
    fn switching_puppets_releases_the_old_one() {
        for mode in 0..=3 {
            let mut r = rules(mode, 2);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            let change = r.puppet(A, Y).unwrap();
            assert_eq!(
                change.released,
                Some(Release {
                    character: X,
                    left_world: true
                }),
                "mode {mode}"
            );
            assert!(change.entered);
            assert_eq!(r.puppeted(), [Y].into_iter().collect());
        }
    }

    #[test]
    fn replies_reach_the_sharing_sessions_in_modes_1_and_3() {
        for mode in 0..=3 {
            let mut r = rules(mode, 1);
            r.attach(A, None);
            r.puppet(A, X).unwrap();
            r.attach(B, Some(None));
            r.puppet(B, X).unwrap();
            r.attach(C, Some(None));
            let targets = r.reply_targets(B);
            match mode {
                1 | 3 => assert_eq!(targets, vec![A, B]),
                _ => assert_eq!(targets, vec![B]),
            }
            assert_eq!(
                r.reply_targets(C),
                vec![C],
                "an OOC session hears only itself"
            );
        }
    }

    #[test]
    fn auto_puppet_only_where_unambiguous() {
        // Mode 0: the last puppet.
        let mut r = rules(0, 1);
        r.attach(A, None);
        assert_eq!(r.auto_puppet_target(A, Some(X)), Some(X));
        assert_eq!(r.auto_puppet_target(A, None), None);
        assert_eq!(r.auto_puppet_target(A, Some(FOREIGN)), None);
        // Mode 1: join the shared puppet.
        let mut r = rules(1, 1);
        r.attach(A, None);
        r.puppet(A, Y).unwrap();
        r.attach(B, None);
        assert_eq!(r.auto_puppet_target(B, Some(X)), Some(Y));
        // Mode 2: never.
        let mut r = rules(2, 1);
        r.attach(A, None);
        assert_eq!(r.auto_puppet_target(A, Some(X)), None);
        // Mode 3: only for a lone session.
        let mut r = rules(3, 1);
        r.attach(A, None);
        assert_eq!(r.auto_puppet_target(A, Some(X)), Some(X));
        r.attach(B, None);
        assert_eq!(r.auto_puppet_target(B, Some(X)), None);
    }
}
