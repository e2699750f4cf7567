//! Out-of-band input functions: what a GMCP/MSDP message from telnet, or a
//! JSON frame from the web client, asks the Server to do. The same table
//! serves every protocol (Evennia's `inputfuncs`), so game code answers OOB
//! once for all of them.
//!
//! Names arrive already mapped by the protocol layer (`Core.Hello` becomes
//! `hello`, `Char.Login.Credentials` becomes `char_login_credentials`).

use serde_json::{Map, Value};

use crate::protocols::link::OobMessage;
use crate::session::ProtocolFlags;

/// One understood input function.
#[derive(Debug, Clone, PartialEq)]
pub enum InputFunc {
    /// Reply with the same arguments.
    Echo(Vec<Value>),
    /// Set client options from keyword arguments; with none (or `get`),
    /// report them (`client_options`, `hello`, `supports_set`).
    ClientOptions(Map<String, Value>),
    /// Report the client options.
    GetClientOptions,
    /// Report the input functions and what they do.
    GetInputfuncs,
    /// Log in with a name and password (`login`, Mudlet's
    /// `Char.Login.Credentials`).
    Login {
        name: String,
        password: String,
    },
    /// The keepalive: refreshes the idle timer, answers nothing.
    Idle,
    /// Report the values of these variables (`get_value`, MSDP `SEND` and
    /// `REPORT`), answered under `reply` (`get_value`, or each MSDP name).
    Values {
        names: Vec<String>,
        msdp: bool,
    },
    /// MSDP `LIST`: what can be asked for.
    MsdpList(String),
    /// Known client chatter that needs no answer (`client_gui`, ...).
    Ignored,
    Unknown(String),
}

/// Reads one OOB message.
pub fn parse(msg: &OobMessage) -> InputFunc {
    let text = |key: &str| {
        msg.kwargs
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match msg.name.as_str() {
        "echo" => InputFunc::Echo(msg.args.clone()),
        "client_options" | "hello" | "supports_set" => {
            if msg.kwargs.get("get").and_then(Value::as_bool) == Some(true) {
                InputFunc::GetClientOptions
            } else {
                InputFunc::ClientOptions(msg.kwargs.clone())
            }
        }
        "get_client_options" => InputFunc::GetClientOptions,
        "get_inputfuncs" => InputFunc::GetInputfuncs,
        "login" | "char_login_credentials" => {
            let name = text("name").or_else(|| text("account"));
            match (name, text("password")) {
                (Some(name), Some(password)) => InputFunc::Login { name, password },
                _ => InputFunc::Unknown(msg.name.clone()),
            }
        }
        "idle" => InputFunc::Idle,
        "get_value" => match text("name")
            .or_else(|| msg.args.first().and_then(Value::as_str).map(str::to_owned))
        {
            Some(name) => InputFunc::Values {
                names: vec![name],
                msdp: false,
            },
            None => InputFunc::Unknown(msg.name.clone()),
        },
        "msdp_send" | "msdp_report" => InputFunc::Values {
            names: msg
                .args
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            msdp: true,
        },
        "msdp_unreport" | "msdp_reset" => InputFunc::Ignored,
        "msdp_list" => InputFunc::MsdpList(
            msg.args
                .first()
                .and_then(Value::as_str)
                .unwrap_or("COMMANDS")
                .to_uppercase(),
        ),
        "client_gui" | "external_discord_hello" | "supports_remove" | "supports_add" => {
            InputFunc::Ignored
        }
        other => InputFunc::Unknown(other.to_owned()),
    }
}

/// Variables `get_value` and MSDP can report. Names are matched without
/// case; `servername`/`SERVER_ID`, `name`/`CHARACTER_NAME`, `account`/
/// `ACCOUNT_NAME`, `location`/`ROOM_NAME`.
pub const REPORTABLE: [&str; 4] = ["SERVER_ID", "ACCOUNT_NAME", "CHARACTER_NAME", "ROOM_NAME"];

/// What is known about a session when values are reported.
#[derive(Debug, Clone, Default)]
pub struct ValueSource {
    pub server_name: String,
    pub account: Option<String>,
    pub character: Option<String>,
    pub room: Option<String>,
}

/// The value of one variable, if it has one.
pub fn value_of(name: &str, source: &ValueSource) -> Option<Value> {
    match name.to_uppercase().as_str() {
        "SERVER_ID" | "SERVERNAME" | "SERVER_NAME" => Some(source.server_name.clone().into()),
        "ACCOUNT_NAME" | "ACCOUNT" => source.account.clone().map(Value::from),
        "CHARACTER_NAME" | "NAME" | "KEY" => source.character.clone().map(Value::from),
        "ROOM_NAME" | "LOCATION" => source.room.clone().map(Value::from),
        _ => None,
    }
}

/// The answer to MSDP `LIST <what>`.
pub fn msdp_list(what: &str) -> Option<Vec<Value>> {
    let items: Vec<&str> = match what {
        "COMMANDS" => vec!["LIST", "REPORT", "RESET", "SEND", "UNREPORT"],
        "LISTS" => vec![
            "COMMANDS",
            "LISTS",
            "REPORTABLE_VARIABLES",
            "REPORTED_VARIABLES",
        ],
        "REPORTABLE_VARIABLES" | "SENDABLE_VARIABLES" => REPORTABLE.to_vec(),
        "REPORTED_VARIABLES" => Vec::new(),
        _ => return None,
    };
    Some(items.into_iter().map(Value::from).collect())
}

/// The answer to `get_inputfuncs`: name -> what it does.
pub fn inputfunc_docs() -> Map<String, Value> {
    [
        ("text", "Run a command line."),
        ("echo", "Send the arguments back."),
        (
            "client_options",
            "Set client options (kwargs), or report them (no kwargs or get=true).",
        ),
        ("get_client_options", "Report the client options."),
        ("get_inputfuncs", "Report the input functions."),
        ("login", "Log in: kwargs name (or account) and password."),
        ("idle", "Keep the connection from idling out; no answer."),
        (
            "get_value",
            "Report a value: kwargs name = servername, account, name or location.",
        ),
        (
            "msdp_list",
            "MSDP LIST: COMMANDS, LISTS, REPORTABLE_VARIABLES.",
        ),
        ("msdp_send", "MSDP SEND: report the named variables."),
        (
            "msdp_report",
            "MSDP REPORT: report the named variables now.",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::from(v)))
    .collect()
}

/// The client options as reported by `client_options`.
pub fn client_options(flags: &ProtocolFlags) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "client".into(),
        flags.client_name.clone().map_or(Value::Null, Value::from),
    );
    m.insert("ansi".into(), flags.ansi.into());
    m.insert("xterm256".into(), flags.xterm256.into());
    m.insert("truecolor".into(), flags.truecolor.into());
    m.insert("utf-8".into(), flags.utf8.into());
    m.insert("screenreader".into(), flags.screenreader.into());
    m.insert("mccp".into(), flags.mccp.into());
    m.insert("screenwidth".into(), flags.screen_width.into());
    m.insert("screenheight".into(), flags.screen_height.into());
    m.insert("nocolor".into(), flags.nocolor.into());
    m.insert("encoding".into(), flags.encoding.clone().into());
    m
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.to_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Some(true),
            "false" | "off" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_size(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|n| (10..=1000).contains(n))
}

/// Applies `client_options` keyword arguments; answers the names it did not
/// understand (reported back to the client as an error text).
pub fn apply_client_options(flags: &mut ProtocolFlags, set: &Map<String, Value>) -> Vec<String> {
    let mut rejected = Vec::new();
    for (key, value) in set {
        let ok = match key.to_lowercase().as_str() {
            "client" => {
                flags.client_name = value.as_str().map(str::to_owned);
                true
            }
            "version" | "mccp" | "mxp" | "inputdebug" | "raw" | "localecho" | "autoresize"
            | "get" => true,
            "ansi" => as_bool(value).map(|b| flags.ansi = b).is_some(),
            "xterm256" => as_bool(value).map(|b| flags.xterm256 = b).is_some(),
            "truecolor" => as_bool(value).map(|b| flags.truecolor = b).is_some(),
            "utf-8" => as_bool(value).map(|b| flags.utf8 = b).is_some(),
            "screenreader" => as_bool(value).map(|b| flags.screenreader = b).is_some(),
            "nocolor" => as_bool(value).map(|b| flags.nocolor = b).is_some(),
            "nogoahead" => as_bool(value).map(|b| flags.nogoahead = b).is_some(),
            "screenwidth" => as_size(value).map(|n| flags.screen_width = n).is_some(),
            "screenheight" => as_size(value).map(|n| flags.screen_height = n).is_some(),
            // Mudlet announces its GMCP packages this way ("Char 1", ...).
            k if k.contains(' ') => true,
            _ => false,
        };
        if !ok {
            rejected.push(key.clone());
        }
    }
    rejected
}

/// An OOB message for the client.
pub fn oob(name: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> OobMessage {
    OobMessage {
        name: name.to_owned(),
        args,
        kwargs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(name: &str, args: Vec<Value>, kwargs: Value) -> OobMessage {
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        oob(name, args, kwargs)
    }

    #[test]
    fn names_map_to_input_functions() {
        assert_eq!(
            parse(&msg("echo", vec![json!("hi")], json!({}))),
            InputFunc::Echo(vec![json!("hi")])
        );
        assert_eq!(
            parse(&msg("hello", vec![], json!({"client": "Mudlet"}))),
            InputFunc::ClientOptions(json!({"client": "Mudlet"}).as_object().cloned().unwrap())
        );
        assert_eq!(
            parse(&msg("client_options", vec![], json!({"get": true}))),
            InputFunc::GetClientOptions
        );
        assert_eq!(
            parse(&msg("get_inputfuncs", vec![], json!({}))),
            InputFunc::GetInputfuncs
        );
        assert_eq!(
            parse(&msg(
                "char_login_credentials",
                vec![],
                json!({"account": "ann", "password": "pw"})
            )),
            InputFunc::Login {
                name: "ann".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            parse(&msg("login", vec![], json!({"name": "ann"}))),
            InputFunc::Unknown("login".into())
        );
        assert_eq!(
            parse(&msg("client_gui", vec![], json!({}))),
            InputFunc::Ignored
        );
        assert_eq!(
            parse(&msg("nonsense", vec![], json!({}))),
            InputFunc::Unknown("nonsense".into())
        );
    }

    #[test]
    fn values_and_msdp_lists() {
        assert_eq!(
            parse(&msg("get_value", vec![], json!({"name": "location"}))),
            InputFunc::Values {
                names: vec!["location".into()],
                msdp: false
            }
        );
        assert_eq!(
            parse(&msg(
                "msdp_send",
                vec![json!("ROOM_NAME"), json!("SERVER_ID")],
                json!({})
            )),
            InputFunc::Values {
                names: vec!["ROOM_NAME".into(), "SERVER_ID".into()],
                msdp: true
            }
        );
        let source = ValueSource {
            server_name: "gatehouse".into(),
            account: Some("ann".into()),
            character: Some("Ann".into()),
            room: Some("Limbo".into()),
        };
        assert_eq!(value_of("location", &source), Some(json!("Limbo")));
        assert_eq!(value_of("SERVER_ID", &source), Some(json!("gatehouse")));
        assert_eq!(value_of("HEALTH", &source), None);
        assert_eq!(msdp_list("REPORTABLE_VARIABLES").unwrap().len(), 4);
        assert!(msdp_list("NONSENSE").is_none());
    }

    #[test]
    fn client_options_apply_and_report() {
        let mut flags = ProtocolFlags::default();
        let set = json!({"client": "Mudlet", "screenwidth": 120, "nocolor": "on", "Char 1": 1, "bogus": 3});
        let rejected = apply_client_options(&mut flags, set.as_object().unwrap());
        assert_eq!(rejected, vec!["bogus".to_owned()]);
        assert_eq!(flags.screen_width, 120);
        assert!(flags.nocolor);
        let report = client_options(&flags);
        assert_eq!(report["client"], json!("Mudlet"));
        assert_eq!(report["screenwidth"], json!(120));
    }
}
