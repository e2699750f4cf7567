//! The in-character commands (`look`, `say`, `pose`) and the texts of the
//! world: room descriptions, speech, arrivals and departures.

use super::split;
use crate::protocols::text::verbatim;

/// One parsed in-character command; anything else is an account command or
/// an exit name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharacterCommand {
    Look,
    LookAt(String),
    Say(String),
    Pose(String),
}

pub fn parse(line: &str) -> Option<CharacterCommand> {
    let trimmed = line.trim_start();
    // Evennia's shortcuts: `:waves` poses, `"hello` and `'hello` say.
    if let Some(rest) = trimmed.strip_prefix(':') {
        return Some(CharacterCommand::Pose(rest.trim().to_owned()));
    }
    if let Some(rest) = trimmed
        .strip_prefix('"')
        .or_else(|| trimmed.strip_prefix('\''))
    {
        return Some(CharacterCommand::Say(rest.trim().to_owned()));
    }
    let cmd = split(line)?;
    match cmd.verb.as_str() {
        "look" | "l" if cmd.args.is_empty() => Some(CharacterCommand::Look),
        "look" | "l" => Some(CharacterCommand::LookAt(cmd.args.trim().to_owned())),
        "say" => Some(CharacterCommand::Say(cmd.args.to_owned())),
        "pose" | "emote" => Some(CharacterCommand::Pose(cmd.args.to_owned())),
        _ => None,
    }
}

pub const SAY_WHAT: &str = "Say what?";
pub const POSE_WHAT: &str = "Pose what?";

/// What the speaker's own sessions see.
pub fn say_self(text: &str) -> String {
    format!("You say, \"{}\"", verbatim(text))
}

/// What everyone else in the room sees.
pub fn say_others(name: &str, text: &str) -> String {
    format!("{name} says, \"{}\"", verbatim(text))
}

/// A pose, seen by the whole room: `Name waves.`; a pose starting with `'`
/// or `,` attaches without a space (`Name's eyes narrow.`).
pub fn pose(name: &str, text: &str) -> String {
    let text = verbatim(text);
    if text.starts_with('\'') || text.starts_with(',') {
        format!("{name}{text}")
    } else {
        format!("{name} {text}")
    }
}

/// What `look <name>` shows of a character.
pub fn character_look(name: &str, description: &str) -> String {
    format!("{name}\n{description}")
}

pub fn not_here(what: &str) -> String {
    format!("Could not find '{what}'.")
}

pub fn entered_game(name: &str) -> String {
    format!("{name} has entered the game.")
}

pub fn left_game(name: &str) -> String {
    format!("{name} has left the game.")
}

pub fn departs(name: &str, origin: &str, destination: &str) -> String {
    format!("{name} is leaving {origin}, heading for {destination}.")
}

pub fn arrives(name: &str, origin: &str, destination: &str) -> String {
    format!("{name} arrives to {destination} from {origin}.")
}

pub fn you_become(name: &str) -> String {
    format!("You become {name}.")
}

/// A room as `look` shows it.
pub fn room_look(name: &str, description: &str, exits: &[&str], others: &[&str]) -> String {
    let mut out = format!("{name}\n{description}");
    if !exits.is_empty() {
        out.push_str(&format!("\nExits: {}", exits.join(", ")));
    }
    if !others.is_empty() {
        out.push_str(&format!("\nCharacters: {}", others.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_and_verbs() {
        assert_eq!(
            parse(":waves."),
            Some(CharacterCommand::Pose("waves.".into()))
        );
        assert_eq!(
            parse("\"hi there"),
            Some(CharacterCommand::Say("hi there".into()))
        );
        assert_eq!(
            parse("say  hello  "),
            Some(CharacterCommand::Say("hello".into()))
        );
        assert_eq!(
            parse("emote grins"),
            Some(CharacterCommand::Pose("grins".into()))
        );
        assert_eq!(parse("look"), Some(CharacterCommand::Look));
        assert_eq!(
            parse("look  Bob "),
            Some(CharacterCommand::LookAt("Bob".into()))
        );
        assert_eq!(parse("north"), None);
        assert_eq!(parse("who"), None);
    }

    #[test]
    fn texts() {
        assert_eq!(say_self("hi"), "You say, \"hi\"");
        // Markup typed by a player shows as typed: no colour, no line break.
        let fake = say_others("Ann", "hi|/|rServer restarting");
        assert_eq!(fake, "Ann says, \"hi||/||rServer restarting\"");
        let plain = crate::protocols::text::strip(&fake);
        assert_eq!(plain, "Ann says, \"hi|/|rServer restarting\"");
        assert_eq!(pose("Ann", "waves |/ hard"), "Ann waves ||/ hard");
        assert_eq!(say_others("Ann", "hi"), "Ann says, \"hi\"");
        assert_eq!(pose("Ann", "waves."), "Ann waves.");
        assert_eq!(pose("Ann", "'s eyes narrow."), "Ann's eyes narrow.");
        let look = room_look("Limbo", "Grey.", &["north"], &["Bob"]);
        assert_eq!(look, "Limbo\nGrey.\nExits: north\nCharacters: Bob");
    }
}
