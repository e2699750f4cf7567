//! Telnet out-of-band data: GMCP (option 201) and MSDP (option 69) subnegotiation
//! payloads to and from [`OobMessage`]s named after Evennia's inputfuncs.
//!
//! This module owns the two OOB wire grammars and the mapping between their names and
//! Evennia's function names. It never frames a subnegotiation, never touches a socket,
//! an actor or a log, and never trusts the client: every decoder and encoder is bounded
//! by [`MAX_DEPTH`] and [`MAX_ITEMS`] and never recurses deeper than [`MAX_DEPTH`] + 1.
//!
//! # Framing and IAC
//!
//! Every payload here excludes `IAC SB <option>` and `IAC SE`. Decoders expect the
//! bytes after the parser has collapsed `IAC IAC`. Encoders build their output from Rust
//! strings, which are UTF-8 and therefore never contain byte 255 (IAC); the caller still
//! frames them with [`super::parser::subnegotiation`], which doubles any IAC, so nothing
//! an encoder returns can end a subnegotiation early.
//!
//! # Name mapping
//!
//! | Direction | Wire name | Evennia name | Rule |
//! |---|---|---|---|
//! | GMCP both ways | `Core.Supports.Get` | `client_options` | fixed map |
//! | GMCP both ways | `Core.Commands.Get` | `get_inputfuncs` | fixed map |
//! | GMCP both ways | `Char.Value.Get` | `get_value` | fixed map |
//! | GMCP both ways | `Char.Repeat.Update` | `repeat` | fixed map |
//! | GMCP both ways | `Char.Monitor.Update` | `monitor` | fixed map |
//! | GMCP in | `Core.Hello` | `hello` | dots to `_`, leading `Core_` dropped, lower-cased |
//! | GMCP in | `Core.Supports.Set` | `supports_set` | same |
//! | GMCP in | `Char.Login.Credentials` | `char_login_credentials` | same |
//! | GMCP out | `Logged.In` | `logged_in` | each `_` word capitalised, joined by `.` |
//! | GMCP out | `Core.Text` | `text` | a single word goes under `Core.` |
//! | MSDP in | `LIST` `REPORT` `RESET` `SEND` `UNREPORT` | `msdp_list` `msdp_report` ... | `msdp_` + lower-cased |
//! | MSDP in | any other `NAME` | `name` | lower-cased |
//! | MSDP out | `NAME` | `name` | upper-cased |
//!
//! The fixed map is matched case-insensitively on input.
//!
//! # Payloads
//!
//! GMCP is `Package.Name` optionally followed by whitespace and JSON. In: a JSON list
//! becomes the args, an object the kwargs (empty keys dropped), a scalar one arg, text
//! that is not JSON one string arg, and no payload no args. Out: no args and no kwargs
//! send the bare name; one arg is sent as itself, several as a list; kwargs alone as an
//! object; args and kwargs as `[args, {kwargs}]`, where `args` is the single arg itself
//! when there is only one (as Evennia does).
//!
//! MSDP is a sequence of `VAR name VAL value`, where a value is text, an array
//! `ARRAY_OPEN (VAL value)* ARRAY_CLOSE` or a table `TABLE_OPEN (VAR key VAL value)*
//! TABLE_CLOSE`. In: a top-level array adds its elements to the args, a table its entries
//! to the kwargs, text one string arg (empty text adds none), several `VAL`s after one
//! `VAR` each contribute, and repeated `VAR`s of the same name merge into one message.
//! Nested arrays and tables become JSON lists and objects; a table key with several
//! `VAL`s becomes a list. Out: no args and no kwargs send `VAR NAME VAL`; one arg
//! `VAR NAME VAL arg`; several args `VAR NAME VAL ARRAY_OPEN ... ARRAY_CLOSE`; kwargs
//! `VAR NAME VAL TABLE_OPEN ... TABLE_CLOSE`; args and kwargs send both, one after the
//! other, which the decoder merges back. MSDP carries only text: numbers are written as
//! JSON writes them, booleans as `1`/`0`, null as empty text, and the codes 0-6 are
//! removed from names, keys and text so that no value can break the structure.
//!
//! # Limits
//!
//! A message nests at most [`MAX_DEPTH`] lists/tables (a top-level list or table is
//! depth 1) and holds at most [`MAX_ITEMS`] items. For GMCP an item is one JSON value;
//! for MSDP it is one `VAR` or `VAL`. GMCP decoding over a limit gives `None`; MSDP
//! decoding stops and returns the messages completed before the one that went over.
//! Encoding over a limit gives an empty payload, which the caller must not send.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocols::link::OobMessage;

/// Telnet option number of GMCP.
pub const OPT_GMCP: u8 = 201;
/// Telnet option number of MSDP.
pub const OPT_MSDP: u8 = 69;

/// MSDP: a variable (or table key) name follows.
pub const MSDP_VAR: u8 = 1;
/// MSDP: a value follows.
pub const MSDP_VAL: u8 = 2;
/// MSDP: a table starts.
pub const MSDP_TABLE_OPEN: u8 = 3;
/// MSDP: a table ends.
pub const MSDP_TABLE_CLOSE: u8 = 4;
/// MSDP: an array starts.
pub const MSDP_ARRAY_OPEN: u8 = 5;
/// MSDP: an array ends.
pub const MSDP_ARRAY_CLOSE: u8 = 6;

/// Deepest nesting of lists/tables accepted in one message; bounds recursion.
pub const MAX_DEPTH: usize = 16;
/// Most items accepted in one message (GMCP: JSON values; MSDP: `VAR`s and `VAL`s).
pub const MAX_ITEMS: usize = 1024;

/// Evennia name -> GMCP name, used both ways.
const GMCP_FIXED: [(&str, &str); 5] = [
    ("client_options", "Core.Supports.Get"),
    ("get_inputfuncs", "Core.Commands.Get"),
    ("get_value", "Char.Value.Get"),
    ("repeat", "Char.Repeat.Update"),
    ("monitor", "Char.Monitor.Update"),
];

/// MSDP's generic commands; renamed `msdp_*` so they cannot collide with inputfuncs.
const MSDP_COMMANDS: [&str; 5] = ["LIST", "REPORT", "RESET", "SEND", "UNREPORT"];

/// A message went over [`MAX_DEPTH`] or [`MAX_ITEMS`], or its bytes are malformed.
#[derive(Debug)]
struct Rejected;

/// Decodes one GMCP payload (`Package.Name <json>`) into an [`OobMessage`].
///
/// `None` for invalid UTF-8, an empty name, or JSON over the limits.
pub fn gmcp_decode(data: &[u8]) -> Option<OobMessage> {
    let text = std::str::from_utf8(data).ok()?.trim();
    let (wire_name, payload) = match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((name, rest)) => (name, rest.trim()),
        None => (text, ""),
    };
    let name = gmcp_name_in(wire_name)?;

    let mut args = Vec::new();
    let mut kwargs = Map::new();
    if !payload.is_empty() {
        match serde_json::from_str::<Value>(payload) {
            Ok(value) => {
                let mut items = 0;
                measure(&value, 0, &mut items).ok()?;
                match value {
                    Value::Array(list) => args = list,
                    Value::Object(map) => {
                        kwargs = map.into_iter().filter(|(key, _)| !key.is_empty()).collect();
                    }
                    scalar => args.push(scalar),
                }
            }
            Err(_) => args.push(Value::String(payload.to_owned())),
        }
    }
    Some(OobMessage { name, args, kwargs })
}

/// Encodes `msg` as a GMCP payload (`Package.Name <json>`), without `IAC SB GMCP` and
/// `IAC SE`.
///
/// Empty when the message has no name or is over the limits: send nothing then.
pub fn gmcp_encode(msg: &OobMessage) -> Vec<u8> {
    let Some(name) = gmcp_name_out(&msg.name) else {
        return Vec::new();
    };
    let payload = match (msg.args.as_slice(), msg.kwargs.is_empty()) {
        ([], true) => return name.into_bytes(),
        ([one], true) => GmcpPayload::One(one),
        (args, true) => GmcpPayload::Args(args),
        ([], false) => GmcpPayload::Kwargs(&msg.kwargs),
        ([one], false) => GmcpPayload::OneKwargs(one, &msg.kwargs),
        (args, false) => GmcpPayload::ArgsKwargs(args, &msg.kwargs),
    };
    if payload.check_limits().is_err() {
        return Vec::new();
    }
    let mut out = name.into_bytes();
    out.push(b' ');
    match serde_json::to_writer(&mut out, &payload) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// Decodes one MSDP payload into its messages, in order of first appearance.
///
/// Stops at the first malformed byte, invalid UTF-8 or limit and returns the messages
/// completed before it.
pub fn msdp_decode(data: &[u8]) -> Vec<OobMessage> {
    let mut reader = MsdpReader {
        data,
        pos: 0,
        items: 0,
    };
    let mut messages: Vec<OobMessage> = Vec::new();
    while let Ok(Some(msg)) = reader.message() {
        if msg.name.is_empty() {
            continue;
        }
        match messages.iter_mut().find(|known| known.name == msg.name) {
            Some(known) => {
                known.args.extend(msg.args);
                known.kwargs.extend(msg.kwargs);
            }
            None => messages.push(msg),
        }
    }
    messages
}

/// Encodes `msg` as an MSDP payload (`VAR NAME VAL value`...), without `IAC SB MSDP`
/// and `IAC SE`.
///
/// Empty when the message has no name or is over the limits: send nothing then.
pub fn msdp_encode(msg: &OobMessage) -> Vec<u8> {
    let mut writer = MsdpWriter {
        out: Vec::new(),
        items: 0,
    };
    match writer.message(msg) {
        Ok(()) => writer.out,
        Err(Rejected) => Vec::new(),
    }
}

/// The Evennia name for a GMCP name, `None` if it comes out empty.
fn gmcp_name_in(wire: &str) -> Option<String> {
    if let Some((evennia, _)) = GMCP_FIXED
        .iter()
        .find(|(_, gmcp)| gmcp.eq_ignore_ascii_case(wire))
    {
        return Some((*evennia).to_owned());
    }
    let name = wire.replace('.', "_").to_lowercase();
    let name = match name.strip_prefix("core_") {
        Some(rest) => rest.to_owned(),
        None => name,
    };
    (!name.is_empty()).then_some(name)
}

/// The GMCP name for an Evennia name, `None` if the name is empty.
fn gmcp_name_out(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    if let Some((_, gmcp)) = GMCP_FIXED.iter().find(|(evennia, _)| *evennia == name) {
        return Some((*gmcp).to_owned());
    }
    if name.contains('_') {
        Some(
            name.split('_')
                .map(capitalize)
                .collect::<Vec<_>>()
                .join("."),
        )
    } else {
        Some(format!("Core.{}", capitalize(name)))
    }
}

/// Python's `str.capitalize`: first character upper-cased, the rest lower-cased.
fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// Counts `value` and everything in it into `items`; `enclosing` is how many lists or
/// objects surround it. Recurses at most [`MAX_DEPTH`] + 1 deep.
fn measure(value: &Value, enclosing: usize, items: &mut usize) -> Result<(), Rejected> {
    *items += 1;
    if *items > MAX_ITEMS {
        return Err(Rejected);
    }
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(list) => Box::new(list.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return Ok(()),
    };
    let level = enclosing + 1;
    if level > MAX_DEPTH {
        return Err(Rejected);
    }
    for child in children {
        measure(child, level, items)?;
    }
    Ok(())
}

/// The JSON after a GMCP name, borrowed from the message so nothing is cloned.
#[derive(Serialize)]
#[serde(untagged)]
enum GmcpPayload<'a> {
    One(&'a Value),
    Args(&'a [Value]),
    Kwargs(&'a Map<String, Value>),
    OneKwargs(&'a Value, &'a Map<String, Value>),
    ArgsKwargs(&'a [Value], &'a Map<String, Value>),
}

impl GmcpPayload<'_> {
    /// Checks the limits before serialising, because serde_json's writer recurses
    /// without a bound.
    fn check_limits(&self) -> Result<(), Rejected> {
        let mut items = 0;
        let (args, args_enclosing, kwargs, kwargs_enclosing): (&[Value], _, _, _) = match self {
            GmcpPayload::One(one) => (std::slice::from_ref(*one), 0, None, 0),
            GmcpPayload::Args(args) => (args, 1, None, 0),
            GmcpPayload::Kwargs(kwargs) => (&[], 0, Some(*kwargs), 1),
            GmcpPayload::OneKwargs(one, kwargs) => {
                (std::slice::from_ref(*one), 1, Some(*kwargs), 2)
            }
            GmcpPayload::ArgsKwargs(args, kwargs) => (args, 2, Some(*kwargs), 2),
        };
        for arg in args {
            measure(arg, args_enclosing, &mut items)?;
        }
        for value in kwargs.into_iter().flat_map(Map::values) {
            measure(value, kwargs_enclosing, &mut items)?;
        }
        Ok(())
    }
}

/// Reads MSDP bytes; recursion is bounded by [`MAX_DEPTH`].
struct MsdpReader<'a> {
    data: &'a [u8],
    pos: usize,
    items: usize,
}

impl MsdpReader<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Consumes one `VAR` or `VAL` code and counts it as an item.
    fn bump(&mut self) -> Result<(), Rejected> {
        self.pos += 1;
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(Rejected);
        }
        Ok(())
    }

    /// Reads text up to the next MSDP code or the end.
    fn text(&mut self) -> Result<&str, Rejected> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let len = rest
            .iter()
            .position(|byte| (MSDP_VAR..=MSDP_ARRAY_CLOSE).contains(byte))
            .unwrap_or(rest.len());
        self.pos += len;
        std::str::from_utf8(&rest[..len]).map_err(|_| Rejected)
    }

    /// Reads one top-level `VAR name (VAL value)*`; `None` at the end of the data.
    fn message(&mut self) -> Result<Option<OobMessage>, Rejected> {
        match self.peek() {
            None => return Ok(None),
            Some(MSDP_VAR) => self.bump()?,
            Some(_) => return Err(Rejected),
        }
        let wire_name = self.text()?.trim().to_owned();
        let mut args = Vec::new();
        let mut kwargs = Map::new();
        while self.peek() == Some(MSDP_VAL) {
            self.bump()?;
            match self.value(0)? {
                Value::Array(list) => args.extend(list),
                Value::Object(map) => kwargs.extend(map),
                Value::String(text) if text.is_empty() => {}
                other => args.push(other),
            }
        }
        let name = if MSDP_COMMANDS
            .iter()
            .any(|command| command.eq_ignore_ascii_case(&wire_name))
        {
            format!("msdp_{}", wire_name.to_lowercase())
        } else {
            wire_name.to_lowercase()
        };
        Ok(Some(OobMessage { name, args, kwargs }))
    }

    /// Reads the value after a `VAL`; `enclosing` arrays/tables surround it.
    fn value(&mut self, enclosing: usize) -> Result<Value, Rejected> {
        match self.peek() {
            Some(MSDP_ARRAY_OPEN) => self.array(enclosing + 1),
            Some(MSDP_TABLE_OPEN) => self.table(enclosing + 1),
            _ => Ok(Value::String(self.text()?.to_owned())),
        }
    }

    fn array(&mut self, level: usize) -> Result<Value, Rejected> {
        if level > MAX_DEPTH {
            return Err(Rejected);
        }
        self.pos += 1;
        let mut list = Vec::new();
        loop {
            match self.peek() {
                Some(MSDP_VAL) => {
                    self.bump()?;
                    list.push(self.value(level)?);
                }
                Some(MSDP_ARRAY_CLOSE) => {
                    self.pos += 1;
                    return Ok(Value::Array(list));
                }
                _ => return Err(Rejected),
            }
        }
    }

    fn table(&mut self, level: usize) -> Result<Value, Rejected> {
        if level > MAX_DEPTH {
            return Err(Rejected);
        }
        self.pos += 1;
        let mut map = Map::new();
        loop {
            match self.peek() {
                Some(MSDP_VAR) => {
                    self.bump()?;
                    let key = self.text()?.trim().to_owned();
                    let mut values = Vec::new();
                    while self.peek() == Some(MSDP_VAL) {
                        self.bump()?;
                        values.push(self.value(level)?);
                    }
                    let value = match values.len() {
                        0 => Value::String(String::new()),
                        1 => values.swap_remove(0),
                        _ => Value::Array(values),
                    };
                    if !key.is_empty() {
                        map.insert(key, value);
                    }
                }
                Some(MSDP_TABLE_CLOSE) => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(Rejected),
            }
        }
    }
}

/// Writes MSDP bytes; counts items as [`MsdpReader`] does, so whatever it writes decodes.
struct MsdpWriter {
    out: Vec<u8>,
    items: usize,
}

impl MsdpWriter {
    /// Writes one `VAR` or `VAL` code and counts it as an item.
    fn code(&mut self, code: u8) -> Result<(), Rejected> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(Rejected);
        }
        self.out.push(code);
        Ok(())
    }

    /// Writes text without the bytes that would end or restructure it.
    fn text(&mut self, text: &str) {
        self.out.extend(
            text.bytes()
                .filter(|byte| *byte > MSDP_ARRAY_CLOSE && *byte != 255),
        );
    }

    fn message(&mut self, msg: &OobMessage) -> Result<(), Rejected> {
        let name = msg.name.to_uppercase();
        if name.is_empty() {
            return Err(Rejected);
        }
        if msg.args.is_empty() && msg.kwargs.is_empty() {
            self.code(MSDP_VAR)?;
            self.text(&name);
            return self.code(MSDP_VAL);
        }
        if !msg.args.is_empty() {
            self.code(MSDP_VAR)?;
            self.text(&name);
            self.code(MSDP_VAL)?;
            match msg.args.as_slice() {
                [one] => self.value(one, 0)?,
                args => self.array(args, 1)?,
            }
        }
        if !msg.kwargs.is_empty() {
            self.code(MSDP_VAR)?;
            self.text(&name);
            self.code(MSDP_VAL)?;
            self.table(&msg.kwargs, 1)?;
        }
        Ok(())
    }

    /// Writes the value after a `VAL`; `enclosing` arrays/tables surround it.
    fn value(&mut self, value: &Value, enclosing: usize) -> Result<(), Rejected> {
        match value {
            Value::Array(list) => self.array(list, enclosing + 1),
            Value::Object(map) => self.table(map, enclosing + 1),
            Value::String(text) => {
                self.text(text);
                Ok(())
            }
            Value::Number(number) => {
                self.text(&number.to_string());
                Ok(())
            }
            Value::Bool(flag) => {
                self.text(if *flag { "1" } else { "0" });
                Ok(())
            }
            Value::Null => Ok(()),
        }
    }

    fn array(&mut self, list: &[Value], level: usize) -> Result<(), Rejected> {
        if level > MAX_DEPTH {
            return Err(Rejected);
        }
        self.out.push(MSDP_ARRAY_OPEN);
        for item in list {
            self.code(MSDP_VAL)?;
            self.value(item, level)?;
        }
        self.out.push(MSDP_ARRAY_CLOSE);
        Ok(())
    }

    fn table(&mut self, map: &Map<String, Value>, level: usize) -> Result<(), Rejected> {
        if level > MAX_DEPTH {
            return Err(Rejected);
        }
        self.out.push(MSDP_TABLE_OPEN);
        for (key, value) in map {
            self.code(MSDP_VAR)?;
            self.text(key);
            self.code(MSDP_VAL)?;
            self.value(value, level)?;
        }
        self.out.push(MSDP_TABLE_CLOSE);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(name: &str, args: Vec<Value>, kwargs: Value) -> OobMessage {
        let kwargs = match kwargs {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        OobMessage {
            name: name.to_owned(),
            args,
            kwargs,
        }
    }

    /// `depth` nested single-element lists around "x".
    fn nested(depth: usize) -> Value {
        let mut value = json!("x");
        for _ in 0..depth {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn gmcp_core_hello_decodes_to_hello_with_kwargs() {
        let decoded = gmcp_decode(br#"Core.Hello {"client":"Mudlet","version":"4.17"}"#);
        assert_eq!(
            decoded,
            Some(msg(
                "hello",
                vec![],
                json!({"client": "Mudlet", "version": "4.17"})
            ))
        );
    }

    #[test]
    fn gmcp_supports_set_decodes_to_two_args() {
        let decoded = gmcp_decode(br#"Core.Supports.Set ["Char 1","Room 1"]"#);
        assert_eq!(
            decoded,
            Some(msg(
                "supports_set",
                vec![json!("Char 1"), json!("Room 1")],
                json!({})
            ))
        );
    }

    #[test]
    fn gmcp_names_in() {
        let name = |data: &[u8]| gmcp_decode(data).map(|m| m.name);
        assert_eq!(
            name(b"Char.Login.Credentials {}").as_deref(),
            Some("char_login_credentials")
        );
        assert_eq!(
            name(b"Core.Supports.Get").as_deref(),
            Some("client_options")
        );
        assert_eq!(
            name(b"core.commands.get").as_deref(),
            Some("get_inputfuncs")
        );
        assert_eq!(name(b"Char.Monitor.Update").as_deref(), Some("monitor"));
        assert_eq!(name(b"Core.Ping").as_deref(), Some("ping"));
        assert_eq!(name(b"Core."), None);
        assert_eq!(name(b""), None);
        assert_eq!(name(b"   "), None);
    }

    #[test]
    fn gmcp_payload_shapes_in() {
        assert_eq!(
            gmcp_decode(b"Core.Ping"),
            Some(msg("ping", vec![], json!({})))
        );
        assert_eq!(
            gmcp_decode(b"Char.Value.Get 42"),
            Some(msg("get_value", vec![json!(42)], json!({})))
        );
        assert_eq!(
            gmcp_decode(b"External.Discord.Hello not json {"),
            Some(msg(
                "external_discord_hello",
                vec![json!("not json {")],
                json!({})
            ))
        );
        assert_eq!(
            gmcp_decode(br#"Core.Supports.Set {"": 1, "a": 2}"#),
            Some(msg("supports_set", vec![], json!({"a": 2})))
        );
    }

    #[test]
    fn gmcp_invalid_utf8_is_none() {
        assert_eq!(gmcp_decode(b"Core.Hello \xff\xfe"), None);
    }

    #[test]
    fn gmcp_limits_in() {
        let deep = format!("Core.Deep {}", nested(MAX_DEPTH));
        assert!(gmcp_decode(deep.as_bytes()).is_some());
        let too_deep = format!("Core.Deep {}", nested(MAX_DEPTH + 1));
        assert_eq!(gmcp_decode(too_deep.as_bytes()), None);
        // Deeper than serde_json's own recursion limit: plain text, not a panic.
        let very_deep = format!("Core.Deep {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            gmcp_decode(very_deep.as_bytes()).map(|m| m.args.len()),
            Some(1)
        );
        let many = format!("Core.Many {}", json!(vec![0; MAX_ITEMS]));
        assert_eq!(gmcp_decode(many.as_bytes()), None);
        let enough = format!("Core.Many {}", json!(vec![0; MAX_ITEMS - 1]));
        assert!(gmcp_decode(enough.as_bytes()).is_some());
    }

    #[test]
    fn gmcp_encode_golden() {
        assert_eq!(
            gmcp_encode(&msg("logged_in", vec![], json!({}))),
            b"Logged.In".to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("text", vec![json!("hi")], json!({}))),
            br#"Core.Text "hi""#.to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("client_options", vec![], json!({"ansi": true}))),
            br#"Core.Supports.Get {"ansi":true}"#.to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("get_value", vec![json!(1), json!("a")], json!({}))),
            br#"Char.Value.Get [1,"a"]"#.to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("monitor", vec![json!("hp")], json!({"value": 5}))),
            br#"Char.Monitor.Update ["hp",{"value":5}]"#.to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg(
                "room_info",
                vec![json!(1), json!(2)],
                json!({"k": "v"})
            )),
            br#"Room.Info [[1,2],{"k":"v"}]"#.to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("get_inputfuncs", vec![], json!({}))),
            b"Core.Commands.Get".to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("repeat", vec![], json!({}))),
            b"Char.Repeat.Update".to_vec()
        );
        assert_eq!(
            gmcp_encode(&msg("PROMPT", vec![], json!({}))),
            b"Core.Prompt".to_vec()
        );
    }

    #[test]
    fn gmcp_encode_limits() {
        assert!(gmcp_encode(&msg("", vec![], json!({}))).is_empty());
        assert!(!gmcp_encode(&msg("deep", vec![nested(MAX_DEPTH)], json!({}))).is_empty());
        assert!(gmcp_encode(&msg("deep", vec![nested(MAX_DEPTH + 1)], json!({}))).is_empty());
        assert!(gmcp_encode(&msg("deep", vec![json!(1), nested(MAX_DEPTH)], json!({}))).is_empty());
        assert!(gmcp_encode(&msg("many", vec![json!(0); MAX_ITEMS + 1], json!({}))).is_empty());
    }

    #[test]
    fn gmcp_round_trip_uses_fixed_map() {
        let original = msg("get_value", vec![], json!({"name": "key"}));
        assert_eq!(gmcp_decode(&gmcp_encode(&original)), Some(original));
    }

    #[test]
    fn msdp_scalar_round_trip() {
        let original = msg("health", vec![json!("100")], json!({}));
        let bytes = msdp_encode(&original);
        assert_eq!(bytes, b"\x01HEALTH\x02100".to_vec());
        assert_eq!(msdp_decode(&bytes), vec![original]);
    }

    #[test]
    fn msdp_array_round_trip() {
        let original = msg(
            "msdp_report",
            vec![json!("HEALTH"), json!("MANA")],
            json!({}),
        );
        let bytes = msdp_encode(&original);
        assert_eq!(
            bytes,
            b"\x01MSDP_REPORT\x02\x05\x02HEALTH\x02MANA\x06".to_vec()
        );
        // MSDP_REPORT is not the generic REPORT command, so it comes back as named.
        assert_eq!(msdp_decode(&bytes), vec![original]);
        let report = b"\x01REPORT\x02\x05\x02HEALTH\x02MANA\x06";
        assert_eq!(
            msdp_decode(report),
            vec![msg(
                "msdp_report",
                vec![json!("HEALTH"), json!("MANA")],
                json!({})
            )]
        );
    }

    #[test]
    fn msdp_table_round_trip() {
        let original = msg(
            "room",
            vec![],
            json!({"exits": {"n": "1", "s": "2"}, "name": "Hall", "tags": ["a", "b"]}),
        );
        let bytes = msdp_encode(&original);
        assert_eq!(
            bytes,
            b"\x01ROOM\x02\x03\x01exits\x02\x03\x01n\x021\x01s\x022\x04\x01name\x02Hall\x01tags\x02\x05\x02a\x02b\x06\x04"
                .to_vec()
        );
        assert_eq!(msdp_decode(&bytes), vec![original]);
    }

    #[test]
    fn msdp_args_and_kwargs_round_trip() {
        let original = msg("mixed", vec![json!("a"), json!("b")], json!({"k": "v"}));
        let bytes = msdp_encode(&original);
        assert_eq!(
            bytes,
            b"\x01MIXED\x02\x05\x02a\x02b\x06\x01MIXED\x02\x03\x01k\x02v\x04".to_vec()
        );
        assert_eq!(msdp_decode(&bytes), vec![original]);
    }

    #[test]
    fn msdp_encode_scalars_and_empty() {
        assert_eq!(
            msdp_encode(&msg("ping", vec![], json!({}))),
            b"\x01PING\x02".to_vec()
        );
        assert_eq!(
            msdp_decode(b"\x01PING\x02"),
            vec![msg("ping", vec![], json!({}))]
        );
        assert_eq!(
            msdp_encode(&msg(
                "v",
                vec![json!(true), json!(7), Value::Null],
                json!({})
            )),
            b"\x01V\x02\x05\x021\x027\x02\x06".to_vec()
        );
        assert_eq!(
            msdp_encode(&msg("x", vec![json!("a\u{1}b\u{6}c\u{0}")], json!({}))),
            b"\x01X\x02abc".to_vec()
        );
        assert!(msdp_encode(&msg("", vec![], json!({}))).is_empty());
    }

    #[test]
    fn msdp_decode_commands_and_multiple_vals() {
        let decoded = msdp_decode(b"\x01LIST\x02COMMANDS\x01send\x02HEALTH\x02MANA\x01Health\x02");
        assert_eq!(
            decoded,
            vec![
                msg("msdp_list", vec![json!("COMMANDS")], json!({})),
                msg("msdp_send", vec![json!("HEALTH"), json!("MANA")], json!({})),
                msg("health", vec![], json!({})),
            ]
        );
    }

    #[test]
    fn msdp_decode_malformed_returns_what_it_parsed() {
        assert!(msdp_decode(b"junk\x01A\x02b").is_empty());
        assert_eq!(
            msdp_decode(b"\x01A\x02b\x01C\x02\x05\x02d"),
            vec![msg("a", vec![json!("b")], json!({}))]
        );
        assert_eq!(
            msdp_decode(b"\x01A\x02b\x01C\x02\x03\x02d\x04"),
            vec![msg("a", vec![json!("b")], json!({}))]
        );
        assert_eq!(
            msdp_decode(b"\x01A\x02b\x01C\x02\xff"),
            vec![msg("a", vec![json!("b")], json!({}))]
        );
        assert!(msdp_decode(b"").is_empty());
    }

    #[test]
    fn msdp_deep_nesting_rejected_without_panic() {
        let ok = msdp_encode(&msg("deep", vec![nested(MAX_DEPTH)], json!({})));
        assert!(!ok.is_empty());
        assert_eq!(msdp_decode(&ok).len(), 1);
        assert!(msdp_encode(&msg("deep", vec![nested(MAX_DEPTH + 1)], json!({}))).is_empty());

        let mut hostile = b"\x01OK\x02fine\x01DEEP\x02".to_vec();
        for _ in 0..100_000 {
            hostile.extend_from_slice(&[MSDP_ARRAY_OPEN, MSDP_VAL]);
        }
        assert_eq!(
            msdp_decode(&hostile),
            vec![msg("ok", vec![json!("fine")], json!({}))]
        );
        let mut tables = b"\x01DEEP\x02".to_vec();
        for _ in 0..100_000 {
            tables.extend_from_slice(&[MSDP_TABLE_OPEN, MSDP_VAR, b'k', MSDP_VAL]);
        }
        assert!(msdp_decode(&tables).is_empty());
    }

    #[test]
    fn msdp_too_many_items_rejected() {
        let mut many = b"\x01OK\x02fine".to_vec();
        for _ in 0..MAX_ITEMS {
            many.extend_from_slice(b"\x01X\x02y");
        }
        let decoded = msdp_decode(&many);
        assert_eq!(decoded[0], msg("ok", vec![json!("fine")], json!({})));
        // Two items per VAR/VAL pair: about half of them fit before the limit.
        assert_eq!(decoded[1].args.len(), MAX_ITEMS / 2 - 1);
        assert!(msdp_encode(&msg("many", vec![json!("a"); MAX_ITEMS], json!({}))).is_empty());
    }
}
