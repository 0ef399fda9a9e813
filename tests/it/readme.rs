//! The README's error catalogue cannot drift from the code.

use tollgate::error::ErrorCode;

#[test]
fn readme_catalogue_matches_the_code() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### The catalogue")
        .nth(1)
        .expect("README has a catalogue section");
    let rows: Vec<(String, u16, String)> = section
        .lines()
        .skip_while(|line| !line.starts_with("| `"))
        .take_while(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_owned(),
                cells[2].parse().expect("a status"),
                cells[3].to_owned(),
            )
        })
        .collect();
    let code: Vec<(String, u16, String)> = ErrorCode::CATALOGUE
        .iter()
        .map(|c| {
            (
                c.as_str().to_owned(),
                c.status().as_u16(),
                c.category().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows, code);
}

#[test]
fn readme_names_the_two_commands() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains("cargo run --release --example gateway"));
    assert!(readme.contains("cargo test"));
}

#[cfg(feature = "redis")]
#[test]
fn readme_redis_config_parses() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Several instances")
        .nth(1)
        .expect("README has a Several instances section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML example");
    let config = tollgate::gate::GateConfig::from_toml(toml).unwrap();
    let expected = tollgate::rate_limit::redis::RedisOptions::new("redis://10.0.0.5:6379")
        .timeout(std::time::Duration::from_millis(50))
        .on_failure(tollgate::rate_limit::redis::FailureMode::Open)
        .denial_cache(100_000)
        .prefix("tollgate:");
    assert_eq!(config.redis, Some(expected));
}

/// The per-caller limits excerpt is a configuration that builds (digests
/// filled in), and its mistakes are named as the README says.
#[test]
fn readme_per_caller_excerpt_builds() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Limits per caller")
        .nth(1)
        .expect("README has the per-caller section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML excerpt");
    let digest = "ab".repeat(32);
    let text = toml.replace("<64 hex>", &digest);
    let config = tollgate::gate::GateConfig::from_toml(&text).unwrap();
    config.build().unwrap();
    let typo = text.replace("sdk = { rate = 6000", "sdks = { rate = 6000");
    let error = tollgate::gate::GateConfig::from_toml(&typo)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("keys.bigcorp-sdk.quotas.sdks"), "{error}");
    assert!(section.contains("keys.bigcorp-sdk.quotas.sdks"));
}

/// The shadow-mode excerpt is a route that builds, and shadows its rate
/// limit.
#[test]
fn readme_shadow_excerpt_builds() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Shadow mode")
        .nth(1)
        .expect("README has the shadow section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML excerpt");
    let config = tollgate::gate::GateConfig::from_toml(toml).unwrap();
    let policy = toml::to_string(&config.routes[0].policy).unwrap();
    assert!(policy.contains("shadow = [\"rate_limit\"]"), "{policy}");
    config.build().unwrap();
}
