//! The commands of a logged-in account and the texts they answer with.

use super::{short_duration, split};
use crate::session::{SessionId, SessionSyncData, UnixMillis};

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
    /// Superuser: restart the Server, keeping every session.
    Reload {
        reason: String,
    },
    /// Superuser: stop the Server and the Portal.
    Shutdown {
        reason: String,
    },
    Unknown(String),
}

pub const QUIT_LAST: &str = "Quitting. Hope to see you again, soon.";
pub const QUIT_ALL: &str = "Quitting all sessions. Hope to see you soon again.";
pub const LOGGED_IN_ELSEWHERE: &str = "Logged in from elsewhere. Disconnecting.";
pub const IDLE_TIMEOUT_REASON: &str = "Idle timeout exceeded, disconnecting.";

pub fn parse(line: &str, idle_command: &str) -> Option<AccountCommand> {
    let cmd = split(line)?;
    if crate::session::is_idle_command(line, idle_command) {
        return Some(AccountCommand::Idle);
    }
    Some(match cmd.verb.as_str() {
        "look" | "l" | "ls" => AccountCommand::Look,
        "who" | "doing" => AccountCommand::Who,
        "sessions" => AccountCommand::Sessions,
        "help" | "h" | "?" => AccountCommand::Help,
        "quit" | "q" => AccountCommand::Quit { all: false },
        "quit/all" | "q/all" => AccountCommand::Quit { all: true },
        "reload" | "@reload" | "restart" | "@restart" => AccountCommand::Reload {
            reason: cmd.args.to_owned(),
        },
        "shutdown" | "@shutdown" => AccountCommand::Shutdown {
            reason: cmd.args.to_owned(),
        },
        _ => AccountCommand::Unknown(cmd.verb),
    })
}

/// The reply to `quit` when `remaining` other sessions stay connected.
pub fn quit_message(remaining: usize) -> String {
    match remaining {
        0 => QUIT_LAST.to_owned(),
        1 => "Quitting. One session is still connected.".to_owned(),
        n => format!("Quitting. {n} sessions are still connected."),
    }
}

/// `who`: every logged-in account once, with its most recent session.
pub fn who(sessions: &[SessionSyncData], now: UnixMillis, game_name: &str) -> String {
    let mut rows: Vec<&SessionSyncData> = sessions.iter().filter(|s| s.logged_in).collect();
    rows.sort_by(|a, b| {
        a.account_name
            .cmp(&b.account_name)
            .then(b.cmd_last_visible.cmp(&a.cmd_last_visible))
    });
    rows.dedup_by(|b, a| a.account_id == b.account_id);
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
    let n = rows.len();
    out.push_str(&format!(
        "{n} unique account{} logged in.",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// `sessions`: this account's sessions, the caller's starred.
pub fn sessions(mine: &[SessionSyncData], caller: SessionId, now: UnixMillis) -> String {
    let mut rows: Vec<&SessionSyncData> = mine.iter().collect();
    rows.sort_by_key(|s| s.sessid);
    let mut out = String::from("Your current session(s):\n");
    out.push_str(&format!(
        "  {:<8} {:<12} {:<40} {:<10} {:>8}\n",
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
            .map_or_else(|| "-".to_owned(), |p| format!("#{p}"));
        out.push_str(&format!(
            "  {:<8} {:<12} {:<40} {:<10} {:>8}\n",
            id,
            s.protocol_key,
            s.address,
            puppet,
            short_duration(s.idle_secs(now))
        ));
    }
    out.trim_end().to_owned()
}

/// The out-of-character `look`: the account and its sessions.
pub fn ooc_look(account_name: &str, mine: &[SessionSyncData], caller: SessionId) -> String {
    let mut rows: Vec<&SessionSyncData> = mine.iter().collect();
    rows.sort_by_key(|s| s.sessid);
    let mut out =
        format!("Account {account_name} (you are Out-of-Character)\n\n  Connected session(s):\n");
    for (i, s) in rows.iter().enumerate() {
        let star = if s.sessid == caller { "*" } else { " " };
        out.push_str(&format!(
            "   {star}{} {} ({})\n",
            i + 1,
            s.protocol_key,
            s.address
        ));
    }
    out.push_str("\n  help - more commands\n  who - who is online\n  sessions - your sessions\n  quit - leave the game");
    out
}

/// The answer to `help` when logged in.
pub fn help_text(superuser: bool) -> String {
    let mut out = String::from(
        "Commands:\n\
         \n  \
         look          show your account and sessions\n  \
         who           list who is online\n  \
         sessions      list your sessions\n  \
         help          this text\n  \
         quit          disconnect this session\n  \
         quit/all      disconnect all your sessions",
    );
    if superuser {
        out.push_str(
            "\n\nSuperuser commands:\n\
             \n  \
             reload [reason]    restart the game Server; everyone stays connected\n  \
             shutdown [reason]  stop the game",
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
    }

    #[test]
    fn sessions_stars_the_caller() {
        let now = 10_000;
        let text = sessions(
            &[logged(5, 1, "A", now), logged(9, 1, "A", now)],
            SessionId(9),
            now,
        );
        assert!(text.contains("*9"));
        assert!(!text.contains("*5"));
        assert!(text.starts_with("Your current session(s):"));
    }

    #[test]
    fn quit_counts_the_sessions_left() {
        assert_eq!(quit_message(0), QUIT_LAST);
        assert_eq!(quit_message(1), "Quitting. One session is still connected.");
        assert_eq!(quit_message(3), "Quitting. 3 sessions are still connected.");
    }
}
