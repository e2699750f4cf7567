//! The `gatehouse` command line: parse, load settings, start the right
//! process. Everything else lives in the library.

// The CLI talks to the operator on stdout.
#![allow(clippy::print_stdout)]

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use nix::sys::signal::Signal;

use gatehouse::actors::portal::{self, supervisor::ServerCommand, PortalOptions};
use gatehouse::actors::server;
use gatehouse::bench::BenchOptions;
use gatehouse::commands::account::DEFAULT_DESCRIPTION;
use gatehouse::control::{self, GameDir, PORTAL_PID_FILE};
use gatehouse::models::account::Account;
use gatehouse::models::character::Character;
use gatehouse::models::world::LIMBO;
use gatehouse::settings::Settings;

/// mimalloc: with [`release_memory_promptly`] it hands freed memory back to
/// the kernel, so a burst (ten thousand players told that one more entered
/// the game) does not leave the processes at their peak size; and a password
/// hash's 19 MiB comes from its own arena instead of a fresh mmap (glibc with
/// a fixed mmap threshold made the median of 2,000 logins 26 times slower:
/// 18.9 s against 0.7 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long `start` and `stop` wait for the daemon.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A MUD server with an Evennia-style Portal and Server"
)]
struct Cli {
    /// The game directory (settings.toml, server/, run/, logs/).
    #[arg(long, global = true, default_value = ".")]
    game_dir: PathBuf,
    /// The settings file [default: settings.toml in the game dir].
    #[arg(long, global = true)]
    settings: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Portal and Server in the foreground (the default).
    Run {
        /// Send the Server's output to this file instead of the terminal.
        #[arg(long, hide = true)]
        server_log: Option<PathBuf>,
    },
    /// Portal and Server as a daemon (pid files in run/, logs in logs/).
    Start,
    /// Stop the daemon (or a `run` in another terminal).
    Stop,
    /// Restart the Server; every player stays connected and logged in.
    Reload,
    /// Replace the running Portal with the binary now on disk; every telnet
    /// connection stays open and web pages resume.
    Upgrade,
    /// Which handover format this binary reads (asked by a Portal before it
    /// upgrades to it).
    #[command(name = "handover-version", hide = true)]
    HandoverVersion,
    /// Whether Portal and Server are up, and how many sessions exist.
    Status,
    /// The Portal alone.
    Portal,
    /// The Server alone.
    Server,
    /// Apply database migrations (also done at Server start).
    Migrate,
    /// Load-test a telnet MUD (this one with --spawn, or any at --host/--port).
    Bench(Box<BenchOptions>),
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account; the password comes from GATEHOUSE_PASSWORD or a prompt.
    Create {
        name: String,
        #[arg(long)]
        superuser: bool,
    },
}

fn main() -> ExitCode {
    release_memory_promptly();
    report_full_files_as_errors();
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's `purge_delay` option: its enum value in both mimalloc 2 and 3
/// (libmimalloc-sys does not export the constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the kernel at once. By default mimalloc waits
/// and purges on a later call from the same thread, which for a database
/// thread that hashed a burst of logins (19 MiB each, argon2id's memory
/// cost) and then sleeps is never: a Server kept 200 MB after 2,000 logins.
fn release_memory_promptly() {
    // SAFETY: sets an allocator option; called first thing in main, before
    // any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// A write past the file size limit (`ulimit -f`) fails with an error the
/// database reports ("disk full") instead of killing the process with SIGXFSZ,
/// so a full disk or quota costs one failed write, not the Server.
fn report_full_files_as_errors() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code; called first thing in main,
    // before any other thread exists. Children (the Server) inherit it.
    if let Err(e) = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) } {
        eprintln!("gatehouse: cannot ignore SIGXFSZ: {e}");
    }
}

fn init_logging(process: &'static str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |buf, record| {
            writeln!(
                buf,
                "{} {:<5} {process}: {}",
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        })
        .init();
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.game_dir)
        .with_context(|| format!("cannot create the game dir {}", cli.game_dir.display()))?;
    let game_root = cli
        .game_dir
        .canonicalize()
        .with_context(|| format!("game dir {}", cli.game_dir.display()))?;
    let game = GameDir::new(&game_root);
    let (settings_file, required) = match &cli.settings {
        Some(path) => (std::path::absolute(path)?, true),
        None => (game_root.join("settings.toml"), false),
    };
    let load = || Settings::load(&settings_file, required).context("invalid settings");

    match cli.command.unwrap_or(Command::Run { server_log: None }) {
        Command::Run { server_log } => {
            init_logging("portal");
            let settings = load()?;
            let supervise =
                server_command(&game_root, required.then_some(&settings_file), server_log)?;
            run_portal(game, settings, Some(supervise))
        }
        Command::Portal => {
            init_logging("portal");
            run_portal(game, load()?, None)
        }
        Command::Server => {
            init_logging("server");
            let settings = load()?;
            actix_rt::System::new().block_on(server::run(game, settings))?;
            Ok(())
        }
        Command::Start => {
            load()?;
            start_daemon(&game, &game_root, required.then_some(&settings_file))
        }
        Command::Stop => stop_daemon(&game),
        Command::Reload => {
            let pid = game
                .live_pid(PORTAL_PID_FILE)
                .context("the game is not running (no live run/portal.pid)")?;
            control::send_signal(pid, Signal::SIGHUP)?;
            println!("Reload requested; players stay connected.");
            Ok(())
        }
        Command::Status => {
            print!("{}", gatehouse::status::render(&game));
            Ok(())
        }
        Command::Upgrade => upgrade_portal(&game),
        Command::HandoverVersion => {
            println!("{}", gatehouse::actors::portal::handover::HANDOVER_VERSION);
            Ok(())
        }
        Command::Migrate => {
            init_logging("migrate");
            let settings = load()?;
            server::open_database(&game, &settings)?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Bench(options) => {
            init_logging("bench");
            let report = gatehouse::bench::run(&options)?;
            if options.json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            if let Some(problems) = report.chaos_failure() {
                bail!("the chaos run FAILED: {problems}");
            }
            Ok(())
        }
        Command::Account {
            command: AccountCommand::Create { name, superuser },
        } => {
            init_logging("account");
            let settings = load()?;
            let password = match std::env::var("GATEHOUSE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let first = rpassword::prompt_password(format!("Password for {name}: "))?;
                    let again = rpassword::prompt_password("Again: ")?;
                    if first != again {
                        bail!("the passwords differ");
                    }
                    first
                }
            };
            let pools = server::open_database(&game, &settings)?;
            let mut conn = pools.write.get()?;
            let now = i64::try_from(gatehouse::session::now_millis())?;
            let account = Account::create(
                &mut conn,
                &name,
                &password,
                superuser,
                settings.server.password_min_length,
                now,
            )?;
            println!(
                "Account '{}' created{}.",
                account.name,
                if superuser { " (superuser)" } else { "" }
            );
            if settings.server.auto_create_character_with_account {
                match Character::create(
                    &mut conn,
                    account.account_id(),
                    &account.name,
                    DEFAULT_DESCRIPTION,
                    LIMBO,
                    0,
                    now,
                ) {
                    Ok(c) => println!("Character '{}' created in Limbo.", c.name),
                    Err(e) => println!("No character was created: {e}"),
                }
            }
            Ok(())
        }
    }
}

/// The Server child gets the same game dir, and the settings file only when
/// the operator named one (the default file may not exist, which is fine).
fn server_command(
    game_root: &Path,
    settings_file: Option<&PathBuf>,
    log_file: Option<PathBuf>,
) -> anyhow::Result<ServerCommand> {
    let program = std::env::current_exe().context("cannot find the gatehouse binary")?;
    let mut args: Vec<OsString> = vec!["--game-dir".into(), game_root.into()];
    if let Some(file) = settings_file {
        args.push("--settings".into());
        args.push(file.into());
    }
    args.push("server".into());
    Ok(ServerCommand {
        program,
        args,
        env: Vec::new(),
        log_file,
    })
}

fn run_portal(
    game: GameDir,
    settings: Settings,
    supervise: Option<ServerCommand>,
) -> anyhow::Result<()> {
    // A missing settings file is fine: write nothing, run on the defaults.
    let options = PortalOptions {
        game_dir: game,
        settings,
        supervise,
        // Captured now: once the binary is replaced on disk, this process's
        // own executable is the old, deleted one.
        program: std::env::current_exe().context("cannot find the gatehouse binary")?,
        args: std::env::args_os().skip(1).collect(),
    };
    actix_rt::System::new().block_on(portal::run(options))?;
    Ok(())
}

/// Asks the running Portal to replace itself with the binary on disk and waits
/// for the outcome in `run/status.toml`.
fn upgrade_portal(game: &GameDir) -> anyhow::Result<()> {
    let pid = game
        .live_pid(PORTAL_PID_FILE)
        .context("the game is not running (no live run/portal.pid)")?;
    let before = game.read_status();
    control::send_signal(pid, Signal::SIGUSR2)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Some(now) = game.read_status() else {
            continue;
        };
        let previous = before.as_ref();
        if now.upgraded.is_some() && now.upgraded != previous.and_then(|p| p.upgraded) {
            println!(
                "Portal upgraded to gatehouse {}; every player stayed connected.",
                now.version
            );
            return Ok(());
        }
        if now.upgrade_error.is_some()
            && now.upgrade_error != previous.and_then(|p| p.upgrade_error.clone())
        {
            bail!(
                "the upgrade was refused; the Portal goes on as before: {}",
                now.upgrade_error.unwrap_or_default()
            );
        }
    }
    bail!("the Portal did not report the upgrade within 60 s; see its log")
}

fn start_daemon(
    game: &GameDir,
    game_root: &Path,
    settings_file: Option<&PathBuf>,
) -> anyhow::Result<()> {
    if let Some(pid) = game.live_pid(PORTAL_PID_FILE) {
        bail!("the game is already running (Portal pid {pid})");
    }
    game.prepare()?;
    game.remove_run_file(control::PORTS_FILE);
    let portal_log = game.log_dir().join("portal.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&portal_log)
        .with_context(|| format!("cannot open {}", portal_log.display()))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--game-dir").arg(game_root);
    if let Some(file) = settings_file {
        cmd.arg("--settings").arg(file);
    }
    cmd.arg("run")
        .arg("--server-log")
        .arg(game.log_dir().join("server.log"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Detach from the terminal's session so closing it does not stop the game.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("cannot start the Portal")?;
    let deadline = Instant::now() + DAEMON_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the Portal exited at start-up ({status}); see {}",
                portal_log.display()
            );
        }
        if let (Some(_), Some(ports)) = (game.live_pid(PORTAL_PID_FILE), game.read_ports()) {
            println!(
                "gatehouse started (Portal pid {}): telnet {:?}, link {}. Logs in {}.",
                child.id(),
                ports.telnet,
                ports.link,
                game.log_dir().display()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the Portal did not come up in time; see {}",
                portal_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_daemon(game: &GameDir) -> anyhow::Result<()> {
    let Some(pid) = game.live_pid(PORTAL_PID_FILE) else {
        println!("The game is not running.");
        return Ok(());
    };
    control::send_signal(pid, Signal::SIGTERM)?;
    let deadline = Instant::now() + DAEMON_TIMEOUT;
    while control::is_alive(pid) {
        if Instant::now() > deadline {
            bail!("the Portal (pid {pid}) did not stop within {DAEMON_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("gatehouse stopped.");
    Ok(())
}
