//! The client's configuration: command-line flags, each also readable from a `TOYSTORE_<FLAG>`
//! environment variable (clap's `env` feature), with the defaults the contract names.
//!
//! Validation happens while parsing, so a bad value is reported by clap with exit code 2 before any
//! request is sent.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

/// Default base URL of the front-end's public address.
pub const DEFAULT_FRONTEND: &str = shared::config::DEFAULT_FRONTEND_URL;

/// Default number of iterations per session.
pub const DEFAULT_ITERATIONS: u64 = 100;

/// Default probability of buying after a query that showed stock.
pub const DEFAULT_P: f64 = 0.5;

/// Default path of the latency CSV.
pub const DEFAULT_LATENCY_CSV: &str = "results/latency.csv";

/// Default number of concurrent sessions.
pub const DEFAULT_THREADS: u32 = 1;

/// Most concurrent sessions one client process runs; more is better done with several processes.
pub const MAX_THREADS: u32 = 1024;

/// Default largest quantity of one purchase.
pub const DEFAULT_MAX_QUANTITY: u32 = 3;

/// The store's ten toys (those of a new catalog, [`shared::files::DEFAULT_TOYS`]), the default for
/// `--products`.
pub const DEFAULT_PRODUCTS: [&str; 10] = toy_names(shared::files::DEFAULT_TOYS);

const fn toy_names<const N: usize>(toys: [(&'static str, f64); N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = toys[i].0;
        i += 1;
    }
    names
}

/// [`DEFAULT_PRODUCTS`] as `--products` takes them (and `--help` shows them).
pub fn default_products_list() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| DEFAULT_PRODUCTS.join(","))
}

/// Configuration of one client run.
///
/// The doc comment of each field is also its `--help` text.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "client",
    version,
    // Without this the struct's doc comment, written for Rust readers, would open `--help`.
    long_about = None,
    about = "Load generator and checker for the toy store: queries toys, buys some, then verifies \
             every order it made and writes one latency CSV row per request.",
    after_help = "Exit codes: 0 every order verified and no request failed; 1 an order mismatch, a \
                  transport error, a 5xx or another unexpected answer (a 409 out-of-stock is \
                  expected and does not count); 2 bad arguments."
)]
pub struct Config {
    /// Base URL of the front-end's public address (plain http).
    #[arg(long, env = "TOYSTORE_FRONTEND", default_value = DEFAULT_FRONTEND,
          value_parser = parse_frontend, value_name = "URL")]
    pub frontend: String,

    /// Iterations per session; each queries one random toy and maybe buys it.
    #[arg(long, env = "TOYSTORE_ITERATIONS", default_value_t = DEFAULT_ITERATIONS, value_name = "N")]
    pub iterations: u64,

    /// Probability (0 to 1) of buying after a query that showed stock.
    #[arg(long, env = "TOYSTORE_P", default_value_t = DEFAULT_P,
          value_parser = parse_probability, value_name = "PROB")]
    pub p: f64,

    /// Seed of the random choices; session k uses SEED+k. [default: derived from the current time,
    /// printed so that the run can be replayed]
    #[arg(long, env = "TOYSTORE_SEED", value_name = "S")]
    pub seed: Option<u64>,

    /// Where to write one CSV row per request (parent folders are created).
    #[arg(long, env = "TOYSTORE_LATENCY_CSV", default_value = DEFAULT_LATENCY_CSV, value_name = "FILE")]
    pub latency_csv: PathBuf,

    /// Number of independent sessions running concurrently.
    #[arg(long, env = "TOYSTORE_THREADS", default_value_t = DEFAULT_THREADS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_THREADS)), value_name = "K")]
    pub threads: u32,

    /// Id of the first session, written to the CSV `client` column (session k is ID+k), so that
    /// several client processes write distinct ids.
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_ID",
        default_value_t = 0,
        value_name = "N"
    )]
    pub client_id: u64,

    /// Comma-separated toy names to pick from.
    #[arg(long, env = "TOYSTORE_PRODUCTS", value_delimiter = ',', default_value = default_products_list(),
          value_parser = parse_product, value_name = "LIST")]
    pub products: Vec<String>,

    /// Largest quantity of one purchase; a purchase buys a uniform 1..=Q, but never more than the
    /// query showed in stock.
    #[arg(long, env = "TOYSTORE_MAX_QUANTITY", default_value_t = DEFAULT_MAX_QUANTITY,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "Q")]
    pub max_quantity: u32,

    /// Free text copied into the CSV `tag` column (experiments mark e.g. cache on/off).
    #[arg(long, env = "TOYSTORE_TAG", default_value = "", value_name = "TEXT")]
    pub tag: String,
}

impl Default for Config {
    /// The documented defaults, without reading the command line or the environment.
    fn default() -> Self {
        Config {
            frontend: DEFAULT_FRONTEND.to_string(),
            iterations: DEFAULT_ITERATIONS,
            p: DEFAULT_P,
            seed: None,
            latency_csv: PathBuf::from(DEFAULT_LATENCY_CSV),
            threads: DEFAULT_THREADS,
            client_id: 0,
            products: DEFAULT_PRODUCTS
                .iter()
                .map(|name| name.to_string())
                .collect(),
            max_quantity: DEFAULT_MAX_QUANTITY,
            tag: String::new(),
        }
    }
}

/// A seed derived from the wall clock, for runs without `--seed`.
///
/// Nanosecond resolution, so that client processes started together still get different seeds.
pub fn seed_from_time() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Folding the 128-bit nanosecond count keeps every bit that changes between runs.
    let nanos = since_epoch.as_nanos();
    (nanos as u64) ^ ((nanos >> 64) as u64)
}

/// Parses `--p`: a finite number within 0..=1.
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    // `contains` is false for NaN, so NaN is rejected here too.
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability within 0..=1"))
    }
}

/// Parses `--frontend`: an `http://` URL; a trailing `/` is dropped so paths can be appended.
pub fn parse_frontend(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let Some(authority) = url.strip_prefix("http://") else {
        return Err(format!(
            "`{text}` is not an http:// URL (the client has no TLS, the store speaks plain http)"
        ));
    };
    if authority.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url.to_string())
}

/// Parses one element of `--products`: a non-empty toy name, surrounding blanks removed.
pub fn parse_product(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        Err("a toy name is empty".to_string())
    } else {
        Ok(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// Parses like `Config::try_parse_from`, but ignores `TOYSTORE_*` variables of the environment the
    /// tests happen to run in.
    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let command = Config::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches =
            command.try_get_matches_from(std::iter::once("client").chain(args.iter().copied()))?;
        Config::from_arg_matches(&matches)
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = parse(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.frontend, "http://127.0.0.1:8080");
        assert_eq!(config.iterations, 100);
        assert_eq!(config.p, 0.5);
        assert_eq!(config.seed, None);
        assert_eq!(config.latency_csv, PathBuf::from("results/latency.csv"));
        assert_eq!(config.threads, 1);
        assert_eq!(config.products.len(), 10);
        assert_eq!(config.products[0], "Tux");
        assert_eq!(config.max_quantity, 3);
        assert_eq!(config.tag, "");
    }

    #[test]
    fn flags_are_parsed() {
        let config = parse(&[
            "--frontend",
            "http://10.0.0.2:9000/",
            "--iterations",
            "7",
            "--p",
            "0.8",
            "--seed",
            "42",
            "--latency-csv",
            "/tmp/x/y.csv",
            "--threads",
            "4",
            "--client-id",
            "10",
            "--products",
            "Tux, Fox",
            "--max-quantity",
            "5",
            "--tag",
            "cache-on",
        ])
        .unwrap();
        assert_eq!(config.frontend, "http://10.0.0.2:9000");
        assert_eq!(config.iterations, 7);
        assert_eq!(config.p, 0.8);
        assert_eq!(config.seed, Some(42));
        assert_eq!(config.latency_csv, PathBuf::from("/tmp/x/y.csv"));
        assert_eq!(config.threads, 4);
        assert_eq!(config.client_id, 10);
        assert_eq!(config.products, vec!["Tux".to_string(), "Fox".to_string()]);
        assert_eq!(config.max_quantity, 5);
        assert_eq!(config.tag, "cache-on");
    }

    #[test]
    fn probability_must_be_within_0_and_1() {
        assert_eq!(parse_probability("0"), Ok(0.0));
        assert_eq!(parse_probability("1"), Ok(1.0));
        assert_eq!(parse_probability(" 0.25 "), Ok(0.25));
        for bad in ["-0.1", "1.01", "NaN", "inf", "half", ""] {
            assert!(parse_probability(bad).is_err(), "{bad} accepted");
        }
        let err = parse(&["--p", "1.5"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["--threads", "0"][..],
            &["--max-quantity", "0"],
            &["--iterations", "-1"],
            &["--seed", "x"],
            &["--frontend", "https://example.com"],
            &["--frontend", "localhost:8080"],
            &["--products", "Tux,,Fox"],
            &["--products", ""],
            &["--no-such-flag"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} accepted"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn help_lists_every_flag_with_env_and_default() {
        let help = Config::command().render_long_help().to_string();
        for (flag, env) in [
            ("--frontend", "TOYSTORE_FRONTEND"),
            ("--iterations", "TOYSTORE_ITERATIONS"),
            ("--p", "TOYSTORE_P"),
            ("--seed", "TOYSTORE_SEED"),
            ("--latency-csv", "TOYSTORE_LATENCY_CSV"),
            ("--threads", "TOYSTORE_THREADS"),
            ("--client-id", "TOYSTORE_CLIENT_ID"),
            ("--products", "TOYSTORE_PRODUCTS"),
            ("--max-quantity", "TOYSTORE_MAX_QUANTITY"),
            ("--tag", "TOYSTORE_TAG"),
        ] {
            assert!(help.contains(flag), "{flag} missing from help:\n{help}");
            assert!(help.contains(env), "{env} missing from help:\n{help}");
        }
        for default in [
            "[default: http://127.0.0.1:8080]",
            "[default: 100]",
            "[default: 0.5]",
            "derived from the current time",
            "[default: results/latency.csv]",
            "[default: 1]",
            "[default: 0]",
            "Tux,Whale,Elephant,Bird,Fox,Python,Lego,Barbie,Frisbee,Marbles",
            "[default: 3]",
            "[default: \"\"]",
        ] {
            assert!(
                help.contains(default),
                "{default} missing from help:\n{help}"
            );
        }
    }

    #[test]
    fn the_default_products_are_the_new_catalog_s_toys() {
        assert_eq!(DEFAULT_PRODUCTS[0], "Tux");
        assert_eq!(DEFAULT_PRODUCTS[9], "Marbles");
        assert!(default_products_list().starts_with("Tux,Whale,"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        Config::command().debug_assert();
    }
}
