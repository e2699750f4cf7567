//! The commands of a logged-in account (in or out of character) and the
//! texts they answer with.

use std::collections::HashMap;

use super::{short_duration, split};
use crate::session::{CharacterId, ProtocolFlags, SessionId, SessionSyncData, UnixMillis};

/// One parsed logged-in command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Look,
    Who,
    Sessions,
    Help,
    Quit {
        all: bool,
    },
    Idle,
    Ic {
        name: String,
    },
    Ooc,
    CharCreate {
        name: String,
        description: String,
    },
    CharDelete {
        name: String,
    },
    Password {
        old: String,
        new: String,
    },
    Option {
        name: String,
        value: Option<String>,
    },
    /// The right verb with the wrong arguments: show this usage line.
    Usage(&'static str),
    /// Superuser: restart the Server, keeping every session.
    Reload {
        reason: String,
    },
    /// Superuser: stop the Server and the Portal.
    Shutdown {
        reason: String,
    },
    /// Superuser: disconnect an account's sessions or one session.
    Boot {
        target: String,
        reason: String,
    },
    /// Superuser: a message to every session.
    Announce {
        text: String,
    },
    Unknown(String),
}

pub const QUIT_LAST: &str = "Quitting. Hope to see you again, soon.";
pub const QUIT_ALL: &str = "Quitting all sessions. Hope to see you soon again.";
pub const LOGGED_IN_ELSEWHERE: &str = "Logged in from elsewhere. Disconnecting.";
pub const IDLE_TIMEOUT_REASON: &str = "Idle timeout exceeded, disconnecting.";
pub const ALREADY_OOC: &str = "You are already OOC.";
pub const GO_OOC: &str = "You go OOC.";
pub const IC_USAGE: &str = "Usage: ic <character>";
pub const CHARCREATE_USAGE: &str = "Usage: charcreate <charname> [= description]";
pub const CHARDELETE_USAGE: &str = "Usage: chardelete <charname>";
pub const PASSWORD_USAGE: &str = "Usage: password <old password> = <new password>";
pub const BOOT_USAGE: &str = "Usage: boot <account|session id> [: reason]";
pub const ANNOUNCE_USAGE: &str = "Usage: announce <message>";
pub const PASSWORD_CHANGED: &str = "Password changed.";
pub const PASSWORD_WRONG: &str = "The specified old password isn't correct.";
pub const PUPPETED_CANNOT_DELETE: &str = "You cannot delete a character that is being played.";
pub const DELETE_ABORTED: &str = "Deletion was aborted.";
pub const NO_SUCH_CHARACTER: &str = "You have no such character to delete.";
pub const DEFAULT_DESCRIPTION: &str = "This is a character.";

pub fn parse(line: &str, idle_command: &str) -> Option<AccountCommand> {
    let cmd = split(line)?;
    if crate::session::is_idle_command(line, idle_command) {
        return Some(AccountCommand::Idle);
    }
    let args = cmd.args.trim();
    Some(match cmd.verb.as_str() {
        "look" | "l" | "ls" => AccountCommand::Look,
        "who" | "doing" => AccountCommand::Who,
        "sessions" => AccountCommand::Sessions,
        "help" | "h" | "?" => AccountCommand::Help,
        "quit" | "q" => AccountCommand::Quit { all: false },
        "quit/all" | "q/all" => AccountCommand::Quit { all: true },
        "ic" | "puppet" => AccountCommand::Ic {
            name: args.to_owned(),
        },
        "ooc" | "unpuppet" => AccountCommand::Ooc,
        "charcreate" => match args.split_once('=') {
            _ if args.is_empty() => AccountCommand::Usage(CHARCREATE_USAGE),
            Some((name, desc)) if !name.trim().is_empty() => AccountCommand::CharCreate {
                name: name.trim().to_owned(),
                description: desc.trim().to_owned(),
            },
            Some(_) => AccountCommand::Usage(CHARCREATE_USAGE),
            None => AccountCommand::CharCreate {
                name: args.to_owned(),
                description: String::new(),
            },
        },
        "chardelete" if args.is_empty() => AccountCommand::Usage(CHARDELETE_USAGE),
        "chardelete" => AccountCommand::CharDelete {
            name: args.to_owned(),
        },
        "password" => match args.split_once('=') {
            Some((old, new)) if !old.trim().is_empty() && !new.trim().is_empty() => {
                AccountCommand::Password {
                    old: old.trim().to_owned(),
                    new: new.trim().to_owned(),
                }
            }
            _ => AccountCommand::Usage(PASSWORD_USAGE),
        },
        "option" | "options" => match args.split_once('=') {
            Some((name, value)) => AccountCommand::Option {
                name: name.trim().to_lowercase(),
                value: Some(value.trim().to_owned()),
            },
            None => AccountCommand::Option {
                name: args.to_lowercase(),
                value: None,
            },
        },
        "reload" | "@reload" | "restart" | "@restart" => AccountCommand::Reload {
            reason: args.to_owned(),
        },
        "shutdown" | "@shutdown" => AccountCommand::Shutdown {
            reason: args.to_owned(),
        },
        "boot" | "@boot" if args.is_empty() => AccountCommand::Usage(BOOT_USAGE),
        "boot" | "@boot" => {
            let (target, reason) = args.split_once(':').unwrap_or((args, ""));
            AccountCommand::Boot {
                target: target.trim().to_owned(),
                reason: reason.trim().to_owned(),
            }
        }
        "announce" | "wall" if args.is_empty() => AccountCommand::Usage(ANNOUNCE_USAGE),
        "announce" | "wall" => AccountCommand::Announce {
            text: args.to_owned(),
        },
        _ => AccountCommand::Unknown(cmd.verb),
    })
}

/// True for the answer that confirms a `chardelete`.
pub fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_lowercase().as_str(), "yes" | "y")
}

pub fn delete_question(name: &str) -> String {
    format!("This will permanently destroy '{name}'. This cannot be undone. Continue yes/[no]?")
}

pub fn deleted(name: &str) -> String {
    format!("Character '{name}' was permanently deleted.")
}

pub fn created_character(name: &str) -> String {
    format!("Created new character {name}. Use ic {name} to enter the game as this character.")
}

pub fn taking_over(name: &str) -> String {
    format!("Taking over {name} from another of your sessions.")
}

pub fn taken_over(name: &str) -> String {
    format!("{name} is now acted from another of your sessions.")
}

pub fn sharing(name: &str) -> String {
    format!("Sharing {name} with another of your sessions.")
}

pub fn now_shared(name: &str) -> String {
    format!("{name} is now shared from another of your sessions.")
}

pub fn booted(by: &str, reason: &str) -> String {
    if reason.is_empty() {
        format!("You have been disconnected by {by}.")
    } else {
        format!("You have been disconnected by {by}.\nReason given: {reason}")
    }
}

pub fn announcement(by: &str, text: &str) -> String {
    format!("Announcement from {by}: {text}")
}

/// The reply to `quit` when `remaining` other sessions stay connected.
pub fn quit_message(remaining: usize) -> String {
    match remaining {
        0 => QUIT_LAST.to_owned(),
        1 => "Quitting. One session is still connected.".to_owned(),
        n => format!("Quitting. {n} sessions are still connected."),
    }
}

/// One logged-in account for `who`: its most recent session.
fn who_rows<'a>(
    sessions: impl IntoIterator<Item = &'a SessionSyncData>,
) -> Vec<&'a SessionSyncData> {
    let mut rows: Vec<&SessionSyncData> = sessions.into_iter().filter(|s| s.logged_in).collect();
    rows.sort_by(|a, b| {
        a.account_name
            .cmp(&b.account_name)
            .then(b.cmd_last_visible.cmp(&a.cmd_last_visible))
    });
    rows.dedup_by(|b, a| a.account_id == b.account_id);
    rows
}

fn who_footer(n: usize) -> String {
    format!(
        "{n} unique account{} logged in.",
        if n == 1 { "" } else { "s" }
    )
}

/// `who` for players: names, time on, idle time.
pub fn who<'a>(
    sessions: impl IntoIterator<Item = &'a SessionSyncData>,
    now: UnixMillis,
    game_name: &str,
) -> String {
    let rows = who_rows(sessions);
    let mut out = format!("Players on {game_name}:\n");
    out.push_str(&format!(
        "  {:<24} {:>10} {:>8}\n",
        "Account", "On for", "Idle"
    ));
    for s in &rows {
        out.push_str(&format!(
            "  {:<24} {:>10} {:>8}\n",
            s.account_name.as_deref().unwrap_or("?"),
            short_duration(s.connected_secs(now)),
            short_duration(s.idle_secs(now)),
        ));
    }
    out.push_str(&who_footer(rows.len()));
    out
}

/// `who` for superusers: every session, with puppet, room, commands,
/// protocol and host. `located` maps puppets to (name, room).
pub fn who_detailed(
    sessions: &[SessionSyncData],
    located: &HashMap<CharacterId, (String, String)>,
    now: UnixMillis,
    game_name: &str,
) -> String {
    let mut rows: Vec<&SessionSyncData> = sessions.iter().filter(|s| s.logged_in).collect();
    rows.sort_by(|a, b| {
        a.account_name
            .cmp(&b.account_name)
            .then(a.sessid.cmp(&b.sessid))
    });
    let mut out = format!("Players on {game_name}:\n");
    out.push_str(&format!(
        "  {:<16} {:>8} {:>6} {:<14} {:<24} {:>5} {:<10} {}\n",
        "Account", "On for", "Idle", "Puppeting", "Room", "Cmds", "Protocol", "Host"
    ));
    for s in &rows {
        let (puppet, room) = s
            .puppet_id
            .and_then(|p| located.get(&p))
            .map_or(("-", "-"), |(n, r)| (n.as_str(), r.as_str()));
        out.push_str(&format!(
            "  {:<16} {:>8} {:>6} {:<14} {:<24} {:>5} {:<10} {}\n",
            s.account_name.as_deref().unwrap_or("?"),
            short_duration(s.connected_secs(now)),
            short_duration(s.idle_secs(now)),
            puppet,
            room,
            s.cmd_total,
            s.protocol_key,
            s.address
        ));
    }
    out.push_str(&who_footer(who_rows(sessions).len()));
    out
}

/// `sessions`: this account's sessions, the caller's starred.
pub fn sessions(
    mine: &[SessionSyncData],
    caller: SessionId,
    names: &HashMap<CharacterId, String>,
    now: UnixMillis,
) -> String {
    let mut rows: Vec<&SessionSyncData> = mine.iter().collect();
    rows.sort_by_key(|s| s.sessid);
    let mut out = String::from("Your current session(s):\n");
    out.push_str(&format!(
        "  {:<8} {:<12} {:<40} {:<16} {:>8}\n",
        "Sessid", "Protocol", "Host", "Puppet", "Idle"
    ));
    for s in rows {
        let id = if s.sessid == caller {
            format!("*{}", s.sessid)
        } else {
            s.sessid.to_string()
        };
        let puppet = s
            .puppet_id
            .and_then(|p| names.get(&p).cloned())
            .unwrap_or_else(|| "-".to_owned());
        out.push_str(&format!(
            "  {:<8} {:<12} {:<40} {:<16} {:>8}\n",
            id,
            s.protocol_key,
            s.address,
            puppet,
            short_duration(s.idle_secs(now))
        ));
    }
    out.trim_end().to_owned()
}

/// A character in the OOC look.
pub struct CharacterLine<'a> {
    pub name: &'a str,
    /// Sessions of this account puppeting it.
    pub played_in: Vec<SessionId>,
}

/// The out-of-character `look`: the account, its sessions and characters.
pub fn ooc_look(
    account_name: &str,
    mine: &[SessionSyncData],
    caller: SessionId,
    characters: &[CharacterLine<'_>],
    max_characters: u32,
) -> String {
    let mut rows: Vec<&SessionSyncData> = mine.iter().collect();
    rows.sort_by_key(|s| s.sessid);
    let mut out =
        format!("Account {account_name} (you are Out-of-Character)\n\n  Connected session(s):\n");
    for s in &rows {
        let star = if s.sessid == caller { "*" } else { " " };
        out.push_str(&format!(
            "   {star}{} {} ({})\n",
            s.sessid, s.protocol_key, s.address
        ));
    }
    let max = if max_characters == 0 {
        "unlimited".to_owned()
    } else {
        max_characters.to_string()
    };
    out.push_str(&format!(
        "\n  Available character(s) ({}/{max}, ic <name> to play):\n",
        characters.len()
    ));
    if characters.is_empty() {
        out.push_str("   (none yet: charcreate <name> makes one)\n");
    }
    for c in characters {
        let played = match c.played_in.as_slice() {
            [] => String::new(),
            ids => format!(
                " (played by you in session {})",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push_str(&format!("   - {}{played}\n", c.name));
    }
    out.push_str(
        "\n  help - more commands\n  ic <name> - play a character\n  charcreate <name> - make a character\n  quit - leave the game",
    );
    out
}

/// The client options `option` shows and sets.
pub fn option_table(flags: &ProtocolFlags, protocol: &str) -> String {
    format!(
        "Client settings ({protocol}):\n  \
         client:       {}\n  \
         encoding:     {}\n  \
         screenwidth:  {}\n  \
         screenheight: {}\n  \
         screenreader: {}\n  \
         nocolor:      {}\n  \
         ansi:         {}\n  \
         xterm256:     {}\n\
         Change one with: option <name> = <value>",
        flags.client_name.as_deref().unwrap_or("unknown"),
        flags.encoding,
        flags.screen_width,
        flags.screen_height,
        flags.screenreader,
        flags.nocolor,
        flags.ansi,
        flags.xterm256,
    )
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        other => Err(format!("'{other}' is not on or off.")),
    }
}

fn parse_size(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(n) if (10..=1000).contains(&n) => Ok(n),
        _ => Err(format!("'{value}' is not a size between 10 and 1000.")),
    }
}

/// `option NAME = VALUE`: changes one flag; answers the player's text.
pub fn apply_option(flags: &mut ProtocolFlags, name: &str, value: &str) -> Result<String, String> {
    let (old, new) = match name {
        "screenwidth" => {
            let n = parse_size(value)?;
            (std::mem::replace(&mut flags.screen_width, n).to_string(), n.to_string())
        }
        "screenheight" => {
            let n = parse_size(value)?;
            (std::mem::replace(&mut flags.screen_height, n).to_string(), n.to_string())
        }
        "screenreader" => {
            let b = if value == "toggle" {
                !flags.screenreader
            } else {
                parse_bool(value)?
            };
            (std::mem::replace(&mut flags.screenreader, b).to_string(), b.to_string())
        }
        "nocolor" => {
            let b = parse_bool(value)?;
            (std::mem::replace(&mut flags.nocolor, b).to_string(), b.to_string())
        }
        "encoding" => {
            let encoding = crate::protocols::telnet::parser::Encoding::from_name(value)
                .ok_or_else(|| format!("The encoding '{value}' is invalid. Available encodings: utf-8, latin-1"))?;
            let new = encoding.name().to_owned();
            (std::mem::replace(&mut flags.encoding, new.clone()), new)
        }
        other => {
            return Err(format!(
                "'{other}' is not an option. Options: screenwidth, screenheight, screenreader, nocolor, encoding."
            ))
        }
    };
    if old == new {
        Ok(format!("Option {name} was kept as '{new}'."))
    } else {
        Ok(format!(
            "Option {name} was changed from '{old}' to '{new}'."
        ))
    }
}

/// The answer to `help` when logged in.
pub fn help_text(superuser: bool) -> String {
    let mut out = String::from(
        "Commands:\n\
         \n  \
         look                  your account, or the room when in character\n  \
         ic <character>        play a character (also: puppet)\n  \
         ooc                   stop playing it (also: unpuppet)\n  \
         charcreate <name>     make a character [= description]\n  \
         chardelete <name>     delete one of your characters\n  \
         say <text>            speak in the room (also: \"text)\n  \
         pose <text>           act in the room (also: :text)\n  \
         <exit name>           walk through an exit, e.g. north\n  \
         who                   who is online\n  \
         sessions              your sessions\n  \
         password <old> = <new>\n  \
         option [name = value] your client options\n  \
         quit                  disconnect this session (quit/all: every session)",
    );
    if superuser {
        out.push_str(
            "\n\nSuperuser commands:\n\
             \n  \
             reload [reason]          restart the game Server; everyone stays connected\n  \
             shutdown [reason]        stop the game\n  \
             boot <account|sessid> [: reason]\n  \
             announce <message>       tell everyone",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{AccountId, ProtocolFlags};

    fn logged(id: u64, account: i32, name: &str, now: UnixMillis) -> SessionSyncData {
        let mut s = SessionSyncData::new(
            SessionId(id),
            "telnet",
            "127.0.0.1",
            now,
            ProtocolFlags::default(),
        );
        s.log_in(AccountId(account), name, now);
        s
    }

    #[test]
    fn parse_the_account_commands() {
        assert_eq!(parse("who", "idle"), Some(AccountCommand::Who));
        assert_eq!(
            parse("quit/all", "idle"),
            Some(AccountCommand::Quit { all: true })
        );
        assert_eq!(
            parse("reload new code", "idle"),
            Some(AccountCommand::Reload {
                reason: "new code".into()
            })
        );
        assert_eq!(parse("idle", "idle"), Some(AccountCommand::Idle));
        assert_eq!(
            parse("xyzzy", "idle"),
            Some(AccountCommand::Unknown("xyzzy".into()))
        );
        assert_eq!(
            parse("puppet Ann", "idle"),
            Some(AccountCommand::Ic { name: "Ann".into() })
        );
        assert_eq!(
            parse("charcreate Ann = A tall woman.", "idle"),
            Some(AccountCommand::CharCreate {
                name: "Ann".into(),
                description: "A tall woman.".into()
            })
        );
        assert_eq!(
            parse("charcreate", "idle"),
            Some(AccountCommand::Usage(CHARCREATE_USAGE))
        );
        assert_eq!(
            parse("password old one = new one", "idle"),
            Some(AccountCommand::Password {
                old: "old one".into(),
                new: "new one".into()
            })
        );
        assert_eq!(
            parse("password nope", "idle"),
            Some(AccountCommand::Usage(PASSWORD_USAGE))
        );
        assert_eq!(
            parse("boot Bob : spamming", "idle"),
            Some(AccountCommand::Boot {
                target: "Bob".into(),
                reason: "spamming".into()
            })
        );
        assert_eq!(
            parse("option ScreenWidth = 100", "idle"),
            Some(AccountCommand::Option {
                name: "screenwidth".into(),
                value: Some("100".into())
            })
        );
    }

    #[test]
    fn who_lists_each_account_once_and_counts_them() {
        let now = 100_000;
        let sessions = vec![
            logged(1, 1, "Alice", 40_000),
            logged(2, 1, "Alice", 50_000),
            logged(3, 2, "Bob", 90_000),
            SessionSyncData::new(
                SessionId(4),
                "telnet",
                "127.0.0.1",
                0,
                ProtocolFlags::default(),
            ),
        ];
        let text = who(&sessions, now, "Mygame");
        assert_eq!(text.matches("Alice").count(), 1, "{text}");
        assert!(text.contains("Bob"));
        assert!(text.ends_with("2 unique accounts logged in."), "{text}");
        let mut located = HashMap::new();
        let mut with_puppet = sessions.clone();
        with_puppet[2].puppet_id = Some(CharacterId(7));
        located.insert(CharacterId(7), ("Bobby".to_owned(), "Limbo".to_owned()));
        let detailed = who_detailed(&with_puppet, &located, now, "Mygame");
        assert!(
            detailed.contains("Bobby")
                && detailed.contains("Limbo")
                && detailed.contains("127.0.0.1")
        );
        assert!(
            detailed.ends_with("2 unique accounts logged in."),
            "{detailed}"
        );
    }

    #[test]
    fn sessions_stars_the_caller_and_names_puppets() {
        let now = 10_000;
        let mut s9 = logged(9, 1, "A", now);
        s9.puppet_id = Some(CharacterId(3));
        let names: HashMap<CharacterId, String> = [(CharacterId(3), "Ann".to_owned())].into();
        let text = sessions(&[logged(5, 1, "A", now), s9], SessionId(9), &names, now);
        assert!(text.contains("*9"));
        assert!(!text.contains("*5"));
        assert!(text.contains("Ann"));
        assert!(text.starts_with("Your current session(s):"));
    }

    #[test]
    fn ooc_look_lists_characters_and_who_plays_them() {
        let now = 0;
        let chars = [
            CharacterLine {
                name: "Ann",
                played_in: vec![SessionId(2)],
            },
            CharacterLine {
                name: "Bea",
                played_in: vec![],
            },
        ];
        let text = ooc_look(
            "alice",
            &[logged(2, 1, "alice", now)],
            SessionId(2),
            &chars,
            3,
        );
        assert!(text.contains("Available character(s) (2/3"));
        assert!(text.contains("Ann (played by you in session 2)"));
        assert!(text.contains("- Bea\n"));
    }

    #[test]
    fn options_change_and_refuse_bad_values() {
        let mut flags = ProtocolFlags::default();
        assert_eq!(
            apply_option(&mut flags, "screenwidth", "120").unwrap(),
            "Option screenwidth was changed from '78' to '120'."
        );
        assert_eq!(flags.screen_width, 120);
        assert!(apply_option(&mut flags, "screenwidth", "5").is_err());
        assert_eq!(
            apply_option(&mut flags, "nocolor", "on").unwrap(),
            "Option nocolor was changed from 'false' to 'true'."
        );
        assert_eq!(
            apply_option(&mut flags, "encoding", "latin1").unwrap(),
            "Option encoding was changed from 'utf-8' to 'latin-1'."
        );
        assert!(apply_option(&mut flags, "encoding", "klingon").is_err());
        assert!(apply_option(&mut flags, "colour", "on").is_err());
        assert!(apply_option(&mut flags, "screenreader", "off")
            .unwrap()
            .contains("kept"));
    }

    #[test]
    fn quit_counts_the_sessions_left() {
        assert_eq!(quit_message(0), QUIT_LAST);
        assert_eq!(quit_message(1), "Quitting. One session is still connected.");
        assert_eq!(quit_message(3), "Quitting. 3 sessions are still connected.");
    }
}
