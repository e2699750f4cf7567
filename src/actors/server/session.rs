//! `ServerSession`: one actor per session on the Server. Before login it runs
//! the unlogged-in command set (connect, create, look, help, quit, idle,
//! screenreader, encoding); after login it hands every line to its `Account`.
//!
//! Commands of one session run strictly in order: a `connect` that waits for
//! the password check holds back the lines typed after it, and no other
//! session waits for it.

use std::sync::Arc;

use actix::prelude::*;

use super::account::{Account, AccountInput};
use super::context::ServerContext;
use super::handler::{
    ChangeOption, ClientOptions, DisconnectSession, ForgiveAttempt, GetSession, Login, Settle,
    ThrottleAttempt, ThrottleKind,
};
use super::receipt::{acknowledge_when_done, InputReceipt};
use super::world::Locate;
use crate::actors::db::{answer, Authenticate, CreateAccount, CreateCharacter};
use crate::commands::account::DEFAULT_DESCRIPTION;
use crate::commands::inputfuncs::{self, InputFunc, ValueSource};
use crate::commands::not_available;
use crate::commands::unloggedin::{self, UnloggedInCommand, GOODBYE, LOGIN_FAILED};
use crate::models::DbError;
use crate::protocols::link::{Input, OobMessage, Output, ServerToPortal};
use crate::session::{ProtocolFlags, SessionId};

const DB_UNAVAILABLE: &str =
    "The game cannot check your password right now. Please try again later.";
const CREATE_FAILED: &str = "The account could not be created right now. Please try again later.";
/// The password was right but the session handler did not take the login
/// (it is stopping): the player must hear something and may try again.
const LOGIN_NOT_TAKEN: &str = "The game cannot log you in right now. Please try again later.";

/// A line or OOB call from this session's player.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionCommand {
    pub input: Input,
    /// When it arrived over the link: the start of its latency.
    pub received: std::time::Instant,
    /// Acknowledged to the Portal once the command has finished.
    pub receipt: Option<InputReceipt>,
}

/// The session is gone; stop the actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopSession;

pub struct ServerSession {
    sessid: SessionId,
    address: String,
    flags: ProtocolFlags,
    account: Option<Addr<Account>>,
    /// Show the connection screen when started (a new connection, not a resync).
    greet: bool,
    server: ServerContext,
}

impl ServerSession {
    pub fn new(
        sessid: SessionId,
        address: String,
        flags: ProtocolFlags,
        account: Option<Addr<Account>>,
        greet: bool,
        server: ServerContext,
    ) -> Self {
        Self {
            sessid,
            address,
            flags,
            account,
            greet,
            server,
        }
    }

    fn say(&self, text: impl Into<String>) {
        self.server.say(self.sessid, text);
    }

    fn run_unlogged_in(&mut self, line: &str, ctx: &mut Context<Self>) {
        let Some(command) = unloggedin::parse(line, &self.server.settings.server.idle_command)
        else {
            return;
        };
        match command {
            UnloggedInCommand::Connect { name, password } => {
                self.connect(name, password, false, ctx)
            }
            UnloggedInCommand::Create { name, password } => self.create(name, password, ctx),
            UnloggedInCommand::Look => self.say(unloggedin::connection_screen(
                &self.server.settings.server.name,
            )),
            UnloggedInCommand::Help => self.say(unloggedin::help_text()),
            UnloggedInCommand::Quit => self.server.handler.do_send(DisconnectSession {
                sessid: self.sessid,
                reason: GOODBYE.to_owned(),
            }),
            UnloggedInCommand::Screenreader => {
                self.change_option("screenreader", "toggle".into(), ctx)
            }
            UnloggedInCommand::Encoding { name: None } => self.say(format!(
                "Default encoding: {}\nAvailable encodings: utf-8, latin-1",
                self.flags.encoding
            )),
            UnloggedInCommand::Encoding { name: Some(name) } => {
                self.change_option("encoding", name, ctx)
            }
            UnloggedInCommand::Idle => {}
            UnloggedInCommand::Usage(usage) => self.say(usage),
            UnloggedInCommand::Unknown(verb) => self.say(not_available(&verb)),
        }
    }

    /// Changes one option on the handler's record (never a stale copy of all
    /// flags) and tells the player what happened.
    fn change_option(&mut self, name: &str, value: String, ctx: &mut Context<Self>) {
        let request = ChangeOption {
            sessid: self.sessid,
            name: name.to_owned(),
            value,
        };
        let screenreader = name == "screenreader";
        ctx.wait(
            self.server
                .handler
                .send(request)
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(Ok(answer)) if screenreader => {
                        let on = answer.ends_with("'true'.");
                        act.flags.screenreader = on;
                        act.say(if on {
                            "Screenreader mode turned on."
                        } else {
                            "Screenreader mode turned off."
                        });
                    }
                    Ok(Ok(answer) | Err(answer)) => act.say(answer),
                    Err(_) => {}
                }),
        );
    }

    fn send_oob(&self, msg: OobMessage) {
        self.server.portals.send(ServerToPortal::DataOut {
            sessid: self.sessid,
            output: Output::Oob(msg),
        });
    }

    fn run_oob(&mut self, msg: &OobMessage, ctx: &mut Context<Self>) {
        match inputfuncs::parse(msg) {
            InputFunc::Echo(args) => {
                let shown: Vec<String> = args.iter().map(ToString::to_string).collect();
                self.say(format!("Echo returns: {}", shown.join(", ")));
            }
            InputFunc::ClientOptions(set) => {
                let greet = matches!(msg.name.as_str(), "hello") && self.account.is_none();
                self.client_options(set, ctx);
                if greet {
                    // Mudlet logs in over GMCP when the server offers it.
                    let mut kwargs = serde_json::Map::new();
                    kwargs.insert("type".into(), serde_json::json!(["password-credentials"]));
                    self.send_oob(inputfuncs::oob("char_login_default", Vec::new(), kwargs));
                }
            }
            InputFunc::GetClientOptions => self.client_options(serde_json::Map::new(), ctx),
            InputFunc::GetInputfuncs => {
                self.send_oob(inputfuncs::oob(
                    "get_inputfuncs",
                    Vec::new(),
                    inputfuncs::inputfunc_docs(),
                ));
            }
            InputFunc::Login { name, password } => {
                if self.account.is_some() {
                    self.say("You are already logged in.");
                } else {
                    self.connect(name, password, true, ctx);
                }
            }
            InputFunc::Values { names, msdp } => self.report_values(names, msdp, ctx),
            InputFunc::MsdpList(what) => {
                if let Some(items) = inputfuncs::msdp_list(&what) {
                    let list = serde_json::Value::Array(items);
                    self.send_oob(inputfuncs::oob(
                        &what.to_lowercase(),
                        vec![list],
                        serde_json::Map::new(),
                    ));
                }
            }
            InputFunc::Idle | InputFunc::Ignored => {}
            InputFunc::Unknown(name) => {
                log::debug!("session {}: unknown input function {name}", self.sessid);
            }
        }
    }

    /// Answers `get_value` / MSDP `SEND`: looks the session's account,
    /// character and room up, then sends each value that exists.
    fn report_values(&mut self, names: Vec<String>, msdp: bool, ctx: &mut Context<Self>) {
        let handler = self.server.handler.clone();
        let world = self.server.world.clone();
        let sessid = self.sessid;
        let server_name = self.server.settings.server.name.clone();
        ctx.wait(
            async move {
                let record = handler.send(GetSession { sessid }).await.ok().flatten();
                let mut source = ValueSource {
                    server_name,
                    account: record.as_ref().and_then(|r| r.account_name.clone()),
                    ..ValueSource::default()
                };
                if let Some(puppet) = record.and_then(|r| r.puppet_id) {
                    if let Ok(found) = world
                        .send(Locate {
                            characters: vec![puppet],
                        })
                        .await
                    {
                        if let Some((name, room)) = found.get(&puppet) {
                            source.character = Some(name.clone());
                            source.room = Some(room.clone());
                        }
                    }
                }
                source
            }
            .into_actor(self)
            .map(move |source, act, _| {
                for name in names {
                    let Some(value) = inputfuncs::value_of(&name, &source) else {
                        continue;
                    };
                    if msdp {
                        act.send_oob(inputfuncs::oob(
                            &name.to_lowercase(),
                            vec![value],
                            serde_json::Map::new(),
                        ));
                    } else {
                        let mut kwargs = serde_json::Map::new();
                        kwargs.insert(name.to_lowercase(), value);
                        act.send_oob(inputfuncs::oob("get_value", Vec::new(), kwargs));
                    }
                }
            }),
        );
    }

    /// Applies (or, with nothing to set, reports) client options.
    fn client_options(
        &mut self,
        set: serde_json::Map<String, serde_json::Value>,
        ctx: &mut Context<Self>,
    ) {
        let report = set.is_empty();
        ctx.wait(
            self.server
                .handler
                .send(ClientOptions {
                    sessid: self.sessid,
                    set,
                })
                .into_actor(self)
                .map(move |result, act, _| {
                    let Ok(Some((flags, rejected))) = result else {
                        return;
                    };
                    act.flags = flags.clone();
                    if !rejected.is_empty() {
                        act.say(format!(
                            "Unsupported client option(s): {}.",
                            rejected.join(", ")
                        ));
                    }
                    if report {
                        act.send_oob(inputfuncs::oob(
                            "client_options",
                            Vec::new(),
                            inputfuncs::client_options(&flags),
                        ));
                    }
                }),
        );
    }

    /// `connect`, or a login over OOB (`oob_result` also answers with a
    /// `Char.Login.Result` for Mudlet).
    fn connect(
        &mut self,
        name: String,
        password: String,
        oob_result: bool,
        ctx: &mut Context<Self>,
    ) {
        let db = self.server.db.clone();
        let handler = self.server.handler.clone();
        let sessid = self.sessid;
        let address = self.address.clone();
        let metrics = Arc::clone(&self.server.metrics);
        // `wait` holds this session's later lines until the login is settled.
        ctx.wait(
            async move {
                // A throttled address is refused before any hash is computed;
                // every attempt counts as a failure until it succeeds.
                let attempt = ThrottleAttempt {
                    kind: ThrottleKind::Login,
                    address: address.clone(),
                };
                match handler.send(attempt).await {
                    Ok(None) => {}
                    Ok(Some(refusal)) => {
                        metrics.failed_logins.inc();
                        return Err(refusal.to_owned());
                    }
                    Err(_) => return Err(DB_UNAVAILABLE.to_owned()),
                }
                log::debug!("session {sessid}: checking the password for {name:?}");
                let record = match answer(db.send(Authenticate { name, password }).await) {
                    Ok(Some(record)) => {
                        handler.do_send(ForgiveAttempt {
                            kind: ThrottleKind::Login,
                            address,
                        });
                        record
                    }
                    Ok(None) => {
                        metrics.failed_logins.inc();
                        return Err(LOGIN_FAILED.to_owned());
                    }
                    Err(e) => {
                        log::error!("session {sessid}: login failed in the database: {e}");
                        return Err(DB_UNAVAILABLE.to_owned());
                    }
                };
                match handler
                    .send(Login {
                        sessid,
                        account: record,
                    })
                    .await
                {
                    Ok(Some(account)) => Ok(account),
                    // The connection went away meanwhile: nobody to tell.
                    Ok(None) => Err(String::new()),
                    Err(e) => {
                        log::error!("session {sessid}: the login was not taken: {e}");
                        Err(LOGIN_NOT_TAKEN.to_owned())
                    }
                }
            }
            .into_actor(self)
            .map(move |result, act, _| {
                if oob_result {
                    let mut kwargs = serde_json::Map::new();
                    kwargs.insert("success".into(), result.is_ok().into());
                    if let Err(message) = &result {
                        kwargs.insert("message".into(), message.clone().into());
                    }
                    act.send_oob(inputfuncs::oob("char_login_result", Vec::new(), kwargs));
                }
                match result {
                    Ok(account) => act.account = Some(account),
                    Err(message) if !message.is_empty() => act.say(message),
                    Err(_) => {}
                }
            }),
        );
    }

    fn create(&mut self, name: String, password: String, ctx: &mut Context<Self>) {
        let request = CreateAccount {
            name,
            password,
            superuser: false,
            min_password_length: self.server.settings.server.password_min_length,
        };
        let with_character = self
            .server
            .settings
            .server
            .auto_create_character_with_account;
        let db = self.server.db.clone();
        let handler = self.server.handler.clone();
        let sessid = self.sessid;
        let address = self.address.clone();
        ctx.wait(
            async move {
                let attempt = ThrottleAttempt {
                    kind: ThrottleKind::Creation,
                    address: address.clone(),
                };
                match handler.send(attempt).await {
                    Ok(None) => {}
                    Ok(Some(refusal)) => return vec![refusal.to_owned()],
                    Err(_) => return vec![CREATE_FAILED.to_owned()],
                }
                // Requests refused before any work (a bad name or password)
                // do not count against the address; everything else does.
                let forgive = || ForgiveAttempt {
                    kind: ThrottleKind::Creation,
                    address: address.clone(),
                };
                let record = match answer(db.send(request).await) {
                    // The account is committed before the player hears of it.
                    Ok(record) => record,
                    Err(DbError::NameTaken) => {
                        return vec!["Sorry, there is already an account with that name.".to_owned()]
                    }
                    Err(DbError::InvalidName(why) | DbError::WeakPassword(why)) => {
                        handler.do_send(forgive());
                        return vec![why];
                    }
                    Err(e) => {
                        handler.do_send(forgive());
                        log::error!("session {sessid}: account creation failed: {e}");
                        return vec![CREATE_FAILED.to_owned()];
                    }
                };
                log::info!("session {sessid} from {address} created account {}", record.name);
                let mut lines = vec![format!(
                    "A new account '{}' was created. Welcome!\n\
                     You can now log in with the command 'connect {} <password>'.",
                    record.name, record.name
                )];
                if with_character {
                    let character = CreateCharacter {
                        account: record.id,
                        name: record.name.clone(),
                        description: DEFAULT_DESCRIPTION.to_owned(),
                        max_characters: 0,
                    };
                    match answer(db.send(character).await) {
                        Ok(_) => {}
                        Err(DbError::NameTaken) => lines.push(format!(
                            "No character was made for you: a character called '{}' exists already. \
                             Use charcreate <name> once you are logged in.",
                            record.name
                        )),
                        Err(e) => {
                            log::error!("session {sessid}: character creation failed: {e}");
                            lines.push("No character was made for you; use charcreate <name> once you are logged in.".to_owned());
                        }
                    }
                }
                lines
            }
            .into_actor(self)
            .map(|lines, act, _| {
                for line in lines {
                    act.say(line);
                }
            }),
        );
    }
}

impl Actor for ServerSession {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        if self.greet && self.account.is_none() {
            self.say(unloggedin::connection_screen(
                &self.server.settings.server.name,
            ));
        }
    }
}

impl Handler<SessionCommand> for ServerSession {
    type Result = ();

    fn handle(&mut self, msg: SessionCommand, ctx: &mut Context<Self>) {
        // Out-of-band calls are about the connection, logged in or not.
        let line = match msg.input {
            Input::Oob(oob) => {
                acknowledge_when_done(msg.receipt, &self.server.portals, ctx);
                return self.run_oob(&oob, ctx);
            }
            Input::Text(line) => line,
        };
        if let Some(account) = &self.account {
            if account.connected() {
                // The account runs it, and acknowledges it.
                account.do_send(AccountInput {
                    sessid: self.sessid,
                    input: Input::Text(line),
                    received: msg.received,
                    receipt: msg.receipt,
                });
                return;
            }
            self.account = None;
        }
        acknowledge_when_done(msg.receipt, &self.server.portals, ctx);
        self.run_unlogged_in(&line, ctx);
        let took = msg.received.elapsed().as_secs_f64();
        self.server.metrics.command_seconds.observe(took);
    }
}

impl Handler<StopSession> for ServerSession {
    type Result = ();

    fn handle(&mut self, _: StopSession, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Settle> for ServerSession {
    type Result = ();

    fn handle(&mut self, _: Settle, _: &mut Context<Self>) {}
}
