//! The commands of a session that has not logged in yet, and the connection
//! screen.
//!
//! Parsing never keeps or repeats a password: the password only travels on to
//! the database executor.

use super::split;

/// One parsed unlogged-in command.
#[derive(PartialEq, Eq)]
pub enum UnloggedInCommand {
    Connect {
        name: String,
        password: String,
    },
    Create {
        name: String,
        password: String,
    },
    Look,
    Help,
    Quit,
    Screenreader,
    Encoding {
        name: Option<String>,
    },
    Idle,
    /// The right verb with the wrong arguments: show this usage line.
    Usage(&'static str),
    Unknown(String),
}

impl std::fmt::Debug for UnloggedInCommand {
    // Passwords never reach a log line, not even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect { name, .. } => write!(f, "Connect {{ name: {name:?} }}"),
            Self::Create { name, .. } => write!(f, "Create {{ name: {name:?} }}"),
            Self::Look => f.write_str("Look"),
            Self::Help => f.write_str("Help"),
            Self::Quit => f.write_str("Quit"),
            Self::Screenreader => f.write_str("Screenreader"),
            Self::Encoding { name } => write!(f, "Encoding {{ name: {name:?} }}"),
            Self::Idle => f.write_str("Idle"),
            Self::Usage(u) => write!(f, "Usage({u:?})"),
            Self::Unknown(v) => write!(f, "Unknown({v:?})"),
        }
    }
}

pub const CONNECT_USAGE: &str = "Usage (without <>): connect <name> <password>";
pub const CREATE_USAGE: &str = "Usage (without <>): create <name> <password>";
/// A failed login never says whether the account exists.
pub const LOGIN_FAILED: &str = "Username and/or password is incorrect.";
pub const GOODBYE: &str = "Good bye! Disconnecting.";

/// Parses one line typed before login. `idle_command` is the configured keepalive.
pub fn parse(line: &str, idle_command: &str) -> Option<UnloggedInCommand> {
    let cmd = split(line)?;
    if crate::session::is_idle_command(line, idle_command) {
        return Some(UnloggedInCommand::Idle);
    }
    Some(match cmd.verb.as_str() {
        "connect" | "conn" | "con" | "co" => match name_and_password(cmd.args) {
            Some((name, password)) => UnloggedInCommand::Connect { name, password },
            None => UnloggedInCommand::Usage(CONNECT_USAGE),
        },
        "create" | "cre" | "cr" => match name_and_password(cmd.args) {
            Some((name, password)) => UnloggedInCommand::Create { name, password },
            None => UnloggedInCommand::Usage(CREATE_USAGE),
        },
        "look" | "l" => UnloggedInCommand::Look,
        "help" | "h" | "?" => UnloggedInCommand::Help,
        "quit" | "q" | "qu" => UnloggedInCommand::Quit,
        "screenreader" => UnloggedInCommand::Screenreader,
        "encoding" | "encode" => UnloggedInCommand::Encoding {
            name: (!cmd.args.is_empty()).then(|| cmd.args.to_owned()),
        },
        _ => UnloggedInCommand::Unknown(cmd.verb),
    })
}

/// Evennia's rule: with double quotes, the quoted parts (`"my name" "my
/// pass"`); without, the first word is the name and the rest of the line the
/// password, so a password may contain spaces.
fn name_and_password(args: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = if args.contains('"') {
        args.split('"')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    } else {
        let args = args.trim();
        match args.find(char::is_whitespace) {
            Some(i) => vec![&args[..i], args[i..].trim()],
            None => vec![args],
        }
    };
    match parts.as_slice() {
        [name, password] if !name.is_empty() && !password.is_empty() => {
            Some(((*name).to_owned(), (*password).to_owned()))
        }
        _ => None,
    }
}

/// The screen shown on connection and by `look`.
pub fn connection_screen(game_name: &str) -> String {
    let rule = "=".repeat(78);
    format!(
        "{rule}\n \
         Welcome to {game_name}!\n\n \
         If you have an existing account, connect to it by typing:\n      \
         connect <username> <password>\n \
         If you need to create an account, type (without the <>'s):\n      \
         create <username> <password>\n\n \
         Enter help for more info. look will re-show this screen.\n\
         {rule}"
    )
}

/// The answer to `help` before login.
pub fn help_text() -> &'static str {
    "You are not yet logged in. Commands available now:\n\
     \n  \
     create <name> <password>   make a new account\n  \
     connect <name> <password>  log in to your account\n  \
     look                       show the connection screen again\n  \
     screenreader               toggle screen reader mode (no colour or decoration)\n  \
     encoding [name]            show or set your client's encoding (utf-8, latin-1)\n  \
     help                       this text\n  \
     quit                       disconnect\n\
     \n\
     Put names or passwords with spaces in quotes: connect \"my name\" \"my password\""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_create_take_a_name_and_a_password() {
        assert_eq!(
            parse("connect Alice s3cretpass", "idle"),
            Some(UnloggedInCommand::Connect {
                name: "Alice".into(),
                password: "s3cretpass".into()
            })
        );
        assert_eq!(
            parse("CREATE \"Bob Smith\" \"pass word\"", "idle"),
            Some(UnloggedInCommand::Create {
                name: "Bob Smith".into(),
                password: "pass word".into()
            })
        );
        assert_eq!(
            parse("connect Alice", "idle"),
            Some(UnloggedInCommand::Usage(CONNECT_USAGE))
        );
        assert_eq!(
            parse("create ann my pass phrase", "idle"),
            Some(UnloggedInCommand::Create {
                name: "ann".into(),
                password: "my pass phrase".into()
            })
        );
        assert_eq!(
            parse("connect ann it'sfine1", "idle"),
            Some(UnloggedInCommand::Connect {
                name: "ann".into(),
                password: "it'sfine1".into()
            })
        );
        assert_eq!(
            parse("create \"a\" \"b\" \"c\"", "idle"),
            Some(UnloggedInCommand::Usage(CREATE_USAGE))
        );
        assert_eq!(
            parse("create", "idle"),
            Some(UnloggedInCommand::Usage(CREATE_USAGE))
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let cmd = parse("connect Alice hunter22", "idle").unwrap();
        assert!(!format!("{cmd:?}").contains("hunter22"));
    }

    #[test]
    fn the_other_commands() {
        assert_eq!(parse("look", "idle"), Some(UnloggedInCommand::Look));
        assert_eq!(parse("l", "idle"), Some(UnloggedInCommand::Look));
        assert_eq!(parse("help", "idle"), Some(UnloggedInCommand::Help));
        assert_eq!(parse("quit", "idle"), Some(UnloggedInCommand::Quit));
        assert_eq!(parse("idle", "idle"), Some(UnloggedInCommand::Idle));
        assert_eq!(parse("ping", "ping"), Some(UnloggedInCommand::Idle));
        assert_eq!(
            parse("encoding latin-1", "idle"),
            Some(UnloggedInCommand::Encoding {
                name: Some("latin-1".into())
            })
        );
        assert_eq!(
            parse("dance", "idle"),
            Some(UnloggedInCommand::Unknown("dance".into()))
        );
        assert_eq!(parse("", "idle"), None);
    }

    #[test]
    fn the_connection_screen_names_the_game_and_both_commands() {
        let s = connection_screen("Mygame");
        assert!(s.contains("Welcome to Mygame!"));
        assert!(s.contains("connect <username> <password>"));
        assert!(s.contains("create <username> <password>"));
    }
}
