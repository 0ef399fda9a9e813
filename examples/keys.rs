//! Key tooling without writing Rust: mint a key, check one, digest one.
//!
//! ```text
//! cargo run --example keys -- mint --kind secret --env live [--project P] [--name N] [--credits N[/month]] [--config PATH]
//! cargo run --example keys -- check KEY
//! cargo run --example keys -- digest KEY [--config PATH]
//! cargo run --features postgres --example keys -- mint --kind secret --postgres URL [--migrate] [...]
//! cargo run --features postgres --example keys -- list --postgres URL
//! cargo run --features postgres --example keys -- revoke|disable|enable KEY_ID --postgres URL
//! ```
//!
//! `mint` prints the new key once, on its first line, then a `[[keys]]`
//! entry for a configuration file holding its digest — never the key. The
//! digest is made under the pepper in `TOLLGATE_PEPPER`, or under the
//! pepper of the configuration file given with `--config` (its `pepper` or
//! `pepper_env`), so that the gateway reading that file accepts the key.
//! `--credits 1000` gives the key 1 000 uses; `--credits 10000/month` (or
//! `/minute`, `/hour`, `/day`) 10 000 each month.
//!
//! With `--postgres URL` (feature `postgres`), `mint` stores the key's
//! digest and record in the database's `tollgate_keys` table instead
//! (`--migrate` creates the table first), `list` shows the keys there
//! (never a key nor its digest), and `revoke`, `disable` and `enable` set a
//! key's status: every gateway on that database hears of it at once.
//!
//! `check` says whether a key is well-formed, whether its checksum is
//! valid, and its kind and environment; it needs no store and no pepper.
//!
//! Exit codes: 0 fine, 1 a bad key, 2 bad usage (or no pepper to digest
//! with).

use std::path::PathBuf;
use std::process::ExitCode;

use tollgate::gate::GateConfig;
use tollgate::key::format::{KeyParser, ParseError};
use tollgate::key::{KeyEnv, KeyHasher, KeyKind};
use tollgate::rate_limit::{Calendar, Credits};

const USAGE: &str = "usage:
  keys mint --kind publishable|secret|restricted [--env live|test] [--project P] [--name N]
            [--credits N | --credits N/minute|hour|day|month] [--config PATH]
  keys check KEY
  keys digest KEY [--config PATH]
  keys mint ... --postgres URL [--migrate]      (feature postgres)
  keys list --postgres URL
  keys revoke|disable|enable KEY_ID --postgres URL

The pepper comes from --config PATH (the file's `pepper` or `pepper_env`) or
else from the TOLLGATE_PEPPER environment variable.";

/// Options that take no value.
const FLAGS: [&str; 1] = ["--migrate"];

/// A usage mistake: exit code 2.
struct Usage(String);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("keys: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, Usage> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Usage("say what to do: mint, check or digest".into()));
    };
    match command.as_str() {
        "mint" => mint(&Options::parse(
            rest,
            &[
                "--kind",
                "--env",
                "--project",
                "--name",
                "--credits",
                "--config",
                "--postgres",
                "--migrate",
            ],
        )?),
        "list" => database::list(&Options::parse(rest, &["--postgres"])?),
        command @ ("revoke" | "disable" | "enable") => {
            database::set_status(command, &Options::parse(rest, &["--postgres"])?)
        }
        "check" => check(&Options::parse(rest, &[])?),
        "digest" => digest(&Options::parse(rest, &["--config"])?),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Usage(format!("unknown command `{other}`"))),
    }
}

/// `--name value` options and at most one positional argument.
#[derive(Default)]
struct Options {
    values: Vec<(String, String)>,
    positional: Option<String>,
}

impl Options {
    fn parse(args: &[String], allowed: &[&str]) -> Result<Self, Usage> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg.starts_with("--") {
                if !allowed.contains(&arg.as_str()) {
                    return Err(Usage(format!("unknown option `{arg}`")));
                }
                if FLAGS.contains(&arg.as_str()) {
                    options.values.push((arg.clone(), String::new()));
                    continue;
                }
                let value = args
                    .next()
                    .ok_or_else(|| Usage(format!("{arg} needs a value")))?;
                options.values.push((arg.clone(), value.clone()));
            } else if options.positional.replace(arg.clone()).is_some() {
                return Err(Usage("give one key at a time".into()));
            }
        }
        Ok(options)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(given, _)| given == name)
            .map(|(_, value)| value.as_str())
    }

    fn key(&self) -> Result<&str, Usage> {
        self.positional
            .as_deref()
            .ok_or_else(|| Usage("give the key".into()))
    }
}

/// The hasher of `--config PATH`, else of `TOLLGATE_PEPPER`.
fn hasher(options: &Options) -> Result<KeyHasher, Usage> {
    if let Some(path) = options.get("--config") {
        let config = GateConfig::from_path(PathBuf::from(path))
            .map_err(|error| Usage(format!("--config {path}: {error}")))?;
        if config.pepper.is_none() && config.pepper_env.is_none() {
            return Err(Usage(format!(
                "--config {path}: the file sets no `pepper` or `pepper_env`"
            )));
        }
        return config
            .hasher()
            .map_err(|error| Usage(format!("--config {path}: {error}")));
    }
    match std::env::var("TOLLGATE_PEPPER") {
        Ok(pepper) if !pepper.is_empty() => Ok(KeyHasher::with_pepper(pepper.as_bytes())),
        _ => Err(Usage(
            "no pepper: set TOLLGATE_PEPPER or give --config PATH".into(),
        )),
    }
}

fn mint(options: &Options) -> Result<ExitCode, Usage> {
    if options.positional.is_some() {
        return Err(Usage("mint takes options only".into()));
    }
    let kind = match options.get("--kind") {
        Some("publishable") => KeyKind::Publishable,
        Some("secret") => KeyKind::Secret,
        Some("restricted") => KeyKind::Restricted,
        Some(other) => {
            return Err(Usage(format!(
                "--kind {other}: use publishable, secret or restricted"
            )));
        }
        None => return Err(Usage("mint needs --kind".into())),
    };
    let env = match options.get("--env") {
        Some("live") => Some(KeyEnv::Live),
        Some("test") => Some(KeyEnv::Test),
        None => None,
        Some(other) => return Err(Usage(format!("--env {other}: use live or test"))),
    };
    let hasher = hasher(options)?;
    let minted = hasher
        .mint(kind, env)
        .map_err(|error| Usage(format!("minting failed: {error}")))?;
    let digest = minted.digest().to_hex();
    let name = options
        .get("--name")
        .map_or_else(|| format!("key_{}", &digest[..12]), str::to_owned);
    let project = options.get("--project").unwrap_or("default");
    let credits = credits(options)?;
    if let Some(url) = options.get("--postgres") {
        let mut entry = tollgate::key::KeyConfig::default();
        entry.name.clone_from(&name);
        entry.project = project.to_owned();
        entry.kind = Some(kind);
        entry.env = env;
        entry.credits = credits;
        database::store(options, url, &minted, &entry)?;
        println!("{}", minted.key());
        println!();
        println!("# The key above is shown once: give it to its owner; it is not stored.");
        println!("# Stored in PostgreSQL as `{name}` (project `{project}`), by its digest.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", minted.key());
    println!();
    println!("# The key above is shown once: give it to its owner; it is not stored.");
    println!("[[keys]]");
    println!("name = {}", toml_string(&name));
    println!("digest = \"{digest}\"");
    println!("kind = \"{}\"", kind.as_str());
    if let Some(env) = env {
        println!("env = \"{}\"", env.as_str());
    }
    println!("project = {}", toml_string(project));
    if let Some(credits) = credits {
        let table =
            toml::Value::try_from(credits).map_err(|error| Usage(format!("--credits: {error}")))?;
        println!("credits = {}", inline(&table));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--credits N` (uses, once) or `--credits N/PERIOD` (N each minute, hour,
/// day or month).
fn credits(options: &Options) -> Result<Option<Credits>, Usage> {
    let Some(text) = options.get("--credits") else {
        return Ok(None);
    };
    let bad = || {
        Usage(format!(
            "--credits {text}: give a number of uses (1000) or uses a period (10000/month)"
        ))
    };
    let (amount, period) = match text.split_once('/') {
        Some((amount, period)) => (amount, Some(period)),
        None => (text, None),
    };
    let amount: u64 = amount.parse().map_err(|_| bad())?;
    let credits = match period {
        None => Credits::new(amount),
        Some(period) => {
            let every: Calendar = toml::Value::String(period.to_owned())
                .try_into()
                .map_err(|_| bad())?;
            Credits::refilled(amount, every)
        }
    };
    // The same checks a configuration file's credits get.
    let checked: Credits = toml::Value::try_from(credits)
        .map_err(|error| error.to_string())
        .and_then(|value| {
            value
                .try_into()
                .map_err(|error: toml::de::Error| error.to_string())
        })
        .map_err(|error| Usage(format!("--credits {text}: {}", error.trim())))?;
    Ok(Some(checked))
}

/// A TOML table on one line, as a `[[keys]]` entry writes it.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(table) => {
            let members: Vec<String> = table
                .iter()
                .map(|(name, value)| format!("{name} = {}", inline(value)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
        other => other.to_string(),
    }
}

fn check(options: &Options) -> Result<ExitCode, Usage> {
    let key = options.key()?;
    let strict = KeyParser::new().require_checksum(true);
    match strict.parse(key) {
        Ok(parsed) => {
            println!("well-formed: yes");
            println!("checksum: valid");
            println!("kind: {}", parsed.kind().as_str());
            println!("env: {}", parsed.env().map_or("none", KeyEnv::as_str));
            Ok(ExitCode::SUCCESS)
        }
        Err(ParseError::BadChecksum) => {
            println!("well-formed: yes");
            println!("checksum: invalid (is it mistyped?)");
            if let Ok(parsed) = KeyParser::new().require_checksum(false).parse(key) {
                println!("kind: {}", parsed.kind().as_str());
                println!("env: {}", parsed.env().map_or("none", KeyEnv::as_str));
            }
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            println!("well-formed: no ({error})");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn digest(options: &Options) -> Result<ExitCode, Usage> {
    let key = options.key()?;
    if let Err(error) = KeyParser::new().require_checksum(false).parse(key) {
        eprintln!("keys: not a key: {error}");
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", hasher(options)?.digest(key).to_hex());
    Ok(ExitCode::SUCCESS)
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The `--postgres` commands.
#[cfg(feature = "postgres")]
mod database {
    use std::process::ExitCode;
    use std::time::{SystemTime, UNIX_EPOCH};

    use tollgate::key::postgres::{PostgresKeyStore, PostgresOptions};
    use tollgate::key::{KeyConfig, KeyStatus, MintedKey};

    use super::{Options, Usage};

    /// Runs `work` against the database at `url`.
    fn with_store<T>(
        url: &str,
        migrate: bool,
        work: impl AsyncFnOnce(&PostgresKeyStore) -> Result<T, String>,
    ) -> Result<T, Usage> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Usage(format!("no runtime: {error}")))?;
        runtime.block_on(async {
            let store = PostgresKeyStore::connect(PostgresOptions::new(url).migrate(migrate))
                .await
                .map_err(|error| Usage(format!("--postgres: {error}")))?;
            work(&store).await.map_err(Usage)
        })
    }

    fn url(options: &Options) -> Result<&str, Usage> {
        options
            .get("--postgres")
            .ok_or_else(|| Usage("give the database with --postgres URL".into()))
    }

    pub(super) fn store(
        options: &Options,
        url: &str,
        minted: &MintedKey,
        entry: &KeyConfig,
    ) -> Result<(), Usage> {
        let migrate = options.get("--migrate").is_some();
        with_store(url, migrate, async |store| {
            store
                .insert(minted.digest(), entry)
                .await
                .map_err(|error| format!("storing the key failed: {error}"))
        })
    }

    pub(super) fn set_status(command: &str, options: &Options) -> Result<ExitCode, Usage> {
        let key_id = options
            .positional
            .as_deref()
            .ok_or_else(|| Usage(format!("{command} needs the key's id")))?;
        let status = match command {
            "revoke" => KeyStatus::Revoked,
            "disable" => KeyStatus::Disabled,
            _ => KeyStatus::Active,
        };
        let found = with_store(url(options)?, false, async |store| {
            store
                .set_status(key_id, status)
                .await
                .map_err(|error| error.to_string())
        })?;
        if found {
            println!("{key_id}: {command}d");
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("keys: no key `{key_id}` in the database");
            Ok(ExitCode::FAILURE)
        }
    }

    pub(super) fn list(options: &Options) -> Result<ExitCode, Usage> {
        if options.positional.is_some() {
            return Err(Usage("list takes options only".into()));
        }
        let keys = with_store(url(options)?, false, async |store| {
            store.list().await.map_err(|error| error.to_string())
        })?;
        println!(
            "{:<24} {:<16} {:<12} {:<5} {:<9} {:<10} {:<14} {:<20} last used",
            "key id", "project", "kind", "env", "status", "tier", "credits", "created"
        );
        for key in keys {
            // As `mint --credits` takes them: `1000`, or `10000/month`.
            let credits = key.credits.map_or_else(
                || "-".to_owned(),
                |credits| match credits.refill() {
                    Some(every) => format!("{}/{}", credits.allowance(), every.as_str()),
                    None => credits.allowance().to_string(),
                },
            );
            println!(
                "{:<24} {:<16} {:<12} {:<5} {:<9} {:<10} {:<14} {:<20} {}",
                key.key_id,
                key.project,
                key.kind,
                key.environment.as_deref().unwrap_or("-"),
                key.status,
                key.tier.as_deref().unwrap_or("-"),
                credits,
                utc(key.created_at),
                key.last_used_at.map_or_else(|| "never".to_owned(), utc),
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    fn utc(time: SystemTime) -> String {
        let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        // The civil date of a day count (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest / 60 % 60,
            rest % 60
        )
    }
}

/// Without the `postgres` feature, `--postgres` says how to get it.
#[cfg(not(feature = "postgres"))]
mod database {
    use std::process::ExitCode;

    use tollgate::key::{KeyConfig, MintedKey};

    use super::{Options, Usage};

    fn unsupported() -> Usage {
        Usage("--postgres needs the postgres feature: cargo run --features postgres --example keys -- ...".into())
    }

    pub(super) fn store(_: &Options, _: &str, _: &MintedKey, _: &KeyConfig) -> Result<(), Usage> {
        Err(unsupported())
    }

    pub(super) fn set_status(_: &str, _: &Options) -> Result<ExitCode, Usage> {
        Err(unsupported())
    }

    pub(super) fn list(_: &Options) -> Result<ExitCode, Usage> {
        Err(unsupported())
    }
}
