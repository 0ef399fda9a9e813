//! Key tooling without writing Rust: mint a key, check one, digest one.
//!
//! ```text
//! cargo run --example keys -- mint --kind secret --env live [--project P] [--name N] [--config PATH]
//! cargo run --example keys -- check KEY
//! cargo run --example keys -- digest KEY [--config PATH]
//! ```
//!
//! `mint` prints the new key once, on its first line, then a `[[keys]]`
//! entry for a configuration file holding its digest — never the key. The
//! digest is made under the pepper in `TOLLGATE_PEPPER`, or under the
//! pepper of the configuration file given with `--config` (its `pepper` or
//! `pepper_env`), so that the gateway reading that file accepts the key.
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

const USAGE: &str = "usage:
  keys mint --kind publishable|secret|restricted [--env live|test] [--project P] [--name N] [--config PATH]
  keys check KEY
  keys digest KEY [--config PATH]

The pepper comes from --config PATH (the file's `pepper` or `pepper_env`) or
else from the TOLLGATE_PEPPER environment variable.";

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
            &["--kind", "--env", "--project", "--name", "--config"],
        )?),
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
    Ok(ExitCode::SUCCESS)
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
