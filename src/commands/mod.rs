//! Command parsing and the texts commands answer with: plain functions that
//! turn a line into a typed command and data into text, with no actors, no
//! database and no sockets.
//!
//! The actors in `actors::server` run the commands; everything a player reads
//! is formatted here so it can be unit tested.

pub mod account;
pub mod character;
pub mod inputfuncs;
pub mod unloggedin;

/// A command line split into its verb (lower-cased) and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine<'a> {
    pub verb: String,
    pub args: &'a str,
}

/// Splits `line` at the first whitespace; `None` for a blank line.
pub fn split(line: &str) -> Option<CommandLine<'_>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (verb, args) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    };
    Some(CommandLine {
        verb: verb.to_lowercase(),
        args,
    })
}

/// The answer to a command nobody knows.
pub fn not_available(verb: &str) -> String {
    format!("Command '{verb}' is not available. Type \"help\" for help.")
}

/// "3h 2m", "45s": a duration as `who` shows it.
pub fn short_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d {}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lowercases_the_verb_and_keeps_the_args() {
        let c = split("  CONNECT Alice  Secret Pass ").unwrap();
        assert_eq!(c.verb, "connect");
        assert_eq!(c.args, "Alice  Secret Pass");
        assert_eq!(split("look").unwrap().args, "");
        assert!(split("   ").is_none());
    }

    #[test]
    fn durations_read_like_who() {
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(125), "2m");
        assert_eq!(short_duration(3_725), "1h 2m");
        assert_eq!(short_duration(90_000), "1d 1h");
    }
}
